package translate

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/validate/content"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// selector is a label selector parsed once per policy.
type selector struct {
	sel         labels.Selector
	matchLabels map[string]string
	// exprKeys are the distinct keys of matchExpressions, sorted.
	exprKeys []string
	// empty selects everything.
	empty bool
	// onlyName says the selector reads no label but
	// kubernetes.io/metadata.name, so it is exact on partial namespaces.
	onlyName bool
}

var selectorOps = map[metav1.LabelSelectorOperator]selection.Operator{
	metav1.LabelSelectorOpIn:           selection.In,
	metav1.LabelSelectorOpNotIn:        selection.NotIn,
	metav1.LabelSelectorOpExists:       selection.Exists,
	metav1.LabelSelectorOpDoesNotExist: selection.DoesNotExist,
}

// compileSelector parses ls. Errors carry the sub-path below the selector
// (".matchLabels", ".matchExpressions[1]") so callers can name the field.
// Requirements are checked in a fixed order first, because
// LabelSelectorAsSelector walks matchLabels in map order and its error
// would name a different label from run to run.
func compileSelector(ls *metav1.LabelSelector) (*selector, string, error) {
	for _, k := range slices.Sorted(maps.Keys(ls.MatchLabels)) {
		if msgs := content.IsLabelKey(k); len(msgs) > 0 {
			return nil, ".matchLabels", fmt.Errorf("invalid label key %q: %s", k, strings.Join(msgs, "; "))
		}
		if v := ls.MatchLabels[k]; len(content.IsLabelValue(v)) > 0 {
			return nil, ".matchLabels", fmt.Errorf("invalid value %q for label %s: %s", v, k, strings.Join(content.IsLabelValue(v), "; "))
		}
	}
	for i, e := range ls.MatchExpressions {
		sub := fmt.Sprintf(".matchExpressions[%d]", i)
		op, ok := selectorOps[e.Operator]
		if !ok {
			return nil, sub + ".operator", fmt.Errorf("%q is not a valid label selector operator", e.Operator)
		}
		if _, err := labels.NewRequirement(e.Key, op, slices.Clone(e.Values)); err != nil {
			return nil, sub, err
		}
	}
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return nil, "", err
	}
	s := &selector{
		sel:         sel,
		matchLabels: ls.MatchLabels,
		empty:       len(ls.MatchLabels)+len(ls.MatchExpressions) == 0,
		onlyName:    true,
	}
	for k := range ls.MatchLabels {
		if k != labelMetadataName {
			s.onlyName = false
		}
	}
	for _, e := range ls.MatchExpressions {
		s.exprKeys = append(s.exprKeys, e.Key)
		if e.Key != labelMetadataName {
			s.onlyName = false
		}
	}
	slices.Sort(s.exprKeys)
	s.exprKeys = slices.Compact(s.exprKeys)
	return s, "", nil
}

// projection is the exact-match label set Istio can select for a pod that a
// matchExpressions selector matches: matchLabels plus, for each expression
// key the pod carries, that key and the pod's value.
func (s *selector) projection(p *podInfo) map[string]string {
	out := make(map[string]string, len(s.matchLabels)+len(s.exprKeys))
	maps.Copy(out, s.matchLabels)
	for _, k := range s.exprKeys {
		if v, ok := p.labels[k]; ok {
			out[k] = v
		}
	}
	return out
}

// read returns the labels of set that the selector reads (its matchLabels
// and matchExpressions keys), with their values: what made it match.
func (s *selector) read(set labels.Set) map[string]string {
	out := map[string]string{}
	for k := range s.matchLabels {
		if v, ok := set[k]; ok {
			out[k] = v
		}
	}
	for _, k := range s.exprKeys {
		if v, ok := set[k]; ok {
			out[k] = v
		}
	}
	return out
}

// setString renders a label set as sorted "k=v" pairs joined by commas; it
// is both the projection's identity and the input of its name hash.
func setString(m map[string]string) string {
	pairs := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		pairs = append(pairs, k+"="+m[k])
	}
	return strings.Join(pairs, ",")
}

// exactSelector is a selector matching exactly the label set m.
func exactSelector(m map[string]string) *selector {
	return &selector{
		sel:         labels.SelectorFromSet(m),
		matchLabels: m,
		empty:       len(m) == 0,
	}
}
