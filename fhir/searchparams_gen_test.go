package fhir

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/fhirserver/fhirserver/fhir/internal/specgen"
)

// specDir is where the FHIR R4 definition files live in a development
// checkout: ../shared/fhir-r4 next to the repository.
var specDir = filepath.Join("..", "..", "shared", "fhir-r4")

func needSpec(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(specDir, "search-parameters.json")); err != nil {
		t.Skipf("%s is absent (as in a fresh clone), so the generated files cannot be checked against the spec: %v", specDir, err)
	}
}

// The committed *_gen.go files are exactly what the generator makes now.
func TestGeneratedFilesUpToDate(t *testing.T) {
	needSpec(t)
	files, err := specgen.Generate(specDir)
	if err != nil {
		t.Fatal(err)
	}
	committed, _ := filepath.Glob("*_gen.go")
	var want []string
	for name := range files {
		want = append(want, name)
	}
	sort.Strings(want)
	if !reflect.DeepEqual(committed, want) {
		t.Errorf("generated files on disk %v, generator makes %v", committed, want)
	}
	for _, name := range want {
		got, err := os.ReadFile(name)
		if err != nil {
			t.Errorf("%s: %v (run go generate ./fhir)", name, err)
			continue
		}
		if !bytes.Equal(got, files[name]) {
			t.Errorf("%s is stale (run go generate ./fhir): %s", name, firstDiff(got, files[name]))
		}
	}
}

func firstDiff(a, b []byte) string {
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := 0; i < len(al) && i < len(bl); i++ {
		if al[i] != bl[i] {
			return "line " + strconv.Itoa(i+1) + ": committed " + al[i] + " | generated " + bl[i]
		}
	}
	return "lengths differ: " + strconv.Itoa(len(al)) + " vs " + strconv.Itoa(len(bl)) + " lines"
}

// The registry against the numbers in ../shared/fhir-r4/README.md. These
// need no spec files: they check the committed generated code.
func TestSearchParamCounts(t *testing.T) {
	all := AllSearchParams()
	if len(all) != 1706 {
		t.Errorf("%d registry entries, want 1706 (one per base and code)", len(all))
	}
	byID := map[string]*SearchParam{}
	bases := map[string]int{}
	basesOf := map[string]int{}
	for _, p := range all {
		if q, ok := byID[p.ID]; ok && (q.Type != p.Type || q.Code != p.Code || q.URL != p.URL) {
			t.Errorf("%s: entries disagree", p.ID)
		}
		byID[p.ID] = p
		bases[p.Base]++
		basesOf[p.ID]++
	}
	if len(byID) != 1375 {
		t.Errorf("%d SearchParameters, want 1375", len(byID))
	}
	types := map[SearchParamType]int{}
	multi := 0
	for id, p := range byID {
		types[p.Type]++
		if basesOf[id] > 1 {
			multi++
		}
	}
	wantTypes := map[SearchParamType]int{
		SearchParamToken: 536, SearchParamReference: 472, SearchParamString: 133, SearchParamDate: 109,
		SearchParamComposite: 46, SearchParamURI: 45, SearchParamQuantity: 27, SearchParamNumber: 6, SearchParamSpecial: 1,
	}
	if !reflect.DeepEqual(types, wantTypes) {
		t.Errorf("types %v, want %v", types, wantTypes)
	}
	if multi != 37 || basesOf["clinical-patient"] != 32 {
		t.Errorf("%d multi-base parameters (want 37), clinical-patient has %d bases (want 32)", multi, basesOf["clinical-patient"])
	}
	if len(bases) != 135 || bases["Resource"] != 8 || bases["DomainResource"] != 1 {
		t.Errorf("%d bases (want 135), Resource %d (want 8), DomainResource %d (want 1)", len(bases), bases["Resource"], bases["DomainResource"])
	}
	for typ, want := range map[string]int{
		"Patient": 23, "Observation": 38, "Encounter": 23, "Condition": 21, "Practitioner": 17,
		"Bundle": 5, "Location": 15, "MolecularSequence": 13,
	} {
		if bases[typ] != want {
			t.Errorf("%s has %d own parameters, want %d", typ, bases[typ], want)
		}
	}
	var genericOnly []string
	for _, rt := range ResourceTypes() {
		if bases[rt] == 0 {
			genericOnly = append(genericOnly, rt)
		}
	}
	want := "Binary BiologicallyDerivedProduct CatalogEntry MedicinalProductIngredient MedicinalProductManufactured " +
		"ObservationDefinition OperationOutcome Parameters SubstanceNucleicAcid SubstancePolymer SubstanceProtein " +
		"SubstanceReferenceInformation SubstanceSourceMaterial"
	if got := strings.Join(genericOnly, " "); got != want {
		t.Errorf("types with only generic parameters:\n got %s\nwant %s", got, want)
	}
}

// Per-type counts straight from search-parameters.json, read independently
// of the generator.
func TestSearchParamCountsMatchSpec(t *testing.T) {
	needSpec(t)
	var bundle struct {
		Entry []struct {
			Resource struct {
				ID   string   `json:"id"`
				Code string   `json:"code"`
				Base []string `json:"base"`
			} `json:"resource"`
		} `json:"entry"`
	}
	b, err := os.ReadFile(filepath.Join(specDir, "search-parameters.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &bundle); err != nil {
		t.Fatal(err)
	}
	if len(bundle.Entry) != 1375 {
		t.Errorf("the file has %d SearchParameters, want 1375", len(bundle.Entry))
	}
	want := map[string]int{}
	for _, e := range bundle.Entry {
		for _, base := range e.Resource.Base {
			want[base]++
			if p, ok := LookupSearchParam(base, e.Resource.Code); !ok || p.ID != e.Resource.ID || p.Base != base {
				t.Errorf("LookupSearchParam(%s, %s) = %v, %v; want %s", base, e.Resource.Code, p, ok, e.Resource.ID)
			}
		}
	}
	got := map[string]int{}
	for _, p := range AllSearchParams() {
		got[p.Base]++
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("per-base counts differ from the file")
	}
	for _, rt := range ResourceTypes() {
		n := want[rt] + want["Resource"]
		if rt != "Binary" && rt != "Bundle" && rt != "Parameters" {
			n += want["DomainResource"]
		}
		if len(SearchParams(rt)) != n {
			t.Errorf("SearchParams(%s) has %d entries, want %d", rt, len(SearchParams(rt)), n)
		}
	}
}

func TestLookupSearchParam(t *testing.T) {
	cases := []struct {
		typ, code string
		ok        bool
		base      string
		expr      string
	}{
		{"Observation", "patient", true, "Observation", "Observation.subject.where(resolve() is Patient)"},
		{"Condition", "code", true, "Condition", "Condition.code"},
		{"MedicationRequest", "code", true, "MedicationRequest", "(MedicationRequest.medication as CodeableConcept)"},
		{"InsurancePlan", "name", true, "InsurancePlan", "name | alias"},
		{"Observation", "value-quantity", true, "Observation", "(Observation.value as Quantity) | (Observation.value as SampledData)"},
		{"Observation", "_id", true, "Resource", "Resource.id"},
		{"Patient", "_lastUpdated", true, "Resource", "Resource.meta.lastUpdated"},
		{"Patient", "_text", true, "DomainResource", ""},
		{"Binary", "_text", false, "", ""},
		{"Binary", "_id", true, "Resource", "Resource.id"},
		{"Resource", "_id", true, "Resource", "Resource.id"},
		{"Patient", "nonsense", false, "", ""},
		{"NotAType", "_id", false, "", ""},
		{"Patient", "deceased", true, "Patient", "Patient.deceased.exists() and Patient.deceased != false"},
		{"Bundle", "composition", true, "Bundle", "Bundle.entry[0].resource"},
	}
	for _, c := range cases {
		p, ok := LookupSearchParam(c.typ, c.code)
		if ok != c.ok {
			t.Errorf("LookupSearchParam(%s, %s) ok = %v", c.typ, c.code, ok)
			continue
		}
		if !ok {
			continue
		}
		if p.Base != c.base || p.Expression != c.expr {
			t.Errorf("LookupSearchParam(%s, %s) = base %s expr %q; want %s %q", c.typ, c.code, p.Base, p.Expression, c.base, c.expr)
		}
		if (p.Compiled() == nil) != (p.Expression == "") {
			t.Errorf("%s/%s: compiled expression missing", c.typ, c.code)
		}
	}

	p, _ := LookupSearchParam("Observation", "code-value-quantity")
	want := []SearchParamComponent{
		{Definition: "http://hl7.org/fhir/SearchParameter/clinical-code", Code: "code", Type: SearchParamToken, Expression: "code"},
		{Definition: "http://hl7.org/fhir/SearchParameter/Observation-value-quantity", Code: "value-quantity", Type: SearchParamQuantity, Expression: "value.as(Quantity)"},
	}
	if len(p.Components) != 2 || p.MultipleOr || !p.MultipleAnd {
		t.Fatalf("code-value-quantity: %+v", p)
	}
	for i, c := range p.Components {
		if c.Compiled() == nil {
			t.Errorf("component %d not compiled", i)
		}
		c.expr = nil
		if !reflect.DeepEqual(c, want[i]) {
			t.Errorf("component %d = %+v, want %+v", i, c, want[i])
		}
	}
	p, _ = LookupSearchParam("Encounter", "patient")
	if !reflect.DeepEqual(p.Targets, []string{"Patient", "Group"}) || p.ID != "clinical-patient" || p.URL != "http://hl7.org/fhir/SearchParameter/clinical-patient" {
		t.Errorf("Encounter patient: %+v", p)
	}
	p, _ = LookupSearchParam("Observation", "date")
	if len(p.Comparators) != 9 || p.Type != SearchParamDate {
		t.Errorf("Observation date: %+v", p)
	}
	p, _ = LookupSearchParam("Patient", "phonetic")
	if p.XPathUsage != "phonetic" {
		t.Errorf("Patient phonetic: %+v", p)
	}
}

func TestAllExpressionsCompiled(t *testing.T) {
	var none []string
	for _, p := range AllSearchParams() {
		if p.Compiled() == nil {
			none = append(none, p.Base+"."+p.Code)
		}
		for _, c := range p.Components {
			if c.Compiled() == nil {
				t.Errorf("%s/%s component %s not compiled", p.Base, p.Code, c.Code)
			}
		}
	}
	if got := strings.Join(none, " "); got != "DomainResource._text Resource._content Resource._query" {
		t.Errorf("parameters without an expression: %s", got)
	}
}

func TestSearchParamsIsACopy(t *testing.T) {
	a := SearchParams("Patient")
	a[0] = nil
	if SearchParams("Patient")[0] == nil {
		t.Error("SearchParams shares its slice")
	}
	types := ResourceTypes()
	types[0] = "x"
	if ResourceTypes()[0] != "Account" {
		t.Error("ResourceTypes shares its slice")
	}
	ps := CompartmentParams("Patient", "Observation")
	ps[0] = "x"
	if CompartmentParams("Patient", "Observation")[0] != "subject" {
		t.Error("CompartmentParams shares its slice")
	}
	if SearchParams("NotAType") != nil {
		t.Error("SearchParams of an unknown type")
	}
	if n := len(SearchParams("Resource")); n != 8 {
		t.Errorf("SearchParams(Resource) has %d entries, want 8", n)
	}
	if n := len(SearchParams("DomainResource")); n != 9 {
		t.Errorf("SearchParams(DomainResource) has %d entries, want 9", n)
	}
}

func TestResourceTypes(t *testing.T) {
	types := ResourceTypes()
	if len(types) != 146 || !sort.StringsAreSorted(types) {
		t.Fatalf("%d types, sorted %v", len(types), sort.StringsAreSorted(types))
	}
	for name, want := range map[string]bool{
		"Patient": true, "Observation": true, "Binary": true, "Parameters": true, "Bundle": true,
		"Resource": false, "DomainResource": false, "MetadataResource": false, "patient": false, "Quantity": false, "": false,
	} {
		if IsResourceType(name) != want {
			t.Errorf("IsResourceType(%q) = %v", name, !want)
		}
	}
}

func TestCompartments(t *testing.T) {
	if got := strings.Join(CompartmentTypes(), " "); got != "Device Encounter Patient Practitioner RelatedPerson" {
		t.Errorf("CompartmentTypes() = %s", got)
	}
	for c, want := range map[string][2]int{
		"Patient": {66, 100}, "Encounter": {25, 25}, "RelatedPerson": {32, 40}, "Practitioner": {59, 88}, "Device": {32, 49},
	} {
		members := CompartmentMembers(c)
		params := 0
		for _, m := range members {
			params += len(CompartmentParams(c, m))
		}
		if len(members) != want[0] || params != want[1] || !sort.StringsAreSorted(members) {
			t.Errorf("%s compartment: %d members, %d params; want %d, %d", c, len(members), params, want[0], want[1])
		}
	}
	for _, c := range []struct {
		compartment, typ, want string
	}{
		{"Patient", "Observation", "subject performer"},
		{"Patient", "Patient", "link"},
		{"Patient", "Practitioner", ""},
		{"Patient", "AllergyIntolerance", "patient recorder asserter"},
		{"Practitioner", "Practitioner", "{def}"},
		{"Encounter", "Encounter", "{def}"},
		{"Encounter", "Observation", "encounter"},
		{"Nope", "Observation", ""},
	} {
		if got := strings.Join(CompartmentParams(c.compartment, c.typ), " "); got != c.want {
			t.Errorf("CompartmentParams(%s, %s) = %q, want %q", c.compartment, c.typ, got, c.want)
		}
	}
	// Every compartment param names a search parameter of the member type.
	for _, c := range CompartmentTypes() {
		for _, m := range CompartmentMembers(c) {
			for _, code := range CompartmentParams(c, m) {
				if code == "{def}" {
					continue
				}
				if _, ok := LookupSearchParam(m, code); !ok {
					t.Errorf("%s compartment: %s has no parameter %s", c, m, code)
				}
			}
		}
	}
}

func TestTypeModel(t *testing.T) {
	m := TypeModel()
	cases := []struct {
		typ, name string
		types     string
		keys      string
	}{
		{"Observation", "value", "Quantity CodeableConcept string boolean integer Range Ratio SampledData time dateTime Period",
			"valueQuantity valueCodeableConcept valueString valueBoolean valueInteger valueRange valueRatio valueSampledData valueTime valueDateTime valuePeriod"},
		{"Observation", "component", "Observation.component", "component"},
		{"Observation", "id", "string", "id"},
		{"Observation.component", "extension", "Extension", "extension"},
		{"Observation.component", "modifierExtension", "Extension", "modifierExtension"},
		{"Age", "value", "decimal", "value"},
		{"Timing", "repeat", "Timing.repeat", "repeat"},
		{"Questionnaire.item", "item", "Questionnaire.item", "item"},
		{"Bundle.entry", "resource", "Resource", "resource"},
	}
	for _, c := range cases {
		el, ok := m.Element(c.typ, c.name)
		if !ok || strings.Join(el.Types, " ") != c.types || strings.Join(el.Keys, " ") != c.keys {
			t.Errorf("Element(%s, %s) = %v %v", c.typ, c.name, el, ok)
		}
	}
	if _, ok := m.Element("Observation", "valueQuantity"); ok {
		t.Error("valueQuantity is a JSON key, not an element")
	}
	for typ, want := range map[string]string{
		"Patient": "DomainResource", "DomainResource": "Resource", "Resource": "", "Bundle": "Resource",
		"Age": "Quantity", "SimpleQuantity": "Quantity", "code": "string", "positiveInt": "integer",
		"Observation.component": "BackboneElement", "Timing.repeat": "Element", "Element": "",
	} {
		if got := m.BaseType(typ); got != want {
			t.Errorf("BaseType(%s) = %q, want %q", typ, got, want)
		}
	}
}

func TestNewSearchParam(t *testing.T) {
	def := SearchParam{Code: "eye-colour", Base: "Patient", Type: SearchParamToken,
		Expression: "Patient.extension('http://example.org/eye-colour').value", Targets: []string{"x"}}
	p, err := NewSearchParam(def)
	if err != nil || p.Compiled() == nil {
		t.Fatalf("NewSearchParam: %v", err)
	}
	def.Targets[0] = "changed"
	if p.Targets[0] != "x" {
		t.Error("NewSearchParam shares the Targets slice")
	}
	for _, bad := range []SearchParam{
		{Code: "a", Base: "Patient", Type: SearchParamToken, Expression: "Patient.name +"},
		{Code: "a", Base: "Patient", Type: "colour"},
		{Base: "Patient", Type: SearchParamToken},
		{Code: "a", Base: "Patient", Type: SearchParamComposite},
		{Code: "a", Base: "Patient", Type: SearchParamComposite, Components: []SearchParamComponent{{Code: "b", Expression: "x +"}}},
	} {
		if _, err := NewSearchParam(bad); err == nil || KindOf(err) != KindInvalid {
			t.Errorf("NewSearchParam(%+v) = %v, want an invalid error", bad, err)
		}
	}
}
