package manifest

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// cmpOpts compare Snapshots: netip.Addr has unexported fields.
var cmpOpts = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmpopts.EquateEmpty(),
}

// decodeYAML decodes named YAML texts (name, text, name, text...) and fails
// the test on errors.
func decodeYAML(t *testing.T, o Options, nameText ...string) *Result {
	t.Helper()
	res, err := Decode(inputs(nameText...), o)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return res
}

func inputs(nameText ...string) []Input {
	var in []Input
	for i := 0; i+1 < len(nameText); i += 2 {
		in = append(in, Input{Name: nameText[i], Data: []byte(strings.TrimLeft(nameText[i+1], "\n"))})
	}
	return in
}

// errorLines returns the messages of a Decode or Load error, one per problem.
func errorLines(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error is %T, not Errors: %v", err, err)
	}
	var out []string
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}
