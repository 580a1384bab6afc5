package patch

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/fhirserver/fhirserver/fhir"
)

// patient is the resource most cases patch: a decimal that float64 would
// round, a narrative with markup, primitive extensions.
const patient = `{"resourceType":"Patient","id":"p1","meta":{"versionId":"3"},` +
	`"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">A &amp; B</div>"},` +
	`"extension":[{"url":"http://e/weight","valueDecimal":176.35499866729558}],` +
	`"identifier":[{"system":"http://a","value":"1"},{"system":"http://b","value":"2"}],` +
	`"name":[{"use":"official","family":"Chalmers","given":["Peter","James"],"_given":[null,{"extension":[{"url":"http://x","valueString":"y"}]}]},{"use":"usual","given":["Jim"]}],` +
	`"gender":"male","birthDate":"1974-12-25","active":true}`

// sameJSON compares documents by value, numbers by their text.
func sameJSON(t *testing.T, got []byte, want string) {
	t.Helper()
	dec := func(b []byte) any {
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			t.Fatalf("not JSON: %v: %s", err, b)
		}
		return v
	}
	if !reflect.DeepEqual(dec(got), dec([]byte(want))) {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// with returns patient with the members of changes (JSON object text)
// replaced and those named in drop removed.
func with(t *testing.T, changes string, drop ...string) string {
	t.Helper()
	var m, c map[string]json.RawMessage
	if err := json.Unmarshal([]byte(patient), &m); err != nil {
		t.Fatal(err)
	}
	if changes != "" {
		if err := json.Unmarshal([]byte(changes), &c); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range c {
		m[k] = v
	}
	for _, k := range drop {
		delete(m, k)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestJSONPatch(t *testing.T) {
	tests := []struct {
		name, patch string
		want        func(t *testing.T) string
	}{
		{"replace a primitive", `[{"op":"replace","path":"/birthDate","value":"1975-01-01"}]`,
			func(t *testing.T) string { return with(t, `{"birthDate":"1975-01-01"}`) }},
		{"add to an array by index and at the end", `[{"op":"add","path":"/identifier/0","value":{"value":"0"}},{"op":"add","path":"/identifier/-","value":{"value":"3"}}]`,
			func(t *testing.T) string {
				return with(t, `{"identifier":[{"value":"0"},{"system":"http://a","value":"1"},{"system":"http://b","value":"2"},{"value":"3"}]}`)
			}},
		{"remove a member and an item", `[{"op":"remove","path":"/gender"},{"op":"remove","path":"/identifier/1"}]`,
			func(t *testing.T) string {
				return with(t, `{"identifier":[{"system":"http://a","value":"1"}]}`, "gender")
			}},
		{"test then replace", `[{"op":"test","path":"/name/0/given/1","value":"James"},{"op":"replace","path":"/name/0/given/1","value":"Jimmy"}]`,
			func(t *testing.T) string {
				return with(t, `{"name":[{"use":"official","family":"Chalmers","given":["Peter","Jimmy"],"_given":[null,{"extension":[{"url":"http://x","valueString":"y"}]}]},{"use":"usual","given":["Jim"]}]}`)
			}},
		{"test a number by value", `[{"op":"test","path":"/extension/0/valueDecimal","value":176.354998667295580}]`,
			func(t *testing.T) string { return patient }},
		{"move and copy", `[{"op":"move","from":"/name/1","path":"/name/0"},{"op":"copy","from":"/birthDate","path":"/deceasedDateTime"}]`,
			func(t *testing.T) string {
				return with(t, `{"name":[{"use":"usual","given":["Jim"]},{"use":"official","family":"Chalmers","given":["Peter","James"],"_given":[null,{"extension":[{"url":"http://x","valueString":"y"}]}]}],"deceasedDateTime":"1974-12-25"}`)
			}},
		{"escaped pointer tokens", `[{"op":"add","path":"/a~1b~0c","value":1}]`,
			func(t *testing.T) string { return with(t, `{"a/b~c":1}`) }},
		{"a big decimal stays as written", `[{"op":"add","path":"/multipleBirthInteger","value":2},{"op":"replace","path":"/extension/0/valueDecimal","value":0.10000000000000000000000001}]`,
			func(t *testing.T) string {
				return with(t, `{"multipleBirthInteger":2,"extension":[{"url":"http://e/weight","valueDecimal":0.10000000000000000000000001}]}`)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseJSONPatch([]byte(tt.patch))
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.Apply([]byte(patient))
			if err != nil {
				t.Fatal(err)
			}
			sameJSON(t, got, tt.want(t))
			if !strings.Contains(string(got), "176.35499866729558") && !strings.Contains(tt.name, "big decimal") {
				t.Errorf("the decimal lost its digits: %s", got)
			}
			if !strings.Contains(string(got), `<div xmlns=\"http://www.w3.org/1999/xhtml\">A &amp; B</div>`) {
				t.Errorf("the narrative was re-escaped: %s", got)
			}
		})
	}
}

func TestJSONPatchErrors(t *testing.T) {
	tests := []struct {
		name, patch string
		kind        fhir.Kind
		msg         string
	}{
		{"not an array", `{"op":"add"}`, fhir.KindInvalid, "JSON array"},
		{"unknown op", `[{"op":"frobnicate","path":"/a"}]`, fhir.KindInvalid, `unknown op "frobnicate"`},
		{"no path", `[{"op":"remove"}]`, fhir.KindInvalid, `"path" is missing`},
		{"no value", `[{"op":"add","path":"/a"}]`, fhir.KindInvalid, `needs a "value"`},
		{"bad pointer", `[{"op":"remove","path":"a"}]`, fhir.KindInvalid, "must start with /"},
		{"bad escape", `[{"op":"remove","path":"/a~2"}]`, fhir.KindInvalid, "~ must be followed"},
		{"move into itself", `[{"op":"move","from":"/name","path":"/name/0"}]`, fhir.KindInvalid, "into itself"},
		{"remove what is not there", `[{"op":"remove","path":"/deceasedBoolean"}]`, fhir.KindUnprocessable, `operation 0 (remove /deceasedBoolean): the path names nothing`},
		{"index out of range", `[{"op":"add","path":"/identifier/5","value":{}}]`, fhir.KindUnprocessable, "out of range"},
		{"leading zero", `[{"op":"remove","path":"/identifier/01"}]`, fhir.KindUnprocessable, "not an array index"},
		{"failed test", `[{"op":"replace","path":"/gender","value":"female"},{"op":"test","path":"/birthDate","value":"2000-01-01"}]`, fhir.KindUnprocessable, `test failed: the value is "1974-12-25", not "2000-01-01"`},
		{"remove the resource", `[{"op":"remove","path":""}]`, fhir.KindUnprocessable, "whole resource"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseJSONPatch([]byte(tt.patch))
			if err == nil {
				_, err = p.Apply([]byte(patient))
			}
			if fhir.KindOf(err) != tt.kind || !strings.Contains(fhir.MessageOf(err), tt.msg) {
				t.Errorf("got %v, want %s containing %q", err, tt.kind, tt.msg)
			}
		})
	}
}

// op builds one FHIRPath Patch operation parameter from parts.
func op(parts ...string) string {
	return `{"name":"operation","part":[` + strings.Join(parts, ",") + `]}`
}

func fpp(ops ...string) string {
	return `{"resourceType":"Parameters","parameter":[` + strings.Join(ops, ",") + `]}`
}

func TestFHIRPathPatch(t *testing.T) {
	typ := func(s string) string { return `{"name":"type","valueCode":"` + s + `"}` }
	path := func(s string) string { return `{"name":"path","valueString":"` + s + `"}` }
	name := func(s string) string { return `{"name":"name","valueString":"` + s + `"}` }
	intPart := func(n, v string) string { return `{"name":"` + n + `","valueInteger":` + v + `}` }
	value := func(x, v string) string { return `{"name":"value","value` + x + `":` + v + `}` }
	tests := []struct {
		name, patch string
		want        func(t *testing.T) string
	}{
		{"add a primitive", fpp(op(typ("add"), path("Patient"), name("deceasedBoolean"), value("Boolean", "false"))),
			func(t *testing.T) string { return with(t, `{"deceasedBoolean":false}`) }},
		{"add to a repeating element", fpp(op(typ("add"), path("Patient"), name("identifier"), value("Identifier", `{"system":"http://c","value":"3"}`))),
			func(t *testing.T) string {
				return with(t, `{"identifier":[{"system":"http://a","value":"1"},{"system":"http://b","value":"2"},{"system":"http://c","value":"3"}]}`)
			}},
		{"add a repeating element that is absent", fpp(op(typ("add"), path("Patient"), name("telecom"), value("ContactPoint", `{"system":"phone","value":"555"}`))),
			func(t *testing.T) string { return with(t, `{"telecom":[{"system":"phone","value":"555"}]}`) }},
		{"add a backbone element from parts", fpp(op(typ("add"), path("Patient"), name("contact"),
			`{"name":"value","part":[{"name":"gender","valueCode":"female"},{"name":"telecom","valueContactPoint":{"system":"phone","value":"1"}},{"name":"name","valueHumanName":{"family":"Doe"}}]}`)),
			func(t *testing.T) string {
				return with(t, `{"contact":[{"gender":"female","telecom":[{"system":"phone","value":"1"}],"name":{"family":"Doe"}}]}`)
			}},
		{"insert into a list", fpp(op(typ("insert"), path("Patient.identifier"), intPart("index", "1"), value("Identifier", `{"value":"x"}`))),
			func(t *testing.T) string {
				return with(t, `{"identifier":[{"system":"http://a","value":"1"},{"value":"x"},{"system":"http://b","value":"2"}]}`)
			}},
		{"insert into an empty list", fpp(op(typ("insert"), path("Patient.address"), intPart("index", "0"), value("Address", `{"city":"Leeds"}`))),
			func(t *testing.T) string { return with(t, `{"address":[{"city":"Leeds"}]}`) }},
		{"delete with where", fpp(op(typ("delete"), path("Patient.identifier.where(system = 'http://a')"))),
			func(t *testing.T) string { return with(t, `{"identifier":[{"system":"http://b","value":"2"}]}`) }},
		{"delete a given name with its extension", fpp(op(typ("delete"), path("Patient.name[0].given[0]"))),
			func(t *testing.T) string {
				return with(t, `{"name":[{"use":"official","family":"Chalmers","given":["James"],"_given":[{"extension":[{"url":"http://x","valueString":"y"}]}]},{"use":"usual","given":["Jim"]}]}`)
			}},
		{"delete the last item removes the list", fpp(op(typ("delete"), path("Patient.name.where(use = 'usual').given"))),
			func(t *testing.T) string {
				return with(t, `{"name":[{"use":"official","family":"Chalmers","given":["Peter","James"],"_given":[null,{"extension":[{"url":"http://x","valueString":"y"}]}]},{"use":"usual"}]}`)
			}},
		{"delete nothing", fpp(op(typ("delete"), path("Patient.deceased"))),
			func(t *testing.T) string { return patient }},
		{"replace", fpp(op(typ("replace"), path("Patient.birthDate"), value("Date", `"1930-01-01"`)),
			op(typ("replace"), path("Patient.name.first().family"), value("String", `"Smith"`))),
			func(t *testing.T) string {
				return with(t, `{"birthDate":"1930-01-01","name":[{"use":"official","family":"Smith","given":["Peter","James"],"_given":[null,{"extension":[{"url":"http://x","valueString":"y"}]}]},{"use":"usual","given":["Jim"]}]}`)
			}},
		{"replace a choice with another type", fpp(op(typ("add"), path("Patient"), name("deceased"), value("Boolean", "true")),
			op(typ("replace"), path("Patient.deceased"), value("DateTime", `"2020-01-01"`))),
			func(t *testing.T) string { return with(t, `{"deceasedDateTime":"2020-01-01"}`) }},
		{"replace inside an extension keeps the decimal", fpp(op(typ("replace"), path("Patient.extension('http://e/weight').value"), value("Decimal", "80.100000000000000001"))),
			func(t *testing.T) string {
				return with(t, `{"extension":[{"url":"http://e/weight","valueDecimal":80.100000000000000001}]}`)
			}},
		{"move", fpp(op(typ("move"), path("Patient.name"), intPart("source", "1"), intPart("destination", "0"))),
			func(t *testing.T) string {
				return with(t, `{"name":[{"use":"usual","given":["Jim"]},{"use":"official","family":"Chalmers","given":["Peter","James"],"_given":[null,{"extension":[{"url":"http://x","valueString":"y"}]}]}]}`)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseFHIRPathPatch([]byte(tt.patch))
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.Apply([]byte(patient))
			if err != nil {
				t.Fatal(err)
			}
			sameJSON(t, got, tt.want(t))
		})
	}
}

func TestFHIRPathPatchErrors(t *testing.T) {
	typ := func(s string) string { return `{"name":"type","valueCode":"` + s + `"}` }
	path := func(s string) string { return `{"name":"path","valueString":"` + s + `"}` }
	name := func(s string) string { return `{"name":"name","valueString":"` + s + `"}` }
	value := func(x, v string) string { return `{"name":"value","value` + x + `":` + v + `}` }
	tests := []struct {
		name, patch string
		kind        fhir.Kind
		msg         string
	}{
		{"not Parameters", `{"resourceType":"Patient"}`, fhir.KindInvalid, "Parameters resource"},
		{"no operations", `{"resourceType":"Parameters"}`, fhir.KindInvalid, "no operation"},
		{"other parameter", `{"resourceType":"Parameters","parameter":[{"name":"x"}]}`, fhir.KindInvalid, `named "operation"`},
		{"unknown type", fpp(op(typ("upsert"), path("Patient"))), fhir.KindInvalid, `unknown type "upsert"`},
		{"missing part", fpp(op(typ("add"), path("Patient"), value("Boolean", "true"))), fhir.KindInvalid, `add needs a part "name"`},
		{"bad path", fpp(op(typ("delete"), path("Patient.name.("))), fhir.KindInvalid, "path"},
		{"add to nothing", fpp(op(typ("add"), path("Patient.contact"), name("gender"), value("Code", `"male"`))), fhir.KindUnprocessable, "exactly one element, it names 0"},
		{"add what exists", fpp(op(typ("add"), path("Patient"), name("gender"), value("Code", `"female"`))), fhir.KindUnprocessable, "already has a gender; use replace"},
		{"add an unknown element", fpp(op(typ("add"), path("Patient"), name("colour"), value("String", `"blue"`))), fhir.KindUnprocessable, `no element "colour"`},
		{"add a choice of the wrong type", fpp(op(typ("add"), path("Patient"), name("deceased"), value("String", `"x"`))), fhir.KindUnprocessable, "cannot be a String"},
		{"replace several", fpp(op(typ("replace"), path("Patient.identifier"), value("Identifier", `{}`))), fhir.KindUnprocessable, "exactly one element, it names 2"},
		{"delete several", fpp(op(typ("delete"), path("Patient.name.given"))), fhir.KindUnprocessable, "at most one element"},
		{"delete the resource", fpp(op(typ("delete"), path("Patient"))), fhir.KindUnprocessable, "resource itself"},
		{"insert beyond the end", fpp(op(typ("insert"), path("Patient.identifier"), `{"name":"index","valueInteger":3}`, value("Identifier", `{}`))), fhir.KindUnprocessable, "beyond the end"},
		{"insert into a non-list", fpp(op(typ("insert"), path("Patient.gender"), `{"name":"index","valueInteger":0}`, value("Code", `"x"`))), fhir.KindUnprocessable, "does not name"},
		{"unsupported function in a path", fpp(op(typ("delete"), path("Patient.name.select(given)"))), fhir.KindUnprocessable, "select()"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseFHIRPathPatch([]byte(tt.patch))
			if err == nil {
				_, err = p.Apply([]byte(patient))
			}
			if fhir.KindOf(err) != tt.kind || !strings.Contains(fhir.MessageOf(err), tt.msg) {
				t.Errorf("got %v, want %s containing %q", err, tt.kind, tt.msg)
			}
		})
	}
}

// A failed operation leaves the caller's body untouched (Apply works on its
// own decoded copy).
func TestApplyDoesNotChangeItsInput(t *testing.T) {
	body := []byte(patient)
	p, err := ParseJSONPatch([]byte(`[{"op":"remove","path":"/gender"},{"op":"test","path":"/active","value":false}]`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Apply(body); fhir.KindOf(err) != fhir.KindUnprocessable {
		t.Fatalf("Apply = %v", err)
	}
	if string(body) != patient {
		t.Fatal("the input changed")
	}
}

func TestRepeatingTable(t *testing.T) {
	for _, c := range []struct {
		typ, name string
		want      bool
	}{
		{"Patient", "name", true}, {"Patient", "gender", false}, {"Patient.contact", "telecom", true},
		{"Patient.contact", "name", false}, {"HumanName", "given", true}, {"Observation", "extension", true},
		{"Questionnaire.item", "item", true}, {"Observation", "value", false},
	} {
		if got := isRepeating(c.typ, c.name); got != c.want {
			t.Errorf("isRepeating(%s, %s) = %v", c.typ, c.name, got)
		}
	}
}
