package translate

import (
	"bytes"
	"encoding/json"
	"fmt"
	corev1 "k8s.io/api/core/v1"
	"math/rand/v2"
	"slices"
	"testing"
)

// operatorWorld trims a generated input to what the operator sees: every
// namespace known in full, real pods (no templates), one object per name.
func operatorWorld(in caseInput) caseInput {
	seenNS := map[string]bool{}
	var nss []Namespace
	for _, ns := range in.Namespaces {
		if ns.Name == "" || seenNS[ns.Name] {
			continue
		}
		seenNS[ns.Name] = true
		ns.Partial = false
		nss = append(nss, ns)
	}
	seenPod := map[string]bool{}
	var pods []Pod
	for _, p := range in.Pods {
		if p.Template != "" || seenPod[p.Namespace+"/"+p.Name] {
			continue
		}
		seenPod[p.Namespace+"/"+p.Name] = true
		if !seenNS[p.Namespace] {
			seenNS[p.Namespace] = true
			nss = append(nss, Namespace{Name: p.Namespace, Labels: map[string]string{labelMetadataName: p.Namespace}})
		}
		pods = append(pods, p)
	}
	for _, np := range in.NetworkPolicies {
		if np.Namespace != "" && !seenNS[np.Namespace] {
			seenNS[np.Namespace] = true
			nss = append(nss, Namespace{Name: np.Namespace})
		}
	}
	in.Namespaces, in.Pods = nss, pods
	return in
}

// change is one single change of the world, as an informer would see it.
type change struct {
	what           string
	oldPod, newPod *Pod
	oldNS, newNS   *Namespace
	oldSvc, newSvc *Service
	oldGw, newGw   *Gateway
}

// mutate applies one change chosen by g to a copy of s.
func mutate(g *gen, s Snapshot) (Snapshot, change) {
	next := s
	next.Pods = slices.Clone(s.Pods)
	next.Namespaces = slices.Clone(s.Namespaces)
	next.Services = slices.Clone(s.Services)
	next.Gateways = slices.Clone(s.Gateways)
	var c change
	kind := g.next() % 10
	if len(s.Pods) == 0 && kind < 6 {
		kind = 6
	}
	switch kind {
	case 8: // a Service created, changed or deleted
		cur := g.service(g.next())
		cur.Namespace = s.Namespaces[g.next()%len(s.Namespaces)].Name
		if i := g.next() % (len(s.Services) + 1); i < len(s.Services) {
			old := s.Services[i]
			if g.bit() {
				next.Services = slices.Delete(next.Services, i, i+1)
				return next, change{what: "delete Service", oldSvc: &old}
			}
			cur.Namespace, cur.Name = old.Namespace, old.Name
			next.Services[i] = cur
			return next, change{what: "update Service", oldSvc: &old, newSvc: &next.Services[i]}
		}
		next.Services = append(next.Services, cur)
		return next, change{what: "create Service", newSvc: &next.Services[len(next.Services)-1]}
	case 9: // a Gateway created, changed (its status too) or deleted
		cur := g.gateway()
		if i := g.next() % (len(s.Gateways) + 1); i < len(s.Gateways) {
			old := s.Gateways[i]
			if g.bit() {
				next.Gateways = slices.Delete(next.Gateways, i, i+1)
				return next, change{what: "delete Gateway", oldGw: &old}
			}
			cur.Namespace, cur.Name = old.Namespace, old.Name
			next.Gateways[i] = cur
			return next, change{what: "update Gateway", oldGw: &old, newGw: &next.Gateways[i]}
		}
		next.Gateways = append(next.Gateways, cur)
		return next, change{what: "create Gateway", newGw: &next.Gateways[len(next.Gateways)-1]}
	case 6: // a new pod
		p := g.pod(len(s.Pods) + 100)
		p.Template, p.Name = "", fmt.Sprintf("new-%d", g.next())
		if !slices.ContainsFunc(s.Namespaces, func(n Namespace) bool { return n.Name == p.Namespace }) {
			p.Namespace = s.Namespaces[0].Name
		}
		next.Pods = append(next.Pods, p)
		c = change{what: "create pod", newPod: &next.Pods[len(next.Pods)-1]}
	case 7: // a namespace relabelled, or its annotations changed
		i := g.next() % len(s.Namespaces)
		old := s.Namespaces[i]
		cur := g.namespace()
		cur.Name, cur.Partial = old.Name, false
		if g.bit() {
			cur.Annotations = old.Annotations
		}
		next.Namespaces[i] = cur
		c = change{what: "update namespace", oldNS: &old, newNS: &next.Namespaces[i]}
	default:
		i := g.next() % len(s.Pods)
		old := s.Pods[i]
		cur := old
		switch kind {
		case 0:
			cur.Labels = g.labels(3)
			c.what = "relabel pod"
		case 1:
			cur.ServiceAccount = g.pick("", "a", "b", "default", "c")
			c.what = "change ServiceAccount"
		case 2:
			cur.Sidecar = !cur.Sidecar
			c.what = "flip mesh membership"
		case 3:
			cur.Ports = []ContainerPort{{Name: g.pick("http", "metrics"), Port: int32(g.pick4(80, 8080, 9090, 8443))}}
			c.what = "change ports"
		case 4:
			cur.IP, cur.Phase = g.ip(), Phase(g)
			c.what = "change IP or phase"
		default:
			next.Pods = slices.Delete(next.Pods, i, i+1)
			return next, change{what: "delete pod", oldPod: &old}
		}
		next.Pods[i] = cur
		c.oldPod, c.newPod = &old, &next.Pods[i]
	}
	return next, c
}

// Phase picks a pod phase.
func Phase(g *gen) PodPhase {
	return PodPhase(g.pick("Running", "Pending", "Succeeded", "Failed", "Unknown"))
}

// PodPhase is corev1.PodPhase, for the generator.
type PodPhase = corev1.PodPhase

func nsLabels(s Snapshot, name string) map[string]string {
	for _, ns := range s.Namespaces {
		if ns.Name == name {
			return ns.Labels
		}
	}
	return nil
}

func sameSA(s Snapshot, p *Pod) func() []Pod {
	return func() []Pod {
		var out []Pod
		for _, o := range s.Pods {
			if o.Namespace == p.Namespace && saOf(o) == saOf(*p) {
				out = append(out, o)
			}
		}
		return out
	}
}

func saOf(p Pod) string {
	if p.ServiceAccount == "" {
		return "default"
	}
	return p.ServiceAccount
}

// matters asks the model whether the change can touch the translation.
func (d Dependencies) matters(before, after Snapshot, c change) bool {
	switch {
	case c.oldSvc != nil || c.newSvc != nil:
		return d.ServiceChangeMatters(c.oldSvc, c.newSvc)
	case c.oldGw != nil || c.newGw != nil:
		return d.GatewayChangeMatters(c.oldGw, c.newGw)
	}
	if c.oldNS != nil || c.newNS != nil {
		return d.NamespaceChangeMatters(c.oldNS, c.newNS)
	}
	if c.oldPod != nil && c.newPod != nil {
		return d.PodChangeMatters(c.oldPod, c.newPod, nsLabels(after, c.newPod.Namespace), sameSA(after, c.newPod))
	}
	if c.oldPod != nil && d.PodMatters(c.oldPod, nsLabels(before, c.oldPod.Namespace), sameSA(before, c.oldPod)) {
		return true
	}
	return c.newPod != nil && d.PodMatters(c.newPod, nsLabels(after, c.newPod.Namespace), sameSA(after, c.newPod))
}

// checkDependencies translates the world before and after one change; every
// NetworkPolicy whose translation changed must be one the model said the
// change matters to. It returns the misses, and counts the spurious yeses.
func checkDependencies(in caseInput, g *gen) (misses []string, asked, spurious int) {
	in = operatorWorld(in)
	if len(in.Namespaces) == 0 || len(in.NetworkPolicies) == 0 {
		return nil, 0, 0
	}
	s := in.snapshot()
	// Review mode with every identity of the first translation recorded,
	// so that a change can make one pending.
	first := Translate(s, in.Options)
	for _, t := range first.Translations {
		s.Approvals = append(s.Approvals, Approval{Namespace: t.NetworkPolicy.Namespace, NetworkPolicy: t.NetworkPolicy.Name, Identities: t.Identities})
	}
	before := Translate(s, in.Options)
	next, c := mutate(g, s)
	after := Translate(next, in.Options)
	for i, np := range sortedPolicies(s.NetworkPolicies) {
		a, _ := json.Marshal(before.Translations[i])
		b, _ := json.Marshal(after.Translations[i])
		said := DependenciesOf(np).WithAdmin(s.AdminPolicies).WithWaypoints(s.Gateways).matters(s, next, c)
		asked++
		changed := !bytes.Equal(a, b)
		switch {
		case changed && !said:
			misses = append(misses, fmt.Sprintf("%s: %s changed NetworkPolicy %s/%s, but the model said it does not matter\nbefore: %s\nafter:  %s", c.what, describe(c), np.Namespace, np.Name, a, b))
		case said && !changed:
			spurious++
		}
	}
	return misses, asked, spurious
}

func describe(c change) string {
	switch {
	case c.oldPod != nil && c.newPod != nil:
		return fmt.Sprintf("pod %+v -> %+v", *c.oldPod, *c.newPod)
	case c.oldPod != nil:
		return fmt.Sprintf("pod %+v deleted", *c.oldPod)
	case c.oldSvc != nil || c.newSvc != nil:
		return fmt.Sprintf("Service %+v -> %+v", c.oldSvc, c.newSvc)
	case c.oldGw != nil || c.newGw != nil:
		return fmt.Sprintf("Gateway %+v -> %+v", c.oldGw, c.newGw)
	case c.newPod != nil:
		return fmt.Sprintf("pod %+v created", *c.newPod)
	default:
		return fmt.Sprintf("namespace %+v -> %+v", *c.oldNS, *c.newNS)
	}
}

// FuzzDependencies: for random clusters and random single changes, a
// change that alters a policy's translation is one the dependency model
// says matters to it (no missed event).
func FuzzDependencies(f *testing.F) {
	for i := range 20 {
		f.Add([]byte{byte(i), 3, 0, 4, byte(i * 7), 1, 2, 5, 8, 13, 21, 34, 55, 89, 144, 233}, []byte{byte(i), byte(i * 3), byte(i * 5)})
	}
	f.Fuzz(func(t *testing.T, world, mutation []byte) {
		var in caseInput
		(&gen{b: world}).grow(&in)
		if len(in.Pods) > 200 || len(in.NetworkPolicies) > 50 {
			t.Skip("too large for one fuzz run")
		}
		if misses, _, _ := checkDependencies(in, &gen{b: mutation}); len(misses) > 0 {
			t.Fatal(misses[0])
		}
	})
}

// TestDependenciesPrecision runs many random changes, fails on a missed
// event and reports how often the model asks for a reconcile that changes
// nothing.
func TestDependenciesPrecision(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var asked, spurious int
	for range 3000 {
		world := make([]byte, 40+r.IntN(120))
		for i := range world {
			world[i] = byte(r.IntN(256))
		}
		mutation := []byte{byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))}
		var in caseInput
		(&gen{b: world}).grow(&in)
		misses, a, s := checkDependencies(in, &gen{b: mutation})
		if len(misses) > 0 {
			t.Fatal(misses[0])
		}
		asked, spurious = asked+a, spurious+s
	}
	t.Logf("dependency model: %d questions, %d reconciles that changed nothing (%.1f%%)", asked, spurious, 100*float64(spurious)/float64(max(asked, 1)))
}

// TestDependenciesCases pins the model's answers case by case, each
// checked against Translate: the change must alter the translation.
func TestDependenciesCases(t *testing.T) {
	in := readInput(t, "testdata/cases/shared-identity/input.yaml")
	in = operatorWorld(in)
	s := in.snapshot()
	np := sortedPolicies(s.NetworkPolicies)[0]
	d := DependenciesOf(np)
	before := Translate(s, in.Options)
	throughSA := 0
	for i, p := range s.Pods {
		// Deleting any pod of the shared ServiceAccount changes the
		// SharedIdentity finding, selected by the peer or not.
		next := s
		next.Pods = slices.Delete(slices.Clone(s.Pods), i, i+1)
		after := Translate(next, in.Options)
		a, _ := json.Marshal(before.Translations[0])
		b, _ := json.Marshal(after.Translations[0])
		said := d.PodMatters(&p, nsLabels(s, p.Namespace), sameSA(s, &p))
		if !bytes.Equal(a, b) && !said {
			t.Errorf("deleting pod %s/%s changes the translation of %s, but the model says it does not matter", p.Namespace, p.Name, np.Name)
		}
		if said {
			// Without the pods of its ServiceAccount, only selection is seen.
			if !bytes.Equal(a, b) && !d.PodMatters(&p, nsLabels(s, p.Namespace), nil) {
				throughSA++ // batch-0: unselected, but it shares client-0's principal
			}
		}
	}
	if throughSA != 1 {
		t.Errorf("%d pods matter through their ServiceAccount alone, want 1 (batch-0)", throughSA)
	}
}
