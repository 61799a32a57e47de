package translate

import "fmt"

// ambientFindings reports what an ambient namespace changes: dry-run may
// not be evaluated by ztunnel, and NetworkPolicy rules that restrict ports
// without the HBONE port block mesh traffic.
func (c *tctx) ambientFindings(cp *compiledPolicy) {
	if !c.ns.ambient {
		return
	}
	self := npRef(c.np.Namespace, c.np.Name)
	if c.mode == ModeDryRun {
		c.f.add(DryRunNotEvaluated, fmt.Sprintf("namespace %s is in ambient mode and in dry-run: istiod sends dry-run AuthorizationPolicies to ztunnel only when it runs with AMBIENT_ENABLE_DRY_RUN_AUTHORIZATION_POLICY=true; otherwise it marks them ZtunnelAccepted=False (UnsupportedValue) and ztunnel neither enforces nor logs them, so this dry-run shows nothing; with that setting, ztunnel before 1.29 enforces them; check istiod's setting and the ztunnel version (the IstioAccepted condition says what istiod did) before relying on dry-run here", c.ns.name),
			namespaceRef(c.ns.name))
	}
	var blocked []string
	for i := range cp.rules {
		if !allowsHBONE(&cp.rules[i]) {
			blocked = append(blocked, cp.rules[i].path)
		}
	}
	if len(blocked) > 0 {
		c.f.add(AmbientPortBlocked, fmt.Sprintf("namespace %s is in ambient mode, where mesh traffic arrives on the HBONE port %d, but %s of NetworkPolicy %s %s ingress ports without allowing TCP %d, so the NetworkPolicy blocks the mesh traffic it means to allow; add TCP port %d to %s",
			c.ns.name, hbonePort, nameList(blocked), c.np.Name, plural(len(blocked), "restricts", "restrict"), hbonePort, hbonePort, plural(len(blocked), "that rule", "those rules")),
			self, namespaceRef(c.ns.name))
	}
}

// targetsNotInMesh reports selected pods without a proxy: Istio enforces
// nothing for them.
func (c *tctx) targetsNotInMesh(selected []*podInfo) {
	var nonMesh []*podInfo
	for _, p := range selected {
		if !p.inMesh {
			nonMesh = append(nonMesh, p)
		}
	}
	if len(nonMesh) > 0 {
		c.f.add(TargetNotInMesh, fmt.Sprintf("%s %s selected by spec.podSelector %s no sidecar and %s not in ambient mode, so Istio enforces nothing for %s and the NetworkPolicy remains the only control; add %s to the mesh",
			plural(len(nonMesh), "pod", "pods"), podNames(c.ns.name, nonMesh), plural(len(nonMesh), "has", "have"), plural(len(nonMesh), "is", "are"),
			plural(len(nonMesh), "it", "them"), plural(len(nonMesh), "it", "them")), podRefs(nonMesh)...)
	}
}
