package demo_test

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	policyv1alpha1 "github.com/netpol2authz/netpol2authz/api/v1alpha1"
	"github.com/netpol2authz/netpol2authz/controllers"
	"github.com/netpol2authz/netpol2authz/internal/demo"
	"github.com/netpol2authz/netpol2authz/internal/testenv"
)

// syncBuffer is written by the demo and read by the test at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var kubeconfigLine = regexp.MustCompile(`export KUBECONFIG=(\S+)`)

// DEMO_KEEP=1: the demo keeps running, prints a kubeconfig that reaches its
// control plane, and stops everything when told to.
func TestDemoKeepsRunningWithAKubeconfig(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- demo.Run(ctx, demo.Options{Out: &out, Samples: filepath.Join(root, "config", "samples"), Keep: true, Wait: 45 * time.Second})
	}()

	var path string
	deadline := time.After(2 * time.Minute)
	for path == "" {
		select {
		case err := <-done:
			t.Fatalf("the demo returned before printing a kubeconfig: %v\n%s", err, out.String())
		case <-deadline:
			t.Fatalf("no kubeconfig printed:\n%s", out.String())
		case <-time.After(200 * time.Millisecond):
			if m := kubeconfigLine.FindStringSubmatch(out.String()); m != nil {
				path = m[1]
			}
		}
	}

	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatalf("the printed kubeconfig %s does not load: %v", path, err)
	}
	c, err := client.New(cfg, client.Options{Scheme: controllers.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	list := &policyv1alpha1.NetworkPolicyTranslationList{}
	if err := c.List(ctx, list); err != nil {
		t.Fatalf("listing through the printed kubeconfig: %v", err)
	}
	if len(list.Items) != 5 {
		t.Errorf("got %d NetworkPolicyTranslations through the kubeconfig, want the samples' 5", len(list.Items))
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the demo did not stop cleanly: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the demo did not stop after its context ended")
	}
}
