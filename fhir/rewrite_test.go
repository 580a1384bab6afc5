package fhir

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestRewriteReferences(t *testing.T) {
	refs := map[string]string{"urn:uuid:a": "Patient/1", "urn:oid:1.2": "Organization/o"}
	tests := []struct{ in, want string }{
		{`{"reference":"urn:uuid:a"}`, `{"reference":"Patient/1"}`},
		{`{"a":[{"b":{"reference":"urn:uuid:a","display":"urn:uuid:a"}}],"reference":"urn:oid:1.2"}`, `{"a":[{"b":{"reference":"Patient/1","display":"urn:uuid:a"}}],"reference":"Organization/o"}`},
		{`{"text":"\"reference\":\"urn:uuid:a\""}`, `{"text":"\"reference\":\"urn:uuid:a\""}`},
		{`{"reference":"urn:uuid:b"}`, `{"reference":"urn:uuid:b"}`},
		{`{"reference":"urn:uuid:\u0061"}`, `{"reference":"Patient/1"}`},
		{`{"reference":{"reference":"urn:uuid:a"}}`, `{"reference":{"reference":"Patient/1"}}`},
		{`{"x":1.000000000000000000001,"reference":"urn:uuid:a"}`, `{"x":1.000000000000000000001,"reference":"Patient/1"}`},
		{`{"list":["urn:uuid:a"],"reference":"urn:uuid:a"}`, `{"list":["urn:uuid:a"],"reference":"Patient/1"}`},
	}
	for _, tt := range tests {
		if got := RewriteReferences([]byte(tt.in), refs); string(got) != tt.want {
			t.Errorf("RewriteReferences(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
	in := []byte(`{"reference":"urn:uuid:zz"}`)
	if got := RewriteReferences(in, refs); &got[0] != &in[0] {
		t.Error("an unchanged body must be returned as is")
	}
}

func TestRewriteStrings(t *testing.T) {
	in := `{"resourceType":"Observation","text":{"div":"<div><a href=\"urn:uuid:a\">x</a> & more</div>"},` +
		`"extension":[{"url":"http://e","valueUri":"urn:uuid:a"}],"note":["urn:uuid:a","b"],"n":176.35499866729558,"é":"ü"}`
	var seen []string
	got := RewriteStrings([]byte(in), func(member, value []byte) (string, bool) {
		seen = append(seen, string(member)+"="+string(value))
		switch {
		case string(member) == "div":
			return strings.ReplaceAll(string(value), `"urn:uuid:a"`, `"Patient/1"`), true
		case string(value) == "urn:uuid:a":
			return "Patient/1", true
		}
		return "", false
	})
	want := `{"resourceType":"Observation","text":{"div":"<div><a href=\"Patient/1\">x</a> & more</div>"},` +
		`"extension":[{"url":"http://e","valueUri":"Patient/1"}],"note":["Patient/1","b"],"n":176.35499866729558,"é":"ü"}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	wantSeen := []string{"resourceType=Observation", `div=<div><a href="urn:uuid:a">x</a> & more</div>`,
		"url=http://e", "valueUri=urn:uuid:a", "=urn:uuid:a", "=b", "é=ü"}
	if !reflect.DeepEqual(seen, wantSeen) {
		t.Errorf("fn saw %q, want %q", seen, wantSeen)
	}
}

// FuzzRewriteStrings checks RewriteStrings against decoding: replacing
// every string value "x" by "y" gives the same document as doing it on the
// decoded value.
func FuzzRewriteStrings(f *testing.F) {
	for _, s := range []string{`{"a":"x","b":["x",{"x":"x"}],"c":"\"x\""}`, `["x"]`, `"x"`, `{"x":1}`, `{"s":"\u0078"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var buf bytes.Buffer
		if json.Compact(&buf, data) != nil {
			return
		}
		got := RewriteStrings(buf.Bytes(), func(_, v []byte) (string, bool) { return "y", string(v) == "x" })
		a, err := decodeNumbers(got)
		if err != nil {
			t.Fatalf("result is not JSON: %v: %s", err, got)
		}
		b, err := decodeNumbers(buf.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, replaceX(b)) {
			t.Fatalf("RewriteStrings(%s) = %s", buf.Bytes(), got)
		}
	})
}

func replaceX(v any) any {
	switch v := v.(type) {
	case string:
		if v == "x" {
			return "y"
		}
	case []any:
		for i := range v {
			v[i] = replaceX(v[i])
		}
	case map[string]any:
		for k := range v {
			v[k] = replaceX(v[k])
		}
	}
	return v
}

func decodeNumbers(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	err := d.Decode(&v)
	return v, err
}
