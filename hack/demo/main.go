// Command demo runs netpol2authz on a local control plane with the samples
// of config/samples and tells what happens (make demo). DEMO_KEEP=1 leaves
// it running until Ctrl-C.
package main

import (
	"fmt"
	"os"
	"time"

	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/netpol2authz/netpol2authz/internal/demo"
)

func main() {
	// The operator's own logs are for errors only: the story is on stdout.
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	ctx := ctrl.SetupSignalHandler()
	err := demo.Run(ctx, demo.Options{
		Out:     os.Stdout,
		Samples: "config/samples",
		Keep:    os.Getenv("DEMO_KEEP") == "1",
		Wait:    2 * time.Minute,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}
