package manifest

import (
	"cmp"
	"errors"
	"maps"
	"slices"
	"strings"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/netpol2authz/netpol2authz/internal/adminpolicy"
	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// Labels and annotations Istio's sidecar injection reads.
const (
	labelInjection       = "istio-injection"
	labelRevision        = "istio.io/rev"
	labelSidecarInject   = "sidecar.istio.io/inject"
	annotationStatus     = "sidecar.istio.io/status"
	containerIstioProxy  = "istio-proxy"
	labelPodTemplateHash = "pod-template-hash"
)

func fieldErrors(list field.ErrorList) []fieldError {
	out := make([]fieldError, 0, len(list))
	for _, e := range list {
		out = append(out, fieldError{field: e.Field, err: errors.New(e.ErrorBody())})
	}
	return out
}

// finish turns what was read into the Result.
func (l *loader) finish() *Result {
	res := &Result{Stats: l.stats, Mesh: l.mesh}

	namespaces := map[string]translate.Namespace{}
	for name, ns := range l.namespaces {
		labels := maps.Clone(ns.Labels)
		if labels == nil {
			labels = map[string]string{}
		}
		if _, ok := labels[corev1.LabelMetadataName]; !ok {
			// The API server always sets it.
			labels[corev1.LabelMetadataName] = name
		}
		namespaces[name] = translate.Namespace{Name: name, Labels: labels, Annotations: maps.Clone(ns.Annotations)}
	}
	referenced := map[string]bool{}
	for _, p := range l.pods {
		referenced[p.Namespace] = true
	}
	for _, w := range l.workloads {
		referenced[w.namespace] = true
	}
	for _, np := range l.policies {
		referenced[np.Namespace] = true
		for _, name := range namespacesNamedBy(&np) {
			referenced[name] = true
		}
	}
	for name := range referenced {
		if _, ok := namespaces[name]; !ok {
			namespaces[name] = translate.Namespace{
				Name:    name,
				Labels:  map[string]string{corev1.LabelMetadataName: name},
				Partial: true,
			}
			res.Stats.PartialNamespaces = append(res.Stats.PartialNamespaces, name)
		}
	}
	slices.Sort(res.Stats.PartialNamespaces)
	for _, name := range slices.Sorted(maps.Keys(namespaces)) {
		res.Snapshot.Namespaces = append(res.Snapshot.Namespaces, namespaces[name])
	}

	for _, p := range l.pods {
		res.Snapshot.Pods = append(res.Snapshot.Pods, podFromPod(p, namespaces[p.Namespace]))
	}
	pods, templates, covered := l.expandWorkloads(namespaces)
	res.Snapshot.Pods = append(res.Snapshot.Pods, pods...)
	res.Stats.Templates, res.Stats.WorkloadsCovered = templates, covered
	slices.SortFunc(res.Snapshot.Pods, func(a, b translate.Pod) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Template, b.Template))
	})

	res.Snapshot.NetworkPolicies = l.policies
	slices.SortFunc(res.Snapshot.NetworkPolicies, func(a, b networkingv1.NetworkPolicy) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})

	res.Snapshot.Approvals = l.snapshotApprovals()

	res.Snapshot.AdminPolicies = l.admin
	slices.SortFunc(res.Snapshot.AdminPolicies, func(a, b adminpolicy.Policy) int { return adminpolicy.Compare(&a, &b) })

	sortWaypointObjects(l.services, l.gateways)
	res.Snapshot.Services, res.Snapshot.Gateways = l.services, l.gateways

	res.Snapshot.Mesh = translate.MeshSettings{TrustDomain: l.mesh.TrustDomain, RootNamespace: l.mesh.RootNamespace}
	if res.Snapshot.Mesh.RootNamespace == "" {
		res.Snapshot.Mesh.RootNamespace = l.istioNS
	}

	res.AuthorizationPolicies = l.aps
	slices.SortFunc(res.AuthorizationPolicies, func(a, b *securityv1.AuthorizationPolicy) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	res.ServiceAccounts = l.sas
	slices.SortFunc(res.ServiceAccounts, func(a, b types.NamespacedName) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return res
}

// snapshotApprovals are the approval records, sorted by namespace and name.
// As the operator does, it leaves out a record made for an earlier
// NetworkPolicy of the same name: one whose controller is a NetworkPolicy
// with another UID than the one in the input (a cluster dump of a policy
// deleted and created again). That policy is at its first translation.
func (l *loader) snapshotApprovals() []translate.Approval {
	uids := map[types.NamespacedName]types.UID{}
	for _, np := range l.policies {
		uids[types.NamespacedName{Namespace: np.Namespace, Name: np.Name}] = np.UID
	}
	var out []translate.Approval
	for _, a := range l.approvals {
		uid := uids[types.NamespacedName{Namespace: a.Namespace, Name: a.NetworkPolicy}]
		if a.controllerUID != "" && uid != "" && a.controllerUID != uid {
			continue
		}
		out = append(out, a.Approval)
	}
	slices.SortFunc(out, func(a, b translate.Approval) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.NetworkPolicy, b.NetworkPolicy))
	})
	return out
}

// namespacesNamedBy returns the namespaces a policy's peers name through
// the kubernetes.io/metadata.name label. They exist as far as the policy is
// concerned: known by name only, they still resolve to `namespaces:`
// sources rather than to nothing.
func namespacesNamedBy(np *networkingv1.NetworkPolicy) []string {
	var names []string
	add := func(sel *metav1.LabelSelector) {
		if sel == nil {
			return
		}
		if v, ok := sel.MatchLabels[corev1.LabelMetadataName]; ok {
			names = append(names, v)
		}
		for _, e := range sel.MatchExpressions {
			if e.Key == corev1.LabelMetadataName && e.Operator == metav1.LabelSelectorOpIn {
				names = append(names, e.Values...)
			}
		}
	}
	for _, r := range np.Spec.Ingress {
		for _, peer := range r.From {
			add(peer.NamespaceSelector)
		}
	}
	for _, r := range np.Spec.Egress {
		for _, peer := range r.To {
			add(peer.NamespaceSelector)
		}
	}
	return names
}

// podFromPod is what the engine reads of a real Pod. A Pod without a phase
// has not been admitted yet (a bare Pod in a GitOps tree): its sidecar is
// inferred like a template's.
func podFromPod(p *corev1.Pod, ns translate.Namespace) translate.Pod {
	out := translate.PodOf(p)
	out.Labels = maps.Clone(p.Labels)
	if p.Status.Phase == "" {
		out.Sidecar = inferSidecar(ns, &p.ObjectMeta, &p.Spec)
	}
	return out
}

// hasSidecar reports whether an admitted pod has an Istio sidecar, as the
// operator decides it.
func hasSidecar(meta *metav1.ObjectMeta, spec *corev1.PodSpec) bool {
	return translate.HasSidecar(meta.Annotations, spec)
}

// inferSidecar guesses whether pods made from a template will get an Istio
// sidecar. GitOps manifests are read before admission, where Istio's webhook
// injects the sidecar, so the sidecar is not visible yet. The inference:
//
//   - A template that already has an istio-proxy container or the
//     sidecar.istio.io/status annotation has a sidecar.
//   - Otherwise a template labelled or annotated sidecar.istio.io/inject:
//     "false" has none.
//   - Otherwise it has one when its namespace has the label
//     istio-injection=enabled, or has the label istio.io/rev and no
//     istio-injection label (Istio's revision webhook requires that the
//     istio-injection label be absent; istio-injection=disabled wins).
//   - Otherwise it has none. In particular sidecar.istio.io/inject: "true"
//     or istio.io/rev on the template alone, in a namespace without
//     injection labels, does not count: the inference trusts only namespace
//     labels. (Istio's object-selector webhooks may still inject such pods;
//     erring on "not in mesh" yields SourceNotInMesh/TargetNotInMesh
//     findings rather than silently assuming an identity.)
//
// A namespace known only by name has no injection labels, so its templates
// count as without sidecar.
func inferSidecar(ns translate.Namespace, meta *metav1.ObjectMeta, spec *corev1.PodSpec) bool {
	if hasSidecar(meta, spec) {
		return true
	}
	if meta.Labels[labelSidecarInject] == "false" || meta.Annotations[labelSidecarInject] == "false" {
		return false
	}
	injection, hasInjection := ns.Labels[labelInjection]
	if hasInjection {
		return injection == "enabled"
	}
	_, hasRevision := ns.Labels[labelRevision]
	return hasRevision
}

func serviceAccount(spec *corev1.PodSpec) string {
	if spec.ServiceAccountName != "" {
		return spec.ServiceAccountName
	}
	// The deprecated alias, which the API server copies into
	// serviceAccountName.
	return spec.DeprecatedServiceAccount
}

// containerPorts lists the ports a named port can resolve to, as the
// operator lists them.
func containerPorts(spec *corev1.PodSpec) []translate.ContainerPort {
	return translate.ContainerPortsOf(spec)
}

// expandWorkloads turns workloads into template pods, one per workload,
// without counting anything twice: a workload whose pods are in the input is
// skipped (its real pods stand for it), and so is a ReplicaSet or Job
// controlled by a workload in the input (its owner's template stands for
// it). It returns the pods, and how many workloads were used and skipped.
func (l *loader) expandWorkloads(namespaces map[string]translate.Namespace) (pods []translate.Pod, used, skipped int) {
	byKey := map[string]*workload{}
	for _, w := range l.workloads {
		byKey[w.key()] = w
	}
	covered := map[string]bool{}
	for _, p := range l.pods {
		ref := metav1.GetControllerOfNoCopy(p)
		if ref == nil {
			continue
		}
		key := ref.Kind + "/" + p.Namespace + "/" + ref.Name
		covered[key] = true
		if w, ok := byKey[key]; ok {
			if w.controller != nil {
				covered[w.controller.Kind+"/"+p.Namespace+"/"+w.controller.Name] = true
			}
			continue
		}
		// The ReplicaSet or Job is not in the input (`kubectl get pods,deploy`):
		// find its owner by the names the controllers give.
		switch ref.Kind {
		case "ReplicaSet":
			if hash := p.Labels[labelPodTemplateHash]; hash != "" {
				if d, ok := strings.CutSuffix(ref.Name, "-"+hash); ok {
					covered["Deployment/"+p.Namespace+"/"+d] = true
				}
			}
		case "Job":
			if i := strings.LastIndexByte(ref.Name, '-'); i > 0 && isDigits(ref.Name[i+1:]) {
				covered["CronJob/"+p.Namespace+"/"+ref.Name[:i]] = true
			}
		}
	}
	for _, w := range l.workloads {
		owned := w.controller != nil && byKey[w.controller.Kind+"/"+w.namespace+"/"+w.controller.Name] != nil
		if covered[w.key()] || owned || w.template == nil {
			skipped++
			continue
		}
		used++
		t := w.template
		pods = append(pods, translate.Pod{
			Namespace:      w.namespace,
			Name:           w.name,
			Labels:         maps.Clone(t.Labels),
			ServiceAccount: serviceAccount(&t.Spec),
			HostNetwork:    t.Spec.HostNetwork,
			Sidecar:        inferSidecar(namespaces[w.namespace], &t.ObjectMeta, &t.Spec),
			Ports:          containerPorts(&t.Spec),
			Template:       w.key(),
		})
	}
	return pods, used, skipped
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
