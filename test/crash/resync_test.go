package crash_test

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	networkingv1 "k8s.io/api/networking/v1"
)

// resyncPeriod is the --resync-period of the resync spec: short, to see
// several resyncs in seconds.
const resyncPeriod = 2 * time.Second

var _ = Describe("The periodic resync", func() {
	It("reconciles every NetworkPolicy again each --resync-period, and writes nothing on a cluster at rest", func() {
		DeferCleanup(cleanUpManagers)
		n := runs.Add(1)
		newChurn(roundRand(2<<20+uint64(n)), fmt.Sprintf("resync-%d", n))
		m := startManager("resync", "--resync-period="+resyncPeriod.String())
		settle(m)
		expectMatchesTranslate()

		var nps networkingv1.NetworkPolicyList
		Expect(k8s.List(ctx, &nps)).To(Succeed())
		before := m.Reconciles()
		By("watching three resync periods")
		expectNoWrites(3 * resyncPeriod)
		Expect(m.Reconciles()-before).To(BeNumerically(">=", 2*len(nps.Items)),
			"at least two resyncs of the %d NetworkPolicies in %s", len(nps.Items), 3*resyncPeriod)
	})
})
