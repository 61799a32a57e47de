package controllers_test

import (
	"errors"
	"net/http"
	"strings"
	"sync/atomic"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netpol2authz/netpol2authz/controllers"
)

var _ = Describe("A reconcile that fails", func() {
	It("says so in the status, never leaving an old Ready=True, and recovers", func() {
		ns, batch := translatedDB("failing")
		before, err := translationStatus(ns, "db")()
		Expect(err).NotTo(HaveOccurred())

		By("the API server refuses the operator's writes of AuthorizationPolicies")
		var failing atomic.Bool
		failing.Store(true)
		op.Stop()
		op = startOperatorWith(controllers.Settings{IstioNamespace: istioNamespace}, func(req *http.Request) error {
			if failing.Load() && req.Method != http.MethodGet && strings.Contains(req.URL.Path, "/authorizationpolicies") {
				return errors.New("injected: the API server is unreachable")
			}
			return nil
		})
		DeferCleanup(func() { op.Stop(); op = startOperator() })
		relabel(batch, map[string]string{"app": "api"})
		Eventually(translationStatus(ns, "db"), timeout, interval).Should(And(
			haveCondition("Ready", metav1.ConditionFalse, "ApplyFailed"),
			HaveField("Conditions", ContainElement(HaveField("Message", ContainSubstring("injected: the API server is unreachable")))),
		))
		Expect(principalsOf(ns, "netpol-db")()).To(Equal([]string{principal(ns, "api")}), "nothing was written")
		Expect(translationStatus(ns, "db")()).To(And(
			HaveField("AuthorizationPolicies", Equal([]string{"netpol-db"})),
			HaveField("Principals", BeEquivalentTo(1)),
			HaveField("Findings", Equal(before.Findings)),
		), "the rest of the status stays as the last successful reconcile left it")

		By("the API server is back: the retry applies and Ready is True again")
		failing.Store(false)
		Eventually(principalsOf(ns, "netpol-db"), timeout, interval).Should(Equal([]string{principal(ns, "api"), principal(ns, "batch")}))
		Eventually(translationStatus(ns, "db"), timeout, interval).Should(haveCondition("Ready", metav1.ConditionTrue, "Applied"))
	})
})
