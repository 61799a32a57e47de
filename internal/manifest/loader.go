package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"

	netpolv1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	netpolv1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	policyv1alpha1 "github.com/netpol2authz/netpol2authz/api/v1alpha1"
	"github.com/netpol2authz/netpol2authz/internal/adminpolicy"
	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// maxListDepth bounds Lists inside Lists.
const maxListDepth = 4

// loader accumulates the objects of one load.
type loader struct {
	istioNS string
	errs    Errors
	stats   Stats
	// seen maps "Kind/namespace/name" to where the object was first read.
	seen       map[string]string
	namespaces map[string]*corev1.Namespace
	pods       []*corev1.Pod
	workloads  []*workload
	policies   []networkingv1.NetworkPolicy
	aps        []*securityv1.AuthorizationPolicy
	sas        []types.NamespacedName
	approvals  []approval
	admin      []adminpolicy.Policy
	services   []translate.Service
	gateways   []translate.Gateway
	mesh       MeshConfig
}

// approval is an IdentityApproval as read, with the NetworkPolicy that
// controls it, if any.
type approval struct {
	translate.Approval
	// controllerUID is the UID of the NetworkPolicy of the same name that
	// controls it (the operator sets it); empty when there is none.
	controllerUID types.UID
}

func newLoader(o Options) *loader {
	ns := o.IstioNamespace
	if ns == "" {
		ns = DefaultIstioNamespace
	}
	return &loader{
		istioNS:    ns,
		seen:       map[string]string{},
		namespaces: map[string]*corev1.Namespace{},
		stats:      Stats{Objects: map[string]int{}, Skipped: map[string]int{}},
	}
}

// place is where one object was read, for errors.
type place struct {
	doc       document
	item      string
	kind      string
	namespace string
	name      string
}

func (p place) error(field string, err error) *Error {
	return &Error{
		File: p.doc.file, Line: p.doc.line, Document: p.doc.index, Item: p.item,
		Kind: p.kind, Namespace: p.namespace, Name: p.name, Field: field, Err: err,
	}
}

// origin names the place in a duplicate error.
func (p place) origin() string {
	s := p.doc.file
	if p.doc.line > 0 {
		s += fmt.Sprintf(":%d", p.doc.line)
	}
	s += fmt.Sprintf(" document %d", p.doc.index)
	if p.item != "" {
		s += ", " + p.item
	}
	return s
}

func (l *loader) document(d document) {
	if d.err != nil {
		l.errs = append(l.errs, d.err)
		return
	}
	if bytes.Equal(bytes.TrimSpace(d.json), []byte("null")) {
		return // empty, or comments only
	}
	l.stats.Documents++
	l.object(d, "", d.json, "", "", 0)
}

// object reads one object: a top-level document or an item of a List. For
// the items of a typed list (PodList), apiVersion and kind default to the
// list's.
func (l *loader) object(d document, item string, data []byte, listAPIVersion, itemKind string, depth int) {
	p := place{doc: d, item: item}
	defer func() {
		if r := recover(); r != nil {
			l.errs = append(l.errs, p.error("", &PanicError{Value: r}))
		}
	}()

	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil || top == nil {
		if item != "" {
			// A List holds objects: this one is broken.
			l.errs = append(l.errs, p.error("", errors.New("not a Kubernetes object: want a mapping with apiVersion and kind")))
			return
		}
		// A JSON array of results, a list of values: not a manifest.
		l.notObject(p, "not a mapping but "+jsonKind(data))
		return
	}
	if itemKind == "" {
		if reason := notObjectReason(top); reason != "" {
			l.notObject(p, reason)
			return
		}
	}
	apiVersion, err1 := stringField(top, "apiVersion")
	kind, err2 := stringField(top, "kind")
	if err := errors.Join(err1, err2); err != nil {
		l.errs = append(l.errs, p.error("", err))
		return
	}
	if kind == "" && itemKind != "" {
		kind = itemKind
		if apiVersion == "" {
			apiVersion = listAPIVersion
		}
	}
	var meta struct {
		Name         string `json:"name"`
		GenerateName string `json:"generateName"`
		Namespace    string `json:"namespace"`
	}
	// Best effort, to name the object in errors; the typed decoding reports
	// what is wrong with metadata.
	var metaErr error
	if raw, ok := top["metadata"]; ok {
		metaErr = json.Unmarshal(raw, &meta)
	}
	p.kind, p.name = kind, meta.Name
	if p.name == "" {
		p.name = meta.GenerateName
	}

	switch {
	case apiVersion == "" && kind == "":
		// apiVersion: "" and kind: "" are as good as none.
		l.notObject(p, "no apiVersion and kind")
		return
	case kind == "":
		l.errs = append(l.errs, p.error("kind", errors.New("required")))
		return
	case apiVersion == "":
		l.errs = append(l.errs, p.error("apiVersion", errors.New("required")))
		return
	}

	if items, ok := top["items"]; ok && strings.HasSuffix(kind, "List") {
		l.list(p, items, apiVersion, kind, depth)
		return
	}

	gvk := apiVersion + "/" + kind
	reader, ok := readers[gvk]
	if ok && kind == "ConfigMap" && !l.isMeshConfig(meta.Namespace, meta.Name) {
		ok = false
	}
	if !ok {
		l.stats.Skipped[gvk]++
		return
	}
	if reader.namespaced {
		p.namespace = meta.Namespace
		if p.namespace == "" {
			p.namespace = metav1.NamespaceDefault
		}
	}
	if p.name == "" && metaErr == nil {
		l.errs = append(l.errs, p.error("metadata.name", errors.New("required")))
		return
	}
	errs := reader.read(l, p, blankStatus(data, reader.readsStatus))
	if len(errs) > 0 {
		for _, fe := range errs {
			l.errs = append(l.errs, p.error(fe.field, fe.err))
		}
		return
	}
	l.stats.Objects[kind]++
}

func (l *loader) list(p place, raw json.RawMessage, apiVersion, kind string, depth int) {
	if depth >= maxListDepth {
		l.errs = append(l.errs, p.error("items", fmt.Errorf("lists nested more than %d deep", maxListDepth)))
		return
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		l.errs = append(l.errs, p.error("items", errors.New("must be a list")))
		return
	}
	itemKind := ""
	if kind != "List" {
		itemKind = strings.TrimSuffix(kind, "List")
	}
	for i, it := range items {
		label := fmt.Sprintf("items[%d]", i)
		if p.item != "" {
			label = p.item + "." + label
		}
		l.object(p.doc, label, it, apiVersion, itemKind, depth+1)
	}
}

// notObject records a document or List item that is not a Kubernetes
// object, skipped: counted under its file, so the report names it.
func (l *loader) notObject(p place, reason string) {
	l.stats.Skipped[NotObjectKey(p.doc.file)]++
	l.stats.NotObjects = append(l.stats.NotObjects, NotObject{
		File: p.doc.file, Line: p.doc.line, Document: p.doc.index, Item: p.item, Reason: reason,
	})
}

// notObjectReason says why a mapping is not a Kubernetes object, or "" when
// it is one (it may still be a broken one, which is an error): a Kubernetes
// object has an apiVersion and a kind, and a broken one at least a kind, or
// an apiVersion and metadata. What has neither is a values file, a
// package.json, a dashboard; what has only an apiVersion that is not a
// string, or no metadata, a Helm Chart.yaml or a Grafana provisioning file;
// what has only a kind that is not a Kubernetes kind, an API response
// ("kind": "youtube#video").
func notObjectReason(top map[string]json.RawMessage) string {
	apiVersion, hasAPIVersion := top["apiVersion"]
	hasAPIVersion = hasAPIVersion && !bytes.Equal(apiVersion, []byte("null"))
	kind, hasKind := top["kind"]
	hasKind = hasKind && !bytes.Equal(kind, []byte("null"))
	switch {
	case hasAPIVersion && hasKind:
		return ""
	case !hasAPIVersion && !hasKind:
		return "no apiVersion and kind"
	case hasKind:
		var k string
		if json.Unmarshal(kind, &k) == nil && kindName.MatchString(k) {
			return ""
		}
		return "no apiVersion, and its kind is not a Kubernetes kind"
	default:
		var v string
		_, hasMetadata := top["metadata"]
		if json.Unmarshal(apiVersion, &v) == nil && v != "" && hasMetadata {
			return ""
		}
		return "an apiVersion but no kind and no metadata"
	}
}

// kindName matches what may be the kind of a Kubernetes object.
var kindName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]*$`)

// jsonKind names the kind of a JSON value that is not an object.
func jsonKind(data []byte) string {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return "nothing"
	}
	switch data[0] {
	case '[':
		return "a list"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	}
	return "a number"
}

func stringField(top map[string]json.RawMessage, name string) (string, error) {
	raw, ok := top[name]
	if !ok || bytes.Equal(raw, []byte("null")) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%s: must be a string", name)
	}
	return s, nil
}

func (l *loader) isMeshConfig(namespace, name string) bool {
	return name == "istio" && namespace == l.istioNS
}

// claim records an object's identity and reports a second definition.
func (l *loader) claim(p place) []fieldError {
	key := p.kind + "/" + p.namespace + "/" + p.name
	if first, ok := l.seen[key]; ok {
		return []fieldError{{err: fmt.Errorf("defined twice: also in %s", first)}}
	}
	l.seen[key] = p.origin()
	return nil
}

// reader reads one kind. read returns the errors of the object; the object
// is kept only when there are none.
type reader struct {
	namespaced bool
	// readsStatus is true for the kinds whose status is read (Pod). The
	// status of the others is not decoded, whatever its shape.
	readsStatus bool
	read        func(l *loader, p place, data []byte) []fieldError
}

// readers, by "apiVersion/kind". Kinds not here are skipped and counted.
var readers = map[string]reader{
	"v1/Namespace":                       {namespaced: false, read: (*loader).readNamespace},
	"v1/Pod":                             {namespaced: true, readsStatus: true, read: (*loader).readPod},
	"v1/ServiceAccount":                  {namespaced: true, read: (*loader).readServiceAccount},
	"v1/ConfigMap":                       {namespaced: true, read: (*loader).readMeshConfig},
	"networking.k8s.io/v1/NetworkPolicy": {namespaced: true, read: (*loader).readNetworkPolicy},
	"security.istio.io/v1/AuthorizationPolicy":         {namespaced: true, read: (*loader).readAuthorizationPolicy},
	"security.istio.io/v1beta1/AuthorizationPolicy":    {namespaced: true, read: (*loader).readAuthorizationPolicy},
	"policy.netpol2authz.io/v1alpha1/IdentityApproval": {namespaced: true, read: (*loader).readIdentityApproval},
	"policy.networking.k8s.io/v1alpha1/AdminNetworkPolicy": {read: readAdminPolicy(func(o *netpolv1alpha1.AdminNetworkPolicy) (adminpolicy.Policy, error) {
		return adminpolicy.FromAdminNetworkPolicy(o), nil
	})},
	"policy.networking.k8s.io/v1alpha1/BaselineAdminNetworkPolicy": {read: readAdminPolicy(func(o *netpolv1alpha1.BaselineAdminNetworkPolicy) (adminpolicy.Policy, error) {
		return adminpolicy.FromBaselineAdminNetworkPolicy(o), nil
	})},
	"policy.networking.k8s.io/v1alpha2/ClusterNetworkPolicy": {read: readAdminPolicy(adminpolicy.FromClusterNetworkPolicyV1alpha2)},
	"policy.networking.k8s.io/v1beta1/ClusterNetworkPolicy": {read: readAdminPolicy(func(o *netpolv1beta1.ClusterNetworkPolicy) (adminpolicy.Policy, error) {
		return adminpolicy.FromClusterNetworkPolicy(o), nil
	})},
	"v1/Service": {namespaced: true, read: (*loader).readService},
	// A Gateway's status is read: istiod makes it a waypoint only once it
	// has addresses.
	"gateway.networking.k8s.io/v1/Gateway":      {namespaced: true, readsStatus: true, read: readGateway(gatewayV1)},
	"gateway.networking.k8s.io/v1beta1/Gateway": {namespaced: true, readsStatus: true, read: readGateway(gatewayV1beta1)},
	"apps/v1/Deployment":                        {namespaced: true, read: readWorkload(func(o *appsv1.Deployment) *corev1.PodTemplateSpec { return &o.Spec.Template })},
	"apps/v1/StatefulSet":                       {namespaced: true, read: readWorkload(func(o *appsv1.StatefulSet) *corev1.PodTemplateSpec { return &o.Spec.Template })},
	"apps/v1/DaemonSet":                         {namespaced: true, read: readWorkload(func(o *appsv1.DaemonSet) *corev1.PodTemplateSpec { return &o.Spec.Template })},
	"apps/v1/ReplicaSet":                        {namespaced: true, read: readWorkload(func(o *appsv1.ReplicaSet) *corev1.PodTemplateSpec { return &o.Spec.Template })},
	"v1/ReplicationController":                  {namespaced: true, read: readWorkload(func(o *corev1.ReplicationController) *corev1.PodTemplateSpec { return o.Spec.Template })},
	"batch/v1/Job":                              {namespaced: true, read: readWorkload(func(o *batchv1.Job) *corev1.PodTemplateSpec { return &o.Spec.Template })},
	"batch/v1/CronJob":                          {namespaced: true, read: readWorkload(func(o *batchv1.CronJob) *corev1.PodTemplateSpec { return &o.Spec.JobTemplate.Spec.Template })},
}

// decode decodes data strictly into obj, runs validate over it when it
// could be decoded, and claims the object's identity when all is well. It
// returns every error found.
func (l *loader) decode(p place, data []byte, obj any, validate func() field.ErrorList) []fieldError {
	errs, ok := strictDecode(data, obj)
	if !ok {
		return errs
	}
	if validate != nil {
		errs = append(errs, fieldErrors(validate())...)
	}
	if len(errs) > 0 {
		return errs
	}
	return l.claim(p)
}

func (l *loader) readNamespace(p place, data []byte) []fieldError {
	ns := &corev1.Namespace{}
	if errs := l.decode(p, data, ns, nil); len(errs) > 0 {
		return errs
	}
	l.namespaces[ns.Name] = ns
	return nil
}

func (l *loader) readPod(p place, data []byte) []fieldError {
	pod := &corev1.Pod{}
	if errs := l.decode(p, data, pod, func() field.ErrorList { return validatePod(pod) }); len(errs) > 0 {
		return errs
	}
	pod.Namespace = p.namespace
	l.pods = append(l.pods, pod)
	return nil
}

func (l *loader) readServiceAccount(p place, data []byte) []fieldError {
	if errs := l.decode(p, data, &corev1.ServiceAccount{}, nil); len(errs) > 0 {
		return errs
	}
	l.sas = append(l.sas, types.NamespacedName{Namespace: p.namespace, Name: p.name})
	return nil
}

func (l *loader) readMeshConfig(p place, data []byte) []fieldError {
	cm := &corev1.ConfigMap{}
	var mf translate.MeshConfig
	validate := func() field.ErrorList {
		text, ok := cm.Data[translate.MeshConfigKey]
		if !ok {
			return nil
		}
		var err error
		if mf, err = translate.ParseMeshConfig(text); err != nil {
			return field.ErrorList{field.Invalid(field.NewPath("data", "mesh"), field.OmitValueType{}, "not a mesh config: "+yamlError(err, 0).Error())}
		}
		return nil
	}
	if errs := l.decode(p, data, cm, validate); len(errs) > 0 {
		return errs
	}
	l.mesh = MeshConfig{Found: true, Origin: p.origin(), TrustDomain: mf.TrustDomain, RootNamespace: mf.RootNamespace}
	return nil
}

func (l *loader) readNetworkPolicy(p place, data []byte) []fieldError {
	np := &networkingv1.NetworkPolicy{}
	if errs := l.decode(p, data, np, func() field.ErrorList { return validateNetworkPolicy(np) }); len(errs) > 0 {
		return errs
	}
	np.Namespace = p.namespace
	l.policies = append(l.policies, *np)
	return nil
}

func (l *loader) readAuthorizationPolicy(p place, data []byte) []fieldError {
	ap := &securityv1.AuthorizationPolicy{}
	if errs := l.decode(p, data, ap, nil); len(errs) > 0 {
		return errs
	}
	ap.Namespace = p.namespace
	l.aps = append(l.aps, ap)
	return nil
}

// readIdentityApproval reads the approval record of the NetworkPolicy of
// the same name and namespace. Each identity must be in the form the
// IdentityApproval CRD admits (serviceaccount/NAMESPACE/NAME or
// namespace/NAME): a manifest the API server would reject must not pass
// here. An identity translate.ParseIdentity reads but the API server does
// not (sa/NS/NAME, a principal) is reported with the form to write.
func (l *loader) readIdentityApproval(p place, data []byte) []fieldError {
	a := &policyv1alpha1.IdentityApproval{}
	errs, ok := strictDecode(data, a)
	if !ok {
		return errs
	}
	rec := approval{Approval: translate.Approval{Namespace: p.namespace, NetworkPolicy: a.Name}}
	if a.Name == "" {
		errs = append(errs, fieldError{field: "metadata.name", err: errors.New("required: the name of the NetworkPolicy whose identities it approves")})
	}
	ids := field.NewPath("spec", "identities")
	if n := len(a.Spec.Identities); n > policyv1alpha1.MaxApprovedIdentities {
		errs = append(errs, fieldErrors(field.ErrorList{field.TooMany(ids, n, policyv1alpha1.MaxApprovedIdentities)})...)
	}
	seen := map[translate.Identity]int{}
	for i, s := range a.Spec.Identities {
		path := ids.Index(i).String()
		id, err := translate.ParseIdentity(s)
		switch {
		case err != nil && !canonicalShape(s):
			errs = append(errs, fieldError{field: path, err: fmt.Errorf("%q is not an identity: write serviceaccount/NAMESPACE/NAME or namespace/NAME", s)})
			continue
		case err != nil:
			errs = append(errs, fieldError{field: path, err: err}) // a name is invalid
			continue
		case string(id) != s:
			errs = append(errs, fieldError{field: path, err: fmt.Errorf("%q: write %q, the form the IdentityApproval API accepts", s, id)})
			continue
		}
		if j, dup := seen[id]; dup {
			errs = append(errs, fieldError{field: path, err: fmt.Errorf("%q is listed twice (also spec.identities[%d])", s, j)})
			continue
		}
		seen[id] = i
		rec.Identities = append(rec.Identities, id)
	}
	if len(errs) > 0 {
		return errs
	}
	if errs := l.claim(p); len(errs) > 0 {
		return errs
	}
	if ref := metav1.GetControllerOfNoCopy(a); ref != nil && ref.Kind == "NetworkPolicy" &&
		ref.APIVersion == networkingv1.SchemeGroupVersion.String() && ref.Name == a.Name {
		rec.controllerUID = ref.UID
	}
	l.approvals = append(l.approvals, rec)
	return nil
}

// canonicalShape says whether s has the shape of an identity as an
// IdentityApproval lists it, whatever its names.
func canonicalShape(s string) bool {
	parts := strings.Split(s, "/")
	return (len(parts) == 3 && parts[0] == "serviceaccount") || (len(parts) == 2 && parts[0] == "namespace")
}

// workload is a controller whose pod template may stand for its pods.
type workload struct {
	kind, namespace, name string
	controller            *metav1.OwnerReference
	template              *corev1.PodTemplateSpec // nil when the object has none
}

func (w *workload) key() string { return w.kind + "/" + w.namespace + "/" + w.name }

// readWorkload makes the reader of a workload kind from the function that
// finds its pod template.
func readWorkload[T any, PT interface {
	*T
	metav1.Object
}](template func(PT) *corev1.PodTemplateSpec) func(*loader, place, []byte) []fieldError {
	return func(l *loader, p place, data []byte) []fieldError {
		obj := PT(new(T))
		if errs := l.decode(p, data, obj, nil); len(errs) > 0 {
			return errs
		}
		l.workloads = append(l.workloads, &workload{
			kind: p.kind, namespace: p.namespace, name: p.name,
			controller: metav1.GetControllerOfNoCopy(obj),
			template:   template(obj),
		})
		return nil
	}
}

// readAdminPolicy makes the reader of an admin policy kind from its
// conversion to the model. The policy is checked as the API server checks
// it (adminpolicy.Compile): one it would reject is an error, naming the
// field. Two versions of one ClusterNetworkPolicy are one object, defined
// twice.
func readAdminPolicy[T any, PT interface {
	*T
	metav1.Object
}](convert func(PT) (adminpolicy.Policy, error)) func(*loader, place, []byte) []fieldError {
	return func(l *loader, p place, data []byte) []fieldError {
		obj := PT(new(T))
		errs, ok := strictDecode(data, obj)
		if !ok {
			return errs
		}
		pol, err := convert(obj)
		if err != nil {
			return []fieldError{{err: err}}
		}
		if _, ces := adminpolicy.Compile(&pol); len(ces) > 0 {
			for _, e := range ces {
				errs = append(errs, fieldError{field: e.Field, err: errors.New(e.Message)})
			}
			return errs
		}
		if errs := l.claim(p); len(errs) > 0 {
			return errs
		}
		l.admin = append(l.admin, pol)
		return nil
	}
}
