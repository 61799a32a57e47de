package controllers

// The operator's permissions, least privilege: it reads pods, namespaces,
// Services, NetworkPolicies, the admin network policies, the Gateway API's
// Gateways and the mesh ConfigMap, and writes only
// AuthorizationPolicies, NetworkPolicyTranslations and Events (events.k8s.io,
// the API its recorder uses). It never reads Secrets and never changes a
// NetworkPolicy.
//
// ConfigMaps: only those named istio (the mesh config). The manager's cache
// lists and watches that one object with a metadata.name field selector,
// which is what RBAC requires to authorize list and watch by resourceNames.
//
// networkpolicies/finalizers: generated objects carry a controller
// reference with blockOwnerDeletion, which clusters running the
// OwnerReferencesPermissionEnforcement admission plugin (OpenShift) allow
// only to who may update the owner's finalizers. NetworkPolicies have no
// such subresource: it lets the operator set that flag and nothing else.
//
// identityapprovals: the operator creates a record at a NetworkPolicy's
// first translation (review mode) and deletes its own when the policy is
// gone; it never updates one, so it can never approve an identity that a
// label change brought. Who may update them approves.
//
// Admin network policies (AdminNetworkPolicy, BaselineAdminNetworkPolicy,
// ClusterNetworkPolicy): read only, where their CRDs are installed. Which
// kinds are served comes from the API server's discovery, which every
// authenticated user may read: no access to CustomResourceDefinitions.
//
// Services and Gateways (gateway.networking.k8s.io): read only, for the
// waypoints (docs/translation.md#waypoints): which traffic to a
// NetworkPolicy's pods passes a waypoint, and on which service ports.
// Gateways are read where the Gateway API's CRD is installed, found by
// discovery like the admin network policies.
//
// +kubebuilder:rbac:groups="",resources=pods;namespaces;services,verbs=get;list;watch
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=gateways,verbs=get;list;watch
// +kubebuilder:rbac:groups=policy.networking.k8s.io,resources=adminnetworkpolicies;baselineadminnetworkpolicies;clusternetworkpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=configmaps,resourceNames=istio,verbs=get;list;watch
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies/finalizers,verbs=update
// +kubebuilder:rbac:groups=security.istio.io,resources=authorizationpolicies,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=policy.netpol2authz.io,resources=networkpolicytranslations,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=policy.netpol2authz.io,resources=networkpolicytranslations/status,verbs=get;update
// +kubebuilder:rbac:groups=policy.netpol2authz.io,resources=identityapprovals,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
