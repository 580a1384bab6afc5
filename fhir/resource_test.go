package fhir

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseObject(t *testing.T) {
	cases := []struct {
		name     string
		in       string
		keys     []string
		wantKind Kind
	}{
		{"simple", `{"a":1,"b":"x"}`, []string{"a", "b"}, ""},
		{"whitespace", " {\n \"a\" : [1, 2] ,\t\"b\" : {\"c\" : null} } ", []string{"a", "b"}, ""},
		{"strings with structure", `{"a":"}{][,:\"","b":["\\\"]",{"c":"}"}],"d":true}`, []string{"a", "b", "d"}, ""},
		{"escaped key", `{"a\u0062":1,"c\"d":2}`, []string{"ab", `c"d`}, ""},
		{"unicode", `{"name":"Montañez 山田"}`, []string{"name"}, ""},
		{"empty", `{}`, nil, ""},
		{"duplicate", `{"a":1,"a":2}`, nil, KindInvalid},
		{"duplicate after unescape", `{"a":1,"\u0061":2}`, nil, KindInvalid},
		{"array", `[1,2]`, nil, KindInvalid},
		{"string", `"x"`, nil, KindInvalid},
		{"trailing data", `{"a":1}{"b":2}`, nil, KindInvalid},
		{"truncated", `{"a":1`, nil, KindInvalid},
		{"not json", `{a:1}`, nil, KindInvalid},
		{"empty input", ``, nil, KindInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, err := ParseObject([]byte(c.in))
			if c.wantKind != "" {
				if KindOf(err) != c.wantKind {
					t.Fatalf("got %v, want kind %s", err, c.wantKind)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(o.Keys(), c.keys) && !(len(c.keys) == 0 && len(o.Keys()) == 0) {
				t.Fatalf("keys %q, want %q", o.Keys(), c.keys)
			}
			// Re-encoding gives the same JSON value, compactly.
			var want, got any
			if err := json.Unmarshal([]byte(c.in), &want); err != nil {
				t.Fatal(err)
			}
			out := o.Bytes()
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("Bytes is not JSON: %s", out)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip changed the value: %s", out)
			}
		})
	}
}

func TestStamp(t *testing.T) {
	at := time.Date(2024, 2, 29, 13, 14, 15, 123456789, time.FixedZone("x", 3600))
	in := `{"status":"final","meta":{"lastUpdated":"2001-01-01T00:00:00Z","tag":[{"code":"t"}],"versionId":"9"},"resourceType":"Observation","id":"old","valueQuantity":{"value":176.35499866729558000}}`
	out, err := Stamp([]byte(in), "new-id", 3, at)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"resourceType":"Observation","id":"new-id","meta":{"versionId":"3","lastUpdated":"2024-02-29T12:14:15.123456Z","tag":[{"code":"t"}]},"status":"final","valueQuantity":{"value":176.35499866729558000}}`
	if string(out) != want {
		t.Fatalf("got  %s\nwant %s", out, want)
	}
	// The content hash ignores id, versionId and lastUpdated.
	p1, _ := Prepare([]byte(in))
	p2, _ := Prepare(out)
	if string(p1.Hash) != string(p2.Hash) {
		t.Fatal("hash depends on server-managed fields")
	}
	p3, _ := Prepare([]byte(strings.Replace(in, "final", "amended", 1)))
	if string(p1.Hash) == string(p3.Hash) {
		t.Fatal("hash ignores content")
	}
}

func TestParseETag(t *testing.T) {
	for in, want := range map[string]int64{`W/"3"`: 3, `"12"`: 12, `w/"1"`: 1, `7`: 7} {
		if got, err := ParseETag(in); err != nil || got != want {
			t.Errorf("ParseETag(%s) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{`W/"0"`, `W/"x"`, ``, `W/""`, `*`} {
		if _, err := ParseETag(in); KindOf(err) != KindInvalid {
			t.Errorf("ParseETag(%s) accepted", in)
		}
	}
}
