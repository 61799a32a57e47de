package crash_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	secv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	policyv1alpha1 "github.com/netpol2authz/netpol2authz/api/v1alpha1"
	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// A churn makes random changes to the inputs and outputs of the operator in
// namespaces of its own, from a seeded random source: the sequence of
// changes replays with the seed (their interleaving with the operator's
// work and the moments of the kills, in wall-clock time, do not exactly).
//
// It remembers the resourceVersion its last write gave every object the
// operator does not own (namespaces, pods, NetworkPolicies, the
// IdentityApprovals a reviewer made, the AuthorizationPolicies a person
// made): the operator must never write them.
type churn struct {
	r      *rand.Rand
	prefix string
	ns     []string
	log    *os.File
	// untouched maps kind/namespace/name to the object and the
	// resourceVersion of the test's last write.
	untouched map[string]client.Object
	// protected NetworkPolicies are never deleted: unowned
	// AuthorizationPolicies hold the names they generate.
	protected map[string]bool
	counter   int
	done      map[string]int
}

var lastIP atomic.Int32

func nextIP() string {
	n := lastIP.Add(1)
	return fmt.Sprintf("10.%d.%d.%d", n/65536%256, n/256%256, n%256)
}

// Label values the churn draws from: few, so that selectors match.
var (
	apps            = []string{"web", "api", "db", "batch"}
	serviceAccounts = []string{"web", "api", "db", "shared", "shared", ""}
	teams           = []string{"red", "blue", ""}
)

// newChurn creates three namespaces named prefix-a, -b and -c and their
// starting contents: a is opted in (enforce, review), b too (dry-run,
// follow, team=red), c is not (team=blue); pods in each, NetworkPolicies
// in each, Services in each, and three AuthorizationPolicies the operator
// does not own: one made by hand, one holding the name a NetworkPolicy
// generates, one with netpol2authz's label but no controller reference,
// holding a name too. Every namespace has the round label; two admin
// network policies of the round apply to its pods; where Gateways are
// served, a is ambient and behind its waypoint.
func newChurn(r *rand.Rand, prefix string) *churn {
	c := &churn{r: r, prefix: prefix, untouched: map[string]client.Object{}, protected: map[string]bool{}, done: map[string]int{}}
	var err error
	c.log, err = os.Create(filepath.Join(workDir, prefix+"-churn.log"))
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(c.log.Close)
	annotations := []map[string]string{
		{translate.AnnotationMode: "enforce"},
		{translate.AnnotationMode: "dry-run", translate.AnnotationIdentity: "follow"},
		nil,
	}
	labels := []map[string]string{{}, {"team": "red"}, {"team": "blue"}}
	for i, suffix := range []string{"a", "b", "c"} {
		labels[i][labelRound] = prefix
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: prefix + "-" + suffix, Annotations: annotations[i], Labels: labels[i]}}
		c.create(ns)
		c.ns = append(c.ns, ns.Name)
	}
	for _, ns := range c.ns {
		for range 5 {
			c.addPod(ns)
		}
		for range 3 {
			c.addPolicy(ns)
		}
		for range 2 {
			c.addService(ns)
		}
	}
	c.addAdminPolicy()
	c.addAdminPolicy()
	if gatewaysServed {
		// a: ambient, behind its waypoint, which has addresses or not.
		c.addWaypoint(c.ns[0], r.IntN(2) == 0)
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c.ns[0]}}
		Expect(c.update(ns, func() {
			ns.Labels["istio.io/dataplane-mode"] = "ambient"
			ns.Labels[translate.LabelUseWaypoint] = waypointName
		})).To(BeTrue())
	}
	a, b := c.ns[0], c.ns[1]
	c.create(&securityv1.AuthorizationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "hand-made", Namespace: a, Labels: map[string]string{"owner": "platform-team"}},
		Spec:       secv1beta1.AuthorizationPolicy{Rules: []*secv1beta1.Rule{{}}},
	})
	c.create(&securityv1.AuthorizationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "netpol-clash", Namespace: a},
		Spec:       secv1beta1.AuthorizationPolicy{Action: secv1beta1.AuthorizationPolicy_DENY, Rules: []*secv1beta1.Rule{{}}},
	})
	c.create(c.policy(a, "clash"))
	c.protected[a+"/clash"] = true
	c.create(&securityv1.AuthorizationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "netpol-shadow", Namespace: b, Labels: map[string]string{translate.LabelManagedBy: translate.ManagedByValue}},
		Spec:       secv1beta1.AuthorizationPolicy{Rules: []*secv1beta1.Rule{{}}},
	})
	c.create(c.policy(b, "shadow"))
	c.protected[b+"/shadow"] = true
	return c
}

func (c *churn) logf(format string, args ...any) {
	fmt.Fprintf(c.log, "%s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

func trackKey(obj client.Object) string {
	return fmt.Sprintf("%T/%s/%s", obj, obj.GetNamespace(), obj.GetName())
}

// create creates obj and, when the operator does not own it, remembers it.
func (c *churn) create(obj client.Object) {
	Expect(k8s.Create(ctx, obj)).To(Succeed(), "creating %s", trackKey(obj))
	c.track(obj)
}

func (c *churn) track(obj client.Object) {
	if !owned(obj) {
		c.untouched[trackKey(obj)] = obj.DeepCopyObject().(client.Object)
	}
}

// update reads obj, applies change and writes it back; it says false when
// the object is gone or was changed meanwhile (by the operator: an owned
// object), which skips the change.
func (c *churn) update(obj client.Object, change func()) bool {
	err := k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj)
	if apierrors.IsNotFound(err) {
		return false
	}
	Expect(err).NotTo(HaveOccurred())
	change()
	err = k8s.Update(ctx, obj)
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return false
	}
	Expect(err).NotTo(HaveOccurred(), "updating %s", trackKey(obj))
	c.track(obj)
	return true
}

func (c *churn) delete(obj client.Object) {
	Expect(client.IgnoreNotFound(k8s.Delete(ctx, obj))).To(Succeed(), "deleting %s", trackKey(obj))
	delete(c.untouched, trackKey(obj))
}

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

func (c *churn) podLabels() map[string]string {
	l := map[string]string{"app": pick(c.r, apps)}
	if c.r.IntN(3) == 0 {
		l["role"] = "admin"
	}
	return l
}

// newPod is a pod with a sidecar (mostly) and a named port http whose
// number varies, so that some policies get per-port overlays.
func (c *churn) newPod(ns, name string, labels map[string]string, sa string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: corev1.PodSpec{
			ServiceAccountName: sa,
			Containers: []corev1.Container{{
				Name: "app", Image: "registry.example/app:1",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: pick(c.r, []int32{8080, 8080, 9090})}},
			}},
		},
	}
	// In a, ambient and behind a waypoint where Gateways are served, most
	// pods have no sidecar: a waypoint concerns only ambient pods.
	if sidecar := c.r.IntN(5) != 0; sidecar != (gatewaysServed && ns == c.ns[0]) {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "istio-proxy", Image: "istio/proxyv2:1.29.0"})
	}
	return p
}

// createPod creates a running pod: envtest runs no kubelet, so phase and
// IP are written through the status subresource.
func (c *churn) createPod(p *corev1.Pod) {
	Expect(k8s.Create(ctx, p)).To(Succeed(), "creating pod %s/%s", p.Namespace, p.Name)
	ip := nextIP()
	p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}
	Expect(k8s.Status().Update(ctx, p)).To(Succeed())
	c.track(p)
}

func (c *churn) addPod(ns string) {
	c.counter++
	p := c.newPod(ns, fmt.Sprintf("pod-%d", c.counter), c.podLabels(), pick(c.r, serviceAccounts))
	c.createPod(p)
	c.logf("add pod %s/%s labels=%v sa=%q", ns, p.Name, p.Labels, p.Spec.ServiceAccountName)
}

// policy is a random ingress NetworkPolicy.
func (c *churn) policy(ns, name string) *networkingv1.NetworkPolicy {
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: c.selector(),
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{},
		},
	}
	if c.r.IntN(10) == 0 {
		return np // denies all ingress
	}
	for range 1 + c.r.IntN(2) {
		rule := networkingv1.NetworkPolicyIngressRule{}
		if c.r.IntN(10) != 0 {
			for range 1 + c.r.IntN(2) {
				rule.From = append(rule.From, c.peer())
			}
		}
		switch c.r.IntN(10) {
		case 0, 1, 2, 3:
			rule.Ports = []networkingv1.NetworkPolicyPort{{Port: new(intstr.FromInt32(8080))}}
		case 4, 5:
			rule.Ports = []networkingv1.NetworkPolicyPort{{Port: new(intstr.FromString("http"))}}
		case 6, 7:
			rule.Ports = []networkingv1.NetworkPolicyPort{{Port: new(intstr.FromInt32(5432))}}
		case 8:
			rule.Ports = []networkingv1.NetworkPolicyPort{{Port: new(intstr.FromInt32(8000)), EndPort: new(int32(8010))}}
		}
		np.Spec.Ingress = append(np.Spec.Ingress, rule)
	}
	return np
}

func (c *churn) selector() metav1.LabelSelector {
	switch c.r.IntN(10) {
	case 0, 1:
		return metav1.LabelSelector{}
	case 2:
		return metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{pick(c.r, apps), pick(c.r, apps)}},
		}}
	default:
		return metav1.LabelSelector{MatchLabels: map[string]string{"app": pick(c.r, apps)}}
	}
}

func (c *churn) peer() networkingv1.NetworkPolicyPeer {
	switch c.r.IntN(20) {
	case 0, 1, 2, 3, 4, 5, 6:
		return networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": pick(c.r, apps)}}}
	case 7, 8, 9:
		return networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"role": "admin"}}}
	case 10, 11, 12, 13:
		return networkingv1.NetworkPolicyPeer{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": pick(c.r, teams[:2])}},
			PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app": pick(c.r, apps)}},
		}
	case 14, 15:
		return networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": pick(c.r, teams[:2])}}}
	case 16, 17:
		return networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "role", Operator: metav1.LabelSelectorOpDoesNotExist},
		}}}
	case 18:
		return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8", Except: []string{"10.0.1.0/24"}}}
	default:
		return networkingv1.NetworkPolicyPeer{
			NamespaceSelector: &metav1.LabelSelector{},
			PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"role": "admin"}},
		}
	}
}

func (c *churn) addPolicy(ns string) {
	c.counter++
	np := c.policy(ns, fmt.Sprintf("np-%d", c.counter))
	c.create(np)
	c.logf("add networkpolicy %s/%s", ns, np.Name)
}

// pods lists the pods of a random namespace of the churn.
func (c *churn) pods() (string, []corev1.Pod) {
	ns := pick(c.r, c.ns)
	var list corev1.PodList
	Expect(k8s.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	slices.SortFunc(list.Items, func(a, b corev1.Pod) int { return compare(a.Name, b.Name) })
	return ns, list.Items
}

func (c *churn) policies() (string, []networkingv1.NetworkPolicy) {
	ns := pick(c.r, c.ns)
	var list networkingv1.NetworkPolicyList
	Expect(k8s.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	slices.SortFunc(list.Items, func(a, b networkingv1.NetworkPolicy) int { return compare(a.Name, b.Name) })
	return ns, list.Items
}

// generated lists the AuthorizationPolicies the operator generated in the
// churn's namespaces.
func (c *churn) generated() []*securityv1.AuthorizationPolicy {
	var out []*securityv1.AuthorizationPolicy
	for _, ns := range c.ns {
		var list securityv1.AuthorizationPolicyList
		Expect(k8s.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		for _, ap := range list.Items {
			if owned(ap) {
				out = append(out, ap)
			}
		}
	}
	slices.SortFunc(out, func(a, b *securityv1.AuthorizationPolicy) int { return compare(key(a), key(b)) })
	return out
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// op is one kind of change, with its weight.
type op struct {
	name   string
	weight int
	do     func(c *churn) bool
}

var ops = []op{
	{"relabel-pod", 20, (*churn).relabelPod},
	{"replace-pod-serviceaccount", 8, (*churn).replacePod},
	{"add-pod", 6, func(c *churn) bool { c.addPod(pick(c.r, c.ns)); return true }},
	{"delete-pod", 5, (*churn).deletePod},
	{"add-networkpolicy", 5, func(c *churn) bool { c.addPolicy(pick(c.r, c.ns)); return true }},
	{"delete-networkpolicy", 4, (*churn).deletePolicy},
	{"change-networkpolicy", 8, (*churn).changePolicy},
	{"recreate-networkpolicy", 4, (*churn).recreatePolicy},
	{"label-namespace", 4, (*churn).labelNamespace},
	{"edit-generated-spec", 6, (*churn).editGenerated},
	{"delete-generated", 4, (*churn).deleteGenerated},
	{"label-generated", 2, (*churn).labelGenerated},
	{"delete-translation", 2, (*churn).deleteTranslation},
	{"flip-mode", 3, (*churn).flipMode},
	{"flip-identity", 2, (*churn).flipIdentity},
	{"flip-fidelity", 1, (*churn).flipFidelity},
	{"approve", 3, (*churn).approve},
	{"add-service", 3, func(c *churn) bool { c.addService(pick(c.r, c.ns)); return true }},
	{"change-service", 5, (*churn).changeService},
	{"delete-service", 2, (*churn).deleteService},
	{"change-admin-policy", 3, (*churn).changeAdminPolicy},
	{"add-or-delete-admin-policy", 2, (*churn).replaceAdminPolicy},
	{"add-or-delete-waypoint", 2, (*churn).toggleWaypoint},
	{"address-waypoint", 2, (*churn).addressWaypoint},
	{"waypoint-for", 1, (*churn).waypointFor},
	{"label-namespace-mesh", 3, (*churn).labelMesh},
}

// step makes one random change.
func (c *churn) step() {
	total := 0
	for _, o := range ops {
		total += o.weight
	}
	n := c.r.IntN(total)
	for _, o := range ops {
		if n -= o.weight; n < 0 {
			if o.do(c) {
				c.done[o.name]++
			} else {
				c.done[o.name+" (skipped)"]++
			}
			return
		}
	}
}

// run makes changes, with a random pause of up to 30ms after each, until
// done says so; it calls between before each change (to kill and restart
// the operator).
func (c *churn) run(done func() bool, between func()) {
	for !done() {
		between()
		c.step()
		time.Sleep(time.Duration(c.r.IntN(30)) * time.Millisecond)
	}
	GinkgoWriter.Printf("%s: changes made: %v\n", c.prefix, c.done)
}

// forAbout is a done function for run: true once d has passed.
func forAbout(d time.Duration) func() bool {
	end := time.Now().Add(d)
	return func() bool { return !time.Now().Before(end) }
}

func (c *churn) relabelPod() bool {
	ns, pods := c.pods()
	if len(pods) == 0 {
		return false
	}
	p := &pods[c.r.IntN(len(pods))]
	labels := c.podLabels()
	c.logf("relabel pod %s/%s %v", ns, p.Name, labels)
	return c.update(p, func() { p.Labels = labels })
}

// replacePod gives a pod another ServiceAccount, which only a new pod can
// have: it deletes the pod and creates one of the same name and labels.
func (c *churn) replacePod() bool {
	ns, pods := c.pods()
	if len(pods) == 0 {
		return false
	}
	old := &pods[c.r.IntN(len(pods))]
	sa := pick(c.r, serviceAccounts)
	c.logf("replace pod %s/%s serviceaccount %q -> %q", ns, old.Name, old.Spec.ServiceAccountName, sa)
	c.delete(old)
	c.createPod(c.newPod(ns, old.Name, old.Labels, sa))
	return true
}

func (c *churn) deletePod() bool {
	ns, pods := c.pods()
	if len(pods) < 2 {
		return false
	}
	p := &pods[c.r.IntN(len(pods))]
	c.logf("delete pod %s/%s", ns, p.Name)
	c.delete(p)
	return true
}

func (c *churn) deletePolicy() bool {
	ns, nps := c.policies()
	nps = slices.DeleteFunc(nps, func(np networkingv1.NetworkPolicy) bool { return c.protected[key(&np)] })
	if len(nps) < 2 {
		return false
	}
	np := &nps[c.r.IntN(len(nps))]
	c.logf("delete networkpolicy %s/%s", ns, np.Name)
	c.delete(np)
	return true
}

func (c *churn) changePolicy() bool {
	ns, nps := c.policies()
	if len(nps) == 0 {
		return false
	}
	np := &nps[c.r.IntN(len(nps))]
	spec := c.policy(ns, np.Name).Spec
	c.logf("change networkpolicy %s/%s", ns, np.Name)
	return c.update(np, func() { np.Spec = spec })
}

// recreatePolicy deletes a NetworkPolicy and creates another of the same
// name: a new uid, whose approval record is not the old one's.
func (c *churn) recreatePolicy() bool {
	ns, nps := c.policies()
	if len(nps) == 0 {
		return false
	}
	old := &nps[c.r.IntN(len(nps))]
	c.logf("recreate networkpolicy %s/%s", ns, old.Name)
	c.delete(old)
	c.create(c.policy(ns, old.Name))
	return true
}

func (c *churn) labelNamespace() bool {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: pick(c.r, c.ns)}}
	team := pick(c.r, teams)
	c.logf("label namespace %s team=%q", ns.Name, team)
	return c.update(ns, func() {
		if team == "" {
			delete(ns.Labels, "team")
		} else {
			ns.Labels["team"] = team
		}
	})
}

// editGenerated is a hand edit of a generated policy's spec, which the
// operator must undo.
func (c *churn) editGenerated() bool {
	aps := c.generated()
	if len(aps) == 0 {
		return false
	}
	ap := aps[c.r.IntN(len(aps))]
	how := c.r.IntN(3)
	c.logf("edit generated %s (%d)", key(ap), how)
	return c.update(ap, func() {
		switch {
		case how == 0:
			ap.Spec.Rules = append(ap.Spec.Rules, &secv1beta1.Rule{From: []*secv1beta1.Rule_From{{Source: &secv1beta1.Source{Principals: []string{"cluster.local/ns/attacker/sa/intruder"}}}}})
		case how == 1:
			ap.Spec.Rules = []*secv1beta1.Rule{{}}
		case len(ap.Spec.TargetRefs) > 0:
			// bound to a Service: a policy may not have both
			ap.Spec.TargetRefs[0].Name = "nothing"
		default:
			ap.Spec.Selector = &typev1beta1.WorkloadSelector{MatchLabels: map[string]string{"app": "nothing"}}
		}
	})
}

func (c *churn) deleteGenerated() bool {
	aps := c.generated()
	if len(aps) == 0 {
		return false
	}
	ap := aps[c.r.IntN(len(aps))]
	c.logf("delete generated %s", key(ap))
	c.delete(ap)
	return true
}

// labelGenerated adds a label and an annotation of someone else to a
// generated policy: the operator keeps them and writes nothing for them.
func (c *churn) labelGenerated() bool {
	aps := c.generated()
	if len(aps) == 0 {
		return false
	}
	ap := aps[c.r.IntN(len(aps))]
	c.logf("label generated %s", key(ap))
	return c.update(ap, func() {
		if ap.Labels == nil {
			ap.Labels = map[string]string{}
		}
		ap.Labels["example.com/reviewed"] = "true"
		if ap.Annotations == nil {
			ap.Annotations = map[string]string{}
		}
		ap.Annotations["example.com/note"] = "looked at by hand"
	})
}

func (c *churn) deleteTranslation() bool {
	ns := pick(c.r, c.ns)
	var list policyv1alpha1.NetworkPolicyTranslationList
	Expect(k8s.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	if len(list.Items) == 0 {
		return false
	}
	slices.SortFunc(list.Items, func(a, b policyv1alpha1.NetworkPolicyTranslation) int { return compare(a.Name, b.Name) })
	npt := &list.Items[c.r.IntN(len(list.Items))]
	c.logf("delete networkpolicytranslation %s", key(npt))
	c.delete(npt)
	return true
}

// annotate sets (or, with "", removes) a namespace annotation.
func (c *churn) annotate(name, value string) bool {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: pick(c.r, c.ns)}}
	c.logf("annotate namespace %s %s=%q", ns.Name, name, value)
	return c.update(ns, func() {
		if value == "" {
			delete(ns.Annotations, name)
			return
		}
		if ns.Annotations == nil {
			ns.Annotations = map[string]string{}
		}
		ns.Annotations[name] = value
	})
}

func (c *churn) flipMode() bool {
	return c.annotate(translate.AnnotationMode, pick(c.r, []string{"enforce", "dry-run", ""}))
}

func (c *churn) flipIdentity() bool {
	return c.annotate(translate.AnnotationIdentity, pick(c.r, []string{"review", "follow", ""}))
}

func (c *churn) flipFidelity() bool {
	return c.annotate(translate.AnnotationFidelity, pick(c.r, []string{"strict", "permissive", ""}))
}

// approve adds a ServiceAccount to the IdentityApproval of a NetworkPolicy
// as `netpol2authz approve` does, creating the record (a reviewer's, with
// no owner) when there is none.
func (c *churn) approve() bool {
	ns, nps := c.policies()
	if len(nps) == 0 {
		return false
	}
	np := nps[c.r.IntN(len(nps))]
	id := fmt.Sprintf("serviceaccount/%s/%s", pick(c.r, c.ns), pick(c.r, serviceAccounts[:4]))
	a := &policyv1alpha1.IdentityApproval{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: np.Name}}
	c.logf("approve %s for %s/%s", id, ns, np.Name)
	err := k8s.Get(ctx, client.ObjectKeyFromObject(a), a)
	if apierrors.IsNotFound(err) {
		a.Spec.Identities = []string{id}
		err := k8s.Create(ctx, a)
		if apierrors.IsAlreadyExists(err) {
			return false
		}
		Expect(err).NotTo(HaveOccurred())
		c.track(a)
		return true
	}
	Expect(err).NotTo(HaveOccurred())
	if slices.Contains(a.Spec.Identities, id) {
		return false
	}
	return c.update(a, func() { a.Spec.Identities = append(a.Spec.Identities, id) })
}

// expectUntouched checks that every object the operator does not own is
// as the churn last wrote it.
func (c *churn) expectUntouched() {
	var touched []string
	for _, k := range slices.Sorted(maps.Keys(c.untouched)) {
		want := c.untouched[k]
		got := want.DeepCopyObject().(client.Object)
		err := k8s.Get(ctx, client.ObjectKeyFromObject(want), got)
		switch {
		case apierrors.IsNotFound(err):
			touched = append(touched, k+": deleted")
		case err != nil:
			Expect(err).NotTo(HaveOccurred())
		case got.GetResourceVersion() != want.GetResourceVersion():
			touched = append(touched, fmt.Sprintf("%s: resourceVersion %s, the churn's last write left %s (managed fields: %v)",
				k, got.GetResourceVersion(), want.GetResourceVersion(), fieldManagers(got)))
		}
	}
	Expect(touched).To(BeEmpty(), "objects netpol2authz does not own were written (%d checked)", len(c.untouched))
}

func fieldManagers(obj client.Object) []string {
	var out []string
	for _, e := range obj.GetManagedFields() {
		out = append(out, e.Manager+"/"+string(e.Operation)+"/"+e.Subresource)
	}
	return out
}
