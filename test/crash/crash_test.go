package crash_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	policyv1alpha1 "github.com/netpol2authz/netpol2authz/api/v1alpha1"
)

// The churn of a crash round lasts churnAtLeast plus up to churnSpread.
const (
	churnAtLeast = 3 * time.Second
	churnSpread  = 3 * time.Second
)

// runs numbers the specs that make namespaces of their own, so that no
// two runs of a spec against one control plane share a name (envtest
// deletes no namespace).
var runs atomic.Int32

// roundRand is the random source of one churn: the suite's seed and the
// round.
func roundRand(round uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, round)) }

var _ = Describe("Crash consistency", Ordered, func() {
	var m *manager
	var prefix string
	BeforeAll(func() {
		prefix = "crash"
		if n := runs.Add(1); n > 1 {
			prefix = fmt.Sprintf("crash%d", n)
		}
		m = startManager("crash")
		Eventually(m.Controllers, startWithin, interval).Should(BeTrue(), "the operator runs its controllers")
	})
	AfterAll(cleanUpManagers)

	for round := 1; round <= rounds; round++ {
		It(fmt.Sprintf("round %d: converges to what translate makes of the cluster after a SIGKILL during a churn, and then writes nothing", round), func() {
			DeferCleanup(func() {
				if CurrentSpecReport().Failed() {
					cleanUpManagers()
				}
			})
			r := roundRand(uint64(round))
			c := newChurn(r, fmt.Sprintf("%s-r%d", prefix, round))

			// The kills: one or two random moments of the churn; after
			// each the operator stays down for up to a second while the
			// churn goes on (every event then is missed), then restarts.
			// In half the rounds the last kill falls in the churn's last
			// second, so that the churn often ends while the operator is
			// down: then only its start can catch up with what it missed.
			churnFor := churnAtLeast + time.Duration(r.Int64N(int64(churnSpread)))
			start := time.Now()
			var kills []time.Time
			for range 1 + r.IntN(2) {
				kills = append(kills, start.Add(time.Duration(r.Int64N(int64(churnFor)))))
			}
			if r.IntN(2) == 0 {
				kills[len(kills)-1] = start.Add(churnFor - time.Duration(r.Int64N(int64(time.Second))))
			}
			slices.SortFunc(kills, time.Time.Compare)
			var restartAt time.Time
			By(fmt.Sprintf("churning for %s, SIGKILL at %v", churnFor.Round(time.Millisecond), offsets(start, kills)))
			c.run(forAbout(churnFor), func() {
				now := time.Now()
				switch {
				case m.Running() && len(kills) > 0 && !now.Before(kills[0]):
					kills = kills[1:]
					m.Kill()
					c.logf("SIGKILL")
					restartAt = now.Add(time.Duration(r.Int64N(int64(time.Second))))
				case !m.Running() && !now.Before(restartAt):
					m = startManager("crash")
					c.logf("restarted")
				}
			})
			if !m.Running() {
				m = startManager("crash")
			}

			By("changing the Services once it has caught up: only their watch can tell it")
			c.followed(m)

			By("letting it settle")
			took := settle(m)
			GinkgoWriter.Printf("settled %s after the churn\n", took.Round(time.Millisecond))

			By("comparing with `netpol2authz translate` of a dump of the cluster")
			expectMatchesTranslate()
			c.expectUntouched()

			By(fmt.Sprintf("checking that it writes nothing for %s", quietFor))
			expectNoWrites(quietFor)

			By("restarting it on the settled cluster: it reconciles everything and writes nothing")
			before, reconciled := apiWrites(), nptCount()
			m.Kill()
			m = startManager("crash")
			settle(m)
			Expect(apiWrites().since(before)).To(BeEmpty(), "writes of a restart on a settled cluster")
			Expect(m.Reconciles()).To(BeNumerically(">=", reconciled), "the restart reconciled every translated NetworkPolicy")
		})
	}
})

func offsets(start time.Time, ts []time.Time) []string {
	var out []string
	for _, t := range ts {
		out = append(out, "+"+t.Sub(start).Round(time.Millisecond).String())
	}
	return out
}

// nptCount is the number of NetworkPolicyTranslations: of NetworkPolicies
// translated.
func nptCount() int {
	var list policyv1alpha1.NetworkPolicyTranslationList
	Expect(k8s.List(ctx, &list)).To(Succeed())
	return len(list.Items)
}
