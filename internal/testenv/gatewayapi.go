package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// GatewayAPICRDs returns the paths of the Gateway API CRDs istiod needs to
// take a Gateway for a waypoint: Gateways and GatewayClasses, standard
// channel, from the sigs.k8s.io/gateway-api module the project depends on
// (istiod's Gateway informers wait for these CRDs; it creates the
// istio-waypoint GatewayClass itself).
func GatewayAPICRDs(root string) ([]string, error) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api")
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("locating the sigs.k8s.io/gateway-api module: %w", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "config", "crd", "standard")
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
