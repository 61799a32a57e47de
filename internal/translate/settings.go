package translate

import "fmt"

// Valid says whether m is a mode netpol2authz knows.
func (m Mode) Valid() bool { return m == ModeEnforce || m == ModeDryRun }

// Valid says whether f is a fidelity netpol2authz knows.
func (f Fidelity) Valid() bool { return f == FidelityPermissive || f == FidelityStrict }

// nsSettings is what a namespace's annotations decide for its policies.
type nsSettings struct {
	// optedOut: RequireOptIn and no mode annotation.
	optedOut bool
	mode     Mode
	fidelity Fidelity
	identity IdentityMode
	findings findingList
}

// settingsFor reads the mode and fidelity of namespace ns (nil when the
// policy names no namespace). Invalid option values fall back to the
// built-in defaults: callers validate their flags.
func settingsFor(ns *nsInfo, o Options) nsSettings {
	var annotations map[string]string
	name := ""
	if ns != nil {
		annotations, name = ns.annotations, ns.name
	}
	mode, hasMode := annotations[AnnotationMode]
	if o.RequireOptIn && !hasMode {
		return nsSettings{optedOut: true}
	}
	s := nsSettings{mode: ModeEnforce, fidelity: FidelityPermissive, identity: IdentityReview}
	if o.DefaultIdentity.Valid() {
		s.identity = o.DefaultIdentity
	}
	if o.DefaultMode.Valid() {
		s.mode = o.DefaultMode
	}
	if o.DefaultFidelity.Valid() {
		s.fidelity = o.DefaultFidelity
	}
	if hasMode {
		if m := Mode(mode); m.Valid() {
			s.mode = m
		} else {
			s.findings.add(InvalidAnnotation, fmt.Sprintf(
				"namespace %s has annotation %s=%q, which is not a mode: use %q or %q; nothing new is generated in this namespace until it is fixed, and what was generated there before is kept unchanged",
				name, AnnotationMode, mode, ModeEnforce, ModeDryRun), namespaceRef(name))
		}
	}
	if fid, ok := annotations[AnnotationFidelity]; ok {
		if f := Fidelity(fid); f.Valid() {
			s.fidelity = f
		} else {
			s.findings.add(InvalidAnnotation, fmt.Sprintf(
				"namespace %s has annotation %s=%q, which is not a fidelity: use %q or %q; nothing new is generated in this namespace until it is fixed, and what was generated there before is kept unchanged",
				name, AnnotationFidelity, fid, FidelityPermissive, FidelityStrict), namespaceRef(name))
		}
	}
	if id, ok := annotations[AnnotationIdentity]; ok {
		if m := IdentityMode(id); m.Valid() {
			s.identity = m
		} else {
			s.findings.add(InvalidAnnotation, fmt.Sprintf(
				"namespace %s has annotation %s=%q, which is not an identity mode: use %q or %q; nothing new is generated in this namespace until it is fixed, and what was generated there before is kept unchanged",
				name, AnnotationIdentity, id, IdentityReview, IdentityFollow), namespaceRef(name))
		}
	}
	return s
}

// NamespaceFindings returns the findings a namespace's own annotations
// cause (InvalidAnnotation), whether or not it holds NetworkPolicies, so
// that the operator can warn about a typo at once.
func NamespaceFindings(n Namespace) []Finding {
	ns := &nsInfo{name: n.Name, annotations: n.Annotations}
	return settingsFor(ns, Options{}).findings.sorted()
}
