package specgen

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func tinyModel() *model {
	return &model{
		resourceTypes: []string{"Condition", "Observation", "Patient"},
		base: map[string]string{"Condition": "DomainResource", "Observation": "DomainResource",
			"Patient": "DomainResource", "DomainResource": "Resource", "Resource": ""},
	}
}

func TestSplitUnion(t *testing.T) {
	for expr, want := range map[string][]string{
		"":    nil,
		"A.b": {"A.b"},
		"(A.b as X) | B.c.where(d = 'x|y') | C.e[0]": {"(A.b as X)", "B.c.where(d = 'x|y')", "C.e[0]"},
		"name | alias":                    {"name", "alias"},
		"A.b.where((c | d).exists()) | E": {"A.b.where((c | d).exists())", "E"},
	} {
		got, err := splitUnion(expr)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("splitUnion(%q) = %q, %v; want %q", expr, got, err, want)
		}
	}
	for _, bad := range []string{"A.b)", "(A.b", "A.where(x = 'y)"} {
		if _, err := splitUnion(bad); err == nil {
			t.Errorf("splitUnion(%q) succeeded", bad)
		}
	}
}

func TestExpandRestrictsToBase(t *testing.T) {
	sp := &searchParameter{ID: "clinical-code", URL: "u", Code: "code", Type: "token", XPathUsage: "normal",
		Base:       []string{"Condition", "Observation"},
		Expression: "Condition.code | (Observation.code as CodeableConcept) | Observation.component.code"}
	ps, err := expand(sp, tinyModel(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].base != "Condition" || ps[0].expression != "Condition.code" ||
		ps[1].base != "Observation" || ps[1].expression != "(Observation.code as CodeableConcept) | Observation.component.code" {
		t.Errorf("expand: %+v", ps)
	}
	if !ps[0].multipleOr || !ps[0].multipleAnd {
		t.Error("absent multipleOr/multipleAnd must count as true")
	}
}

func TestExpandComponents(t *testing.T) {
	code := &searchParameter{ID: "c", URL: "http://x/c", Code: "code", Type: "token"}
	f := false
	sp := &searchParameter{ID: "cv", URL: "http://x/cv", Code: "code-value", Type: "composite", XPathUsage: "normal",
		Base: []string{"Observation"}, Expression: "Observation", MultipleOr: &f}
	sp.Component = append(sp.Component, struct {
		Definition string `json:"definition"`
		Expression string `json:"expression"`
	}{"http://x/c", "code"})
	ps, err := expand(sp, tinyModel(), map[string]*searchParameter{"http://x/c": code})
	if err != nil {
		t.Fatal(err)
	}
	if want := []component{{"http://x/c", "code", "token", "code"}}; !reflect.DeepEqual(ps[0].components, want) || ps[0].multipleOr {
		t.Errorf("components %+v, multipleOr %v", ps[0].components, ps[0].multipleOr)
	}
	if _, err := expand(sp, tinyModel(), nil); err == nil || !strings.Contains(err.Error(), "not a known SearchParameter") {
		t.Errorf("unresolved component: %v", err)
	}
}

// The generator stops on anything it cannot map.
func TestExpandRefusesWhatItCannotMap(t *testing.T) {
	ok := searchParameter{ID: "x", URL: "u", Code: "x", Type: "token", XPathUsage: "normal", Base: []string{"Patient"}, Expression: "Patient.x"}
	for name, mutate := range map[string]func(*searchParameter){
		"unknown type":        func(sp *searchParameter) { sp.Type = "colour" },
		"unknown base":        func(sp *searchParameter) { sp.Base = []string{"Nope"} },
		"part for another":    func(sp *searchParameter) { sp.Expression = "Patient.x | Condition.y" },
		"base without a part": func(sp *searchParameter) { sp.Base = []string{"Patient", "Condition"} },
		"relative, many bases": func(sp *searchParameter) {
			sp.Base = []string{"Patient", "Condition"}
			sp.Expression = "x | Condition.y"
		},
		"no expression":      func(sp *searchParameter) { sp.Expression = "" },
		"bad FHIRPath":       func(sp *searchParameter) { sp.Expression = "Patient.x + 1" },
		"unknown target":     func(sp *searchParameter) { sp.Type = "reference"; sp.Target = []string{"Nope"} },
		"target on a token":  func(sp *searchParameter) { sp.Target = []string{"Patient"} },
		"composite without":  func(sp *searchParameter) { sp.Type = "composite" },
		"unknown xpathUsage": func(sp *searchParameter) { sp.XPathUsage = "odd" },
		"variable lead":      func(sp *searchParameter) { sp.Expression = "%resource.x" },
		"chain":              func(sp *searchParameter) { sp.Chain = []string{"name"} },
		"generic mixed":      func(sp *searchParameter) { sp.Base = []string{"Resource", "Patient"}; sp.Expression = "Patient.x" },
	} {
		sp := ok
		mutate(&sp)
		if _, err := expand(&sp, tinyModel(), nil); err == nil {
			t.Errorf("%s: expand succeeded", name)
		}
	}
	if _, err := expand(&ok, tinyModel(), nil); err != nil {
		t.Errorf("the valid parameter: %v", err)
	}
}

func TestAddElement(t *testing.T) {
	m := &model{base: map[string]string{"Observation": "DomainResource"}, elements: map[string][]element{}}
	type ty = struct {
		Code      string `json:"code"`
		Extension []struct {
			URL      string `json:"url"`
			ValueURL string `json:"valueUrl"`
		} `json:"extension"`
	}
	for _, ed := range []elementDefinition{
		{Path: "Observation.component", Type: []ty{{Code: "BackboneElement"}}},
		{Path: "Observation.component.value[x]", Type: []ty{{Code: "Quantity"}, {Code: "string"}}},
		{Path: "Observation.component.referenceRange", ContentReference: "#Observation.referenceRange"},
	} {
		if err := m.addElement("Observation", ed); err != nil {
			t.Fatal(err)
		}
	}
	if m.base["Observation.component"] != "BackboneElement" {
		t.Errorf("backbone base: %v", m.base)
	}
	want := []element{{name: "value", choice: true, types: []string{"Quantity", "string"}},
		{name: "referenceRange", types: []string{"Observation.referenceRange"}}}
	if !reflect.DeepEqual(m.elements["Observation.component"], want) {
		t.Errorf("elements: %+v", m.elements["Observation.component"])
	}
	for _, bad := range []elementDefinition{
		{Path: "Observation.component.value[x]", Type: []ty{{Code: "Quantity"}}}, // defined twice
		{Path: "Observation.nope.x", Type: []ty{{Code: "string"}}},               // unknown parent
		{Path: "Observation.y"}, // no type
		{Path: "Observation.z", Type: []ty{{Code: "http://hl7.org/fhirpath/System.String"}}},
	} {
		if err := m.addElement("Observation", bad); err == nil {
			t.Errorf("addElement(%s) succeeded", bad.Path)
		}
	}
}

// Generate on a spec folder with a broken search parameter file fails
// instead of writing a partial registry.
func TestGenerateFailsOnBrokenSpec(t *testing.T) {
	real := filepath.Join("..", "..", "..", "..", "shared", "fhir-r4")
	if _, err := os.Stat(real); err != nil {
		t.Skipf("%s is absent (as in a fresh clone): %v", real, err)
	}
	dir := t.TempDir()
	entries, _ := os.ReadDir(real)
	for _, e := range entries {
		if e.Name() == "search-parameters.json" {
			continue
		}
		if err := os.Symlink(filepath.Join(mustAbs(t, real), e.Name()), filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.Join(real, "search-parameters.json"))
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(b), `"type" : "special"`, `"type" : "spatial"`, 1)
	if err := os.WriteFile(filepath.Join(dir, "search-parameters.json"), []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(dir); err == nil || !strings.Contains(err.Error(), "spatial") {
		t.Errorf("Generate on a broken file: %v", err)
	}
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
