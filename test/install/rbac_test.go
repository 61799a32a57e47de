package install_test

import (
	"context"
	"testing"
	"time"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	policyv1alpha1 "github.com/netpol2authz/netpol2authz/api/v1alpha1"
	"github.com/netpol2authz/netpol2authz/controllers"
)

// The ServiceAccount dist/install.yaml runs the manager as.
const managerSA = "system:serviceaccount:netpol2authz-system:netpol2authz-controller-manager"

// checkOperatorRunsWithInstalledRBAC runs the operator with the identity and
// nothing but the RBAC that dist/install.yaml gives it (applied before):
// it must translate a NetworkPolicy, reading the mesh ConfigMap, and it must
// not be able to read Secrets or any other ConfigMap.
func checkOperatorRunsWithInstalledRBAC(ctx context.Context, t *testing.T, env *envtest.Environment, admin client.Client) {
	user, err := env.AddUser(envtest.User{Name: managerSA, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:netpol2authz-system"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	saCfg := user.Config()
	scheme := controllers.Scheme()
	sa, err := client.New(saCfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}

	// Least privilege: no Secrets, no ConfigMap but the mesh config.
	if err := sa.List(ctx, &corev1.SecretList{}); !apierrors.IsForbidden(err) {
		t.Errorf("the manager's ServiceAccount may list Secrets (err %v)", err)
	}
	if err := sa.List(ctx, &corev1.ConfigMapList{}); !apierrors.IsForbidden(err) {
		t.Errorf("the manager's ServiceAccount may list every ConfigMap (err %v)", err)
	}
	checkAdminPolicyAccess(ctx, t, sa)
	checkWaypointAccess(ctx, t, sa)

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system"}}))
	must(admin.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "istio", Namespace: "istio-system"},
		Data:       map[string]string{"mesh": "trustDomain: rbac.example\n"},
	}))
	must(admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: "rbac-shop", Annotations: map[string]string{"netpol2authz.io/mode": "enforce"},
	}}))
	for _, p := range []struct{ name, sa, label string }{{"db-0", "db", "db"}, {"admin-0", "admin", "admin"}} {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: p.name, Namespace: "rbac-shop", Labels: map[string]string{"app": p.label},
				Annotations: map[string]string{"sidecar.istio.io/status": "{}"}},
			Spec: corev1.PodSpec{ServiceAccountName: p.sa, Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}},
		}
		must(admin.Create(ctx, pod))
		pod.Status = corev1.PodStatus{Phase: corev1.PodRunning}
		must(admin.Status().Update(ctx, pod))
	}
	must(admin.Create(ctx, &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "rbac-shop"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{
				PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "admin"}},
			}}}},
		},
	}))

	mgrCtx, stop := context.WithCancel(ctx)
	defer stop()
	// Leader election as the installed Deployment runs it (--leader-elect),
	// in the operator's namespace: the installed Role must allow it.
	mgr, err := ctrl.NewManager(saCfg, ctrl.Options{
		Scheme:                  scheme,
		Cache:                   controllers.CacheOptions(controllers.Settings{}),
		Metrics:                 metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:  "0",
		LeaderElection:          true,
		LeaderElectionID:        controllers.LeaderElectionID,
		LeaderElectionNamespace: "netpol2authz-system",
	})
	must(err)
	skip := true
	must(controllers.Setup(mgrCtx, mgr, controllers.Settings{}, controller.Options{SkipNameValidation: &skip}))
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mgrCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("the manager stopped with an error: %v", err)
		}
	}()

	want := "rbac.example/ns/rbac-shop/sa/admin"
	var last string
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		ap := &securityv1.AuthorizationPolicy{}
		if err := admin.Get(ctx, client.ObjectKey{Namespace: "rbac-shop", Name: "netpol-db"}, ap); err != nil {
			last = err.Error()
			return false, nil
		}
		npt := &policyv1alpha1.NetworkPolicyTranslation{}
		if err := admin.Get(ctx, client.ObjectKey{Namespace: "rbac-shop", Name: "db"}, npt); err != nil {
			last = err.Error()
			return false, nil
		}
		last = ap.Spec.String()
		return len(ap.Spec.Rules) == 1 && len(ap.Spec.Rules[0].From) == 1 &&
			len(ap.Spec.Rules[0].From[0].Source.GetPrincipals()) == 1 &&
			ap.Spec.Rules[0].From[0].Source.GetPrincipals()[0] == want, nil
	})
	if err == nil {
		lease := &coordinationv1.Lease{}
		if err := admin.Get(ctx, client.ObjectKey{Namespace: "netpol2authz-system", Name: controllers.LeaderElectionID}, lease); err != nil {
			t.Errorf("no leader election Lease: %v", err)
		} else if h := lease.Spec.HolderIdentity; h == nil || *h == "" {
			t.Errorf("the Lease %s has no holder", controllers.LeaderElectionID)
		}
	}
	if err != nil {
		t.Fatalf("with the installed RBAC, the operator did not write netpol-db with principal %s (the mesh config's trust domain) within a minute; last seen: %s", want, last)
	}
}
