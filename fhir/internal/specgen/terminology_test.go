package specgen

import (
	"encoding/json"
	"strings"
	"testing"
)

// tinyTerminology builds tables from CodeSystem and ValueSet JSON.
func tinyTerminology(t *testing.T, resources ...string) *terminologyTables {
	t.Helper()
	tm := &terminologyTables{systems: map[string]*tsSystem{}, valueSets: map[string]*tsResource{}, expanded: map[string]*expansion{}}
	for _, src := range resources {
		var r tsResource
		if err := json.Unmarshal([]byte(src), &r); err != nil {
			t.Fatal(err)
		}
		if r.ResourceType == "CodeSystem" {
			cs, err := readCodeSystem(&r)
			if err != nil {
				t.Fatal(err)
			}
			tm.systems[r.URL] = cs
		} else {
			tm.valueSets[r.URL] = &r
		}
	}
	return tm
}

func codesOf(e *expansion) string {
	var out []string
	for c := range e.codes {
		out = append(out, c.code)
	}
	return strings.Join(sortedKeys(setOf(out)), " ")
}

func setOf(ss []string) map[string]bool {
	m := map[string]bool{}
	for _, s := range ss {
		m[s] = true
	}
	return m
}

func TestExpandValueSets(t *testing.T) {
	tm := tinyTerminology(t,
		// a > b > d, a > c, and d is also a child of c (v3 "child" property).
		`{"resourceType":"CodeSystem","url":"http://s","content":"complete","concept":[
			{"code":"a","concept":[{"code":"b","concept":[{"code":"d"}]},{"code":"c","property":[{"code":"child","valueCode":"d"}]}]},{"code":"e"}]}`,
		`{"resourceType":"CodeSystem","url":"http://sct","content":"not-present"}`,
		`{"resourceType":"ValueSet","url":"http://vs/all","compose":{"include":[{"system":"http://s"}]}}`,
		`{"resourceType":"ValueSet","url":"http://vs/isa-c","compose":{"include":[{"system":"http://s","filter":[{"property":"concept","op":"is-a","value":"c"}]}]}}`,
		`{"resourceType":"ValueSet","url":"http://vs/desc-a","compose":{"include":[{"system":"http://s","filter":[{"property":"concept","op":"descendent-of","value":"a"}]}]}}`,
		`{"resourceType":"ValueSet","url":"http://vs/not-b","compose":{"include":[{"system":"http://s","filter":[{"property":"concept","op":"is-not-a","value":"b"}]}]}}`,
		`{"resourceType":"ValueSet","url":"http://vs/up-d","compose":{"include":[{"system":"http://s","filter":[{"property":"concept","op":"generalizes","value":"d"}]}]}}`,
		`{"resourceType":"ValueSet","url":"http://vs/two-filters","compose":{"include":[{"system":"http://s","filter":[{"property":"concept","op":"is-a","value":"a"},{"property":"concept","op":"is-not-a","value":"b"}]}]}}`,
		`{"resourceType":"ValueSet","url":"http://vs/import-and","compose":{"include":[{"valueSet":["http://vs/all|1"],"system":"http://s","concept":[{"code":"e"},{"code":"a"}]}],"exclude":[{"system":"http://s","concept":[{"code":"a"}]}]}}`,
		`{"resourceType":"ValueSet","url":"http://vs/explicit-sct","compose":{"include":[{"system":"http://sct","concept":[{"code":"123"}]}]}}`,
		`{"resourceType":"ValueSet","url":"http://vs/sct-isa","compose":{"include":[{"system":"http://sct","filter":[{"property":"concept","op":"is-a","value":"1"}]}]}}`,
		`{"resourceType":"ValueSet","url":"http://vs/loinc","compose":{"include":[{"system":"http://loinc.org"}]}}`,
		`{"resourceType":"ValueSet","url":"http://vs/prop","compose":{"include":[{"system":"http://s","filter":[{"property":"colour","op":"=","value":"red"}]}]}}`,
		`{"resourceType":"ValueSet","url":"http://vs/regex","compose":{"include":[{"system":"http://s","filter":[{"property":"concept","op":"regex","value":"a"}]}]}}`,
		`{"resourceType":"ValueSet","url":"http://vs/no-code","compose":{"include":[{"system":"http://s","filter":[{"property":"concept","op":"is-a","value":"z"}]}]}}`,
		`{"resourceType":"ValueSet","url":"http://vs/cycle1","compose":{"include":[{"valueSet":["http://vs/cycle2"]}]}}`,
		`{"resourceType":"ValueSet","url":"http://vs/cycle2","compose":{"include":[{"valueSet":["http://vs/cycle1"]}]}}`,
		`{"resourceType":"ValueSet","url":"http://vs/bad-exclude","compose":{"include":[{"system":"http://s"}],"exclude":[{"valueSet":["http://vs/loinc"]}]}}`,
		`{"resourceType":"ValueSet","url":"http://vs/unknown-import","compose":{"include":[{"valueSet":["http://vs/nope"]}]}}`,
	)
	for url, want := range map[string]string{
		"http://vs/all":          "a b c d e",
		"http://vs/isa-c":        "c d",
		"http://vs/desc-a":       "b c d",
		"http://vs/not-b":        "a c e",
		"http://vs/up-d":         "a b c d",
		"http://vs/two-filters":  "a c",
		"http://vs/import-and":   "e",
		"http://vs/explicit-sct": "123",
	} {
		if e := tm.expand(url, nil); e.reason != "" || codesOf(e) != want {
			t.Errorf("%s: %q (reason %q), want %q", url, codesOf(e), e.reason, want)
		}
	}
	for url, want := range map[string]string{
		"http://vs/sct-isa":        "its filter (concept is-a 1) needs http://sct, a code system whose concepts the FHIR specification does not list",
		"http://vs/loinc":          "it includes every code of http://loinc.org, a code system that is not part of the FHIR specification",
		"http://vs/prop":           "on a property this server does not evaluate",
		"http://vs/regex":          "uses an operator this server does not evaluate",
		"http://vs/no-code":        "names a code that http://s does not have",
		"http://vs/cycle1":         "imports itself",
		"http://vs/bad-exclude":    "it excludes what cannot be expanded: it imports http://vs/loinc: it includes every code of http://loinc.org",
		"http://vs/unknown-import": "it imports http://vs/nope: it is not a value set of the FHIR specification",
	} {
		if e := tm.expand(url, nil); !strings.Contains(e.reason, want) {
			t.Errorf("%s: reason %q, want %q", url, e.reason, want)
		}
	}
	out, err := tm.encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"S\thttp://s\t1\t5\na\nb\t0\nc\t0\nd\t1,2\ne\n",
		"S\thttp://sct\t0\t1\n123\n",
		"V\thttp://vs/all\t\t1\n0\t0-4\n",
		"V\thttp://vs/not-b\t\t1\n0\t0,2,4\n",
		"X\thttp://vs/loinc\t\tit includes every code of http://loinc.org",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the table lacks %q:\n%s", want, out)
		}
	}
}

// The generator stops on what it cannot map.
func TestTerminologyRefuses(t *testing.T) {
	for name, src := range map[string]string{
		"duplicate code": `{"resourceType":"CodeSystem","url":"http://s","content":"complete","concept":[{"code":"a"},{"code":"a"}]}`,
		"unknown child":  `{"resourceType":"CodeSystem","url":"http://s","content":"complete","concept":[{"code":"a","property":[{"code":"child","valueCode":"x"}]}]}`,
		"tab in a code":  `{"resourceType":"CodeSystem","url":"http://s","content":"complete","concept":[{"code":"a\tb"}]}`,
		"no code":        `{"resourceType":"CodeSystem","url":"http://s","content":"complete","concept":[{"display":"x"}]}`,
	} {
		var r tsResource
		if err := json.Unmarshal([]byte(src), &r); err != nil {
			t.Fatal(err)
		}
		if _, err := readCodeSystem(&r); err == nil {
			t.Errorf("%s: readCodeSystem succeeded", name)
		}
	}
	tm := tinyTerminology(t,
		`{"resourceType":"CodeSystem","url":"http://s","content":"complete","concept":[{"code":"a"}]}`,
		`{"resourceType":"ValueSet","url":"http://vs/typo","compose":{"include":[{"system":"http://s","concept":[{"code":"b"}]}]}}`)
	tm.expand("http://vs/typo", nil)
	if _, err := tm.encode(); err == nil || !strings.Contains(err.Error(), "http://s|b") {
		t.Errorf("a listed code the complete system lacks: %v", err)
	}
}
