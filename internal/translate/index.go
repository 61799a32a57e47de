package translate

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
)

const (
	labelMetadataName    = "kubernetes.io/metadata.name"
	labelDataplaneMode   = "istio.io/dataplane-mode"
	dataplaneAmbient     = "ambient"
	dataplaneNone        = "none"
	defaultTrustDomain   = "cluster.local"
	defaultRootNamespace = "istio-system"
)

// index is the snapshot arranged for lookups, built once per Translate call.
type index struct {
	trustDomain   string
	rootNamespace string
	namespaces    map[string]*nsInfo
	// sorted holds every namespace, known or referenced, by name.
	sorted []*nsInfo
	// marks counts the marks handed out by newMark.
	marks uint64
	// admin holds the snapshot's admin network policies.
	admin *adminIndex
	// wp holds its Services, Gateways and ingress isolation.
	wp *waypointIndex
}

// newMark returns a value no pod is marked with yet, so that a pass can
// mark the pods it selects without allocating a set. The index lives for
// one Translate call, so this state never leaks.
func (idx *index) newMark() uint64 {
	idx.marks++
	return idx.marks
}

// nsInfo is one namespace and its counted pods.
type nsInfo struct {
	name        string
	labels      labels.Set
	annotations map[string]string
	partial     bool
	ambient     bool
	// pods that count, sorted by name.
	pods []*podInfo
	// nonMesh are the pods that present no mesh identity, sorted by name.
	nonMesh []*podInfo
	// bySA lists the pods of each ServiceAccount, sorted by name.
	bySA map[string][]*podInfo
	// byLabel lists the pods carrying each label, keyed by labelKey.
	byLabel map[string][]*podInfo
}

// podInfo is one counted pod with what the engine derives from it.
type podInfo struct {
	pod    *Pod
	ns     *nsInfo
	labels labels.Set
	sa     string
	inMesh bool
	// addr is the pod IP without zone, and ipBlock the same as a
	// one-address CIDR; both zero when unknown.
	addr    netip.Addr
	ipBlock string
	// mark is the last newMark of a pass that selected the pod.
	mark uint64
}

func labelKey(k, v string) string { return k + "\x00" + v }

func buildIndex(s Snapshot) *index {
	idx := &index{
		trustDomain:   cmp.Or(s.Mesh.TrustDomain, defaultTrustDomain),
		rootNamespace: cmp.Or(s.Mesh.RootNamespace, defaultRootNamespace),
		namespaces:    make(map[string]*nsInfo, len(s.Namespaces)),
	}

	// Namespaces: when the caller lists one twice, keep a full entry over a
	// partial one and otherwise the smallest, so input order never matters.
	chosen := make(map[string]*Namespace, len(s.Namespaces))
	for i := range s.Namespaces {
		n := &s.Namespaces[i]
		if n.Name == "" {
			continue
		}
		if prev, ok := chosen[n.Name]; !ok || PreferNamespace(n, prev) {
			chosen[n.Name] = n
		}
	}
	for name, n := range chosen {
		idx.addNamespace(name, n.Labels, n.Annotations, n.Partial)
	}

	// Pods: counted ones only, de-duplicated by namespace and name.
	pods := make([]*Pod, 0, len(s.Pods))
	for i := range s.Pods {
		if s.Pods[i].Counts() {
			pods = append(pods, &s.Pods[i])
		}
	}
	slices.SortFunc(pods, ComparePods)
	pods = slices.CompactFunc(pods, func(a, b *Pod) bool {
		return a.Namespace == b.Namespace && a.Name == b.Name
	})
	for _, p := range pods {
		ns := idx.namespaces[p.Namespace]
		if ns == nil {
			ns = idx.addNamespace(p.Namespace, nil, nil, true)
		}
		pi := &podInfo{
			pod:    p,
			ns:     ns,
			labels: labels.Set(p.Labels),
			sa:     cmp.Or(p.ServiceAccount, "default"),
		}
		pi.inMesh = p.InMesh(ns.ambient)
		if p.IP.IsValid() {
			pi.addr = p.IP.WithZone("")
			pi.ipBlock = netip.PrefixFrom(pi.addr, pi.addr.BitLen()).String()
		}
		ns.pods = append(ns.pods, pi)
		if !pi.inMesh {
			ns.nonMesh = append(ns.nonMesh, pi)
		}
		ns.bySA[pi.sa] = append(ns.bySA[pi.sa], pi)
		for k, v := range p.Labels {
			key := labelKey(k, v)
			ns.byLabel[key] = append(ns.byLabel[key], pi)
		}
	}

	// Namespaces of policies that the caller did not describe.
	for i := range s.NetworkPolicies {
		if n := s.NetworkPolicies[i].Namespace; n != "" && idx.namespaces[n] == nil {
			idx.addNamespace(n, nil, nil, true)
		}
	}

	idx.admin = buildAdminIndex(s.AdminPolicies)
	idx.buildWaypoints(s)

	idx.sorted = make([]*nsInfo, 0, len(idx.namespaces))
	for _, ns := range idx.namespaces {
		idx.sorted = append(idx.sorted, ns)
	}
	slices.SortFunc(idx.sorted, func(a, b *nsInfo) int { return cmp.Compare(a.name, b.name) })
	return idx
}

func (idx *index) addNamespace(name string, lbls, annotations map[string]string, partial bool) *nsInfo {
	set := make(labels.Set, len(lbls)+1)
	if !partial {
		for k, v := range lbls {
			set[k] = v
		}
	}
	// The API server always sets this label to the namespace's name.
	set[labelMetadataName] = name
	ns := &nsInfo{
		name:        name,
		labels:      set,
		annotations: annotations,
		partial:     partial,
		ambient:     set[labelDataplaneMode] == dataplaneAmbient,
		bySA:        map[string][]*podInfo{},
		byLabel:     map[string][]*podInfo{},
	}
	idx.namespaces[name] = ns
	return ns
}

// selectPods returns the counted pods of ns that sel matches, sorted by name.
// It starts from the shortest list of pods carrying one of the selector's
// matchLabels pairs, so selective selectors stay cheap in large namespaces.
func (ns *nsInfo) selectPods(sel *selector) []*podInfo {
	if sel.empty {
		return ns.pods
	}
	cands := ns.pods
	for k, v := range sel.matchLabels {
		if l := ns.byLabel[labelKey(k, v)]; len(l) < len(cands) {
			cands = l
		}
	}
	var out []*podInfo
	for _, p := range cands {
		if sel.sel.Matches(p.labels) {
			out = append(out, p)
		}
	}
	return out
}

// principal is the identity Istio checks for a ServiceAccount.
func (idx *index) principal(namespace, sa string) string {
	return Principal(idx.trustDomain, namespace, sa)
}

// podRef names a pod, or the workload its template came from, in findings.
func podRef(p *podInfo) ObjectRef {
	if kind, ns, name, ok := splitTemplate(p.pod.Template); ok {
		return ObjectRef{Kind: kind, Namespace: ns, Name: name}
	}
	return ObjectRef{Kind: "Pod", Namespace: p.pod.Namespace, Name: p.pod.Name}
}

func splitTemplate(t string) (kind, namespace, name string, ok bool) {
	if t == "" {
		return "", "", "", false
	}
	parts := strings.Split(t, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// podNames renders pods for a message, relative to namespace home: "web-1",
// "other/web-1", or "Deployment/web" for a pod template. Duplicates (several
// pods of one template) are listed once. Only the names a message shows
// are built.
func podNames(home string, pods []*podInfo) string {
	// Pods are unique by namespace and name; only templates repeat.
	var seen map[string]bool
	for _, p := range pods {
		if p.pod.Template != "" {
			seen = make(map[string]bool, len(pods))
			break
		}
	}
	if seen == nil && len(pods) > maxListed {
		names := make([]string, 0, maxListed)
		for _, p := range pods[:maxListed] {
			names = append(names, podName(home, p))
		}
		return fmt.Sprintf("%s and %d more", strings.Join(names, ", "), len(pods)-maxListed)
	}
	names := make([]string, 0, len(pods))
	for _, p := range pods {
		n := podName(home, p)
		if seen == nil {
			names = append(names, n)
		} else if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	return nameList(names)
}

func podName(home string, p *podInfo) string {
	r := podRef(p)
	switch {
	case r.Kind != "Pod" && r.Namespace == home:
		return r.Kind + "/" + r.Name
	case r.Kind != "Pod":
		return r.Kind + "/" + r.Namespace + "/" + r.Name
	case r.Namespace == home:
		return r.Name
	default:
		return r.Namespace + "/" + r.Name
	}
}

func podRefs(pods []*podInfo) []ObjectRef {
	out := make([]ObjectRef, 0, len(pods))
	for _, p := range pods {
		out = append(out, podRef(p))
	}
	return out
}
