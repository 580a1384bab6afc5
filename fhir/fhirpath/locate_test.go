package fhirpath_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/fhirpath"
)

func TestLocate(t *testing.T) {
	res := decode(t, `{"resourceType":"Observation","status":"final","valueQuantity":{"value":1.50},`+
		`"extension":[{"url":"a","valueString":"x"},{"url":"b","valueString":"y"}],`+
		`"component":[{"code":{"text":"c1"}},{"code":{"text":"c2"},"valueString":"v"}]}`)
	env := &fhirpath.Env{Model: fhir.TypeModel(), Resource: res}
	tests := []struct{ path, want string }{
		{"Observation", "-:-:-1:Observation"},
		{"Observation.status", "status:status:-1:code"},
		{"Observation.value", "value:valueQuantity:-1:Quantity"},
		{"Observation.value.value", "value:value:-1:decimal"},
		{"Observation.component", "component:component:0:Observation.component component:component:1:Observation.component"},
		{"Observation.component[1].value", "value:valueString:-1:string"},
		{"Observation.component.where(code.text = 'c2')", "component:component:1:Observation.component"},
		{"Observation.component.first()", "component:component:0:Observation.component"},
		{"Observation.component.last().code", "code:code:-1:CodeableConcept"},
		{"Observation.component.tail()", "component:component:1:Observation.component"},
		{"Observation.extension('b')", "extension:extension:1:Extension"},
		{"Observation.value.ofType(Quantity)", "value:valueQuantity:-1:Quantity"},
		{"Observation.value.ofType(string)", ""},
		{"Observation.note", ""},
	}
	for _, tt := range tests {
		locs, err := fhirpath.MustCompile(tt.path).Locate(env, res)
		if err != nil {
			t.Errorf("%s: %v", tt.path, err)
			continue
		}
		var got []string
		for _, l := range locs {
			name, key := l.Name, l.Key
			if l.Parent == nil {
				name, key = "-", "-"
			}
			got = append(got, fmt.Sprintf("%s:%s:%d:%s", name, key, l.Index, l.Node.Type))
		}
		if s := strings.Join(got, " "); s != tt.want {
			t.Errorf("Locate(%s) = %q, want %q", tt.path, s, tt.want)
		}
	}
	for _, bad := range []string{"Observation.component.count()", "Observation.status = 'final'", "'x'"} {
		if _, err := fhirpath.MustCompile(bad).Locate(env, res); err == nil {
			t.Errorf("Locate(%s) succeeded", bad)
		}
	}
	parents, name, err := fhirpath.MustCompile("Observation.component.where(code.text = 'c1').value").Container(env, res)
	if err != nil || name != "value" || len(parents) != 1 || parents[0].Type != "Observation.component" {
		t.Errorf("Container = %v, %q, %v", parents, name, err)
	}
	if _, _, err := fhirpath.MustCompile("Observation.component.first()").Container(env, res); err == nil {
		t.Error("Container of a path ending in a function succeeded")
	}
}
