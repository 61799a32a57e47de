package crash_test

import (
	"fmt"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Leader election as the failover spec runs it: short timings, so that a
// takeover takes seconds (docs/operations.md#high-availability-and-failover).
const (
	leaseNamespace = "netpol2authz-system"
	leaseName      = "netpol2authz.netpol2authz.io"
	leaseDuration  = 4 * time.Second
	renewDeadline  = 3 * time.Second
	retryPeriod    = 500 * time.Millisecond
	// retryWait is the longest wait of a standby between two tries:
	// client-go jitters the retry period by up to 120%.
	retryWait = retryPeriod * 22 / 10
	// takeoverWithin bounds a takeover after the leader's death: the
	// standby sees the last renewal up to one retry wait late, waits the
	// lease duration from then, and tries again within one more retry
	// wait; plus slack for a loaded machine.
	takeoverWithin = leaseDuration + 2*retryWait + 1500*time.Millisecond
	// handOverWithin bounds a takeover after the leader gave the Lease up
	// and exited (SIGTERM): the standby's next try, plus slack. Without
	// the release the standby would wait for the Lease to expire, at
	// least a lease duration after the last renewal: 3.5 s or more after
	// the exit.
	handOverWithin = retryWait + 500*time.Millisecond
	// churnAfterTakeover is how long the churn goes on under the new
	// leader.
	churnAfterTakeover = 2 * time.Second
)

var leaderFlags = []string{
	"--leader-elect",
	"--leader-elect-namespace=" + leaseNamespace,
	"--leader-elect-lease-duration=" + leaseDuration.String(),
	"--leader-elect-renew-deadline=" + renewDeadline.String(),
	"--leader-elect-retry-period=" + retryPeriod.String(),
}

const acquired = `"msg":"Successfully acquired lease"`

func lease() *coordinationv1.Lease {
	l := &coordinationv1.Lease{}
	Expect(k8s.Get(ctx, client.ObjectKey{Namespace: leaseNamespace, Name: leaseName}, l)).To(Succeed())
	return l
}

var _ = Describe("Failover", func() {
	It("hands over to the standby replica within the lease timings when the leader is killed during a churn, and reaches the same end state", func() {
		DeferCleanup(cleanUpManagers)
		Expect(client.IgnoreAlreadyExists(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: leaseNamespace}}))).To(Succeed())
		n := runs.Add(1)
		r := roundRand(1<<20 + uint64(n))
		c := newChurn(r, fmt.Sprintf("failover-%d", n))

		By("starting two replicas: one leads")
		replicas := []*manager{startManager("replica-a", leaderFlags...), startManager("replica-b", leaderFlags...)}
		var leader, standby *manager
		Eventually(func() int {
			n := 0
			for i, m := range replicas {
				if m.Logged(acquired) {
					n++
					leader, standby = m, replicas[1-i]
				}
			}
			return n
		}, startWithin, interval).Should(Equal(1), "exactly one replica acquires the lease")
		Eventually(leader.Controllers, startWithin, interval).Should(BeTrue(), "the leader runs the controllers")
		held := lease()
		Expect(held.Spec.HolderIdentity).NotTo(BeNil())
		GinkgoWriter.Printf("%s leads as %s\n", leader.name, *held.Spec.HolderIdentity)

		killAt := time.Now().Add(500*time.Millisecond + time.Duration(r.Int64N(int64(2*time.Second))))
		var mu sync.Mutex
		var tookOver, acting time.Time
		watch := func() {
			defer GinkgoRecover()
			for time.Since(leader.killed) < 2*takeoverWithin {
				mu.Lock()
				if tookOver.IsZero() && standby.Logged(acquired) {
					tookOver = time.Now()
				}
				if acting.IsZero() && standby.Controllers() {
					acting = time.Now()
				}
				done := !acting.IsZero()
				mu.Unlock()
				if done {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		By("churning, and killing the leader during the churn")
		c.run(func() bool {
			mu.Lock()
			defer mu.Unlock()
			if leader.Running() {
				return false
			}
			return (!acting.IsZero() && time.Since(acting) >= churnAfterTakeover) || time.Since(leader.killed) > 2*takeoverWithin
		}, func() {
			if leader.Running() && !time.Now().Before(killAt) {
				Expect(standby.Controllers()).To(BeFalse(), "the standby ran the controllers while the leader lived")
				leader.Kill()
				c.logf("SIGKILL the leader")
				go watch()
			}
		})

		mu.Lock()
		took, actingAfter := tookOver.Sub(leader.killed), acting.Sub(leader.killed)
		mu.Unlock()
		Expect(tookOver.IsZero()).To(BeFalse(), "the standby acquires the lease after the leader's death")
		AddReportEntry("failover", fmt.Sprintf("lease %s/%s/%s: the standby acquired the lease %s after the leader's SIGKILL, ran its controllers after %s (bound %s)",
			leaseDuration, renewDeadline, retryPeriod, took.Round(time.Millisecond), actingAfter.Round(time.Millisecond), takeoverWithin))
		GinkgoWriter.Printf("takeover: lease acquired %s, controllers running %s after the SIGKILL\n", took.Round(time.Millisecond), actingAfter.Round(time.Millisecond))
		Expect(took).To(BeNumerically("<=", takeoverWithin), "takeover within lease duration + 2 retry waits + slack")
		Expect(acting.IsZero()).To(BeFalse(), "the new leader runs the controllers")
		Expect(actingAfter).To(BeNumerically("<=", takeoverWithin), "the new leader acts within the bound")
		now := lease()
		Expect(now.Spec.HolderIdentity).NotTo(BeNil())
		Expect(*now.Spec.HolderIdentity).NotTo(Equal(*held.Spec.HolderIdentity), "the Lease names the new leader")
		Expect(now.Spec.LeaseTransitions).NotTo(BeNil())
		Expect(*now.Spec.LeaseTransitions).To(BeNumerically(">", ptrValue(held.Spec.LeaseTransitions)))

		By("letting the new leader settle and comparing with `netpol2authz translate` of a dump of the cluster")
		settle(standby)
		expectMatchesTranslate()
		c.expectUntouched()
		expectNoWrites(quietFor)

		By("restarting the killed replica: it waits as the standby and writes nothing")
		again := startManager(leader.name, leaderFlags...)
		Eventually(func() (bool, error) {
			ms, err := again.Metrics()
			return err == nil && len(ms) > 0, err
		}, startWithin, interval).Should(BeTrue(), "the restarted replica serves metrics")
		expectNoWrites(quietFor)
		Expect(again.Logged(acquired)).To(BeFalse(), "the restarted replica took the lease of a living leader")
		Expect(again.Controllers()).To(BeFalse(), "the restarted replica runs the controllers as a standby")
		Expect(*lease().Spec.HolderIdentity).To(Equal(*now.Spec.HolderIdentity))

		By("stopping the leader with SIGTERM, as a rolling update does: it gives the Lease up, the standby takes over at its next try")
		Expect(standby.Terminate()).To(Equal(0), "the leader exits cleanly")
		Eventually(again.Logged, handOverWithin, 20*time.Millisecond).WithArguments(acquired).Should(BeTrue(),
			"the standby acquires a released Lease within a retry period, not a lease duration")
		handOver := time.Since(standby.exited)
		Eventually(again.Controllers, handOverWithin, 20*time.Millisecond).Should(BeTrue())
		AddReportEntry("hand-over", fmt.Sprintf("lease %s/%s/%s: the leader exited %s after its SIGTERM, the standby acquired the lease %s later (bound %s)",
			leaseDuration, renewDeadline, retryPeriod, standby.exited.Sub(standby.killed).Round(time.Millisecond), handOver.Round(time.Millisecond), handOverWithin))
		settle(again)
		expectMatchesTranslate()
		expectNoWrites(quietFor)
	})
})

func ptrValue(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}
