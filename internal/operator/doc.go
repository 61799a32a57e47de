// Package operator holds everything the netpol2authz controller does beyond
// deciding: gathering a translate.Snapshot from the informer cache, applying
// and pruning the generated AuthorizationPolicies, building the
// NetworkPolicyTranslation status, the events and metrics, and the cache
// transforms, field indexes, predicates and map functions that keep the
// controller cheap at scale. The controller in package controllers only
// sequences these steps.
package operator
