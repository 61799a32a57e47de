package translate

import (
	"slices"

	secv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// newPolicy builds one generated AuthorizationPolicy with its metadata.
func (c *tctx) newPolicy(g *targetGroup, rules []*secv1beta1.Rule) *securityv1.AuthorizationPolicy {
	ap := &securityv1.AuthorizationPolicy{
		TypeMeta: metav1.TypeMeta{APIVersion: "security.istio.io/v1", Kind: "AuthorizationPolicy"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      g.name,
			Namespace: c.np.Namespace,
			Labels: map[string]string{
				LabelManagedBy:     ManagedByValue,
				LabelNetworkPolicy: labelValue(c.np.Name),
			},
			Annotations: map[string]string{
				AnnotationSourcePolicy: c.np.Name,
			},
		},
	}
	if c.mode == ModeDryRun {
		ap.Annotations[AnnotationIstioDryRun] = "true"
	}
	if c.np.UID != "" {
		ap.OwnerReferences = []metav1.OwnerReference{{
			APIVersion:         "networking.k8s.io/v1",
			Kind:               "NetworkPolicy",
			Name:               c.np.Name,
			UID:                c.np.UID,
			Controller:         new(true),
			BlockOwnerDeletion: new(true),
		}}
	}
	ap.Spec.Action = secv1beta1.AuthorizationPolicy_ALLOW
	if g.matchLabels != nil {
		ap.Spec.Selector = &typev1beta1.WorkloadSelector{MatchLabels: g.matchLabels}
	}
	ap.Spec.Rules = rules
	return ap
}

// newRule builds one rule; nil sources (anySource) means no `from`, nil
// ports no `to`.
func newRule(sources []sourceSpec, ports []string) *secv1beta1.Rule {
	r := &secv1beta1.Rule{}
	for _, s := range sources {
		r.From = append(r.From, &secv1beta1.Rule_From{Source: &secv1beta1.Source{
			Principals:  slices.Clone(s.principals),
			Namespaces:  slices.Clone(s.namespaces),
			IpBlocks:    slices.Clone(s.ipBlocks),
			NotIpBlocks: slices.Clone(s.notIPBlocks),
		}})
	}
	if len(ports) > 0 {
		r.To = []*secv1beta1.Rule_To{{Operation: &secv1beta1.Operation{Ports: ports}}}
	}
	return r
}
