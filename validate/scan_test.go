package validate

import (
	"encoding/json"
	"testing"
)

// FuzzScannerSyntax checks that the pre-pass accepts exactly the JSON that
// encoding/json accepts (unless it stopped early at the nesting limit).
func FuzzScannerSyntax(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":1}`, `{"a":[1,2,{"b":null}],"c":"\u00e9\n"}`, `[1]`, `"x"`, `-0.5e+10`,
		`{"a":01}`, `{"a":1.}`, `{"a":"\x"}`, `{"a" 1}`, `{"a":1,}`, `[1,]`, `{"a":tru}`,
		`  {"resourceType":"Patient"}  `, `{"a":"\ud800"}`, "{\"a\":\"\t\"}", `{"a":1}}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sc := scanner{buf: data}
		sc.scan()
		if sc.fatal != nil {
			return
		}
		if want, got := json.Valid(data), !sc.syntax; want != got {
			t.Fatalf("json.Valid=%v, scanner=%v for %q", want, got, data)
		}
	})
}
