package fhirpath_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/fhirpath"
)

// show renders a result as "Type:value" items, objects as their JSON.
func show(ns []fhirpath.Node) string {
	var parts []string
	for _, n := range ns {
		var v string
		switch x := n.Value.(type) {
		case string:
			v = x
		case nil:
			v = "-"
		default:
			b, _ := json.Marshal(x)
			v = string(b)
		}
		parts = append(parts, n.Type+":"+v)
	}
	return strings.Join(parts, " ; ")
}

func decode(t *testing.T, s string) fhirpath.Node {
	t.Helper()
	n, err := fhirpath.Decode([]byte(s))
	if err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return n
}

const obsQuantity = `{"resourceType":"Observation","id":"o1",
 "code":{"coding":[{"system":"http://loinc.org","code":"8302-2"}]},
 "subject":{"reference":"Patient/p1"},
 "valueQuantity":{"value":176.35499866729558,"unit":"cm"},
 "component":[
  {"code":{"text":"a"},"valueQuantity":{"value":1}},
  {"code":{"text":"b"},"valueCodeableConcept":{"text":"x"}},
  {"code":{"text":"c"},"valueString":"s"}]}`

func TestEvaluateWithModel(t *testing.T) {
	env := &fhirpath.Env{Model: fhir.TypeModel()}
	cases := []struct {
		name, resource, expr, want string
	}{
		{"path", obsQuantity, "Observation.code.coding.code", "code:8302-2"},
		{"relative path", obsQuantity, "code.coding.system", "uri:http://loinc.org"},
		{"choice element", obsQuantity, "Observation.value", `Quantity:{"unit":"cm","value":176.35499866729558}`},
		{"as operator", obsQuantity, "(Observation.value as Quantity)", `Quantity:{"unit":"cm","value":176.35499866729558}`},
		{"as operator, other type", obsQuantity, "(Observation.value as SampledData)", ""},
		{"as function", obsQuantity, "Observation.value.as(Quantity).unit", "string:cm"},
		{"as on a collection", obsQuantity, "Observation.component.value as Quantity", `Quantity:{"value":1}`},
		{"choice over components", obsQuantity, "Observation.component.value",
			`Quantity:{"value":1} ; CodeableConcept:{"text":"x"} ; string:s`},
		{"backbone type", obsQuantity, "Observation.component.first()",
			`Observation.component:{"code":{"text":"a"},"valueQuantity":{"value":1}}`},
		{"ofType", obsQuantity, "Observation.component.value.ofType(CodeableConcept).text", "string:x"},
		{"ofType with namespace", obsQuantity, "Observation.component.value.ofType(FHIR.string)", "string:s"},
		{"is", obsQuantity, "Observation.value is Quantity", "boolean:true"},
		{"is function", obsQuantity, "Observation.value.is(Range)", "boolean:false"},
		{"type filter on another type", obsQuantity, "Patient.name", ""},
		{"Resource on any type", obsQuantity, "Resource.id", "string:o1"},
		{"DomainResource", obsQuantity, "DomainResource.id", "string:o1"},
		{"union", obsQuantity, "Observation.id | Observation.code.coding.code", "string:o1 ; code:8302-2"},
		{"union removes duplicates", obsQuantity, "Observation.component.code | Observation.component.code",
			`CodeableConcept:{"text":"a"} ; CodeableConcept:{"text":"b"} ; CodeableConcept:{"text":"c"}`},
		{"index", obsQuantity, "Observation.component[1].code.text", "string:b"},
		{"index out of range", obsQuantity, "Observation.component[7]", ""},
		{"where", obsQuantity, "Observation.component.where(code.text = 'c').value", "string:s"},
		{"where !=", obsQuantity, "Observation.component.where(code.text != 'a').code.text", "string:b ; string:c"},
		{"where or", obsQuantity, "Observation.component.where(code.text = 'a' or code.text = 'c').code.text", "string:a ; string:c"},
		{"exists with criteria", obsQuantity, "Observation.component.exists(code.text = 'b')", "boolean:true"},
		{"count", obsQuantity, "Observation.component.count()", "integer:3"},
		{"empty", obsQuantity, "Observation.note.empty()", "boolean:true"},
		{"last and tail", obsQuantity, "Observation.component.tail().last().code.text", "string:c"},
		{"select", obsQuantity, "Observation.component.select(code.text)", "string:a ; string:b ; string:c"},
		{"not", obsQuantity, "Observation.component.exists().not()", "boolean:false"},
		{"number equality", obsQuantity, "Observation.component[0].value.value = 1.0", "boolean:true"},
		{"resource variable", obsQuantity, "%resource.id", "string:o1"},
		{"resolve() is Patient", obsQuantity, "Observation.subject.where(resolve() is Patient).reference", "string:Patient/p1"},
		{"resolve() is not Group", obsQuantity, "Observation.subject.where(resolve() is Group)", ""},
		{"DateTime case", `{"resourceType":"Observation","valueDateTime":"2020-01-02"}`,
			"Observation.value.as(DateTime)", "dateTime:2020-01-02"},
		{"subtype: Age is a Quantity", `{"resourceType":"Condition","onsetAge":{"value":3}}`,
			"Condition.onset.as(Quantity)", `Age:{"value":3}`},
		{"subtype: code is a string", obsQuantity, "Observation.code.coding.code.ofType(string)", "code:8302-2"},
		{"primitive type", `{"resourceType":"Patient","birthDate":"1970"}`, "Patient.birthDate", "date:1970"},
		{"instant in meta", `{"resourceType":"Patient","meta":{"lastUpdated":"2020-01-01T00:00:00Z"}}`,
			"Resource.meta.lastUpdated", "instant:2020-01-01T00:00:00Z"},
		{"array of primitives with nulls", `{"resourceType":"Patient","name":[{"given":["a",null,"b"]}]}`,
			"Patient.name.given", "string:a ; string:b"},
		{"contentReference", `{"resourceType":"Questionnaire","item":[{"linkId":"1","item":[{"linkId":"1.1"}]}]}`,
			"Questionnaire.item.item", `Questionnaire.item:{"linkId":"1.1"}`},
		{"Bundle entry resource", `{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Composition","id":"c"}},{"resource":{"resourceType":"Patient"}}]}`,
			"Bundle.entry[0].resource", `Composition:{"id":"c","resourceType":"Composition"}`},
		{"telecom filter", `{"resourceType":"Patient","telecom":[{"system":"phone","value":"1"},{"system":"email","value":"a@b"}]}`,
			"Patient.telecom.where(system='email').value", "string:a@b"},
		{"extension", `{"resourceType":"Patient","extension":[{"url":"http://x/a","valueString":"A"},{"url":"http://x/b","valueCode":"B"}]}`,
			"Patient.extension('http://x/b').value", "code:B"},
		{"related artifact", `{"resourceType":"Library","relatedArtifact":[{"type":"depends-on","resource":"http://x/Library/a"},{"type":"successor","resource":"http://x/Library/b"}]}`,
			"Library.relatedArtifact.where(type='depends-on').resource", "canonical:http://x/Library/a"},
		{"arithmetic is not supported", obsQuantity, "Observation.id + 1", "ERR"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, err := fhirpath.Compile(c.expr)
			if c.want == "ERR" {
				if err == nil {
					t.Fatalf("Compile(%q) succeeded, want an error", c.expr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.Evaluate(env, decode(t, c.resource))
			if err != nil {
				t.Fatal(err)
			}
			if s := show(got); s != c.want {
				t.Errorf("%s\n got %s\nwant %s", c.expr, s, c.want)
			}
		})
	}
}

func TestDeceased(t *testing.T) {
	e := fhirpath.MustCompile("Patient.deceased.exists() and Patient.deceased != false")
	env := &fhirpath.Env{Model: fhir.TypeModel()}
	for _, c := range []struct{ resource, want string }{
		{`{"resourceType":"Patient","deceasedBoolean":true}`, "boolean:true"},
		{`{"resourceType":"Patient","deceasedBoolean":false}`, "boolean:false"},
		{`{"resourceType":"Patient","deceasedDateTime":"2013-03-27T00:00:00Z"}`, "boolean:true"},
		{`{"resourceType":"Patient"}`, "boolean:false"},
	} {
		got, err := e.Evaluate(env, decode(t, c.resource))
		if err != nil {
			t.Fatal(err)
		}
		if s := show(got); s != c.want {
			t.Errorf("%s: got %s, want %s", c.resource, s, c.want)
		}
	}
}

func TestResolve(t *testing.T) {
	env := &fhirpath.Env{Model: fhir.TypeModel()}
	e := fhirpath.MustCompile("Observation.performer.where(resolve() is Patient)")
	res := decode(t, `{"resourceType":"Observation","contained":[{"resourceType":"Patient","id":"c1"},{"resourceType":"Device","id":"c2"}],
	 "performer":[
	  {"reference":"Patient/1"},
	  {"reference":"Practitioner/2"},
	  {"reference":"urn:uuid:0b3c"},
	  {"reference":"http://other.org/fhir/Patient/3/_history/4"},
	  {"type":"Patient","identifier":{"value":"x"}},
	  {"reference":"#c1"},
	  {"reference":"#c2"},
	  {"reference":"Unknown/5"},
	  {"display":"no reference"}]}`)
	got, err := e.Evaluate(env, res)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Patient/1", "http://other.org/fhir/Patient/3/_history/4", "", "#c1"}
	if len(got) != len(want) {
		t.Fatalf("got %s", show(got))
	}
	for i, n := range got {
		m, _ := n.Object()
		if ref, _ := m["reference"].(string); ref != want[i] {
			t.Errorf("item %d: reference %q, want %q", i, ref, want[i])
		}
	}
	// resolve() itself yields the contained resource, or a type-only node.
	r, err := fhirpath.MustCompile("Observation.performer.resolve()").Evaluate(env, res)
	if err != nil {
		t.Fatal(err)
	}
	if s := show(r); s != `Patient:- ; Practitioner:- ; Patient:- ; Patient:- ; Patient:{"id":"c1","resourceType":"Patient"} ; Device:{"id":"c2","resourceType":"Device"}` {
		t.Errorf("resolve() = %s", s)
	}
}

func TestEvaluateWithoutModel(t *testing.T) {
	cases := []struct{ resource, expr, want string }{
		{obsQuantity, "Observation.value", `Quantity:{"unit":"cm","value":176.35499866729558}`},
		{obsQuantity, "Observation.code.coding.code", ":8302-2"},
		{`{"resourceType":"Observation","valueDateTime":"2020"}`, "Observation.value", "dateTime:2020"},
		{`{"resourceType":"Observation","valueDateTime":"2020"}`, "Observation.value.as(dateTime)", "dateTime:2020"},
		{obsQuantity, "Resource.id", ":o1"},
		{obsQuantity, "Observation.subject.where(resolve() is Patient).reference", ":Patient/p1"},
	}
	for _, c := range cases {
		got, err := fhirpath.MustCompile(c.expr).Evaluate(nil, decode(t, c.resource))
		if err != nil {
			t.Fatal(err)
		}
		if s := show(got); s != c.want {
			t.Errorf("%s: got %s, want %s", c.expr, s, c.want)
		}
	}
}

func TestDecimalPrecision(t *testing.T) {
	got, err := fhirpath.MustCompile("Observation.value.value").Evaluate(nil, decode(t, obsQuantity))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Value != json.Number("176.35499866729558") {
		t.Fatalf("got %#v", got)
	}
}

func TestCompositeComponentWithResourceVariable(t *testing.T) {
	res := decode(t, `{"resourceType":"MolecularSequence","referenceSeq":{"chromosome":{"text":"1"}},"variant":[{"start":1,"end":2}]}`)
	env := &fhirpath.Env{Model: fhir.TypeModel(), Resource: res}
	variants, err := fhirpath.MustCompile("MolecularSequence.variant").Evaluate(env, res)
	if err != nil || len(variants) != 1 {
		t.Fatalf("variants: %v %v", variants, err)
	}
	got, err := fhirpath.MustCompile("%resource.referenceSeq.chromosome").Evaluate(env, variants[0])
	if err != nil {
		t.Fatal(err)
	}
	if s := show(got); s != `CodeableConcept:{"text":"1"}` {
		t.Errorf("got %s", s)
	}
	got, _ = fhirpath.MustCompile("start").Evaluate(env, variants[0])
	if s := show(got); s != "integer:1" {
		t.Errorf("got %s", s)
	}
}

func TestCompileErrors(t *testing.T) {
	for _, src := range []string{
		"", "Patient.", "Patient.name +", "a + b", "a * 2", "a < b", "a ~ b", "a in b", "a & b",
		"@2020-01-01", "Patient.foo()", "where(", "(Patient.name", "Patient.name[a]", "Patient.name[1.5]",
		"$index", "%vs", "x.as(1)", "x.extension(url)", "first(1)", "'unterminated", "a | | b",
		"x is", "-x",
	} {
		if _, err := fhirpath.Compile(src); err == nil {
			t.Errorf("Compile(%q) succeeded, want an error", src)
		}
	}
}

// Every expression of the generated registry compiles, its components too.
func TestRegistryExpressionsCompile(t *testing.T) {
	n := 0
	for _, p := range fhir.AllSearchParams() {
		for _, src := range append([]string{p.Expression}, componentExprs(p)...) {
			if src == "" {
				continue
			}
			if _, err := fhirpath.Compile(src); err != nil {
				t.Errorf("%s/%s: %v", p.Base, p.Code, err)
			}
			n++
		}
	}
	if n < 1700 {
		t.Errorf("only %d expressions", n)
	}
}

func componentExprs(p *fhir.SearchParam) []string {
	var out []string
	for _, c := range p.Components {
		out = append(out, c.Expression)
	}
	return out
}

func ExampleExpression_Evaluate() {
	res, _ := fhirpath.Decode([]byte(`{"resourceType":"Observation","valueQuantity":{"value":176.35499866729558,"unit":"cm"}}`))
	e := fhirpath.MustCompile("(Observation.value as Quantity).value")
	out, _ := e.Evaluate(&fhirpath.Env{Model: fhir.TypeModel()}, res)
	fmt.Println(out[0].Type, out[0].Value)
	// Output: decimal 176.35499866729558
}
