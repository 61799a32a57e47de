package istio_test

// Waypoints (ambient): for every golden case with a waypoint, the case's
// cluster as istiod sees it (namespaces, pods, Services, the Gateways with
// the status.addresses a ready waypoint has, a Service per waypoint) and
// the policies the engine generates for it; then, posing as each
// waypoint's proxy over xDS and reading ztunnel's view in ambientz, that
// the waypoint enforces the policies bound to its Services, rule by rule,
// with the clients' identities and the service ports, and that ztunnel
// lets the waypoint's principal through on the target ports behind them.

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	typev1beta1 "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netpol2authz/netpol2authz/internal/testenv"
	"github.com/netpol2authz/netpol2authz/internal/translate"
)

var _ = Describe("Waypoints (ambient)", func() {
	cases, err := loadGoldenCases()
	if err != nil {
		It("loads the golden cases", func() { Expect(err).NotTo(HaveOccurred()) })
		return
	}
	var entries []TableEntry
	for _, c := range cases {
		if len(c.Snapshot.Gateways) > 0 {
			entries = append(entries, Entry(c.Name, c))
		}
	}
	It("has golden cases with waypoints", func() { Expect(len(entries)).To(BeNumerically(">=", 10)) })

	DescribeTable("enforce the policies generated for each golden case with a waypoint", func(c goldenCase) {
		wc := createWaypointCase(c)
		Eventually(wc.statusAsExpected).WithTimeout(compiledWithin).WithPolling(interval).Should(Succeed(),
			"istiod has seen every policy: ZtunnelAccepted on the selector-bound ones, WaypointAccepted on those bound to a Service")

		By("ztunnel: the selector-bound policies, rule by rule, with the waypoints' principals")
		want, err := expectZtunnel(wc.namespaces, wc.policies, wc.pods, false)
		Expect(err).NotTo(HaveOccurred())
		Eventually(compiledAs(istiod.HTTPAddr, want)).WithTimeout(compiledWithin).WithPolling(interval).Should(Succeed())

		By("istiod binds the Services and pods to the waypoints their labels name")
		Eventually(wc.boundAsExpected).WithTimeout(compiledWithin).WithPolling(interval).Should(Succeed())

		for _, w := range wc.waypoints {
			if !w.gw.Addressed {
				continue
			}
			By("the waypoint " + w.key() + ": the policies bound to its Services, rule by rule, on each Service port")
			var chains map[string]*rbacFilter
			Eventually(func() (err error) { chains, err = wc.waypointGets(w); return err }).
				WithTimeout(compiledWithin).WithPolling(interval).Should(Succeed())

			By("the paths through " + w.key() + " against the direct ones, client by client")
			wider, narrower, checked, err := wc.pathsCompare(w, chains)
			Expect(err).NotTo(HaveOccurred())
			By(fmt.Sprintf("%d paths through %s: wider than direct %v, narrower %v", checked, w.key(), wider, narrower))
			switch wc.fidelity {
			case translate.FidelityStrict:
				Expect(wider).To(BeEmpty(), "strict: what passes the waypoint and then ztunnel, the direct path allows too")
			case translate.FidelityPermissive:
				if wc.pending[w.principal()] {
					By("the waypoint's principal is pending review: its paths may be narrower (IdentityPending)")
					break
				}
				Expect(narrower).To(BeEmpty(), "permissive: what the direct path allows passes the waypoint and then ztunnel too")
			}
		}
	}, entries)

	It("tells a changed policy apart from what the waypoint got", func() {
		i := slices.IndexFunc(cases, func(c goldenCase) bool { return c.Name == "waypoint-namespace-label/permissive" })
		Expect(i).To(BeNumerically(">=", 0))
		wc := createWaypointCase(cases[i])
		w := wc.waypoints[0]
		var got map[string]*rbacFilter
		Eventually(func() (err error) { got, err = wc.waypointGets(w); return err }).
			WithTimeout(compiledWithin).WithPolling(interval).Should(Succeed())
		svcPolicy := slices.IndexFunc(wc.policies, func(ap *securityv1.AuthorizationPolicy) bool { return ap.Name == "netpol-db-svc-metrics" })
		Expect(svcPolicy).To(BeNumerically(">=", 0))
		for what, mutate := range map[string]func(aps []*securityv1.AuthorizationPolicy) []*securityv1.AuthorizationPolicy{
			"a policy fewer": func(aps []*securityv1.AuthorizationPolicy) []*securityv1.AuthorizationPolicy {
				return slices.Delete(aps, svcPolicy, svcPolicy+1)
			},
			"the target port instead of the service port": func(aps []*securityv1.AuthorizationPolicy) []*securityv1.AuthorizationPolicy {
				aps[svcPolicy].Spec.Rules[0].To[0].Operation.Ports = []string{"5432"}
				return aps
			},
			"the waypoint's principal instead of the client's": func(aps []*securityv1.AuthorizationPolicy) []*securityv1.AuthorizationPolicy {
				aps[svcPolicy].Spec.Rules[0].From[0].Source.Principals = []string{w.principal()}
				return aps
			},
			"bound to the other Service": func(aps []*securityv1.AuthorizationPolicy) []*securityv1.AuthorizationPolicy {
				aps[svcPolicy].Spec.TargetRefs[0].Name = "db"
				return aps
			},
		} {
			mutated := make([]*securityv1.AuthorizationPolicy, len(wc.policies))
			for i, ap := range wc.policies {
				mutated[i] = ap.DeepCopy()
			}
			want, err := wc.expectChains(w, mutate(mutated))
			Expect(err).NotTo(HaveOccurred(), what)
			Expect(diffChains(want, got)).To(ContainSubstring("metrics."+w.gw.Namespace), what)
		}
	})
})

// waypointCase is a golden case with waypoints, created in the cluster.
type waypointCase struct {
	c          goldenCase
	rename     func(string) string
	namespaces []string
	policies   []*securityv1.AuthorizationPolicy
	pods       []*corev1.Pod
	// services by namespace/name (renamed), with their ClusterIPs.
	services  map[string]*corev1.Service
	waypoints []*waypoint
	// waypointServices are the Services of the waypoints, by
	// namespace/name.
	waypointServices map[string]*corev1.Service
	// nsLabels are the labels of the case's namespaces, renamed.
	nsLabels map[string]map[string]string
	// fidelity is the translation's (one NetworkPolicy per case or the
	// same for all).
	fidelity translate.Fidelity
	// pending are the principals the translation holds back for review.
	pending map[string]bool
}

// waypoint is one of the case's Gateways as created, and the proxy the
// spec poses as.
type waypoint struct {
	gw          translate.Gateway // renamed
	pod, ip, sa string
}

func (w *waypoint) key() string { return w.gw.Namespace + "/" + w.gw.Name }

// principal is the identity ztunnel sees on the waypoint's traffic.
func (w *waypoint) principal() string { return "cluster.local/ns/" + w.gw.Namespace + "/sa/" + w.sa }

// hostname is the waypoint's address in the Gateway's status.
func (w *waypoint) hostname() string { return w.gw.Name + "." + w.gw.Namespace + ".svc.cluster.local" }

var gatewayGVK = schema.GroupVersionKind{Group: "gateway.networking.k8s.io", Version: "v1", Kind: "Gateway"}

// createWaypointCase creates the case in fresh namespaces: its namespaces
// with their labels (ambient where the case says so), its live pods
// (redirected to ztunnel in ambient namespaces), its Services, its
// Gateways (class istio-waypoint, an HBONE listener admitting what the
// case says; status.addresses, the waypoint Service's hostname, where the
// case has it addressed), for each Gateway the Service its proxy's pods
// would have, and the policies the engine generates, renamed, without
// owner references. The NetworkPolicies are not created (the operator
// would translate and clean up after them; istiod does not read them).
func createWaypointCase(c goldenCase) *waypointCase {
	wc := &waypointCase{c: c, rename: freshRenamer("w"), services: map[string]*corev1.Service{}, waypointServices: map[string]*corev1.Service{}, nsLabels: map[string]map[string]string{}}
	rename := wc.rename
	renameLabels := func(in map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range in {
			if k == translate.LabelUseWaypointNamespace {
				v = rename(v)
			}
			out[k] = v
		}
		return out
	}
	declared := map[string]translate.Namespace{}
	for _, ns := range c.Snapshot.Namespaces {
		declared[ns.Name] = ns
	}
	for _, name := range c.Namespaces() {
		labels := renameLabels(declared[name].Labels)
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: rename(name), Labels: labels}}
		Expect(k8s.Create(ctx, ns)).To(Succeed(), c.Name)
		wc.namespaces = append(wc.namespaces, ns.Name)
		wc.nsLabels[ns.Name] = labels
	}
	for _, pod := range c.LivePods(rename) {
		pod.Labels = renameLabels(pod.Labels)
		if wc.nsLabels[pod.Namespace][labelDataplaneMode] == "ambient" {
			markAmbient(pod)
		}
		Expect(createPod(ctx, k8s, pod, freshPodIP())).To(Succeed(), c.Name)
		wc.pods = append(wc.pods, pod)
	}
	for _, s := range c.Snapshot.Services {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: rename(s.Namespace), Labels: renameLabels(s.Labels)},
			Spec:       corev1.ServiceSpec{Selector: s.Selector},
		}
		for _, p := range s.Ports {
			target := p.TargetPort
			if target == (intstr.IntOrString{}) {
				target = intstr.FromInt32(p.Port)
			}
			svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: p.Name, Port: p.Port, TargetPort: target, Protocol: cmpOr(p.Protocol, corev1.ProtocolTCP)})
		}
		Expect(k8s.Create(ctx, svc)).To(Succeed(), c.Name)
		wc.services[svc.Namespace+"/"+svc.Name] = svc
	}
	for _, g := range c.Snapshot.Gateways {
		w := &waypoint{gw: g}
		w.gw.Namespace = rename(g.Namespace)
		w.gw.Labels = renameLabels(g.Labels)
		w.sa = cmpOr(g.Annotations[translate.AnnotationWaypointAccount], g.Name)
		w.pod, w.ip = g.Name+"-pose", freshPodIP().String()
		for _, p := range wc.pods {
			if p.Namespace == w.gw.Namespace && p.Labels[translate.LabelGatewayName] == g.Name {
				w.pod, w.ip, w.sa = p.Name, p.Status.PodIP, p.Spec.ServiceAccountName
			}
		}
		Expect(createGateway(w)).To(Succeed(), c.Name)
		wc.waypoints = append(wc.waypoints, w)
		key := w.gw.Namespace + "/" + w.gw.Name
		Expect(wc.services).NotTo(HaveKey(key), "%s: a Service is named like waypoint %s", c.Name, key)
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: w.gw.Name, Namespace: w.gw.Namespace, Labels: map[string]string{translate.LabelGatewayName: w.gw.Name}},
			Spec: corev1.ServiceSpec{
				Selector: map[string]string{translate.LabelGatewayName: w.gw.Name},
				Ports:    []corev1.ServicePort{{Name: "mesh", Port: 15008, AppProtocol: new("hbone")}},
			},
		}
		Expect(k8s.Create(ctx, svc)).To(Succeed(), c.Name)
		wc.waypointServices[key] = svc
	}
	wc.pending = map[string]bool{}
	for _, tr := range translate.Translate(c.Snapshot, c.Options).Translations {
		Expect(wc.fidelity).To(Or(BeEmpty(), Equal(tr.Fidelity)), "%s: translations of different fidelities", c.Name)
		wc.fidelity = tr.Fidelity
		for _, p := range tr.Pending {
			if parts := strings.Split(string(p.Identity), "/"); len(parts) == 3 && parts[0] == "serviceaccount" {
				wc.pending["cluster.local/ns/"+rename(parts[1])+"/sa/"+parts[2]] = true
			}
		}
	}
	// The policies come once istiod has bound the Services and pods to
	// their waypoints. The test plays the waypoint deployment's part and
	// writes the Gateway's status.addresses; istiod writes the Gateway's
	// status too, and now and then (2 Gateways in 4 runs of these cases)
	// from a read that predates the addresses, which drops them: the
	// Services then stay unbound (their policies AncestorNotBound) for
	// good. In a cluster istiod computes the addresses from the waypoint's
	// own Service and never drops them; here they are written again.
	Eventually(func() error {
		if err := wc.addressesInPlace(); err != nil {
			return err
		}
		return wc.boundAsExpected()
	}).WithTimeout(compiledWithin).WithPolling(interval).Should(Succeed(), "%s: istiod binds the Services and pods to their waypoints", c.Name)
	for _, ap := range c.Policies() {
		ap = renamePolicy(ap, rename)
		ap.OwnerReferences = nil
		Expect(k8s.Create(ctx, ap)).To(Succeed(), c.Name)
		wc.policies = append(wc.policies, ap)
	}
	return wc
}

// createGateway creates w's Gateway, of class istio-waypoint with an HBONE
// listener on 15008 whose allowedRoutes are the case's, and, where the
// case has it addressed, writes status.addresses as a ready waypoint's
// deployment would (istiod keeps them).
func createGateway(w *waypoint) error {
	from := cmpOr(w.gw.AttachFrom, "Same")
	namespaces := map[string]any{"from": from}
	if w.gw.AttachSelector != nil {
		sel, err := runtimeToMap(w.gw.AttachSelector)
		if err != nil {
			return err
		}
		namespaces["selector"] = sel
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"spec": map[string]any{
			"gatewayClassName": cmpOr(w.gw.ClassName, translate.WaypointClass),
			"listeners": []any{map[string]any{
				"name": "mesh", "port": int64(15008), "protocol": "HBONE",
				"allowedRoutes": map[string]any{"namespaces": namespaces},
			}},
		},
	}}
	u.SetGroupVersionKind(gatewayGVK)
	u.SetNamespace(w.gw.Namespace)
	u.SetName(w.gw.Name)
	u.SetLabels(w.gw.Labels)
	u.SetAnnotations(w.gw.Annotations)
	if err := k8s.Create(ctx, u); err != nil {
		return fmt.Errorf("creating Gateway %s: %w", w.key(), err)
	}
	if !w.gw.Addressed {
		return nil
	}
	return writeAddresses(w, u)
}

// addressesInPlace checks that every addressed waypoint's Gateway still
// has the status.addresses createGateway wrote, writes them again where
// they are gone (istiod writes the Gateway's status too, from what it last
// read), and says which were.
func (wc *waypointCase) addressesInPlace() error {
	var lost []string
	for _, w := range wc.waypoints {
		if !w.gw.Addressed {
			continue
		}
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(gatewayGVK)
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: w.gw.Namespace, Name: w.gw.Name}, u); err != nil {
			return err
		}
		if addrs, _, _ := unstructured.NestedSlice(u.Object, "status", "addresses"); len(addrs) > 0 {
			continue
		}
		lost = append(lost, w.key())
		GinkgoWriter.Printf("Gateway %s: status.addresses gone, written again\n", w.key())
		if err := writeAddresses(w, u); err != nil {
			return err
		}
	}
	if len(lost) > 0 {
		return fmt.Errorf("the status.addresses of Gateways %v were gone: written again", lost)
	}
	return nil
}

// writeAddresses writes w's address in the status of its Gateway u, as a
// ready waypoint's deployment would. A merge patch: istiod writes its own
// conditions meanwhile.
func writeAddresses(w *waypoint, u *unstructured.Unstructured) error {
	patch := client.RawPatch(types.MergePatchType, fmt.Appendf(nil, `{"status":{"addresses":[{"type":"Hostname","value":%q}]}}`, w.hostname()))
	if err := k8s.Status().Patch(ctx, u, patch); err != nil {
		return fmt.Errorf("writing the addresses of Gateway %s: %w", w.key(), err)
	}
	return nil
}

func runtimeToMap(sel *metav1.LabelSelector) (map[string]any, error) {
	out := map[string]any{}
	if len(sel.MatchLabels) > 0 {
		ml := map[string]any{}
		for k, v := range sel.MatchLabels {
			ml[k] = v
		}
		out["matchLabels"] = ml
	}
	if len(sel.MatchExpressions) > 0 {
		return nil, errors.New("matchExpressions in a Gateway's allowedRoutes: not supported by the spec")
	}
	return out, nil
}

func cmpOr[T comparable](v, d T) T {
	var zero T
	if v == zero {
		return d
	}
	return v
}

// bindingOf is the waypoint the labels of an object of namespace ns name
// (Istio's precedence: the object's own istio.io/use-waypoint, else its
// namespace's; "none" names none), and whether it binds: the Gateway
// exists, serves that kind of traffic (istio.io/waypoint-for: service,
// the default, workload, all), admits ns and is addressed. An inherited
// label naming a waypoint of the other kind binds nothing.
func (wc *waypointCase) bindingOf(own map[string]string, ns string, workload bool) (*waypoint, bool) {
	lbls := own
	name, explicit := own[translate.LabelUseWaypoint]
	if !explicit {
		lbls = wc.nsLabels[ns]
		name = lbls[translate.LabelUseWaypoint]
	}
	if name == "" || name == "none" {
		return nil, false
	}
	wns := cmpOr(lbls[translate.LabelUseWaypointNamespace], ns)
	i := slices.IndexFunc(wc.waypoints, func(w *waypoint) bool { return w.gw.Namespace == wns && w.gw.Name == name })
	if i < 0 {
		return nil, false
	}
	w := wc.waypoints[i]
	switch cmpOr(w.gw.Labels[translate.LabelWaypointFor], "service") {
	case "all":
	case "workload":
		if !workload {
			return w, false
		}
	case "service":
		if workload {
			return w, false
		}
	default:
		return w, false
	}
	admits := wns == ns || w.gw.AttachFrom == "All"
	if w.gw.AttachFrom == "Selector" && w.gw.AttachSelector != nil {
		sel, err := metav1.LabelSelectorAsSelector(w.gw.AttachSelector)
		admits = err == nil && sel.Matches(labels.Set(labelsSet(wc.nsLabels[ns], ns)))
	}
	return w, admits && w.gw.Addressed
}

func labelsSet(l map[string]string, ns string) map[string]string {
	out := map[string]string{"kubernetes.io/metadata.name": ns}
	for k, v := range l {
		out[k] = v
	}
	return out
}

// allServices are the case's Services and the waypoints' own, by
// namespace/name: a waypoint's own Service is bound to a waypoint by the
// same labels (its namespace's).
func (wc *waypointCase) allServices() map[string]*corev1.Service {
	out := maps.Clone(wc.services)
	maps.Copy(out, wc.waypointServices)
	return out
}

// serviceWaypoint is the waypoint Service svc is bound to, or nil.
func (wc *waypointCase) serviceWaypoint(svc *corev1.Service) *waypoint {
	if w, ok := wc.bindingOf(svc.Labels, svc.Namespace, false); ok {
		return w
	}
	return nil
}

// podWaypoint is the waypoint the pod IP of pod is bound to, or nil.
func (wc *waypointCase) podWaypoint(pod *corev1.Pod) *waypoint {
	if pod.Annotations[annotationRedirected] != "enabled" {
		return nil
	}
	if w, ok := wc.bindingOf(pod.Labels, pod.Namespace, true); ok {
		return w
	}
	return nil
}

// statusAsExpected checks the conditions istiod wrote on every policy:
// ZtunnelAccepted=True on a selector-bound one; on one bound to a Service,
// WaypointAccepted=True (bound to the Service's waypoint) when the Service
// is bound to a waypoint, else False, AncestorNotBound (the Service names
// a waypoint that is not ready: the engine writes its policy beforehand).
func (wc *waypointCase) statusAsExpected() error {
	if err := acceptedAs(ctx, k8s, wc.policies)(); err != nil {
		return err
	}
	var out []string
	for _, ap := range wc.policies {
		if !boundByTargetRefs(ap) {
			continue
		}
		refs := ap.Spec.GetTargetRefs()
		if len(refs) != 1 || refs[0].GetKind() != "Service" || refs[0].GetGroup() != "" || refs[0].GetNamespace() != "" {
			out = append(out, fmt.Sprintf("%s/%s: targetRefs %v, want one Service of its namespace", ap.Namespace, ap.Name, refs))
			continue
		}
		svc := wc.services[ap.Namespace+"/"+refs[0].GetName()]
		if svc == nil {
			out = append(out, fmt.Sprintf("%s/%s: bound to Service %s, which the case does not have", ap.Namespace, ap.Name, refs[0].GetName()))
			continue
		}
		want := ztCondition{Status: "False", Reason: "AncestorNotBound", Message: fmt.Sprintf("Service %s/%s is not bound to a waypoint", svc.Namespace, svc.Name)}
		if w := wc.serviceWaypoint(svc); w != nil {
			want = ztCondition{Status: "True", Reason: "Accepted", Message: "bound to " + w.key()}
		}
		got, err := policyCondition(ap, "WaypointAccepted")
		if err != nil {
			return err
		}
		if got == nil || *got != want {
			out = append(out, fmt.Sprintf("%s/%s: WaypointAccepted %+v, want %+v", ap.Namespace, ap.Name, got, want))
		}
	}
	if len(out) > 0 {
		return errors.New(strings.Join(out, "\n"))
	}
	return nil
}

// policyCondition is the condition of type t istiod wrote on ap, or nil.
func policyCondition(ap *securityv1.AuthorizationPolicy, t string) (*ztCondition, error) {
	got := &securityv1.AuthorizationPolicy{}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(ap), got); err != nil {
		return nil, err
	}
	for _, cond := range got.Status.GetConditions() {
		if cond.GetType() == t {
			return &ztCondition{Status: cond.GetStatus(), Reason: cond.GetReason(), Message: cond.GetMessage()}, nil
		}
	}
	return nil, nil
}

// boundAsExpected compares the waypoints istiod's ambient index gives the
// case's Services and pods with those their labels name.
func (wc *waypointCase) boundAsExpected() error {
	z, err := istiod.AmbientzWaypoints(ctx)
	if err != nil {
		return err
	}
	var out []string
	for key, svc := range wc.allServices() {
		want := ""
		if w := wc.serviceWaypoint(svc); w != nil {
			want = w.hostname()
		}
		got, ok := z.Services[key]
		if !ok {
			out = append(out, fmt.Sprintf("Service %s: not in ambientz", key))
		} else if got != want {
			out = append(out, fmt.Sprintf("Service %s: waypoint %q, want %q", key, got, want))
		}
	}
	for _, pod := range wc.pods {
		if pod.Annotations[annotationRedirected] != "enabled" {
			continue
		}
		key := pod.Namespace + "/" + pod.Name
		want := ""
		if w := wc.podWaypoint(pod); w != nil {
			want = w.hostname()
		}
		got, ok := z.Workloads[key]
		if !ok {
			out = append(out, fmt.Sprintf("pod %s: not in ambientz", key))
		} else if got != want {
			out = append(out, fmt.Sprintf("pod %s: waypoint %q, want %q", key, got, want))
		}
	}
	sort.Strings(out)
	if len(out) > 0 {
		return errors.New(strings.Join(out, "\n"))
	}
	return nil
}

// waypointGets poses as w's proxy and compares the RBAC of its
// main_internal chains with the policies bound to its Services: each
// Service bound to w has, per (non-UDP) port, a tcp chain, an http chain
// or both (Istio's choice by the port's protocol: both where it sniffs),
// each carrying exactly the rules of the policies bound to that Service
// (no RBAC filter where none is: everything passes), with the client's
// identity (filter state) and the service port; the direct chains (pod-IP
// traffic of workloads bound to w) carry the policies bound to the
// Gateway (none generated). No other chain. It returns the chains'
// filters.
func (wc *waypointCase) waypointGets(w *waypoint) (map[string]*rbacFilter, error) {
	want, err := wc.expectChains(w, wc.policies)
	if err != nil {
		return nil, err
	}
	node, err := testenv.WaypointNode(w.gw.Name, w.gw.Namespace, w.pod, w.ip, w.sa)
	if err != nil {
		return nil, err
	}
	listeners, err := fetchListeners(ctx, istiod.GRPCAddr, node)
	if err != nil {
		return nil, err
	}
	got, err := testenv.WaypointRBAC(listeners)
	if err != nil {
		return nil, fmt.Errorf("waypoint %s: %w", w.key(), err)
	}
	if d := diffChains(want, got); d != "" {
		return got, fmt.Errorf("waypoint %s: the RBAC of its chains differs from the policies bound to its Services (-generated +istiod):\n%s", w.key(), d)
	}
	return got, nil
}

// expectChains is what w's chains must carry for policies: by chain name,
// a Service port's under protocol *.
func (wc *waypointCase) expectChains(w *waypoint, policies []*securityv1.AuthorizationPolicy) (map[string]*rbacFilter, error) {
	want := map[string]*rbacFilter{"direct-tcp": nil, "direct-http": nil}
	for _, svc := range wc.allServices() {
		if wc.serviceWaypoint(svc) != w {
			continue
		}
		var bound []*securityv1.AuthorizationPolicy
		for _, ap := range policies {
			if ap.Namespace == svc.Namespace && boundByTargetRefs(ap) && slices.ContainsFunc(ap.Spec.GetTargetRefs(), func(r *typev1beta1.PolicyTargetReference) bool { return r.GetName() == svc.Name }) {
				bound = append(bound, ap)
			}
		}
		var f *rbacFilter
		if len(bound) > 0 {
			rbac, err := expectRBAC(bound)
			if err != nil {
				return nil, err
			}
			f = &rbac
		}
		for _, p := range svc.Spec.Ports {
			if p.Protocol != corev1.ProtocolUDP {
				want[vipChain(svc, p.Port, "*")] = f
			}
		}
	}
	return want, nil
}

// vipChain is the name of the waypoint's chain for port of svc and proto
// (tcp, http; * for either).
func vipChain(svc *corev1.Service, port int32, proto string) string {
	return fmt.Sprintf("inbound-vip|%d|%s|%s.%s.svc.cluster.local", port, proto, svc.Name, svc.Namespace)
}

// anyProto is a chain name with its protocol replaced by *.
func anyProto(chain string) string {
	parts := strings.Split(chain, "|")
	if len(parts) == 4 && parts[0] == "inbound-vip" {
		parts[2] = "*"
	}
	return strings.Join(parts, "|")
}

// diffChains compares the chains expected (a Service port's under
// protocol *) with those istiod sent.
func diffChains(want, got map[string]*rbacFilter) string {
	var out []string
	seen := map[string]bool{}
	for _, name := range sortedKeys(got) {
		g := got[name]
		w, ok := want[anyProto(name)]
		seen[anyProto(name)] = true
		switch {
		case !ok:
			out = append(out, "chain "+name+": unexpected")
		case (w == nil) != (g == nil):
			out = append(out, fmt.Sprintf("chain %s: RBAC filter %v, want %v", name, g != nil, w != nil))
		case w != nil:
			if d := diffRBAC(*w, *g); d != "" {
				out = append(out, "chain "+name+":\n"+d)
			}
		}
	}
	for _, name := range sortedKeys(want) {
		if !seen[name] {
			out = append(out, "chain "+name+": missing")
		}
	}
	return strings.Join(out, "\n")
}

func sortedKeys[V any](ms ...map[string]V) []string {
	var out []string
	for _, m := range ms {
		for k := range m {
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}

// path is one way a client reaches a port of a pod: straight to the
// pod's ztunnel, or through a waypoint (a Service port's chain, or the
// direct chain for the pod IP), then ztunnel with the waypoint's identity.
type path struct {
	client, via string
	pod         string
	port        int
}

// pathsCompare evaluates, for every mesh client of the case and every
// port behind w (each port of a Service bound to w on each of its ambient
// endpoints; each container port of a pod bound to w for pod-IP traffic),
// the path through w (the chain's RBAC as istiod sent it, then the
// policies ztunnel applies to the pod, as istiod compiled them, with w's
// principal and address) against the direct path (ztunnel's policies
// with the client's own identity and address, which the ztunnel
// comparison proves are the generated ones). It returns the paths where
// the waypoint allows more (wider) and less (narrower).
func (wc *waypointCase) pathsCompare(w *waypoint, chains map[string]*rbacFilter) (wider, narrower []path, checked int, err error) {
	v, err := readAmbientz(istiod.HTTPAddr, wc.namespaces)
	if err != nil {
		return nil, nil, 0, err
	}
	wip, err := netip.ParseAddr(w.ip)
	if err != nil {
		return nil, nil, 0, err
	}
	type target struct {
		via   string
		chain *rbacFilter
		port  int32 // what the chain sees
		d     *corev1.Pod
		tp    int
	}
	var targets []target
	for _, key := range sortedKeys(wc.services) {
		svc := wc.services[key]
		if wc.serviceWaypoint(svc) != w {
			continue
		}
		for _, sp := range svc.Spec.Ports {
			if sp.Protocol == corev1.ProtocolUDP {
				continue
			}
			f, ok := chains[vipChain(svc, sp.Port, "tcp")]
			if !ok {
				f = chains[vipChain(svc, sp.Port, "http")]
			}
			for _, d := range wc.pods {
				if d.Namespace != svc.Namespace || !selects(svc.Spec.Selector, d.Labels) || d.Annotations[annotationRedirected] != "enabled" {
					continue
				}
				if tp, ok := targetPort(sp, d); ok {
					targets = append(targets, target{fmt.Sprintf("Service %s port %d", svc.Name, sp.Port), f, sp.Port, d, tp})
				}
			}
		}
	}
	for _, d := range wc.pods {
		if wc.podWaypoint(d) != w {
			continue
		}
		for _, c := range d.Spec.Containers {
			for _, cp := range c.Ports {
				targets = append(targets, target{"pod IP", chains["direct-tcp"], cp.ContainerPort, d, int(cp.ContainerPort)})
			}
		}
	}
	for _, t := range targets {
		if wc.isolatedByOthers(t.d) {
			continue // the direct path is the untranslated NetworkPolicy's: not modelled
		}
		applied := ztunnelPolicies(v, t.d)
		waypointPasses := ztunnelAllows(applied, w.principal(), wip, t.tp)
		for _, c := range wc.pods {
			if c.Annotations[annotationRedirected] != "enabled" || c == t.d {
				continue
			}
			principal := "cluster.local/ns/" + c.Namespace + "/sa/" + c.Spec.ServiceAccountName
			ip := netip.MustParseAddr(c.Status.PodIP)
			direct := ztunnelAllows(applied, principal, ip, t.tp)
			through := chainAllows(t.chain, principal, ip, t.port) && waypointPasses
			checked++
			p := path{client: c.Name, via: t.via, pod: t.d.Name, port: t.tp}
			switch {
			case through && !direct:
				wider = append(wider, p)
			case direct && !through:
				narrower = append(narrower, p)
			}
		}
	}
	return wider, narrower, checked, nil
}

// isolatedByOthers says whether a NetworkPolicy of the case that is not
// translated (otherPolicies) isolates d for ingress.
func (wc *waypointCase) isolatedByOthers(d *corev1.Pod) bool {
	for _, np := range wc.c.Snapshot.OtherPolicies {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err == nil && wc.rename(np.Namespace) == d.Namespace && sel.Matches(labels.Set(d.Labels)) &&
			(len(np.Spec.PolicyTypes) == 0 || slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress)) {
			return true
		}
	}
	return false
}

func (p path) String() string {
	return fmt.Sprintf("%s → %s → %s:%d", p.client, p.via, p.pod, p.port)
}

// chainAllows evaluates a waypoint chain's RBAC for a client on port: its
// DENY rules first, then its ALLOW rules (none, or only shadow rules, let
// everything through).
func chainAllows(f *rbacFilter, principal string, ip netip.Addr, port int32) bool {
	if f == nil {
		return true
	}
	for _, r := range f.Deny {
		if chainRuleMatches(r, principal, ip, port) {
			return false
		}
	}
	if f.Rules == nil {
		return true
	}
	for _, r := range f.Rules {
		if chainRuleMatches(r, principal, ip, port) {
			return true
		}
	}
	return false
}

// chainRuleMatches says whether one rule of a waypoint's RBAC matches a
// client on port.
func chainRuleMatches(r rbacRule, principal string, ip netip.Addr, port int32) bool {
	if r.Never {
		return false
	}
	ns := namespaceOf(principal)
	toOK := r.To == nil || slices.ContainsFunc(r.To, func(o rbacOperation) bool { return slices.Contains(o.Ports, strconv.Itoa(int(port))) })
	fromOK := r.From == nil || slices.ContainsFunc(r.From, func(s rbacSource) bool {
		return (s.Principals == nil || matchAny(s.Principals, principal)) &&
			(s.Namespaces == nil || matchAny(s.Namespaces, ns)) &&
			(s.IPBlocks == nil || inAny(s.IPBlocks, ip)) && !inAny(s.NotIPBlocks, ip)
	})
	return toOK && fromOK
}

func namespaceOf(principal string) string {
	if parts := strings.Split(principal, "/"); len(parts) == 5 && parts[1] == "ns" {
		return parts[2]
	}
	return ""
}

// matchAny matches v against AuthorizationPolicy string patterns: * (any
// non-empty), *suffix, prefix*, exact.
func matchAny(pats []string, v string) bool {
	return slices.ContainsFunc(pats, func(p string) bool {
		switch {
		case p == "*":
			return v != ""
		case strings.HasPrefix(p, "*"):
			return strings.HasSuffix(v, p[1:])
		case strings.HasSuffix(p, "*"):
			return strings.HasPrefix(v, p[:len(p)-1])
		}
		return p == v
	})
}

func inAny(cidrs []string, ip netip.Addr) bool {
	return slices.ContainsFunc(cidrs, func(c string) bool {
		p, err := netip.ParsePrefix(c)
		return err == nil && p.Contains(ip)
	})
}

// targetPort is the container port a Service port sends to on pod d.
func targetPort(sp corev1.ServicePort, d *corev1.Pod) (int, bool) {
	if sp.TargetPort.Type == intstr.Int {
		return int(cmpOr(sp.TargetPort.IntVal, sp.Port)), true
	}
	for _, c := range d.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == sp.TargetPort.StrVal {
				return int(p.ContainerPort), true
			}
		}
	}
	return 0, false
}

// ztunnelPolicies are the compiled policies ztunnel applies to d: those on
// its workload's list and those of namespace scope in its namespace.
func ztunnelPolicies(v ztunnelView, d *corev1.Pod) []ztPolicy {
	var attached []string
	for _, wl := range v.Workloads {
		if wl.Namespace == d.Namespace && wl.Name == d.Name {
			attached = wl.AuthorizationPolicies
		}
	}
	var out []ztPolicy
	for _, p := range v.Policies {
		if slices.Contains(attached, p.key()) || p.Scope == "NAMESPACE" && p.Namespace == d.Namespace {
			out = append(out, p)
		}
	}
	return out
}

// ztunnelAllows evaluates ALLOW and DENY policies as ztunnel does for a
// peer with principal from src to port: no DENY matches, and no ALLOW
// applies or one matches.
func ztunnelAllows(ps []ztPolicy, principal string, src netip.Addr, port int) bool {
	allows := 0
	for _, p := range ps {
		if p.DryRun {
			continue
		}
		match := slices.ContainsFunc(p.Groups, func(g ztGroup) bool { return g.matches(principal, src, port) })
		if p.Action == "DENY" && match {
			return false
		}
		if p.Action == "ALLOW" {
			allows++
			if match {
				return true
			}
		}
	}
	return allows == 0
}

func (g ztGroup) matches(principal string, src netip.Addr, port int) bool {
	for _, c := range g.Clauses {
		if !slices.ContainsFunc(c.Matches, func(m ztMatch) bool { return m.matches(principal, src, port) }) {
			return false
		}
	}
	return true
}

func (m ztMatch) matches(principal string, src netip.Addr, port int) bool {
	ns := namespaceOf(principal)
	return (m.Principals == nil || matchAny(m.Principals, principal)) &&
		(m.Namespaces == nil || matchAny(m.Namespaces, ns)) &&
		(m.SourceIPs == nil || inAny(m.SourceIPs, src)) && !inAny(m.NotSourceIPs, src) &&
		!matchAny(m.NotPrincipals, principal) && !matchAny(m.NotNamespaces, ns) &&
		(m.DestinationPorts == nil || slices.Contains(m.DestinationPorts, strconv.Itoa(port))) &&
		!slices.Contains(m.NotDestPorts, strconv.Itoa(port)) &&
		m.ServiceAccounts == nil && m.NotServiceAccounts == nil && m.DestinationIPs == nil && m.NotDestinationIPs == nil
}
