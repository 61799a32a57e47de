package istio_test

// What a sidecar enforces: for every pod with a sidecar, the RBAC filter
// istiod sends its proxy holds exactly the rules of the AuthorizationPolicies
// that select it, rule by rule, dry-run ones as shadow rules.

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	secv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netpol2authz/netpol2authz/internal/demo"
	"github.com/netpol2authz/netpol2authz/internal/testenv"
	"github.com/netpol2authz/netpol2authz/internal/translate"
)

var _ = Describe("The sidecar RBAC filter", Ordered, func() {
	var samplePods []*corev1.Pod

	BeforeAll(func() {
		rename := freshRenamer("s")
		objs, err := sidecarSamples(rename)
		Expect(err).NotTo(HaveOccurred())
		Expect(demo.ApplySamples(ctx, k8s, objs)).To(Succeed())
		Expect(demo.WaitTranslated(ctx, k8s, demo.NetworkPolicies(objs), timeout)).To(Succeed())
		for _, u := range objs {
			if u.GetKind() != "Namespace" {
				continue
			}
			var pods corev1.PodList
			Expect(k8s.List(ctx, &pods, client.InNamespace(u.GetName()))).To(Succeed())
			for i := range pods.Items {
				if hasSidecar(&pods.Items[i]) {
					samplePods = append(samplePods, &pods.Items[i])
				}
			}
		}
		Expect(samplePods).NotTo(BeEmpty())
	})

	It("carries exactly the rules the operator generated for the samples", func() {
		cov := coverage{}
		for _, pod := range samplePods {
			var got rbacFilter
			Eventually(func() (err error) { got, err = sidecarGets(pod); return err }).
				WithTimeout(compiledWithin).WithPolling(interval).Should(Succeed())
			cov.add(got)
		}
		By(fmt.Sprintf("%d sidecars: %v", len(samplePods), cov))
		Expect(cov).To(HaveKey("shadow rules"), "the payments' dry-run policy arrives as shadow rules")
		Expect(cov).To(And(HaveKey("enforced rules"), HaveKey("deny-all"), HaveKey("principals")), "the shop's policies are enforced")
	})

	It("tells a changed policy apart from what istiod sent", func() {
		pod := samplePods[slices.IndexFunc(samplePods, func(p *corev1.Pod) bool { return p.Labels["app"] == "db" })]
		var got rbacFilter
		Eventually(func() (err error) { got, err = sidecarGets(pod); return err }).
			WithTimeout(compiledWithin).WithPolling(interval).Should(Succeed())
		aps, err := selecting(pod)
		Expect(err).NotTo(HaveOccurred())
		db := slices.IndexFunc(aps, func(ap *securityv1.AuthorizationPolicy) bool { return ap.Name == "netpol-db-admins-only" })
		Expect(db).To(BeNumerically(">=", 0))

		for what, mutate := range map[string]func(aps []*securityv1.AuthorizationPolicy){
			"a principal fewer": func(aps []*securityv1.AuthorizationPolicy) {
				s := aps[db].Spec.Rules[0].From[0].Source
				s.Principals = s.Principals[1:]
			},
			"another port": func(aps []*securityv1.AuthorizationPolicy) {
				aps[db].Spec.Rules[0].To[0].Operation.Ports = []string{"5433"}
			},
			"dry-run": func(aps []*securityv1.AuthorizationPolicy) {
				aps[db].Annotations[translate.AnnotationIstioDryRun] = "true"
			},
			"a policy fewer": func(aps []*securityv1.AuthorizationPolicy) { aps[db].Namespace = "elsewhere" },
		} {
			mutated := make([]*securityv1.AuthorizationPolicy, len(aps))
			for i, ap := range aps {
				mutated[i] = ap.DeepCopy()
			}
			mutate(mutated)
			want, err := expectRBAC(mutated)
			Expect(err).NotTo(HaveOccurred(), what)
			Expect(diffRBAC(want, got)).To(ContainSubstring("policy[netpol-db-admins-only]"), what)
		}
	})

	It("carries exactly the generated rules of every golden case", func() {
		cases, err := loadGoldenCases()
		Expect(err).NotTo(HaveOccurred())
		var pods []*corev1.Pod
		for _, c := range cases {
			rename := freshRenamer("s")
			for _, ns := range c.Namespaces() {
				Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: rename(ns)}})).To(Succeed(), c.Name)
			}
			for _, ap := range c.Policies() {
				Expect(k8s.Create(ctx, renamePolicy(ap, rename))).To(Succeed(), c.Name)
			}
			sidecar := map[string]bool{}
			for _, p := range c.Snapshot.Pods {
				sidecar[rename(p.Namespace)+"/"+p.Name] = p.Sidecar
			}
			for _, pod := range c.LivePods(rename) {
				if !sidecar[pod.Namespace+"/"+pod.Name] {
					continue
				}
				markSidecar(pod)
				Expect(createPod(ctx, k8s, pod, freshPodIP())).To(Succeed(), c.Name)
				pods = append(pods, pod)
			}
		}
		Expect(len(pods)).To(BeNumerically(">=", 50))
		cov := coverage{}
		for _, pod := range pods {
			var got rbacFilter
			Eventually(func() (err error) { got, err = sidecarGets(pod); return err }).
				WithTimeout(compiledWithin).WithPolling(interval).Should(Succeed())
			cov.add(got)
		}
		By(fmt.Sprintf("%d sidecars: %v", len(pods), cov))
		for _, row := range coverageRows {
			Expect(cov).To(HaveKey(row), "no compared rule has %s", row)
		}
	})
})

// coverage counts what the compared filters held, by kind, so that a spec
// can insist it compared every row of the translation contract.
type coverage map[string]int

var coverageRows = []string{"enforced rules", "shadow rules", "DENY rules", "deny-all", "from any source", "to any port",
	"principals", "namespaces", `namespaces ["*"]`, "ipBlocks", "notIpBlocks", "several ports"}

func (c coverage) add(f rbacFilter) {
	for kind, rules := range map[string]map[string]rbacRule{"enforced rules": f.Rules, "shadow rules": f.Shadow, "DENY rules": f.Deny, "DENY shadow rules": f.DenyShadow} {
		for _, r := range rules {
			c.count(kind, true)
			c.count("deny-all", r.Never)
			c.count("from any source", !r.Never && r.From == nil)
			c.count("to any port", !r.Never && r.To == nil)
			for _, s := range r.From {
				c.count("principals", s.Principals != nil)
				c.count("namespaces", s.Namespaces != nil)
				c.count(`namespaces ["*"]`, slices.Equal(s.Namespaces, []string{"*"}))
				c.count("ipBlocks", s.IPBlocks != nil)
				c.count("notIpBlocks", s.NotIPBlocks != nil)
			}
			for _, o := range r.To {
				c.count("several ports", len(o.Ports) > 1)
			}
		}
	}
}

func (c coverage) count(kind string, ok bool) {
	if ok {
		c[kind]++
	}
}

// sidecarSamples reads config/samples into fresh namespaces rename(ns)
// (labels and netpol2authz annotations kept, so the operator translates
// them and demo.ApplySamples injects the sidecars), with fresh pod IPs and
// namespaceSelectors on kubernetes.io/metadata.name renamed. The
// namespaces follow identities (netpol2authz.io/identity: follow): under
// review, a first translation that ran before the pods were created would
// hold every identity back and leave the policies without rules.
func sidecarSamples(rename func(string) string) ([]*unstructured.Unstructured, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return nil, err
	}
	objs, err := demo.ReadSamples(filepath.Join(root, "config", "samples"))
	if err != nil {
		return nil, err
	}
	for _, u := range objs {
		switch u.GetKind() {
		case "Namespace":
			u.SetName(rename(u.GetName()))
			annotations := u.GetAnnotations()
			if annotations == nil {
				annotations = map[string]string{}
			}
			annotations[translate.AnnotationIdentity] = string(translate.IdentityFollow)
			u.SetAnnotations(annotations)
			continue
		case "Pod":
			if err := unstructured.SetNestedField(u.Object, freshPodIP().String(), "status", "podIP"); err != nil {
				return nil, err
			}
		case "NetworkPolicy":
			ingress, _, _ := unstructured.NestedSlice(u.Object, "spec", "ingress")
			for _, rule := range ingress {
				from, _, _ := unstructured.NestedSlice(rule.(map[string]any), "from")
				for _, peer := range from {
					ml, _, _ := unstructured.NestedStringMap(peer.(map[string]any), "namespaceSelector", "matchLabels")
					if name, ok := ml["kubernetes.io/metadata.name"]; ok {
						ml["kubernetes.io/metadata.name"] = rename(name)
						if err := unstructured.SetNestedStringMap(peer.(map[string]any), ml, "namespaceSelector", "matchLabels"); err != nil {
							return nil, err
						}
					}
				}
			}
			if ingress != nil {
				if err := unstructured.SetNestedSlice(u.Object, ingress, "spec", "ingress"); err != nil {
					return nil, err
				}
			}
		}
		u.SetNamespace(rename(u.GetNamespace()))
	}
	return objs, nil
}

// markSidecar gives pod what istiod's injector would: an istio-proxy
// container and the sidecar.istio.io/status annotation.
func markSidecar(pod *corev1.Pod) {
	pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: "istio-proxy", Image: "docker.io/istio/proxyv2:" + proxyVersion})
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations["sidecar.istio.io/status"] = `{"containers":["istio-proxy"]}`
}

func hasSidecar(pod *corev1.Pod) bool {
	return slices.ContainsFunc(pod.Spec.Containers, func(c corev1.Container) bool { return c.Name == "istio-proxy" })
}

// sidecarGets compares, for pod, the RBAC filter istiod sends its proxy with
// what the AuthorizationPolicies that select it ask for; it returns the
// filter, and an error with the difference when they differ.
func sidecarGets(pod *corev1.Pod) (rbacFilter, error) {
	aps, err := selecting(pod)
	if err != nil {
		return rbacFilter{}, err
	}
	want, err := expectRBAC(aps)
	if err != nil {
		return rbacFilter{}, err
	}
	node, err := sidecarNode(pod)
	if err != nil {
		return rbacFilter{}, err
	}
	listeners, err := fetchListeners(ctx, istiod.GRPCAddr, node)
	if err != nil {
		return rbacFilter{}, err
	}
	got, _, err := inboundRBAC(listeners)
	if err != nil {
		return rbacFilter{}, fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	if d := diffRBAC(want, got); d != "" {
		return got, fmt.Errorf("pod %s/%s: the RBAC filter differs from the policies (-generated +istiod):\n%s", pod.Namespace, pod.Name, d)
	}
	return got, nil
}

// selecting lists the AuthorizationPolicies that apply to pod: those of its
// namespace whose selector matches its labels, and those of Istio's root
// namespace that do (policies bound with targetRefs never do).
func selecting(pod *corev1.Pod) ([]*securityv1.AuthorizationPolicy, error) {
	var out []*securityv1.AuthorizationPolicy
	for _, ns := range []string{pod.Namespace, istiod.Namespace} {
		var list securityv1.AuthorizationPolicyList
		if err := k8s.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return nil, err
		}
		for _, ap := range list.Items {
			if boundByTargetRefs(ap) {
				continue // for waypoints: istiod gives sidecars none (ShouldAttachPolicy)
			}
			if matchLabels(ap.Spec.GetSelector().GetMatchLabels(), pod.Labels) {
				out = append(out, ap)
			}
		}
	}
	return out, nil
}

func matchLabels(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// expectRBAC is what Istio builds from the policies aps (see
// docs/istio.md): each rule N of policy NAME in NS under
// ns[NS]-policy[NAME]-rule[N], in the shadow rules when the policy is
// dry-run, DENY ones apart; a policy without rules as a rule[0] that
// matches nothing.
func expectRBAC(aps []*securityv1.AuthorizationPolicy) (rbacFilter, error) {
	var f rbacFilter
	for _, ap := range aps {
		enforced, shadow := &f.Rules, &f.Shadow
		switch {
		case ap.Spec.GetProvider() != nil:
			return f, fmt.Errorf("%s/%s: a provider", ap.Namespace, ap.Name)
		case ap.Spec.Action == secv1beta1.AuthorizationPolicy_DENY:
			enforced, shadow = &f.Deny, &f.DenyShadow
		case ap.Spec.Action != secv1beta1.AuthorizationPolicy_ALLOW:
			return f, fmt.Errorf("%s/%s: action %s, not ALLOW or DENY", ap.Namespace, ap.Name, ap.Spec.Action)
		}
		dst := enforced
		if dry, _ := strconv.ParseBool(ap.Annotations[translate.AnnotationIstioDryRun]); dry {
			dst = shadow
		}
		if *dst == nil {
			*dst = map[string]rbacRule{}
		}
		name := func(i int) string { return fmt.Sprintf("ns[%s]-policy[%s]-rule[%d]", ap.Namespace, ap.Name, i) }
		if len(ap.Spec.Rules) == 0 {
			(*dst)[name(0)] = rbacRule{Never: true}
		}
		for i, r := range ap.Spec.Rules {
			rule, err := expectRule(r)
			if err != nil {
				return f, fmt.Errorf("%s: %w", name(i), err)
			}
			(*dst)[name(i)] = rule
		}
	}
	return f, nil
}

func expectRule(r *secv1beta1.Rule) (rbacRule, error) {
	var out rbacRule
	if len(r.When) > 0 {
		return out, fmt.Errorf("a when condition")
	}
	for _, from := range r.From {
		s := from.GetSource()
		if s == nil || len(s.NotPrincipals)+len(s.NotNamespaces)+len(s.RequestPrincipals)+len(s.NotRequestPrincipals)+
			len(s.RemoteIpBlocks)+len(s.NotRemoteIpBlocks)+len(s.ServiceAccounts)+len(s.NotServiceAccounts)+
			len(s.TrustDomains)+len(s.NotTrustDomains) > 0 {
			return out, fmt.Errorf("a source beyond principals, namespaces, ipBlocks and notIpBlocks: %v", s)
		}
		ip, err := cidrSet(s.IpBlocks)
		if err != nil {
			return out, err
		}
		notIP, err := cidrSet(s.NotIpBlocks)
		if err != nil {
			return out, err
		}
		out.From = append(out.From, rbacSource{Principals: sortedSet(s.Principals), Namespaces: sortedSet(s.Namespaces), IPBlocks: ip, NotIPBlocks: notIP})
	}
	for _, to := range r.To {
		o := to.GetOperation()
		if o == nil || len(o.NotPorts)+len(o.Hosts)+len(o.NotHosts)+len(o.Methods)+len(o.NotMethods)+len(o.Paths)+len(o.NotPaths) > 0 {
			return out, fmt.Errorf("an operation beyond ports: %v", o)
		}
		out.To = append(out.To, rbacOperation{Ports: sortedSet(o.Ports)})
	}
	return out, nil
}

// cidrSet writes each block as Istio does: a bare address as /32 or /128,
// a CIDR as written.
func cidrSet(blocks []string) ([]string, error) {
	var out []string
	for _, b := range blocks {
		if !strings.Contains(b, "/") {
			a, err := netip.ParseAddr(b)
			if err != nil {
				return nil, err
			}
			b = netip.PrefixFrom(a, a.BitLen()).String()
		} else if _, err := netip.ParsePrefix(b); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return sortedSet(out), nil
}

func sortedSet(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
