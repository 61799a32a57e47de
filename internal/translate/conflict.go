package translate

import (
	"fmt"

	"k8s.io/apimachinery/pkg/types"
)

// resolveConflicts makes sure no two NetworkPolicies generate an
// AuthorizationPolicy of the same name: the first in order keeps it, the
// other generates nothing and reports Conflict.
func resolveConflicts(out []Translation) {
	owners := map[types.NamespacedName]int{}
	for i := range out {
		t := &out[i]
		clash, owner := "", -1
		for _, ap := range t.Policies {
			if j, ok := owners[types.NamespacedName{Namespace: ap.Namespace, Name: ap.Name}]; ok && j != i {
				clash, owner = ap.Name, j
				break
			}
		}
		if owner < 0 {
			for _, ap := range t.Policies {
				owners[types.NamespacedName{Namespace: ap.Namespace, Name: ap.Name}] = i
			}
			continue
		}
		other := out[owner].NetworkPolicy
		f := findingList(t.Findings)
		f.add(Conflict, fmt.Sprintf("AuthorizationPolicy %s/%s is also generated for NetworkPolicy %s, which sorts first and keeps it; nothing was generated for this NetworkPolicy; rename one of the two NetworkPolicies",
			t.NetworkPolicy.Namespace, clash, other),
			ObjectRef{Kind: "AuthorizationPolicy", Namespace: t.NetworkPolicy.Namespace, Name: clash},
			npRef(other.Namespace, other.Name))
		t.Findings = f.sorted()
		t.Policies = nil
		t.Principals, t.Rules = 0, 0
	}
}
