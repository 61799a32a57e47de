package testenv

import (
	"fmt"
	"os"
	"path/filepath"
)

// AdminPolicyCRDs returns the paths of the admin network policies' CRDs
// (policy.networking.k8s.io), for tests that make a cluster serve them:
// AdminNetworkPolicy and BaselineAdminNetworkPolicy (v1alpha1), generated
// from the API module's types into testdata/admin-policy-crds (README.md
// there says how), and
// ClusterNetworkPolicy (v1alpha2, v1beta1), the standard-channel CRD of the
// sigs.k8s.io/network-policy-api module the project depends on.
func AdminPolicyCRDs(root string) ([]string, error) {
	module, err := moduleDir(root, "sigs.k8s.io/network-policy-api")
	if err != nil {
		return nil, err
	}
	fixtures := filepath.Join(root, "internal", "testenv", "testdata", "admin-policy-crds")
	paths := []string{
		filepath.Join(fixtures, "policy.networking.k8s.io_adminnetworkpolicies.yaml"),
		filepath.Join(fixtures, "policy.networking.k8s.io_baselineadminnetworkpolicies.yaml"),
		filepath.Join(module, "config", "crd", "standard", "policy.networking.k8s.io_clusternetworkpolicies.yaml"),
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("admin network policy CRDs: %w", err)
		}
	}
	return paths, nil
}
