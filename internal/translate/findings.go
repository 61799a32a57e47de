package translate

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// severities is the one place that says how serious each finding type is.
// A type missing here is a Warning.
var severities = map[FindingType]Severity{
	NoPodsSelected:     SeverityInfo,
	AdminPolicyApplies: SeverityInfo,
	WaypointApplies:    SeverityInfo,
	InvalidAnnotation:  SeverityError,
	InvalidPolicy:      SeverityError,
	Conflict:           SeverityError,
}

// SeverityOf returns the severity findings of type t carry.
func SeverityOf(t FindingType) Severity {
	if s, ok := severities[t]; ok {
		return s
	}
	return SeverityWarning
}

// findingList collects the findings of one translation.
type findingList []Finding

func (l *findingList) add(t FindingType, msg string, objs ...ObjectRef) {
	*l = append(*l, Finding{Type: t, Severity: SeverityOf(t), Message: msg, Objects: objs})
}

// sorted returns the findings with their objects sorted and de-duplicated,
// ordered by type then message, exact duplicates removed. It sorts the
// Objects slices in place: they must belong to this list alone (see clone).
func (l findingList) sorted() []Finding {
	if len(l) == 0 {
		return nil
	}
	out := make([]Finding, 0, len(l))
	for _, f := range l {
		slices.SortFunc(f.Objects, compareObjectRef)
		f.Objects = slices.Compact(f.Objects)
		if len(f.Objects) == 0 {
			f.Objects = nil
		}
		out = append(out, f)
	}
	slices.SortFunc(out, compareFinding)
	return slices.CompactFunc(out, func(a, b Finding) bool { return compareFinding(a, b) == 0 })
}

// clone copies the list and its Objects, for findings shared by several
// translations (those of a namespace's annotations).
func (l findingList) clone() findingList {
	out := make(findingList, len(l))
	for i, f := range l {
		f.Objects = slices.Clone(f.Objects)
		out[i] = f
	}
	return out
}

func compareObjectRef(a, b ObjectRef) int {
	return cmp.Or(
		cmp.Compare(a.Kind, b.Kind),
		cmp.Compare(a.Namespace, b.Namespace),
		cmp.Compare(a.Name, b.Name),
	)
}

func compareFinding(a, b Finding) int {
	return cmp.Or(
		cmp.Compare(a.Type, b.Type),
		cmp.Compare(a.Message, b.Message),
		cmp.Compare(a.Severity, b.Severity),
		slices.CompareFunc(a.Objects, b.Objects, compareObjectRef),
	)
}

// maxListed bounds the names a message lists; Objects stay complete.
const maxListed = 10

// nameList renders names for a message: "a, b, c", or the first maxListed
// and "and N more".
func nameList(names []string) string {
	if len(names) <= maxListed {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:maxListed], ", "), len(names)-maxListed)
}

// plural picks the singular or plural form of a noun for n items.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// pick returns one when the subject is singular and many otherwise.
func pick(singular bool, one, many string) string {
	if singular {
		return one
	}
	return many
}

func npRef(namespace, name string) ObjectRef {
	return ObjectRef{Kind: "NetworkPolicy", Namespace: namespace, Name: name}
}

func namespaceRef(name string) ObjectRef {
	return ObjectRef{Kind: "Namespace", Name: name}
}
