package istio_test

// The xDS client and RBAC decoder live in internal/testenv, which the demo
// shares; these names keep the specs short.

import "github.com/netpol2authz/netpol2authz/internal/testenv"

type (
	rbacFilter    = testenv.RBACFilter
	rbacRule      = testenv.RBACRule
	rbacSource    = testenv.RBACSource
	rbacOperation = testenv.RBACOperation
)

var (
	sidecarNode    = testenv.SidecarNode
	fetchListeners = testenv.FetchListeners
	inboundRBAC    = testenv.InboundRBAC
	decodeFilter   = testenv.DecodeFilter
	diffRBAC       = testenv.DiffRBAC
)

const proxyVersion = testenv.ProxyVersion
