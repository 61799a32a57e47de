package translate

import (
	"fmt"
	"hash/fnv"
	"strings"

	"k8s.io/apimachinery/pkg/api/validate/content"
)

const (
	namePrefix = "netpol-"
	// maxNameLength is the longest DNS subdomain, and so object name.
	maxNameLength = 253
	// labelValueKeep is how much of a long NetworkPolicy name its label
	// value keeps before the hash: 54 + "-" + 8 hex = 63.
	labelValueKeep = 54
)

// hash8 is the 8 hex digits of the FNV-1a 32-bit hash of s.
func hash8(s string) string {
	h := fnv.New32a()
	h.Write([]byte(s))
	return fmt.Sprintf("%08x", h.Sum32())
}

// policyName names the AuthorizationPolicy generated for NetworkPolicy np;
// projection is the projection's setString, empty for the single policy of
// a matchLabels or empty podSelector.
func policyName(np, projection string) string {
	name := namePrefix + np
	if projection != "" {
		name += "-" + hash8(projection)
	}
	return shorten(name, maxNameLength)
}

// shorten keeps name if it fits in limit, and otherwise cuts it and appends
// the hash of the whole name, so that distinct long names stay distinct.
// Dots and dashes at the cut are dropped to keep a valid DNS name.
func shorten(name string, limit int) string {
	if len(name) <= limit {
		return name
	}
	h := hash8(name)
	return strings.TrimRight(name[:limit-len(h)-1], ".-") + "-" + h
}

// labelValue is the netpol2authz.io/networkpolicy label value for a
// NetworkPolicy name: the name itself when it is a valid label value, else a
// cut name and its hash (the annotation carries the full name).
func labelValue(name string) string {
	if len(content.IsLabelValue(name)) == 0 {
		return name
	}
	h := hash8(name)
	keep := name
	if len(keep) > labelValueKeep {
		keep = keep[:labelValueKeep]
	}
	if v := keep + "-" + h; len(content.IsLabelValue(v)) == 0 {
		return v
	}
	return h
}
