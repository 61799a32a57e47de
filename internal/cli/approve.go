package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	policyv1alpha1 "github.com/netpol2authz/netpol2authz/api/v1alpha1"
	"github.com/netpol2authz/netpol2authz/internal/translate"
)

const approveUsage = `Usage:
  netpol2authz approve -n NAMESPACE NETWORKPOLICY IDENTITY...
  netpol2authz approve -n NAMESPACE NETWORKPOLICY --all
  netpol2authz revoke  -n NAMESPACE NETWORKPOLICY IDENTITY...

approve lists identities in the IdentityApproval of a NetworkPolicy (created
when missing), so the operator writes them into the generated
AuthorizationPolicies; --all approves every identity its
NetworkPolicyTranslation reports pending. revoke removes them: the operator
takes them out at once. An IDENTITY is serviceaccount/NAMESPACE/NAME,
namespace/NAME, or a principal TRUSTDOMAIN/ns/NAMESPACE/sa/NAME, as the
IdentityPending finding names it.

Flags:
`

// RunApprove is `netpol2authz approve`.
func RunApprove(args []string, stdout, stderr io.Writer) int {
	return runApproval(args, stdout, stderr, true)
}

// RunRevoke is `netpol2authz revoke`.
func RunRevoke(args []string, stdout, stderr io.Writer) int {
	return runApproval(args, stdout, stderr, false)
}

func runApproval(args []string, stdout, stderr io.Writer, approve bool) int {
	cmd := map[bool]string{true: "approve", false: "revoke"}[approve]
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, approveUsage); fs.PrintDefaults() }
	namespace := fs.String("n", "", "namespace of the NetworkPolicy (required)")
	fs.StringVar(namespace, "namespace", "", "namespace of the NetworkPolicy (required)")
	all := false
	if approve {
		fs.BoolVar(&all, "all", false, "approve every identity the NetworkPolicyTranslation reports pending")
	}
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the cluster (default: KUBECONFIG, ~/.kube/config, in-cluster)")
	kubeContext := fs.String("context", "", "kubeconfig context (default: the current one)")
	// Flags may follow the NetworkPolicy's name, as with kubectl.
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return usageExit(fs, stderr, err)
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "netpol2authz %s: "+format+"\n", append([]any{cmd}, a...)...)
		return ExitUsage
	}
	switch {
	case *namespace == "":
		return fail("-n NAMESPACE is required")
	case len(positional) == 0:
		return fail("name the NetworkPolicy")
	case all && len(positional) > 1:
		return fail("give identities or --all, not both")
	case !all && len(positional) == 1:
		return fail("name the identities to %s%s", cmd, map[bool]string{true: ", or --all", false: ""}[approve])
	}
	var ids []translate.Identity
	for _, s := range positional[1:] {
		id, err := translate.ParseIdentity(s)
		if err != nil {
			return fail("%v", err)
		}
		ids = append(ids, id)
	}
	c, err := approvalClient(*kubeconfig, *kubeContext)
	if err != nil {
		fmt.Fprintf(stderr, "netpol2authz %s: %v\n", cmd, err)
		return ExitBadInput
	}
	key := client.ObjectKey{Namespace: *namespace, Name: positional[0]}
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	var changed []translate.Identity
	if approve {
		changed, err = Approve(ctx, c, key, ids, all)
	} else {
		changed, err = Revoke(ctx, c, key, ids)
	}
	if err != nil {
		fmt.Fprintf(stderr, "netpol2authz %s: %v\n", cmd, err)
		return ExitBadInput
	}
	past := map[bool]string{true: "approved", false: "revoked"}[approve]
	if len(changed) == 0 {
		fmt.Fprintf(stdout, "nothing to do: IdentityApproval %s already says so\n", key)
		return ExitOK
	}
	for _, id := range changed {
		fmt.Fprintf(stdout, "%s %s for NetworkPolicy %s\n", past, id, key)
	}
	return ExitOK
}

func approvalClient(kubeconfig, kubeContext string) (client.Client, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("no cluster to write to: %w", err)
	}
	scheme := runtime.NewScheme()
	if err := policyv1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: scheme})
}

// Approve adds ids (with all, every identity the NetworkPolicyTranslation
// of key lists as pending) to the IdentityApproval of the NetworkPolicy
// key, creating it when missing, and returns those it added. The update
// carries the resourceVersion read, so a concurrent change is never lost.
func Approve(ctx context.Context, c client.Client, key client.ObjectKey, ids []translate.Identity, all bool) ([]translate.Identity, error) {
	if all {
		npt := &policyv1alpha1.NetworkPolicyTranslation{}
		if err := c.Get(ctx, key, npt); err != nil {
			return nil, fmt.Errorf("reading the pending identities of NetworkPolicyTranslation %s: %w", key, err)
		}
		for _, p := range npt.Status.PendingIdentities {
			ids = append(ids, translate.Identity(p.Identity))
		}
		if int(npt.Status.Pending) > len(npt.Status.PendingIdentities) {
			return nil, fmt.Errorf("NetworkPolicyTranslation %s lists %d of %d pending identities: approve them by name", key, len(npt.Status.PendingIdentities), npt.Status.Pending)
		}
		if len(ids) == 0 {
			return nil, nil
		}
	}
	return changeApproval(ctx, c, key, func(have []string) ([]string, []translate.Identity) {
		var added []translate.Identity
		for _, id := range ids {
			if !slices.Contains(have, string(id)) {
				have = append(have, string(id))
				added = append(added, id)
			}
		}
		return have, added
	}, true)
}

// Revoke removes ids from the IdentityApproval of the NetworkPolicy key and
// returns those it removed.
func Revoke(ctx context.Context, c client.Client, key client.ObjectKey, ids []translate.Identity) ([]translate.Identity, error) {
	return changeApproval(ctx, c, key, func(have []string) ([]string, []translate.Identity) {
		var removed []translate.Identity
		for _, id := range ids {
			if i := slices.Index(have, string(id)); i >= 0 {
				have = slices.Delete(have, i, i+1)
				removed = append(removed, id)
			}
		}
		return have, removed
	}, false)
}

// changeApproval applies change to the identities of the record, retrying
// on conflicts; create says a missing record is created.
func changeApproval(ctx context.Context, c client.Client, key client.ObjectKey, change func([]string) ([]string, []translate.Identity), create bool) ([]translate.Identity, error) {
	var changed []translate.Identity
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		a := &policyv1alpha1.IdentityApproval{}
		err := c.Get(ctx, key, a)
		missing := apierrors.IsNotFound(err)
		switch {
		case missing && !create:
			changed = nil
			return nil
		case missing:
			a = &policyv1alpha1.IdentityApproval{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
		case err != nil:
			return err
		}
		var ids []string
		ids, changed = change(slices.Clone(a.Spec.Identities))
		if len(changed) == 0 {
			return nil
		}
		slices.Sort(ids)
		a.Spec.Identities = ids
		if missing {
			err := c.Create(ctx, a)
			if apierrors.IsAlreadyExists(err) {
				// Created meanwhile: read it again and change that.
				return apierrors.NewConflict(policyv1alpha1.GroupVersion.WithResource("identityapprovals").GroupResource(), key.Name, err)
			}
			return err
		}
		return c.Update(ctx, a)
	})
	if err != nil {
		if apierrors.IsForbidden(err) {
			return nil, fmt.Errorf("IdentityApproval %s: %w (approving takes RBAC on identityapprovals.policy.netpol2authz.io, which only whom a cluster admin grants it to has)", key, err)
		}
		return nil, fmt.Errorf("IdentityApproval %s: %w", key, err)
	}
	return changed, nil
}
