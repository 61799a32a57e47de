package crash_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// manager is one `netpol2authz manager` process, in a process group of its
// own, its stderr (and stdout) collected into a file.
type manager struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	metrics string // host:port of its plain-HTTP metrics endpoint
	done    chan struct{}
	started time.Time
	killed  time.Time
	// exited is when the process was seen to exit (set before done is
	// closed).
	exited time.Time
}

// managers are every process the running spec started, for its clean-up.
var (
	managersMu sync.Mutex
	managers   []*manager
	started    int
)

// startManager runs the binary's operator with a kubeconfig of the control
// plane, a plain-HTTP metrics endpoint on a free port, no health probes and
// extra flags.
func startManager(name string, extra ...string) *manager {
	managersMu.Lock()
	started++
	n := started
	managersMu.Unlock()
	m := &manager{
		name:    name,
		logPath: filepath.Join(workDir, fmt.Sprintf("%03d-%s.log", n, name)),
		metrics: "127.0.0.1:" + strconv.Itoa(freePort()),
		done:    make(chan struct{}),
	}
	args := append([]string{"manager",
		"--kubeconfig", kubeconfig,
		"--metrics-bind-address", m.metrics, "--metrics-secure=false",
		"--health-probe-bind-address=0",
	}, extra...)
	log, err := os.Create(m.logPath)
	Expect(err).NotTo(HaveOccurred())
	fmt.Fprintf(log, "# %s %s\n", binary, strings.Join(args, " "))
	m.cmd = exec.Command(binary, args...)
	m.cmd.Stdout, m.cmd.Stderr = log, log
	m.cmd.SysProcAttr = sysProcAttr()
	Expect(m.cmd.Start()).To(Succeed())
	m.started = time.Now()
	go func() {
		_ = m.cmd.Wait()
		m.exited = time.Now()
		_ = log.Close()
		close(m.done)
	}()
	managersMu.Lock()
	managers = append(managers, m)
	managersMu.Unlock()
	GinkgoWriter.Printf("%s: started %s (pid %d), log %s\n", time.Now().Format("15:04:05.000"), name, m.cmd.Process.Pid, m.logPath)
	return m
}

// freePort is a TCP port nothing listens on right now.
func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Kill sends SIGKILL to the process group and waits for the process to be
// gone.
func (m *manager) Kill() {
	m.killed = time.Now()
	err := syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
	if err != nil && err != syscall.ESRCH {
		Expect(err).NotTo(HaveOccurred())
	}
	Eventually(m.done, startWithin, 10*time.Millisecond).Should(BeClosed())
	GinkgoWriter.Printf("%s: killed %s (pid %d) after %s\n", m.killed.Format("15:04:05.000"), m.name, m.cmd.Process.Pid, m.killed.Sub(m.started).Round(time.Millisecond))
}

// Terminate sends SIGTERM, as the kubelet stops a pod, and waits for the
// process to exit; it returns the exit code.
func (m *manager) Terminate() int {
	m.killed = time.Now()
	Expect(syscall.Kill(m.cmd.Process.Pid, syscall.SIGTERM)).To(Succeed())
	Eventually(m.done, startWithin, 10*time.Millisecond).Should(BeClosed(), "%s exits on SIGTERM", m.name)
	GinkgoWriter.Printf("%s: %s (pid %d) stopped by SIGTERM in %s\n", time.Now().Format("15:04:05.000"), m.name, m.cmd.Process.Pid, time.Since(m.killed).Round(time.Millisecond))
	return m.cmd.ProcessState.ExitCode()
}

// Running says whether the process has not exited.
func (m *manager) Running() bool {
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

// Log is what the process wrote so far.
func (m *manager) Log() string {
	data, err := os.ReadFile(m.logPath)
	Expect(err).NotTo(HaveOccurred())
	return string(data)
}

// Logged says whether one line of the log contains every part.
func (m *manager) Logged(parts ...string) bool {
	sc := bufio.NewScanner(strings.NewReader(m.Log()))
	sc.Buffer(nil, 1<<20)
lines:
	for sc.Scan() {
		for _, p := range parts {
			if !strings.Contains(sc.Text(), p) {
				continue lines
			}
		}
		return true
	}
	return false
}

// Controllers says whether both controllers run their workers: the caches
// are synced and, with leader election, this replica leads.
func (m *manager) Controllers() bool {
	return m.Logged(`"Starting workers"`, `"controller":"networkpolicy"`) &&
		m.Logged(`"Starting workers"`, `"controller":"namespace"`)
}

// Metrics reads the metrics endpoint in Prometheus' text format.
func (m *manager) Metrics() (metrics, error) {
	return scrape(http.DefaultClient, "http://"+m.metrics+"/metrics")
}

// Idle says whether the operator runs its controllers with nothing queued
// and nothing being reconciled.
func (m *manager) Idle() (bool, error) {
	if !m.Running() || !m.Controllers() {
		return false, nil
	}
	ms, err := m.Metrics()
	if err != nil {
		return false, err
	}
	for _, c := range []string{"networkpolicy", "namespace"} {
		if ms.sum("workqueue_depth", map[string]string{"name": c}) != 0 ||
			ms.sum("controller_runtime_active_workers", map[string]string{"controller": c}) != 0 {
			return false, nil
		}
	}
	return true, nil
}

// Reconciles is how many reconciles of NetworkPolicies it finished.
func (m *manager) Reconciles() float64 {
	ms, err := m.Metrics()
	Expect(err).NotTo(HaveOccurred())
	return ms.sum("controller_runtime_reconcile_total", map[string]string{"controller": "networkpolicy"})
}

// cleanUpManagers kills what the spec started and, when it failed, prints
// the tail of each log.
func cleanUpManagers() {
	managersMu.Lock()
	ms := managers
	managers = nil
	managersMu.Unlock()
	for i, m := range ms {
		if m.Running() {
			m.Kill()
		}
		if !CurrentSpecReport().Failed() {
			continue
		}
		if i < len(ms)-3 {
			GinkgoWriter.Printf("log of %s: %s\n", m.name, m.logPath)
		} else {
			GinkgoWriter.Printf("\n===== %s: %s (last 40 lines) =====\n%s\n", m.name, m.logPath, tail(m.Log(), 40))
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// metrics are samples of Prometheus' text format: name, labels, value.
type metrics []sample

type sample struct {
	name   string
	labels map[string]string
	value  float64
}

func scrape(c *http.Client, url string) (metrics, error) {
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return parseMetrics(body)
}

// parseMetrics reads the samples of Prometheus' text exposition format
// (no escaped quotes in label values, which these metrics do not have).
func parseMetrics(body []byte) (metrics, error) {
	var out metrics
	for line := range bytes.Lines(body) {
		l := strings.TrimSpace(string(line))
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		s := sample{labels: map[string]string{}}
		var rest string
		if i := strings.IndexByte(l, '{'); i >= 0 {
			j := strings.LastIndexByte(l, '}')
			if j < i {
				return nil, fmt.Errorf("metrics: cannot parse %q", l)
			}
			s.name, rest = l[:i], strings.TrimSpace(l[j+1:])
			for _, kv := range splitLabels(l[i+1 : j]) {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return nil, fmt.Errorf("metrics: cannot parse label %q of %q", kv, l)
				}
				s.labels[k] = strings.Trim(v, `"`)
			}
		} else {
			var ok bool
			s.name, rest, ok = strings.Cut(l, " ")
			if !ok {
				return nil, fmt.Errorf("metrics: cannot parse %q", l)
			}
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return nil, fmt.Errorf("metrics: no value in %q", l)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics: value of %q: %w", l, err)
		}
		s.value = v
		out = append(out, s)
	}
	return out, nil
}

// splitLabels splits k="v",k="v" at the commas outside quotes.
func splitLabels(s string) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// sum adds the values of the samples of a metric whose labels include
// these.
func (ms metrics) sum(name string, labels map[string]string) float64 {
	n := 0.0
next:
	for _, s := range ms {
		if s.name != name {
			continue
		}
		for k, v := range labels {
			if s.labels[k] != v {
				continue next
			}
		}
		n += s.value
	}
	return n
}
