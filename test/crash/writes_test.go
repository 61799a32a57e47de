package crash_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/client-go/rest"
)

// Writes are counted where they land: the API server's own count of
// requests (apiserver_request_total), by verb and resource, so that what
// the operator writes is measured from outside, for any number of
// replicas. Only the tests and the operator write to the control plane;
// while the test writes nothing, every write counted is the operator's,
// but for the Leases: leader election renews them, and kube-apiserver its
// own.

// writeCounts are the API server's write requests so far, by "VERB
// resource[/subresource]", Leases left out.
type writeCounts map[string]float64

func apiWrites() writeCounts {
	hc, err := rest.HTTPClientFor(cfg)
	Expect(err).NotTo(HaveOccurred())
	ms, err := scrape(hc, strings.TrimSuffix(cfg.Host, "/")+"/metrics")
	Expect(err).NotTo(HaveOccurred())
	out := writeCounts{}
	for _, s := range ms {
		if s.name != "apiserver_request_total" {
			continue
		}
		switch s.labels["verb"] {
		case "GET", "LIST", "WATCH", "CONNECT":
			continue
		}
		if s.labels["resource"] == "leases" {
			continue
		}
		key := s.labels["verb"] + " " + s.labels["resource"]
		if sub := s.labels["subresource"]; sub != "" {
			key += "/" + sub
		}
		out[key] += s.value
	}
	return out
}

// since are the writes made after before, or nil.
func (w writeCounts) since(before writeCounts) writeCounts {
	var out writeCounts
	for k, v := range w {
		if d := v - before[k]; d > 0 {
			if out == nil {
				out = writeCounts{}
			}
			out[k] = d
		}
	}
	return out
}

func (w writeCounts) String() string {
	if len(w) == 0 {
		return "no write"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(w)) {
		parts = append(parts, fmt.Sprintf("%s: %g", k, w[k]))
	}
	return strings.Join(parts, ", ")
}

// settle waits until the operator m is idle (controllers running, queues
// empty) and the API server has seen no write for settleFor, and returns
// how long that took.
func settle(m *manager) time.Duration {
	start := time.Now()
	last := apiWrites()
	quietSince := time.Now()
	Eventually(func(g Gomega) {
		idle, err := m.Idle()
		g.Expect(err).NotTo(HaveOccurred())
		now := apiWrites()
		if d := now.since(last); d != nil {
			last, quietSince = now, time.Now()
		}
		g.Expect(idle).To(BeTrue(), "%s idle", m.name)
		g.Expect(time.Since(quietSince)).To(BeNumerically(">=", settleFor), "no write for %s", settleFor)
	}, settleWithin, interval).Should(Succeed(), "%s settles", m.name)
	return time.Since(start) - settleFor
}

// expectNoWrites checks that nothing is written for d.
func expectNoWrites(d time.Duration) {
	before := apiWrites()
	Consistently(func() writeCounts { return apiWrites().since(before) }, d, 250*time.Millisecond).
		Should(BeEmpty(), "writes after the operator settled")
}
