package validate

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/fhirserver/fhirserver/fhir"
)

const obs = `"resourceType":"Observation","status":"final","code":{"text":"x"}`

func TestValidate(t *testing.T) {
	v, err := New()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		typ  string
		body string
		// want is empty for a valid body, else substrings of the message.
		want []string
		expr []string
	}{
		{name: "minimal patient", typ: "Patient", body: `{"resourceType":"Patient"}`},
		{name: "any type", body: `{"resourceType":"Organization","name":"x"}`},
		{name: "full observation", typ: "Observation", body: `{` + obs + `,"subject":{"reference":"Patient/1"},"effectiveDateTime":"2020-01-02T03:04:05+01:00","valueQuantity":{"value":176.35499866729558,"unit":"cm"}}`},
		{name: "urn uuid reference", typ: "Observation", body: `{` + obs + `,"subject":{"reference":"urn:uuid:0d2177ba-f67b-4f29-addb-91040de55388"}}`},
		{name: "contained with fragment reference", typ: "Observation", body: `{` + obs + `,"contained":[{"resourceType":"Patient","id":"p"}],"subject":{"reference":"#p"}}`},
		{name: "primitive extension", typ: "Patient", body: `{"resourceType":"Patient","birthDate":"1990-01-01","_birthDate":{"extension":[{"url":"http://x","valueString":"a"}]}}`},
		{name: "white space around", typ: "Patient", body: " \n{ \"resourceType\" : \"Patient\" ,\n \"active\" : true }\n"},

		{name: "empty body", typ: "Patient", body: ``, want: []string{"body is empty"}},
		{name: "invalid JSON", typ: "Patient", body: `{"resourceType":"Patient",}`, want: []string{"not valid JSON", "at byte"}},
		{name: "trailing data", typ: "Patient", body: `{"resourceType":"Patient"} x`, want: []string{"not valid JSON"}},
		{name: "not an object", typ: "Patient", body: `[{"resourceType":"Patient"}]`, want: []string{"must be a JSON object"}},
		{name: "missing resourceType", typ: "Patient", body: `{"id":"x"}`, want: []string{"missing resourceType"}, expr: []string{"resourceType"}},
		{name: "resourceType not a string", typ: "Patient", body: `{"resourceType":1}`, want: []string{"resourceType must be a string"}},
		{name: "unknown resourceType", typ: "", body: `{"resourceType":"Foo"}`, want: []string{`unknown resourceType "Foo"`}, expr: []string{"resourceType"}},
		{name: "wrong resourceType", typ: "Patient", body: `{` + obs + `}`, want: []string{`resourceType "Observation" does not match the expected "Patient"`}},
		{name: "unknown element", typ: "Patient", body: `{"resourceType":"Patient","foo":1}`, want: []string{`unknown field "foo" at Patient`}, expr: []string{"Patient.foo"}},
		{name: "unknown nested element", typ: "Patient", body: `{"resourceType":"Patient","name":[{"family":"x","middle":"y"}]}`, want: []string{`unknown field "middle" at Patient.name[0]`}, expr: []string{"Patient.name[0].middle"}},
		{name: "upper-case element", typ: "Patient", body: `{"resourceType":"Patient","Gender":"male"}`, want: []string{`unknown field "Gender" at Patient`}, expr: []string{"Patient.Gender"}},
		{name: "protobuf-only element", typ: "Observation", body: `{` + obs + `,"subject":{"patientId":"1"}}`, want: []string{`unknown field "patientId" at Observation.subject`}},
		{name: "unknown choice type", typ: "Observation", body: `{` + obs + `,"valueFoo":1}`, want: []string{`unknown field "valueFoo" at Observation`}},
		{name: "bad date", typ: "Patient", body: `{"resourceType":"Patient","birthDate":"1990-13-01"}`, want: []string{"expected date at Patient.birthDate", `"1990-13-01"`}, expr: []string{"Patient.birthDate"}},
		{name: "dateTime without zone", typ: "Patient", body: `{"resourceType":"Patient","deceasedDateTime":"2020-01-01T10:00:00"}`, want: []string{"expected datetime at Patient.deceasedDateTime"}},
		{name: "bad instant", typ: "Patient", body: `{"resourceType":"Patient","meta":{"lastUpdated":"2020-01-01"}}`, want: []string{"expected instant at Patient.meta.lastUpdated"}},
		{name: "string for boolean", typ: "Patient", body: `{"resourceType":"Patient","active":"yes"}`, want: []string{"expected boolean at Patient.active", `found "yes"`}},
		{name: "string for decimal", typ: "Observation", body: `{` + obs + `,"valueQuantity":{"value":"1.5"}}`, want: []string{"expected decimal at Observation.valueQuantity.value"}},
		{name: "number for string", typ: "Patient", body: `{"resourceType":"Patient","name":[{"given":["a",2]}]}`, want: []string{"expected string at Patient.name[0].given[1], found 2"}},
		{name: "object for array", typ: "Patient", body: `{"resourceType":"Patient","name":{"family":"x"}}`, want: []string{"expected array at Patient.name"}},
		{name: "integer out of range", typ: "Patient", body: `{"resourceType":"Patient","multipleBirthInteger":99999999999}`, want: []string{"expected integer at Patient.multipleBirthInteger"}},
		{name: "number out of range", typ: "Observation", body: `{` + obs + `,"valueQuantity":{"value":1e400}}`, want: []string{"could not be read"}},
		{name: "bad id", typ: "Patient", body: `{"resourceType":"Patient","id":"a b"}`, want: []string{"invalid id format at Patient.id"}, expr: []string{"Patient.id"}},
		{name: "bad code in choice", typ: "Observation", body: `{` + obs + `,"valueQuantity":{"value":1,"code":"a  b"}}`, want: []string{"invalid code format at Observation.valueQuantity.code"}, expr: []string{"Observation.valueQuantity.code"}},
		{name: "code outside required value set", typ: "Patient", body: `{"resourceType":"Patient","gender":"x"}`, want: []string{`code "x" at Patient.gender is not in the required value set`}},
		{name: "missing required element", typ: "Observation", body: `{"resourceType":"Observation","status":"final"}`, want: []string{`missing required field "code" at Observation`}, expr: []string{"Observation.code"}},
		{name: "two values for a choice", typ: "Observation", body: `{` + obs + `,"valueString":"a","valueBoolean":true}`, want: []string{"more than one value for value[x] at Observation"}},
		{name: "wrong reference target", typ: "Observation", body: `{` + obs + `,"subject":{"reference":"Medication/1"}}`, want: []string{"invalid reference to a Medication resource", "at Observation.subject"}},
		{name: "duplicate property", typ: "Patient", body: `{"resourceType":"Patient","id":"a","id":"b"}`, want: []string{`duplicate property "id" at Patient`}, expr: []string{"Patient.id"}},
		{name: "empty string", typ: "Patient", body: `{"resourceType":"Patient","name":[{"family":""}]}`, want: []string{"empty string at Patient.name[0].family"}},
		{name: "empty array", typ: "Patient", body: `{"resourceType":"Patient","name":[]}`, want: []string{"empty array at Patient.name"}},
		{name: "empty object", typ: "Observation", body: `{` + obs + `,"subject":{}}`, want: []string{"empty object at Observation.subject"}},
		{name: "null", typ: "Patient", body: `{"resourceType":"Patient","active":null}`, want: []string{"null value at Patient.active"}, expr: []string{"Patient.active"}},
		{name: "control character", typ: "Patient", body: `{"resourceType":"Patient","name":[{"family":"a\u0001b"}]}`, want: []string{"invalid characters", "Patient.name[0].family"}},
		{name: "contained unknown element", typ: "Patient", body: `{"resourceType":"Patient","contained":[{"resourceType":"Patient","bad":1}]}`, want: []string{`unknown field "bad" at Patient.contained[0]`}, expr: []string{"Patient.contained[0].bad"}},
		{name: "contained unknown type", typ: "Patient", body: `{"resourceType":"Patient","contained":[{"resourceType":"Fooo"}]}`, want: []string{`unknown resource type "Fooo" at Patient.contained[0]`}},
		{name: "contained missing required", typ: "Patient", body: `{"resourceType":"Patient","contained":[{"resourceType":"Observation","status":"final"}]}`, want: []string{`missing required field "code" at Patient.contained[0]`}, expr: []string{"Patient.contained[0].code"}},
		{name: "contained bad id", typ: "Patient", body: `{"resourceType":"Patient","contained":[{"resourceType":"Patient","id":"a b"}]}`, want: []string{"invalid id format at Patient.contained[0].id"}},
		{name: "bundle entry", typ: "Bundle", body: `{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","x":1}}]}`, want: []string{`unknown field "x" at Bundle.entry[0].resource`}},
		{name: "too deep", typ: "Patient", body: `{"resourceType":"Patient","extension":` + strings.Repeat(`[{"extension":`, 40) + `[]` + strings.Repeat(`}]`, 40) + `}`, want: []string{"nested more than 64 levels"}},
		{name: "several problems sorted by path", typ: "Patient", body: `{"resourceType":"Patient","gender":"x","active":"y","foo":1}`,
			want: []string{`expected boolean at Patient.active, found "y"; unknown field "foo" at Patient; code "x" at Patient.gender`},
			expr: []string{"Patient.active", "Patient.foo", "Patient.gender"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := v.Validate(tt.typ, []byte(tt.body))
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var fe *fhir.Error
			if !errors.As(err, &fe) {
				t.Fatalf("Validate = %v (%T), want a *fhir.Error", err, err)
			}
			if fe.Kind != fhir.KindInvalid {
				t.Errorf("kind = %s, want %s", fe.Kind, fhir.KindInvalid)
			}
			for _, w := range tt.want {
				if !strings.Contains(fe.Message, w) {
					t.Errorf("message %q does not contain %q", fe.Message, w)
				}
			}
			for _, leak := range []string{"jsonpbhelper", "proto", "jsoniter", "ReadMapCB", "Code_Value", "\x00"} {
				if strings.Contains(fe.Message, leak) {
					t.Errorf("message %q leaks %q", fe.Message, leak)
				}
			}
			if tt.expr != nil && !reflect.DeepEqual(fe.Expression, tt.expr) {
				t.Errorf("expression = %q, want %q", fe.Expression, tt.expr)
			}
		})
	}
}

func TestManyProblemsAreCapped(t *testing.T) {
	v, err := New()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString(`{"resourceType":"Patient"`)
	for i := 0; i < 30; i++ {
		fmt.Fprintf(&b, `,"x%02d":1`, i)
	}
	b.WriteString(`}`)
	err = v.Validate("Patient", []byte(b.String()))
	var fe *fhir.Error
	if !errors.As(err, &fe) {
		t.Fatalf("Validate = %v", err)
	}
	if len(fe.Expression) != maxIssues || !strings.HasSuffix(fe.Message, "and 20 more problems") {
		t.Errorf("got %d expressions, message %q", len(fe.Expression), fe.Message)
	}
}

// syntheaResources returns the resources of the Synthea bundles in
// ../testdata/synthea, and the bundles themselves.
func syntheaResources(tb testing.TB) (resources, bundles [][]byte) {
	tb.Helper()
	files, err := filepath.Glob("../testdata/synthea/*.json")
	if err != nil || len(files) == 0 {
		tb.Fatalf("no test bundles: %v", err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		var bundle struct {
			Entry []struct{ Resource json.RawMessage }
		}
		if err := json.Unmarshal(raw, &bundle); err != nil {
			tb.Fatal(err)
		}
		for _, e := range bundle.Entry {
			resources = append(resources, e.Resource)
		}
		bundles = append(bundles, raw)
	}
	return resources, bundles
}

func TestSyntheaIsValid(t *testing.T) {
	v, err := New()
	if err != nil {
		t.Fatal(err)
	}
	resources, bundles := syntheaResources(t)
	for i, r := range resources {
		if err := v.Validate("", r); err != nil {
			t.Errorf("resource %d: %v", i, err)
		}
	}
	for i, b := range bundles {
		if err := v.Validate("Bundle", b); err != nil {
			t.Errorf("bundle %d: %v", i, err)
		}
	}
}

// TestConcurrent shares one Validator between goroutines; run with -race.
func TestConcurrent(t *testing.T) {
	v, err := New()
	if err != nil {
		t.Fatal(err)
	}
	resources, _ := syntheaResources(t)
	bad := []byte(`{"resourceType":"Patient","birthDate":"1990-13-01","foo":1}`)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; i < len(resources); i += 8 {
				if err := v.Validate("", resources[i]); err != nil {
					t.Errorf("resource %d: %v", i, err)
				}
				err := v.Validate("Patient", bad)
				if err == nil || !strings.Contains(err.Error(), `unknown field "foo"`) || !strings.Contains(err.Error(), "expected date") {
					t.Errorf("bad patient: %v", err)
				}
			}
		}(g)
	}
	wg.Wait()
}
