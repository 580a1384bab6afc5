package terminology

import (
	"bytes"
	"compress/gzip"
	"reflect"
	"strings"
	"testing"

	"github.com/fhirserver/fhirserver/fhir"
)

// A small table: a polyhierarchy (d has the parents b and c), a flat
// system, a partial one, and value sets of each kind.
const sample = "fhir-r4-terminology 1\n" +
	"S\thttp://ex/flat\t1\t3\nx\ny\nz\n" +
	"S\thttp://ex/partial\t0\t2\n100\n200\n" +
	"S\thttp://ex/tree\t1\t5\na\nb\t0\nc\t0\nd\t1,2\ne\n" +
	"V\thttp://ex/vs/mixed\t1.0\t2\n0\t0,2\n2\t1-3\n" +
	"X\thttp://ex/vs/outside\t2.0\tit includes every code of http://loinc.org\n" +
	"V\thttp://ex/vs/whole\t1.0\t1\n0\t0-2\n"

func table(t *testing.T, text string) *Table {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(text))
	zw.Close()
	return &Table{gz: buf.Bytes()}
}

func TestValueSet(t *testing.T) {
	tb := table(t, sample)
	for _, tc := range []struct {
		canonical string
		want      []CodeSet
		kind      fhir.Kind
		msg       string
	}{
		{canonical: "http://ex/vs/mixed", want: []CodeSet{{"http://ex/flat", []string{"x", "z"}}, {"http://ex/tree", []string{"b", "c", "d"}}}},
		{canonical: "http://ex/vs/whole|1.0", want: []CodeSet{{"http://ex/flat", []string{"x", "y", "z"}}}},
		{canonical: "http://ex/vs/whole|2.0", kind: fhir.KindInvalid, msg: "version 1.0, not 2.0"},
		{canonical: "http://ex/vs/nope", kind: fhir.KindInvalid, msg: "http://ex/vs/nope is not known"},
		{canonical: "http://ex/vs/outside", kind: fhir.KindNotSupported, msg: "http://ex/vs/outside cannot be expanded without a terminology server, which this server does not have: it includes every code of http://loinc.org"},
	} {
		got, err := tb.ValueSet(tc.canonical)
		if tc.kind != "" {
			if fhir.KindOf(err) != tc.kind || !strings.Contains(fhir.MessageOf(err), tc.msg) {
				t.Errorf("ValueSet(%s) = %v, want %s error with %q", tc.canonical, err, tc.kind, tc.msg)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ValueSet(%s) = %v, %v; want %v", tc.canonical, got, err, tc.want)
		}
	}
	// A whole range is shared with the table but capped: appending to it
	// cannot overwrite the table's next code.
	got, _ := tb.ValueSet("http://ex/vs/mixed")
	_ = append(got[1].Codes, "overwritten")
	if again, _ := tb.ValueSet("http://ex/vs/whole"); again[0].Codes[2] != "z" {
		t.Error("an append to an expansion changed the table")
	}
	if got, _ := tb.Below("http://ex/tree", "e"); !reflect.DeepEqual(got, []string{"e"}) {
		t.Errorf("Below(e) = %v after an append to an expansion", got)
	}
}

func TestBelowAbove(t *testing.T) {
	tb := table(t, sample)
	for _, tc := range []struct {
		above        bool
		system, code string
		want         []string
		kind         fhir.Kind
	}{
		{system: "http://ex/tree", code: "a", want: []string{"a", "b", "c", "d"}},
		{system: "http://ex/tree", code: "c", want: []string{"c", "d"}},
		{system: "http://ex/tree", code: "d", want: []string{"d"}},
		{system: "http://ex/tree", code: "e", want: []string{"e"}},
		{above: true, system: "http://ex/tree", code: "d", want: []string{"a", "b", "c", "d"}},
		{above: true, system: "http://ex/tree", code: "b", want: []string{"a", "b"}},
		{above: true, system: "http://ex/tree", code: "a", want: []string{"a"}},
		{system: "http://ex/flat", code: "y", want: []string{"y"}},
		{system: "http://ex/tree", code: "A", kind: fhir.KindInvalid},
		{system: "http://ex/partial", code: "100", kind: fhir.KindNotSupported},
		{above: true, system: "http://ex/none", code: "a", kind: fhir.KindNotSupported},
	} {
		f := tb.Below
		if tc.above {
			f = tb.Above
		}
		got, err := f(tc.system, tc.code)
		if tc.kind != "" {
			if fhir.KindOf(err) != tc.kind {
				t.Errorf("above %v %s|%s: %v, want a %s error", tc.above, tc.system, tc.code, err, tc.kind)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("above %v %s|%s = %v, %v; want %v", tc.above, tc.system, tc.code, got, err, tc.want)
		}
	}
}

// A damaged table is an internal error on every call, never a partial answer.
func TestDecodeRefusesDamage(t *testing.T) {
	for name, text := range map[string]string{
		"no magic":            "S\thttp://ex/flat\t1\t1\nx\n",
		"too few codes":       "fhir-r4-terminology 1\nS\thttp://ex/flat\t1\t3\nx\ny\n",
		"codes out of order":  "fhir-r4-terminology 1\nS\thttp://ex/flat\t1\t2\ny\nx\n",
		"parent out of range": "fhir-r4-terminology 1\nS\thttp://ex/flat\t1\t2\nx\ny\t2\n",
		"systems out of order": "fhir-r4-terminology 1\nS\thttp://ex/b\t1\t1\nx\n" +
			"S\thttp://ex/a\t1\t1\nx\n",
		"system after value sets": "fhir-r4-terminology 1\nS\thttp://ex/a\t1\t1\nx\nV\thttp://ex/v\t1\t1\n0\t0\n" +
			"S\thttp://ex/b\t1\t1\nx\n",
		"unknown system":   "fhir-r4-terminology 1\nS\thttp://ex/a\t1\t1\nx\nV\thttp://ex/v\t1\t1\n1\t0\n",
		"code beyond":      "fhir-r4-terminology 1\nS\thttp://ex/a\t1\t1\nx\nV\thttp://ex/v\t1\t1\n0\t0-1\n",
		"ranges unordered": "fhir-r4-terminology 1\nS\thttp://ex/a\t1\t3\nx\ny\nz\nV\thttp://ex/v\t1\t1\n0\t2,0\n",
		"missing groups":   "fhir-r4-terminology 1\nS\thttp://ex/a\t1\t1\nx\nV\thttp://ex/v\t1\t2\n0\t0\n",
		"value sets out of order": "fhir-r4-terminology 1\nX\thttp://ex/b\t1\twhy\n" +
			"X\thttp://ex/a\t1\twhy\n",
		"unknown line": "fhir-r4-terminology 1\nQ\tx\n",
	} {
		tb := table(t, text)
		if _, err := tb.ValueSet("http://ex/a"); fhir.KindOf(err) != fhir.KindInternal {
			t.Errorf("%s: ValueSet = %v, want an internal error", name, err)
		}
		if _, err := tb.Below("http://ex/a", "x"); fhir.KindOf(err) != fhir.KindInternal {
			t.Errorf("%s: Below = %v, want an internal error", name, err)
		}
	}
	if _, err := (&Table{gz: []byte("not gzip")}).ValueSet("x"); fhir.KindOf(err) != fhir.KindInternal {
		t.Errorf("not gzip: %v", err)
	}
}
