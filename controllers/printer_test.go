package controllers_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
)

// getTable lists NetworkPolicyTranslations of a namespace the way kubectl
// asks for them: as a Table, with the CRD's printer columns.
func getTable(ns string) (*metav1.Table, error) {
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &metav1.SchemeGroupVersion
	c.APIPath = "/apis"
	c.NegotiatedSerializer = serializer.NewCodecFactory(testSch).WithoutConversion()
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, err
	}
	raw, err := rc.Get().AbsPath("/apis/policy.netpol2authz.io/v1alpha1/namespaces", ns, "networkpolicytranslations").
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").Param("includeObject", "Metadata").DoRaw(ctx)
	if err != nil {
		return nil, err
	}
	t := &metav1.Table{}
	return t, json.Unmarshal(raw, t)
}

// printTable renders a Table as `kubectl get -A` (wide: `-o wide`) would.
func printTable(t *metav1.Table, ns string, wide bool) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 8, 3, ' ', 0)
	header := []string{"NAMESPACE"}
	var cols []int
	for i, c := range t.ColumnDefinitions {
		if c.Priority == 0 || wide {
			header = append(header, strings.ToUpper(c.Name))
			cols = append(cols, i)
		}
	}
	fmt.Fprintln(w, strings.Join(header, "\t"))
	for _, r := range t.Rows {
		cells := []string{ns}
		for _, i := range cols {
			v := fmt.Sprint(r.Cells[i])
			if r.Cells[i] == nil {
				v = "<none>" // as kubectl prints a missing value
			}
			if t.ColumnDefinitions[i].Type == "date" {
				if ts, err := time.Parse(time.RFC3339, v); err == nil {
					v = time.Since(ts).Round(time.Second).String()
				}
			}
			cells = append(cells, v)
		}
		fmt.Fprintln(w, strings.Join(cells, "\t"))
	}
	_ = w.Flush()
	return b.String()
}

var _ = Describe("kubectl get npt", func() {
	It("shows mode, readiness, exactness and findings at a glance", func() {
		ns := optedInNamespace("shop", "dry-run")
		newPod(ns, "db-0", map[string]string{"app": "db"}, "db")
		newPod(ns, "api-0", map[string]string{"app": "api"}, "shared")
		newPod(ns, "batch-0", map[string]string{"app": "batch"}, "shared")
		newPod(ns, "web-0", map[string]string{"app": "web"}, "web")
		Expect(k8s.Create(ctx, &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "netpol-cache", Namespace: ns}})).To(Succeed())
		newAllowPolicy(ns, "db", map[string]string{"app": "db"}, 5432, peerPods(map[string]string{"app": "api"}))
		newAllowPolicy(ns, "web", map[string]string{"app": "web"}, 8080, peerPods(map[string]string{"app": "db"}))
		newAllowPolicy(ns, "cache", map[string]string{"app": "cache"}, 6379, peerPods(map[string]string{"app": "web"}))
		for _, name := range []string{"db", "web", "cache"} {
			Eventually(translationStatus(ns, name), timeout, interval).Should(HaveField("Conditions", HaveLen(3)))
		}

		t, err := getTable(ns)
		Expect(err).NotTo(HaveOccurred())
		out := printTable(t, ns, false)
		GinkgoWriter.Printf("kubectl get npt -A\n%s\nkubectl get npt -A -o wide\n%s", out, printTable(t, ns, true))
		Expect(strings.Split(out, "\n")[0]).To(MatchRegexp(`^NAMESPACE +NAME +MODE +READY +EXACT +FINDINGS +PENDING +AGE$`))
		Expect(out).To(MatchRegexp(`(?m)^` + ns + ` +cache +dry-run +False +False +2 +0 +`)) // Conflict, NoPodsSelected
		Expect(out).To(MatchRegexp(`(?m)^` + ns + ` +db +dry-run +True +False +1 +0 +`))     // SharedIdentity
		Expect(out).To(MatchRegexp(`(?m)^` + ns + ` +web +dry-run +True +True +0 +0 +`))
	})
})
