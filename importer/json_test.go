package importer

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzCompactValid checks that compactValid agrees with json.Compact on
// valid JSON.
func FuzzCompactValid(f *testing.F) {
	for _, s := range []string{
		`{}`, "{\n  \"a\" : [ 1 , 2.50 ,\t{\"b\" : \"x y\\\" z \"} ],\r\n \"c\":null }",
		`"  spaced  "`, ` [ true , false ] `, `{"reference": "urn:uuid:a", "v": 1e-7}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return
		}
		var want bytes.Buffer
		if err := json.Compact(&want, data); err != nil {
			t.Fatal(err)
		}
		if got := compactValid(nil, data); !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("compactValid(%q) = %q, want %q", data, got, want.Bytes())
		}
	})
}
