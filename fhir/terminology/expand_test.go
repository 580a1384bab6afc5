package terminology

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/fhirserver/fhirserver/fhir"
)

// source is a server's stored terminology for Expand: ValueSets by
// canonical (url, url|version or ValueSet/id) and CodeSystems by url.
type source struct {
	valueSets   map[string]string
	codeSystems map[string]string
	reads       int
}

func (s *source) ValueSet(_ context.Context, canonical string) ([]byte, error) {
	s.reads++
	if b, ok := s.valueSets[canonical]; ok {
		return []byte(b), nil
	}
	return nil, nil
}

func (s *source) CodeSystem(_ context.Context, url, version string) ([]byte, error) {
	s.reads++
	if version != "" {
		url += "|" + version
	}
	if b, ok := s.codeSystems[url]; ok {
		return []byte(b), nil
	}
	return nil, nil
}

func vs(url, rest string) string {
	return `{"resourceType":"ValueSet","url":"` + url + `",` + rest + `}`
}

func inc(parts ...string) string {
	return `"compose":{"include":[` + strings.Join(parts, ",") + `]}`
}

func flt(system, op, value string) string {
	return `{"system":"` + system + `","filter":[{"property":"concept","op":"` + op + `","value":"` + value + `"}]}`
}

// The stored code system http://ex/colors: warm > red > crimson; warm >
// orange; cool > blue; and red also under bright (a polyhierarchy by
// repeating the concept).
const colors = `{"resourceType":"CodeSystem","url":"http://ex/colors","content":"complete","concept":[` +
	`{"code":"warm","concept":[{"code":"red","concept":[{"code":"crimson"}]},{"code":"orange"}]},` +
	`{"code":"cool","concept":[{"code":"blue"}]},` +
	`{"code":"bright","concept":[{"code":"red"}]}]}`

func TestExpand(t *testing.T) {
	tb := table(t, sample)
	src := &source{
		codeSystems: map[string]string{
			"http://ex/colors":   colors,
			"http://ex/parts":    `{"resourceType":"CodeSystem","url":"http://ex/parts","content":"complete","hierarchyMeaning":"part-of","concept":[{"code":"car","concept":[{"code":"wheel"}]}]}`,
			"http://ex/v|2":      `{"resourceType":"CodeSystem","url":"http://ex/v","version":"2","content":"complete","concept":[{"code":"two"}]}`,
			"http://ex/notprese": `{"resourceType":"CodeSystem","url":"http://ex/notprese","content":"not-present"}`,
		},
		valueSets: map[string]string{
			// Replaces the table's value set of that url.
			"http://ex/vs/mixed": vs("http://ex/vs/mixed", inc(`{"system":"http://ex/flat","concept":[{"code":"z"}]}`)),
		},
	}
	cases := []struct {
		name, body string
		want       []CodeSet
	}{
		{"concepts of two systems", inc(`{"system":"http://ex/b","concept":[{"code":"2"},{"code":"1"}]}`, `{"system":"http://ex/a","concept":[{"code":"9"}]}`),
			[]CodeSet{{"http://ex/a", []string{"9"}}, {"http://ex/b", []string{"1", "2"}}}},
		{"whole stored system", inc(`{"system":"http://ex/colors"}`),
			[]CodeSet{{"http://ex/colors", []string{"blue", "bright", "cool", "crimson", "orange", "red", "warm"}}}},
		{"whole spec system", inc(`{"system":"http://ex/flat"}`), []CodeSet{{"http://ex/flat", []string{"x", "y", "z"}}}},
		{"stored system of a version", inc(`{"system":"http://ex/v","version":"2"}`), []CodeSet{{"http://ex/v", []string{"two"}}}},
		{"=", inc(flt("http://ex/colors", "=", "red")), []CodeSet{{"http://ex/colors", []string{"red"}}}},
		{"= an unknown code", inc(flt("http://ex/colors", "=", "pink")), []CodeSet{}},
		{"in", inc(flt("http://ex/colors", "in", "red, blue,pink")), []CodeSet{{"http://ex/colors", []string{"blue", "red"}}}},
		{"not-in", inc(flt("http://ex/colors", "not-in", "red,blue,warm,cool")), []CodeSet{{"http://ex/colors", []string{"bright", "crimson", "orange"}}}},
		{"is-a", inc(flt("http://ex/colors", "is-a", "warm")), []CodeSet{{"http://ex/colors", []string{"crimson", "orange", "red", "warm"}}}},
		{"descendent-of", inc(flt("http://ex/colors", "descendent-of", "warm")), []CodeSet{{"http://ex/colors", []string{"crimson", "orange", "red"}}}},
		{"is-not-a", inc(flt("http://ex/colors", "is-not-a", "warm")), []CodeSet{{"http://ex/colors", []string{"blue", "bright", "cool"}}}},
		{"generalizes", inc(flt("http://ex/colors", "generalizes", "crimson")), []CodeSet{{"http://ex/colors", []string{"bright", "crimson", "red", "warm"}}}},
		{"filters ANDed", inc(`{"system":"http://ex/colors","filter":[{"property":"concept","op":"is-a","value":"warm"},{"property":"concept","op":"is-not-a","value":"red"}]}`),
			[]CodeSet{{"http://ex/colors", []string{"orange", "warm"}}}},
		{"is-a in the spec", inc(flt("http://ex/tree", "is-a", "b")), []CodeSet{{"http://ex/tree", []string{"b", "d"}}}},
		{"generalizes in the spec", inc(flt("http://ex/tree", "generalizes", "d")), []CodeSet{{"http://ex/tree", []string{"a", "b", "c", "d"}}}},
		{"is-not-a in the spec", inc(flt("http://ex/tree", "is-not-a", "a")), []CodeSet{{"http://ex/tree", []string{"e"}}}},
		{"include a spec value set", inc(`{"valueSet":["http://ex/vs/whole"]}`), []CodeSet{{"http://ex/flat", []string{"x", "y", "z"}}}},
		{"include a replaced one", inc(`{"valueSet":["http://ex/vs/mixed"]}`), []CodeSet{{"http://ex/flat", []string{"z"}}}},
		{"system and value set intersected", inc(`{"system":"http://ex/flat","concept":[{"code":"y"},{"code":"z"}],"valueSet":["http://ex/vs/whole"]}`),
			[]CodeSet{{"http://ex/flat", []string{"y", "z"}}}},
		{"exclude", `"compose":{"include":[{"system":"http://ex/flat"},{"system":"http://ex/tree"}],"exclude":[{"system":"http://ex/flat","concept":[{"code":"y"}]},` + flt("http://ex/tree", "is-a", "b") + `]}`,
			[]CodeSet{{"http://ex/flat", []string{"x", "z"}}, {"http://ex/tree", []string{"a", "c", "e"}}}},
		{"complete expansion, nested, abstract left out", `"expansion":{"total":4,"contains":[{"system":"http://ex/a","code":"g","abstract":true,"contains":[{"system":"http://ex/a","code":"1"},{"system":"http://ex/a","code":"2"}]},{"system":"http://ex/b","code":"3"}]},` + inc(`{"system":"http://ex/flat"}`),
			[]CodeSet{{"http://ex/a", []string{"1", "2"}}, {"http://ex/b", []string{"3"}}}},
		{"partial expansion: the compose", `"expansion":{"total":40,"contains":[{"system":"http://ex/a","code":"1"}]},` + inc(`{"system":"http://ex/flat"}`),
			[]CodeSet{{"http://ex/flat", []string{"x", "y", "z"}}}},
		{"empty", `"compose":{"include":[{"system":"http://ex/flat","concept":[{"code":"x"}]}],"exclude":[{"system":"http://ex/flat"}]}`, []CodeSet{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src.valueSets["http://ex/vs/test"] = vs("http://ex/vs/test", tc.body)
			got, err := tb.Expand(context.Background(), "http://ex/vs/test", src)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}

	t.Run("spec, when none is stored", func(t *testing.T) {
		got, err := tb.Expand(context.Background(), "http://ex/vs/whole", src)
		if err != nil || !reflect.DeepEqual(got, []CodeSet{{"http://ex/flat", []string{"x", "y", "z"}}}) {
			t.Fatalf("got %v, %v", got, err)
		}
		got, err = tb.Expand(context.Background(), "http://ex/vs/whole|1.0", nil)
		if err != nil || len(got) != 1 {
			t.Fatalf("without a source: got %v, %v", got, err)
		}
	})
}

func TestExpandErrors(t *testing.T) {
	tb := table(t, sample)
	chain := map[string]string{}
	for i := 0; i < 12; i++ {
		u := fmt.Sprintf("http://ex/vs/chain%d", i)
		chain[u] = vs(u, inc(fmt.Sprintf(`{"valueSet":["http://ex/vs/chain%d"]}`, i+1)))
	}
	wide := make([]string, 70)
	for i := range wide {
		wide[i] = `"http://ex/vs/leaf"`
	}
	for _, tc := range []struct {
		name, body string
		extra      map[string]string
		kind       fhir.Kind
		msg        string
	}{
		{"unknown", "", nil, fhir.KindInvalid, "value set http://ex/vs/test is not known here (no ValueSet with that url is stored on this server, and the FHIR R4 specification has none)"},
		{"neither", inc(`{"version":"1"}`), nil, fhir.KindInvalid, "value set http://ex/vs/test cannot be expanded here: compose.include[0]: it names neither a system nor a value set"},
		{"concepts and filters", inc(`{"system":"http://ex/flat","concept":[{"code":"x"}],"filter":[{"property":"concept","op":"=","value":"x"}]}`), nil, fhir.KindInvalid, "compose.include[0]: it has both concepts and filters"},
		{"no compose", `"status":"draft"`, nil, fhir.KindInvalid, "it has neither an expansion nor a compose"},
		{"partial expansion only", `"expansion":{"offset":20,"contains":[{"system":"http://ex/a","code":"1"}]}`, nil, fhir.KindNotSupported, "its expansion is partial"},
		{"system known nowhere", inc(`{"system":"http://loinc.org"}`), nil, fhir.KindNotSupported, "compose.include[0]: the concepts of code system http://loinc.org are not known here"},
		{"partial spec system", inc(`{"system":"http://ex/partial"}`), nil, fhir.KindNotSupported, "the concepts of code system http://ex/partial are not known here"},
		{"other property", inc(`{"system":"http://ex/flat","filter":[{"property":"status","op":"=","value":"active"}]}`), nil, fhir.KindNotSupported, "its filter (status = active) is not supported here"},
		{"other op", `"compose":{"include":[{"system":"http://ex/flat"}],"exclude":[` + flt("http://ex/flat", "regex", "x.*") + `]}`, nil, fhir.KindNotSupported,
			"compose.exclude[0]: its filter (concept regex x.*) is not supported here"},
		{"unknown code for is-a", inc(flt("http://ex/tree", "is-a", "zz")), nil, fhir.KindInvalid, `code system http://ex/tree has no code "zz"`},
		{"hierarchy not is-a", inc(flt("http://ex/parts", "is-a", "car")), nil, fhir.KindNotSupported, "the hierarchy of code system http://ex/parts is not is-a"},
		{"spec value set outside", inc(`{"valueSet":["http://ex/vs/outside"]}`), nil, fhir.KindNotSupported, "value set http://ex/vs/test cannot be expanded here: compose.include[0]: value set http://ex/vs/outside cannot be expanded without a terminology server"},
		{"self", inc(`{"valueSet":["http://ex/vs/test"]}`), nil, fhir.KindInvalid, "value set http://ex/vs/test includes itself (http://ex/vs/test → http://ex/vs/test)"},
		{"too deep", inc(`{"valueSet":["http://ex/vs/chain0"]}`), chain, fhir.KindNotSupported, "more than 8 deep"},
		{"too many reads", inc(`{"valueSet":[` + strings.Join(wide, ",") + `]}`), map[string]string{"http://ex/vs/leaf": vs("http://ex/vs/leaf", inc(`{"system":"http://ex/flat"}`))}, fhir.KindNotSupported, "reads more than 64 value sets and code systems"},
		{"too many concepts", inc(`{"system":"http://ex/a","concept":[` + strings.Repeat(`{"code":"x"},`, MaxCodes) + `{"code":"x"}]}`), nil, fhir.KindNotSupported, "value set http://ex/vs/test is too large to expand here (more than 10000 codes)"},
		{"not json", "", map[string]string{"http://ex/vs/test": "[1]"}, fhir.KindInvalid, "it is not a valid ValueSet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &source{valueSets: map[string]string{}, codeSystems: map[string]string{
				"http://ex/parts": `{"resourceType":"CodeSystem","url":"http://ex/parts","content":"complete","hierarchyMeaning":"part-of","concept":[{"code":"car","concept":[{"code":"wheel"}]}]}`,
			}}
			if tc.body != "" {
				src.valueSets["http://ex/vs/test"] = vs("http://ex/vs/test", tc.body)
			}
			for k, v := range tc.extra {
				src.valueSets[k] = v
			}
			got, err := tb.Expand(context.Background(), "http://ex/vs/test", src)
			if fhir.KindOf(err) != tc.kind || !strings.Contains(fhir.MessageOf(err), tc.msg) {
				t.Fatalf("got %v, %v; want a %s error with %q", got, err, tc.kind, tc.msg)
			}
		})
	}
}
