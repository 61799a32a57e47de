package testenv

import (
	"fmt"
	"os"
	"path/filepath"
)

// GatewayAPICRDs returns the paths of the Gateway API CRDs istiod needs to
// take a Gateway for a waypoint: Gateways and GatewayClasses, standard
// channel, from the sigs.k8s.io/gateway-api module the project depends on
// (istiod's Gateway informers wait for these CRDs; it creates the
// istio-waypoint GatewayClass itself).
func GatewayAPICRDs(root string) ([]string, error) {
	module, err := moduleDir(root, "sigs.k8s.io/gateway-api")
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(module, "config", "crd", "standard")
	paths := []string{
		filepath.Join(dir, "gateway.networking.k8s.io_gatewayclasses.yaml"),
		filepath.Join(dir, "gateway.networking.k8s.io_gateways.yaml"),
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("the Gateway API CRDs: %w", err)
		}
	}
	return paths, nil
}
