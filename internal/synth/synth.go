// Package synth builds synthetic clusters for benchmarks: namespaces with
// realistic workloads (shared and own ServiceAccounts, pods in and out of the
// mesh, named ports that vary) and NetworkPolicies that mix pod, namespace
// and combined selectors, matchExpressions, named ports, port ranges and
// ipBlocks. The same Size always gives the same cluster.
package synth

import (
	"bytes"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// Size of a synthetic cluster.
type Size struct {
	Name             string
	Namespaces       int
	PodsPerNamespace int
	// PoliciesPerNamespace NetworkPolicies are generated in each namespace.
	PoliciesPerNamespace int
}

// Pods is the number of pods of the cluster.
func (s Size) Pods() int { return s.Namespaces * s.PodsPerNamespace }

// Policies is the number of NetworkPolicies of the cluster.
func (s Size) Policies() int { return s.Namespaces * s.PoliciesPerNamespace }

// Sizes are the benchmark sizes, the largest being 200 namespaces × 50 pods
// (10,000 pods) with 2,000 NetworkPolicies.
var Sizes = []Size{
	{Name: "small", Namespaces: 20, PodsPerNamespace: 50, PoliciesPerNamespace: 10},
	{Name: "medium", Namespaces: 80, PodsPerNamespace: 50, PoliciesPerNamespace: 10},
	{Name: "large", Namespaces: 200, PodsPerNamespace: 50, PoliciesPerNamespace: 10},
}

// Cluster is a synthetic cluster as API objects.
type Cluster struct {
	Namespaces      []corev1.Namespace
	Pods            []corev1.Pod
	NetworkPolicies []networkingv1.NetworkPolicy
}

const appsPerNamespace = 10

// Cross-namespace selectors match a bounded number of namespaces whatever the
// cluster size, as teams and monitoring stacks do, so that the output per
// policy stays the same across sizes and the benchmark measures the engine's
// growth rather than the output's.
const (
	namespacesPerTeam    = 10
	monitoringNamespaces = 4
)

// team names the team that owns namespace i.
func team(i int) string { return fmt.Sprintf("team-%d", i/namespacesPerTeam) }

var tiers = []string{"web", "api", "db", "cache", "worker"}
var envs = []string{"prod", "staging", "dev"}

// Generate builds the cluster of the given size.
func Generate(s Size) Cluster {
	var c Cluster
	for i := 0; i < s.Namespaces; i++ {
		ns := fmt.Sprintf("ns-%03d", i)
		mode := "enforce"
		if i%4 == 3 {
			mode = "dry-run"
		}
		labels := map[string]string{
			"kubernetes.io/metadata.name": ns,
			"team":                        team(i),
			"env":                         envs[i%len(envs)],
		}
		if i < monitoringNamespaces {
			labels["monitoring"] = "true"
		}
		c.Namespaces = append(c.Namespaces, corev1.Namespace{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
			ObjectMeta: metav1.ObjectMeta{
				Name:        ns,
				Labels:      labels,
				Annotations: map[string]string{"netpol2authz.io/mode": mode},
			},
		})
		for p := 0; p < s.PodsPerNamespace; p++ {
			c.Pods = append(c.Pods, pod(i, ns, p))
		}
		for k := 0; k < s.PoliciesPerNamespace; k++ {
			c.NetworkPolicies = append(c.NetworkPolicies, policy(i, ns, k, s.Namespaces))
		}
	}
	return c
}

func pod(nsIndex int, ns string, p int) corev1.Pod {
	app := p % appsPerNamespace
	tier := tiers[app%len(tiers)]
	sa := fmt.Sprintf("app-%d", app)
	if app%4 == 0 {
		sa = "" // shares the namespace's default ServiceAccount
	}
	httpPort := int32(8080)
	if app == 6 {
		httpPort = 8081 // the named port "http" varies within tier=api
		if (p/10)%2 == 1 {
			// ... and between replicas no label tells apart: the
			// reported fallback (NamedPortVaries).
			httpPort = 8082
		}
	}
	labels := map[string]string{
		"app":               fmt.Sprintf("app-%d", app),
		"tier":              tier,
		"pod-template-hash": fmt.Sprintf("%x", (nsIndex*131+app)%4096),
	}
	if p%3 == 0 {
		labels["role"] = "frontend"
	}
	if p%7 == 0 {
		labels["canary"] = "true"
	}
	if app%2 == 0 {
		labels["has-metrics"] = "true"
	}
	containers := []corev1.Container{{
		Name:  "app",
		Image: "registry.example/app:1",
		Ports: []corev1.ContainerPort{
			{Name: "http", ContainerPort: httpPort, Protocol: corev1.ProtocolTCP},
			{Name: "metrics", ContainerPort: 9090, Protocol: corev1.ProtocolTCP},
			{Name: "dns", ContainerPort: 5353, Protocol: corev1.ProtocolUDP},
		},
	}}
	annotations := map[string]string{}
	if p%10 != 9 { // one pod in ten has no sidecar
		containers = append(containers, corev1.Container{Name: "istio-proxy", Image: "istio/proxyv2:1.29.0"})
		annotations["sidecar.istio.io/status"] = `{"containers":["istio-proxy"]}`
	}
	return corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        fmt.Sprintf("app-%d-%d", app, p),
			Namespace:   ns,
			Labels:      labels,
			Annotations: annotations,
		},
		Spec: corev1.PodSpec{ServiceAccountName: sa, Containers: containers},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning,
			PodIP: fmt.Sprintf("10.%d.%d.%d", nsIndex/250, nsIndex%250, p+10),
		},
	}
}

func tcp(port intstr.IntOrString) networkingv1.NetworkPolicyPort {
	proto := corev1.ProtocolTCP
	return networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &port}
}

// policy returns the k-th NetworkPolicy of a namespace; k cycles through ten
// shapes seen in real clusters.
func policy(nsIndex int, ns string, k, namespaces int) networkingv1.NetworkPolicy {
	app := func(i int) map[string]string {
		return map[string]string{"app": fmt.Sprintf("app-%d", i%appsPerNamespace)}
	}
	ingress := networkingv1.PolicyTypeIngress
	egress := networkingv1.PolicyTypeEgress
	spec := networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{ingress}}
	round := k / 10
	switch k % 10 {
	case 0: // deny all
	case 1: // one app reaches another
		spec.PodSelector = metav1.LabelSelector{MatchLabels: app(round + 1)}
		spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
			From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: app(round)}}},
			Ports: []networkingv1.NetworkPolicyPort{tcp(intstr.FromString("http"))},
		}}
	case 2: // tier=db only from tier=api, on 5432
		spec.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{"tier": "db"}}
		spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
			From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "api"}}}},
			Ports: []networkingv1.NetworkPolicyPort{tcp(intstr.FromInt32(5432))},
		}}
	case 3: // matchExpressions target, from the namespaces of one team
		spec.PodSelector = metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
			Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"app-2", "app-3"},
		}}}
		spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
			From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": team((nsIndex + namespacesPerTeam) % namespaces)}}}},
		}}
	case 4: // combined namespace + pod selector, named port
		spec.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{"tier": "api"}}
		spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
			From: []networkingv1.NetworkPolicyPeer{{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": envs[nsIndex%len(envs)], "team": team(nsIndex)}},
				PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"role": "frontend"}},
			}},
			Ports: []networkingv1.NetworkPolicyPort{tcp(intstr.FromString("http"))},
		}}
	case 5: // ipBlock with except, port range
		end := int32(8090)
		port := tcp(intstr.FromInt32(8080))
		port.EndPort = &end
		spec.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{"tier": "web"}}
		spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
			From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{
				CIDR: "10.0.0.0/8", Except: []string{"10.1.0.0/16", "10.2.0.0/16"},
			}}},
			Ports: []networkingv1.NetworkPolicyPort{port},
		}}
	case 6: // a metrics scraper from the monitoring namespaces
		spec.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{"has-metrics": "true"}}
		spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
			From: []networkingv1.NetworkPolicyPeer{{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"monitoring": "true"}},
				PodSelector:       &metav1.LabelSelector{MatchLabels: app(9)},
			}},
			Ports: []networkingv1.NetworkPolicyPort{tcp(intstr.FromString("metrics"))},
		}}
	case 7: // egress only: not translated
		spec.PolicyTypes = []networkingv1.PolicyType{egress}
		spec.PodSelector = metav1.LabelSelector{MatchLabels: app(round + 7)}
		spec.Egress = []networkingv1.NetworkPolicyEgressRule{{
			To: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}},
		}}
	case 8: // NotIn and DoesNotExist: projections, some overreaching
		spec.PodSelector = metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
			Key: "tier", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"db"},
		}, {
			Key: "canary", Operator: metav1.LabelSelectorOpDoesNotExist,
		}}}
		spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
			From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}},
		}}
	case 9: // anything in a neighbouring namespace, by name, on a named port
		spec.PodSelector = metav1.LabelSelector{MatchLabels: app(round + 3)}
		spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
			From: []networkingv1.NetworkPolicyPeer{{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{
					"kubernetes.io/metadata.name": fmt.Sprintf("ns-%03d", (nsIndex+1)%namespaces),
				}},
				PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
					Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"web", "api"},
				}}},
			}},
			Ports: []networkingv1.NetworkPolicyPort{tcp(intstr.FromString("http")), tcp(intstr.FromInt32(9090))},
		}}
	}
	return networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("np-%d", k), Namespace: ns, Generation: 1},
		Spec:       spec,
	}
}

// YAML renders the cluster as one multi-document YAML stream, namespaces
// first, as a GitOps repository or a cluster dump would hold it.
func (c Cluster) YAML() ([]byte, error) {
	var buf bytes.Buffer
	write := func(obj any) error {
		data, err := yaml.Marshal(obj)
		if err != nil {
			return err
		}
		buf.WriteString("---\n")
		buf.Write(data)
		return nil
	}
	for i := range c.Namespaces {
		if err := write(&c.Namespaces[i]); err != nil {
			return nil, err
		}
	}
	for i := range c.Pods {
		if err := write(&c.Pods[i]); err != nil {
			return nil, err
		}
	}
	for i := range c.NetworkPolicies {
		if err := write(&c.NetworkPolicies[i]); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}
