package controllers

// The operator's permissions, least privilege: it reads pods, namespaces,
// NetworkPolicies and the mesh ConfigMap, and writes only
// AuthorizationPolicies, NetworkPolicyTranslations and Events. It never
// reads Secrets and never changes a NetworkPolicy.
//
// ConfigMaps: controller-runtime's cache needs list/watch; the manager
// restricts that cache to the mesh ConfigMap by name and namespace.
//
// +kubebuilder:rbac:groups="",resources=pods;namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=security.istio.io,resources=authorizationpolicies,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=policy.netpol2authz.io,resources=networkpolicytranslations,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=policy.netpol2authz.io,resources=networkpolicytranslations/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="";events.k8s.io,resources=events,verbs=create;patch
