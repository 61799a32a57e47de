package verify

import (
	"bytes"
	"cmp"
	"encoding/json"
	"slices"

	networkingv1 "k8s.io/api/networking/v1"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// engine holds one verification: the classes and both evaluators.
type engine struct {
	in      Input
	w       *world
	nps     []*netpol
	npByRef map[types.NamespacedName]*netpol
	np      *npEval
	// force evaluates the policies checked; base, with CheckExisting, the
	// policies netpol2authz generates.
	force, base *istioEval
	// admin evaluates the admin network policies; nil without any.
	admin *adminEval
	notes []Note
}

// generated returns the policies of a translation result.
func generated(r translate.Result) []*securityv1.AuthorizationPolicy {
	var out []*securityv1.AuthorizationPolicy
	for _, t := range r.Translations {
		out = append(out, t.Policies...)
	}
	return out
}

func newEngine(in Input) *engine {
	if !in.IPBlockPods.Valid() {
		in.IPBlockPods = IPBlockPodsUnknown
	}
	e := &engine{in: in, npByRef: map[types.NamespacedName]*netpol{}}
	root := cmp.Or(in.Snapshot.Mesh.RootNamespace, defaultRootNamespace)

	// A NetworkPolicy the API server would reject cannot be in force:
	// those the translation reports InvalidPolicy, or verify cannot read.
	invalid := map[types.NamespacedName]bool{}
	for _, t := range in.Translation.Translations {
		for _, f := range t.Findings {
			if f.Type == translate.InvalidPolicy {
				invalid[t.NetworkPolicy] = true
			}
		}
	}
	var extraNS []string
	// A name given twice (offline input only) keeps its first definition
	// in name and then content order, whatever the input order.
	nps := make([]*networkingv1.NetworkPolicy, len(in.Snapshot.NetworkPolicies))
	for i := range in.Snapshot.NetworkPolicies {
		nps[i] = &in.Snapshot.NetworkPolicies[i]
	}
	slices.SortStableFunc(nps, func(a, b *networkingv1.NetworkPolicy) int {
		if c := cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name)); c != 0 {
			return c
		}
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		return bytes.Compare(ja, jb)
	})
	for _, np := range nps {
		ref := types.NamespacedName{Namespace: np.Namespace, Name: np.Name}
		if _, dup := e.npByRef[ref]; dup {
			continue
		}
		if invalid[ref] {
			e.note("NetworkPolicy", ref, "the API server would reject it (see its InvalidPolicy finding), so verify leaves it out")
			continue
		}
		p, err := compileNetpol(np)
		if err != nil {
			e.note("NetworkPolicy", ref, "the API server would reject it ("+err.Error()+"), so verify leaves it out")
			continue
		}
		e.nps = append(e.nps, p)
		e.npByRef[ref] = p
		extraNS = append(extraNS, np.Namespace)
	}

	compileAll := func(aps []*securityv1.AuthorizationPolicy, noted bool) []*authz {
		var out []*authz
		for _, ap := range aps {
			a, notes := compileAuthz(ap, root)
			if noted {
				for _, n := range notes {
					e.note("AuthorizationPolicy", a.ref, n)
				}
			}
			out = append(out, a)
		}
		return out
	}
	gen := generated(in.Translation)
	var force, base []*authz
	if in.CheckExisting {
		force = compileAll(in.Existing, true)
		base = compileAll(gen, false)
	} else {
		force = compileAll(gen, true)
	}

	keys := newClassKeys()
	for _, p := range e.nps {
		e.addNetpolKeys(keys, p)
	}
	for _, list := range [][]*authz{force, base} {
		for _, a := range list {
			addAuthzKeys(keys, a)
		}
	}
	admin := e.compileAdmin(in.Snapshot.AdminPolicies, keys)
	addWaypointKeys(keys, in.Snapshot)
	e.w = buildWorld(in.Snapshot, keys, extraNS)
	e.waypointNotes(force)
	e.np = newNPEval(e.w, e.nps)
	if len(admin) > 0 {
		e.admin = newAdminEval(e.w, admin)
		e.np.admin = e.admin
	}
	e.force = newIstioEval(e.w, force)
	if in.CheckExisting {
		e.base = newIstioEval(e.w, base)
	}
	return e
}

func (e *engine) note(kind string, ref types.NamespacedName, msg string) {
	e.notes = append(e.notes, Note{Kind: kind, Namespace: ref.Namespace, Name: ref.Name, Message: msg})
}

func (e *engine) addNetpolKeys(k *classKeys, p *netpol) {
	if p.ingress {
		k.addSelector(k.dstLabels, p.sel)
	}
	if p.egress {
		k.addSelector(k.srcLabels, p.sel)
	}
	for _, r := range p.in {
		for _, peer := range r.peers {
			k.addSelector(k.srcLabels, peer.podSel)
			if peer.block != nil {
				k.srcCIDRs = append(append(k.srcCIDRs, peer.block.cidr), peer.block.except...)
			}
		}
	}
	for _, r := range p.out {
		for _, peer := range r.peers {
			k.addSelector(k.dstLabels, peer.podSel)
			if peer.block != nil {
				k.dstCIDRs = append(append(k.dstCIDRs, peer.block.cidr), peer.block.except...)
			}
		}
	}
}

func addAuthzKeys(k *classKeys, a *authz) {
	k.addSelector(k.dstLabels, a.sel)
	addIPs := func(f srcField) {
		if f.attr != attrIP {
			return
		}
		for _, v := range slices.Concat(f.values, f.notValues) {
			if p, ok := parseIPBlock(v); ok {
				k.srcCIDRs = append(k.srcCIDRs, p)
			}
		}
	}
	for _, r := range a.rules {
		for _, fields := range r.sources {
			for _, f := range fields {
				addIPs(f)
			}
		}
		for _, f := range r.conds {
			addIPs(f)
		}
	}
}

// inScope says whether destination d is checked.
func (e *engine) inScope(d *dstClass) bool {
	return len(e.in.Namespaces) == 0 || slices.Contains(e.in.Namespaces, d.ns.name)
}
