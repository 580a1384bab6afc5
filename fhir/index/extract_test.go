package index

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fhirserver/fhirserver/fhir"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current extraction")

// Real Synthea resources (testdata/README.md) against reviewed golden rows.
func TestExtractSynthea(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "synthea-*.json"))
	if err != nil || len(files) < 15 {
		t.Fatalf("testdata: %d files, %v", len(files), err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".json"), func(t *testing.T) {
			body, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			typ, _, err := fhir.Envelope(body)
			if err != nil {
				t.Fatal(err)
			}
			e, err := Extract(typ, body)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(dump(e), "\n") + "\n"
			golden := strings.TrimSuffix(f, ".json") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./fhir/index -run TestExtractSynthea -update)", err)
			}
			if got != string(want) {
				t.Errorf("rows differ from %s:\n%s", golden, lineDiff(string(want), got))
			}
		})
	}
}

func lineDiff(want, got string) string {
	w, g := map[string]bool{}, map[string]bool{}
	for _, l := range strings.Split(want, "\n") {
		w[l] = true
	}
	for _, l := range strings.Split(got, "\n") {
		g[l] = true
	}
	var out []string
	for _, l := range strings.Split(want, "\n") {
		if !g[l] {
			out = append(out, "- "+l)
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if !w[l] {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// Hand-written resources for what Synthea does not show. want lists rows
// that must be there, absent rows that must not.
func TestExtractCases(t *testing.T) {
	cases := []struct {
		name     string
		resource string
		want     []string
		absent   []string
	}{
		{
			name:     "partial dates are ranges",
			resource: `{"resourceType":"Patient","id":"p","birthDate":"1970","deceasedDateTime":"2020-03"}`,
			want: []string{
				"date birthdate [1970-01-01T00:00:00Z,1971-01-01T00:00:00Z)",
				"date death-date [2020-03-01T00:00:00Z,2020-04-01T00:00:00Z)",
				"token deceased true",
			},
		},
		{
			name: "period with a zone and an open end",
			resource: `{"resourceType":"Encounter","id":"e","period":{"start":"2020-03","end":"2020-03-05T10:00:00+02:00"},
				"location":[{"period":{"start":"2020-01-01"},"location":{"reference":"Location/l"}}]}`,
			want: []string{
				"date date [2020-03-01T00:00:00Z,2020-03-05T08:00:01Z)",
				"date location-period [2020-01-01T00:00:00Z,*)",
				"reference location Location/l",
			},
		},
		{
			name:     "dateTime without zone is UTC; fractions set the precision",
			resource: `{"resourceType":"Observation","effectiveDateTime":"2020-01-01T10:00:00","issued":"2020-01-01T10:00:00.25-05:00"}`,
			want: []string{
				"date date [2020-01-01T10:00:00Z,2020-01-01T10:00:01Z)",
			},
		},
		{
			name: "timing covers its events and bounds",
			resource: `{"resourceType":"Observation","effectiveTiming":{"event":["2020-01-05","2020-01-01T10:00:00Z"],
				"repeat":{"boundsPeriod":{"end":"2020-02"}}}}`,
			want: []string{"date date [*,2020-03-01T00:00:00Z)"}, // boundsPeriod has no start: open
		},
		{
			name:     "open timing bound",
			resource: `{"resourceType":"Observation","effectiveTiming":{"event":["2020-01-05"],"repeat":{"boundsPeriod":{"start":"2019"}}}}`,
			want:     []string{"date date [2019-01-01T00:00:00Z,*)"},
		},
		{
			name:     "choice types that are not dates are skipped",
			resource: `{"resourceType":"Condition","onsetString":"in childhood","abatementAge":{"value":40,"unit":"a"}}`,
			want:     []string{"string onset-info \"in childhood\" norm=\"in childhood\"", "quantity abatement-age 40 [39.5,40.5]"},
			absent:   []string{"date onset-date", "date abatement-date"},
		},
		{
			name: "quantity: comparator, Age, units",
			resource: `{"resourceType":"Observation","code":{"coding":[{"system":"http://loinc.org","code":"x"}]},
				"valueQuantity":{"value":5,"comparator":"<","unit":"mg","system":"http://unitsofmeasure.org","code":"mg"}}`,
			want: []string{
				"quantity value-quantity <5 [,5] http://unitsofmeasure.org|mg",
				"composite code-value-quantity code=http://loinc.org|x & value-quantity=<5 [,5] http://unitsofmeasure.org|mg",
			},
		},
		{
			name:     "quantity: Age through as(Age)",
			resource: `{"resourceType":"Condition","onsetAge":{"value":3.5,"system":"http://unitsofmeasure.org","code":"a"}}`,
			want:     []string{"quantity onset-age 3.5 [3.45,3.55] http://unitsofmeasure.org|a"},
		},
		{
			name:     "quantity: Money",
			resource: `{"resourceType":"ChargeItem","priceOverride":{"value":12.30,"currency":"EUR"}}`,
			want:     []string{"quantity price-override 12.30 [12.295,12.305] urn:iso:std:iso:4217|EUR"},
		},
		{
			name: "quantity: Range, and a composite with it",
			resource: `{"resourceType":"ActivityDefinition","useContext":[{"code":{"system":"http://terminology.hl7.org/CodeSystem/usage-context-type","code":"age"},
				"valueRange":{"low":{"value":18,"unit":"a","system":"http://unitsofmeasure.org","code":"a"},"high":{"value":65}}}]}`,
			want: []string{
				"quantity context-quantity  [18,65] http://unitsofmeasure.org|a",
				"composite context-type-quantity context-type=http://terminology.hl7.org/CodeSystem/usage-context-type|age & context-quantity= [18,65] http://unitsofmeasure.org|a",
				"token context-type http://terminology.hl7.org/CodeSystem/usage-context-type|age",
			},
		},
		{
			name:     "quantity: SampledData is not indexed",
			resource: `{"resourceType":"Observation","valueSampledData":{"origin":{"value":0},"period":1,"dimensions":1,"data":"1 2"}}`,
			absent:   []string{"quantity value-quantity"},
		},
		{
			name:     "number: decimal, Range, integer",
			resource: `{"resourceType":"RiskAssessment","prediction":[{"probabilityDecimal":0.25},{"probabilityRange":{"low":{"value":0.1},"high":{"value":0.2}}}]}`,
			want: []string{
				"number probability 0.25 [0.245,0.255]",
				"number probability  [0.1,0.2]",
			},
		},
		{
			name: "composite with %resource: MolecularSequence",
			resource: `{"resourceType":"MolecularSequence","referenceSeq":{"chromosome":{"coding":[{"system":"http://s","code":"1"}]},"windowStart":10,"windowEnd":20},
				"variant":[{"start":100,"end":101},{"start":200,"end":201}]}`,
			want: []string{
				"composite chromosome-variant-coordinate chromosome=http://s|1 & variant-start=100 & variant-end=101",
				"composite chromosome-variant-coordinate chromosome=http://s|1 & variant-start=200 & variant-end=201",
				"composite chromosome-window-coordinate chromosome=http://s|1 & window-start=10 & window-end=20",
				"number variant-start 100 [99.5,100.5]",
			},
			absent: []string{"composite chromosome-variant-coordinate chromosome=http://s|1 & variant-start=100 & variant-end=201"},
		},
		{
			name: "composite components come from the same component",
			resource: `{"resourceType":"Observation","code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},"component":[
				{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":120}},
				{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":80}}]}`,
			want: []string{
				"composite component-code-value-quantity component-code=http://loinc.org|8480-6 & component-value-quantity=120 [119.5,120.5]",
				"composite component-code-value-quantity component-code=http://loinc.org|8462-4 & component-value-quantity=80 [79.5,80.5]",
			},
			absent: []string{
				"composite component-code-value-quantity component-code=http://loinc.org|8480-6 & component-value-quantity=80 [79.5,80.5]",
				"composite code-value-quantity",
			},
		},
		{
			name: "references: kinds",
			resource: `{"resourceType":"Observation","id":"o","contained":[{"resourceType":"Patient","id":"c"}],
				"subject":{"reference":"Patient/1/_history/2"},
				"performer":[
					{"reference":"http://other.org/fhir/Practitioner/3"},
					{"reference":"urn:uuid:0b3c2d1e-0000-4000-8000-000000000000"},
					{"reference":"#c"},
					{"type":"Organization","identifier":{"system":"http://npi","value":"77"}},
					{"display":"only a name"}],
				"basedOn":[{"reference":"ServiceRequest?identifier=http://x|1"}],
				"focus":[{"reference":"Device/d1"}]}`,
			want: []string{
				"reference subject Patient/1 v=2",
				"reference patient Patient/1 v=2",
				"reference performer Practitioner/3 url=http://other.org/fhir/Practitioner/3",
				"reference performer url=urn:uuid:0b3c2d1e-0000-4000-8000-000000000000",
				"reference performer Organization/ identifier=http://npi|77",
				"reference based-on url=ServiceRequest?identifier=http://x|1",
				"reference focus Device/d1",
				"compartment Patient/1",
			},
			absent: []string{"compartment Practitioner/3", "reference performer Patient/c", "reference performer url=#c"},
		},
		{
			name: "references: canonical with version",
			resource: `{"resourceType":"PlanDefinition","relatedArtifact":[{"type":"depends-on","resource":"http://x.org/Library/lib|1.2"},
				{"type":"successor","resource":"http://x.org/PlanDefinition/next"}],"library":["http://x.org/Library/main"]}`,
			want: []string{
				"reference depends-on v=1.2 url=http://x.org/Library/lib",
				"reference depends-on url=http://x.org/Library/main",
				"reference successor url=http://x.org/PlanDefinition/next",
			},
		},
		{
			name: "tokens: identifier type, ContactPoint, boolean, code",
			resource: `{"resourceType":"Patient","id":"p","active":false,"gender":"other",
				"identifier":[{"system":"http://mrn","value":"42","type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}],"text":"Medical record"}}],
				"telecom":[{"system":"email","value":"a@example.org"},{"system":"phone","value":"+1 555"}]}`,
			want: []string{
				"token active false",
				"token gender other",
				"token identifier http://mrn|42 text=Medical record type=http://terminology.hl7.org/CodeSystem/v2-0203|MR",
				"token email email|a@example.org",
				"token phone phone|+1 555",
				"token telecom email|a@example.org",
				"token telecom phone|+1 555",
				"token _id p",
			},
			absent: []string{"token email phone|+1 555"},
		},
		{
			name: "tokens: text of a CodeableConcept",
			resource: `{"resourceType":"Condition","code":{"coding":[{"system":"http://snomed.info/sct","code":"1","display":"Ache"}],"text":"Headache"},
				"category":[{"text":"Problem"}]}`,
			want: []string{
				"token code http://snomed.info/sct|1 text=Ache",
				"token code  text=Headache",
				"token category  text=Problem",
			},
		},
		{
			name:     "patient not deceased",
			resource: `{"resourceType":"Patient","deceasedBoolean":false}`,
			want:     []string{"token deceased false"},
		},
		{
			name:     "strings: names with accents",
			resource: `{"resourceType":"Patient","name":[{"family":"Ærøskøbing","given":["Zoë","Jose\u0301"],"text":"Zoë Ærøskøbing"}]}`,
			want: []string{
				`string family "Ærøskøbing" norm="aeroskobing"`,
				`string given "Zoë" norm="zoe"`,
				"string given \"Jose\u0301\" norm=\"jose\"",
				`string name "Zoë Ærøskøbing" norm="zoe aeroskobing"`,
			},
		},
		{
			name: "uri and meta",
			resource: `{"resourceType":"ValueSet","url":"http://x.org/ValueSet/v","meta":{"lastUpdated":"2020-01-01T00:00:00.123456Z",
				"profile":["http://x.org/StructureDefinition/p"],"security":[{"system":"http://s","code":"R"}],"source":"http://src"}}`,
			want: []string{
				"uri url http://x.org/ValueSet/v",
				"uri _profile http://x.org/StructureDefinition/p",
				"uri _source http://src",
				"token _security http://s|R",
				"date _lastUpdated [2020-01-01T00:00:00.123456Z,2020-01-01T00:00:00.123457Z)",
			},
		},
		{
			name:     "special: Location near",
			resource: `{"resourceType":"Location","position":{"latitude":42.17310300000001,"longitude":-71.36375600000002}}`,
			want:     []string{"position near 42.17310300000001,-71.36375600000002"},
		},
		{
			name: "compartments",
			resource: `{"resourceType":"Observation","id":"o","subject":{"reference":"Patient/1"},"encounter":{"reference":"Encounter/3"},
				"performer":[{"reference":"Practitioner/2"},{"reference":"Patient/4"},{"reference":"RelatedPerson/5"},{"reference":"Organization/6"}],
				"device":{"reference":"Device/7"}}`,
			want: []string{
				"compartment Patient/1", "compartment Patient/4", "compartment Encounter/3",
				"compartment Practitioner/2", "compartment RelatedPerson/5", "compartment Device/7",
			},
			absent: []string{"compartment Organization/6"},
		},
		{
			name:     "compartments: a Patient and its links",
			resource: `{"resourceType":"Patient","id":"self","link":[{"other":{"reference":"Patient/other"},"type":"seealso"}],"generalPractitioner":[{"reference":"Practitioner/gp"}]}`,
			want:     []string{"compartment Patient/self", "compartment Patient/other", "compartment Practitioner/gp"},
		},
		{
			name:     "compartments: {def} and the resource's own compartment",
			resource: `{"resourceType":"RelatedPerson","id":"rp","patient":{"reference":"Patient/1"}}`,
			want:     []string{"compartment RelatedPerson/rp", "compartment Patient/1"},
		},
		{
			name:     "no id: no own compartment",
			resource: `{"resourceType":"Practitioner"}`,
			absent:   []string{"compartment"},
		},
		{
			name:     "Bundle: type and identifier, entry resources are not indexed",
			resource: `{"resourceType":"Bundle","type":"document","identifier":{"system":"http://b","value":"1"},"entry":[{"resource":{"resourceType":"Composition","id":"c"}}]}`,
			want:     []string{"token type document", "token identifier http://b|1"},
			absent:   []string{"reference composition"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			typ, _, err := fhir.Envelope([]byte(c.resource))
			if err != nil {
				t.Fatal(err)
			}
			e, err := Extract(typ, []byte(c.resource))
			if err != nil {
				t.Fatal(err)
			}
			rows := dump(e)
			have := map[string]bool{}
			for _, r := range rows {
				have[r] = true
			}
			for _, w := range c.want {
				if !have[w] {
					t.Errorf("missing row %q", w)
				}
			}
			for _, a := range c.absent {
				for _, r := range rows {
					if strings.HasPrefix(r, a) {
						t.Errorf("unexpected row %q", r)
					}
				}
			}
			if t.Failed() {
				t.Logf("rows:\n%s", strings.Join(rows, "\n"))
			}
		})
	}
}

func TestExtractErrors(t *testing.T) {
	cases := []struct{ typ, body, msg string }{
		{"Patient", `{"resourceType":"Observation"}`, "expected \"Patient\""},
		{"Nope", `{"resourceType":"Nope"}`, "not a resource type"},
		{"Resource", `{"resourceType":"Resource"}`, "not a resource type"},
		{"Patient", `{"resourceType":"Patient"`, "invalid JSON"},
		{"Patient", `[]`, "JSON object"},
		{"Patient", `{"resourceType":"Patient","birthDate":"1970-02-30"}`, "birthdate"},
		{"Observation", `{"resourceType":"Observation","effectivePeriod":{"start":"soon"}}`, "date"},
		{"Encounter", `{"resourceType":"Encounter","period":{"end":"2020-13"}}`, "date"},
	}
	for _, c := range cases {
		_, err := Extract(c.typ, []byte(c.body))
		if err == nil || fhir.KindOf(err) != fhir.KindInvalid || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("Extract(%s, %s) = %v; want an invalid error mentioning %q", c.typ, c.body, err, c.msg)
		}
	}
}

// Every expression of every type runs on a minimal resource without error,
// and on one whose elements have the wrong JSON shape without a panic.
func TestExtractEveryType(t *testing.T) {
	for _, typ := range fhir.ResourceTypes() {
		e, err := Extract(typ, []byte(`{"resourceType":"`+typ+`","id":"x"}`))
		if err != nil {
			t.Errorf("%s: %v", typ, err)
			continue
		}
		if len(e.Tokens) == 0 || e.Tokens[0].Code != "_id" {
			t.Errorf("%s: no _id row: %+v", typ, e.Tokens)
		}
	}
	odd := []string{`"x"`, `1`, `true`, `[]`, `{}`, `[1,"a",{}]`, `{"coding":"x","reference":1,"value":"y","start":3}`}
	for _, typ := range []string{"Observation", "Patient", "Encounter", "MolecularSequence", "Location", "RiskAssessment", "ChargeItem"} {
		for _, p := range fhir.SearchParams(typ) {
			el := strings.SplitN(strings.TrimPrefix(strings.Trim(p.Expression, "()"), typ+"."), ".", 2)[0]
			if f := strings.Fields(el); len(f) > 0 {
				el = f[0]
			}
			for _, v := range odd {
				body := `{"resourceType":"` + typ + `","` + el + `":` + v + `,"` + el + `Quantity":` + v + `}`
				if _, err := Extract(typ, []byte(body)); err != nil && fhir.KindOf(err) != fhir.KindInvalid {
					t.Errorf("%s: %v", body, err)
				}
			}
		}
	}
}

func TestNewExtractorWithExtraParam(t *testing.T) {
	eye, err := fhir.NewSearchParam(fhir.SearchParam{Code: "eye-colour", Base: "Patient", Type: fhir.SearchParamToken,
		Expression: "Patient.extension('http://example.org/eye-colour').value"})
	if err != nil {
		t.Fatal(err)
	}
	gender, err := fhir.NewSearchParam(fhir.SearchParam{Code: "gender", Base: "Patient", Type: fhir.SearchParamString, Expression: "Patient.gender"})
	if err != nil {
		t.Fatal(err)
	}
	x := NewExtractor(eye, gender)
	e, err := x.Extract("Patient", []byte(`{"resourceType":"Patient","gender":"female","extension":[{"url":"http://example.org/eye-colour","valueCode":"blue"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	rows := strings.Join(dump(e), "\n")
	for _, want := range []string{"token eye-colour blue", `string gender "female"`} {
		if !strings.Contains(rows, want) {
			t.Errorf("missing %q in\n%s", want, rows)
		}
	}
	if strings.Contains(rows, "token gender") {
		t.Errorf("the extra gender parameter should replace the registry one:\n%s", rows)
	}
}

func FuzzExtract(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "synthea-*.json"))
	for _, file := range files {
		b, _ := os.ReadFile(file)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		typ, _, err := fhir.Envelope(body)
		if err != nil || !fhir.IsResourceType(typ) {
			return
		}
		if _, err := Extract(typ, body); err != nil && fhir.KindOf(err) != fhir.KindInvalid {
			t.Fatalf("%v", err)
		}
	})
}
