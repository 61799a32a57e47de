package translate

import (
	"fmt"
	"slices"
	"strings"
)

// sourceSpec is one Istio Source, kept as plain lists until a policy is
// built so that every generated object owns its slices.
type sourceSpec struct {
	principals  []string
	namespaces  []string
	ipBlocks    []string
	notIPBlocks []string
}

// resolvedFrom is the `from` side of one ingress rule, the same for every
// policy generated from the NetworkPolicy.
type resolvedFrom struct {
	// anySource: the rule has no `from`, so it allows every source.
	anySource bool
	sources   []sourceSpec
	// findings of the peers: reported when the rule is generated, or when
	// they explain why it lost all its sources, not when its ports alone
	// dropped it.
	findings findingList
}

// dropped says the rule had peers but none of them resolved to a source:
// an empty `from` would allow every source, so the rule must go.
func (r *resolvedFrom) dropped() bool { return !r.anySource && len(r.sources) == 0 }

func (c *tctx) resolveFrom(r *compiledRule) *resolvedFrom {
	out := &resolvedFrom{anySource: len(r.peers) == 0}
	for i := range r.peers {
		out.sources = append(out.sources, c.resolvePeer(&r.peers[i], &out.findings)...)
	}
	return out
}

// resolvePeer turns one peer into its sources: its own source, then for
// pods without a mesh identity (permissive) a separate ipBlocks source,
// since the fields of one Source must all match.
func (c *tctx) resolvePeer(p *compiledPeer, f *findingList) []sourceSpec {
	switch p.kind {
	case peerIPBlock:
		return []sourceSpec{{ipBlocks: []string{p.cidr}, notIPBlocks: slices.Clone(p.except)}}
	case peerOwnNamespace:
		return c.namespacesSource(p, []string{c.ns.name}, c.ns.nonMesh, f)
	case peerNamespaces:
		nss, wildcard := c.peerNamespaces(p, f)
		if wildcard {
			var nonMesh []*podInfo
			for _, ns := range c.idx.sorted {
				nonMesh = append(nonMesh, ns.nonMesh...)
			}
			return c.namespacesSource(p, []string{"*"}, nonMesh, f)
		}
		if len(nss) == 0 {
			return nil
		}
		names := make([]string, 0, len(nss))
		var nonMesh []*podInfo
		for _, ns := range nss {
			if !c.review.admit(NamespaceIdentity(ns.name), p.path, func() []IdentitySource {
				return []IdentitySource{{Ref: namespaceRef(ns.name), Labels: p.nsSel.read(ns.labels)}}
			}) {
				continue
			}
			names = append(names, ns.name)
			nonMesh = append(nonMesh, ns.nonMesh...)
		}
		if len(names) == 0 {
			return nil
		}
		return c.namespacesSource(p, names, nonMesh, f)
	default:
		nss, _ := c.peerNamespaces(p, f)
		return c.principalsSource(p, nss, f)
	}
}

// peerNamespaces are the namespaces a peer's namespaceSelector matches
// (its own namespace without one), sorted by name; wildcard says the
// selector is empty and so matches every namespace, present and future.
func (c *tctx) peerNamespaces(p *compiledPeer, f *findingList) (nss []*nsInfo, wildcard bool) {
	if p.nsSel == nil {
		return []*nsInfo{c.ns}, false
	}
	if p.nsSel.empty {
		return c.idx.sorted, true
	}
	var partial []*nsInfo
	for _, ns := range c.idx.sorted {
		if ns.partial && !p.nsSel.onlyName {
			partial = append(partial, ns)
		}
		if p.nsSel.sel.Matches(ns.labels) {
			nss = append(nss, ns)
		}
	}
	if len(partial) > 0 {
		names := make([]string, 0, len(partial))
		refs := make([]ObjectRef, 0, len(partial))
		for _, ns := range partial {
			names = append(names, ns.name)
			refs = append(refs, namespaceRef(ns.name))
		}
		f.add(NamespaceUnknown, fmt.Sprintf("%s %s known only by name, so %s.namespaceSelector was evaluated against the kubernetes.io/metadata.name label alone and may select too few or too many namespaces; provide the Namespace objects for an exact result",
			plural(len(names), "namespace", "namespaces"), nameList(names)+" "+plural(len(names), "is", "are"), p.path), refs...)
	}
	return nss, false
}

func (c *tctx) namespacesSource(p *compiledPeer, names []string, nonMesh []*podInfo, f *findingList) []sourceSpec {
	out := []sourceSpec{{namespaces: names}}
	if ip := c.notInMesh(p, nonMesh, f); ip != nil {
		out = append(out, *ip)
	}
	return out
}

// saPods are the pods of one ServiceAccount a peer selects.
type saPods struct {
	ns            *nsInfo
	sa            string
	mesh, nonMesh []*podInfo
}

// principalsSource turns the pods a podSelector peer selects in nss into
// the principals of their ServiceAccounts.
func (c *tctx) principalsSource(p *compiledPeer, nss []*nsInfo, f *findingList) []sourceSpec {
	mark := c.idx.newMark()
	var groups []saPods
	var nonMesh []*podInfo
	var unknown []string
	for _, ns := range nss {
		if ns.partial && len(ns.pods) == 0 {
			unknown = append(unknown, ns.name)
			continue
		}
		pods := ns.selectPods(p.podSel)
		if len(pods) == 0 {
			continue
		}
		// Group by ServiceAccount, keeping pods in name order.
		bySA := slices.Clone(pods)
		slices.SortStableFunc(bySA, func(a, b *podInfo) int { return strings.Compare(a.sa, b.sa) })
		for _, pod := range bySA {
			pod.mark = mark
			if n := len(groups); n == 0 || groups[n-1].ns != ns || groups[n-1].sa != pod.sa {
				groups = append(groups, saPods{ns: ns, sa: pod.sa})
			}
			g := &groups[len(groups)-1]
			if pod.inMesh {
				g.mesh = append(g.mesh, pod)
			} else {
				g.nonMesh = append(g.nonMesh, pod)
			}
		}
	}

	// Identity review: a ServiceAccount that is not approved adds neither
	// its principal nor the addresses of its pods outside the mesh.
	admitted := make([]saPods, 0, len(groups))
	var denied map[*nsInfo]map[string]bool
	for _, g := range groups {
		if c.review.admit(ServiceAccountIdentity(g.ns.name, g.sa), p.path, func() []IdentitySource { return c.saSources(p, g) }) {
			admitted = append(admitted, g)
			continue
		}
		if denied == nil {
			denied = map[*nsInfo]map[string]bool{}
		}
		if denied[g.ns] == nil {
			denied[g.ns] = map[string]bool{}
		}
		denied[g.ns][g.sa] = true
	}
	groups = admitted
	for _, ns := range nss {
		for _, pod := range ns.nonMesh {
			if pod.mark == mark && !denied[ns][pod.sa] {
				nonMesh = append(nonMesh, pod)
			}
		}
	}

	var principals []string
	for _, g := range groups {
		if len(g.mesh) == 0 {
			// Only pods without a mesh identity use it: they cannot
			// present it, so it would allow nothing they send.
			continue
		}
		principal := c.idx.principal(g.ns.name, g.sa)
		var unselected []*podInfo
		for _, pod := range g.ns.bySA[g.sa] {
			if pod.mark != mark {
				unselected = append(unselected, pod)
			}
		}
		if len(unselected) == 0 {
			principals = append(principals, principal)
			continue
		}
		sa := ObjectRef{Kind: "ServiceAccount", Namespace: g.ns.name, Name: g.sa}
		if c.fidelity == FidelityPermissive {
			principals = append(principals, principal)
			f.add(SharedIdentity, fmt.Sprintf("principal %s also covers %s %s that %s does not select; permissive: %s allowed too; give the selected workload its own ServiceAccount",
				principal, plural(len(unselected), "pod", "pods"), podNames(c.ns.name, unselected), p.path, pick(len(unselected) == 1, "it is", "they are")),
				append([]ObjectRef{sa}, podRefs(unselected)...)...)
			continue
		}
		f.add(SharedIdentity, fmt.Sprintf("principal %s also covers %s %s that %s does not select; strict: the principal was left out, so selected %s %s %s access; give the selected workload its own ServiceAccount",
			principal, plural(len(unselected), "pod", "pods"), podNames(c.ns.name, unselected), p.path,
			plural(len(g.mesh), "pod", "pods"), podNames(c.ns.name, g.mesh), pick(len(g.mesh) == 1, "loses", "lose")),
			append(append([]ObjectRef{sa}, podRefs(g.mesh)...), podRefs(unselected)...)...)
	}

	var out []sourceSpec
	if len(principals) > 0 {
		slices.Sort(principals)
		out = append(out, sourceSpec{principals: slices.Compact(principals)})
	}
	if ip := c.notInMesh(p, nonMesh, f); ip != nil {
		out = append(out, *ip)
	}
	if src := c.unknownPods(p, unknown, f); src != nil {
		out = append(out, *src)
	}
	return out
}

// saSources are the pods of one ServiceAccount that a peer selects, and
// the namespace when the peer selects namespaces, with the labels that
// made them match.
func (c *tctx) saSources(p *compiledPeer, g saPods) []IdentitySource {
	var out []IdentitySource
	if p.nsSel != nil && !p.nsSel.empty && g.ns != c.ns {
		out = append(out, IdentitySource{Ref: namespaceRef(g.ns.name), Labels: p.nsSel.read(g.ns.labels)})
	}
	for _, pods := range [][]*podInfo{g.mesh, g.nonMesh} {
		for _, pod := range pods {
			out = append(out, IdentitySource{Ref: podRef(pod), Labels: p.podSel.read(pod.labels)})
		}
	}
	return out
}

// unknownPods handles namespaces a podSelector peer reaches whose pods the
// input does not hold (offline, a namespace known only by name): which
// ServiceAccounts the selector means there cannot be known. Permissive
// allows every workload of those namespaces rather than deny the ones the
// NetworkPolicy allows; strict allows none of them.
func (c *tctx) unknownPods(p *compiledPeer, names []string, f *findingList) *sourceSpec {
	if len(names) == 0 {
		return nil
	}
	refs := make([]ObjectRef, 0, len(names))
	for _, n := range names {
		refs = append(refs, namespaceRef(n))
	}
	what := fmt.Sprintf("the pods of %s %s are not in the input, so the ServiceAccounts %s.podSelector selects there are unknown",
		plural(len(names), "namespace", "namespaces"), nameList(names), p.path)
	if c.fidelity == FidelityStrict {
		f.add(NamespaceUnknown, what+"; strict: no source of "+pick(len(names) == 1, "it", "them")+" is allowed; provide its pods (or workloads) for an exact result", refs...)
		return nil
	}
	f.add(NamespaceUnknown, what+"; permissive: every workload of "+pick(len(names) == 1, "that namespace", "those namespaces")+" is allowed (namespaces source); provide its pods (or workloads) for an exact result", refs...)
	return &sourceSpec{namespaces: slices.Clone(names)}
}

// templatesNotInMesh handles source workloads read from templates that will
// run outside the mesh: no identity and no address is known for their pods,
// so permissive can only keep allowing them by allowing any address, and
// says so; strict leaves them out.
func (c *tctx) templatesNotInMesh(p *compiledPeer, pods, templates []*podInfo, f *findingList) *sourceSpec {
	one := len(pods) == 1
	msg := fmt.Sprintf("%s %s that %s allows %s no sidecar and %s not in ambient mode, so %s no mesh identity, and the addresses of workload templates are unknown",
		plural(len(pods), "pod", "pods"), podNames(c.ns.name, pods), p.path,
		pick(one, "has", "have"), pick(one, "is", "are"), pick(one, "it presents", "they present"))
	fix := "; add " + pick(one, "it", "them") + " to the mesh"
	if c.fidelity == FidelityStrict {
		f.add(SourceNotInMesh, msg+"; strict: "+pick(one, "it loses", "they lose")+" access"+fix, podRefs(pods)...)
		return nil
	}
	f.add(SourceNotInMesh, msg+"; permissive: this rule allows any source address (ipBlocks 0.0.0.0/0 and ::/0) so that "+
		pick(len(templates) == 1, "it keeps", "they keep")+" access"+fix, podRefs(pods)...)
	return &sourceSpec{ipBlocks: []string{"0.0.0.0/0", "::/0"}}
}

// notInMesh reports source pods that present no identity and, when
// permissive, returns the source allowing their pod IPs.
func (c *tctx) notInMesh(p *compiledPeer, pods []*podInfo, f *findingList) *sourceSpec {
	if len(pods) == 0 {
		return nil
	}
	var withIP, noIP, templates []*podInfo
	for _, pod := range pods {
		switch {
		case pod.ipBlock != "":
			withIP = append(withIP, pod)
		case pod.pod.Template != "":
			templates = append(templates, pod)
		default:
			noIP = append(noIP, pod)
		}
	}
	if len(templates) > 0 {
		// Workload templates (offline input) will have pods whose
		// addresses nobody knows yet.
		return c.templatesNotInMesh(p, pods, templates, f)
	}
	one := len(pods) == 1
	msg := fmt.Sprintf("%s %s that %s allows %s no sidecar and %s not in ambient mode, so %s no mesh identity",
		plural(len(pods), "pod", "pods"), podNames(c.ns.name, pods), p.path,
		pick(one, "has", "have"), pick(one, "is", "are"), pick(one, "it presents", "they present"))
	fix := "; add " + pick(one, "it", "them") + " to the mesh"
	switch {
	case c.fidelity == FidelityStrict:
		msg += "; strict: " + pick(one, "it loses", "they lose") + " access"
	case len(withIP) == 0:
		msg += "; permissive: no pod IP is known to allow instead, so " + pick(one, "it loses", "they lose") + " access until " + pick(one, "it gets one", "they get one")
	case len(noIP) == 0:
		msg += "; permissive: " + pick(one, "its pod IP was added as an ipBlock", "their pod IPs were added as ipBlocks")
	default:
		msg += fmt.Sprintf("; permissive: %s %s; %s %s no known pod IP and %s access until %s",
			pick(len(withIP) == 1, "the pod IP of", "the pod IPs of"), podNames(c.ns.name, withIP)+pick(len(withIP) == 1, " was added as an ipBlock", " were added as ipBlocks"),
			podNames(c.ns.name, noIP), pick(len(noIP) == 1, "has", "have"),
			pick(len(noIP) == 1, "loses", "lose"), pick(len(noIP) == 1, "it gets one", "they get one"))
	}
	f.add(SourceNotInMesh, msg+fix, podRefs(pods)...)
	if c.fidelity == FidelityStrict || len(withIP) == 0 {
		return nil
	}
	slices.SortFunc(withIP, func(a, b *podInfo) int { return a.addr.Compare(b.addr) })
	blocks := make([]string, 0, len(withIP))
	for _, pod := range withIP {
		if n := len(blocks); n == 0 || blocks[n-1] != pod.ipBlock {
			blocks = append(blocks, pod.ipBlock)
		}
	}
	return &sourceSpec{ipBlocks: blocks}
}
