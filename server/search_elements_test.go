package server

import (
	"testing"

	"github.com/fhirserver/fhirserver/fhir/search"
)

const subsetted = `{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"SUBSETTED","display":"Resource encoded in summary mode"}`

func TestSubset(t *testing.T) {
	ix := elementIndex(elementTable())
	obs := `{"resourceType":"Observation","status":"final","id":"o1","meta":{"versionId":"2","tag":[{"code":"x"}]},` +
		`"text":{"status":"generated","div":"<div>x</div>"},"category":[{"text":"c"}],"code":{"text":"x"},` +
		`"valueQuantity":{"value":1},"_status":{"id":"s"},` +
		`"component":[{"code":{"text":"a"},"valueString":"v","interpretation":[{"text":"i"}]},{"code":{"text":"b"}}]}`
	cases := []struct {
		name  string
		q     search.Query
		match bool
		in    string
		want  string
	}{
		{"no subset", search.Query{}, true, obs, obs},
		{"_summary=false", search.Query{Summary: search.SummaryFalse}, true, obs, obs},
		{"_elements leaves includes alone", search.Query{Elements: []string{"status"}}, false, obs, obs},
		{"_summary=true", search.Query{Summary: search.SummaryTrue}, true, obs,
			`{"resourceType":"Observation","id":"o1","meta":{"versionId":"2","tag":[{"code":"x"},` + subsetted + `]},"status":"final",` +
				`"code":{"text":"x"},"valueQuantity":{"value":1},"_status":{"id":"s"},` +
				`"component":[{"code":{"text":"a"},"valueString":"v"},{"code":{"text":"b"}}]}`},
		{"_summary=true on includes too", search.Query{Summary: search.SummaryTrue}, false,
			`{"resourceType":"Patient","id":"p","text":{"div":"x"},"gender":"male","contact":[{"gender":"male"}]}`,
			`{"resourceType":"Patient","id":"p","meta":{"tag":[` + subsetted + `]},"gender":"male"}`},
		{"_summary=true with nothing to remove", search.Query{Summary: search.SummaryTrue}, true,
			`{"resourceType":"Patient","id":"p","gender":"male"}`, `{"resourceType":"Patient","id":"p","gender":"male"}`},
		{"_summary=text", search.Query{Summary: search.SummaryText}, true, obs,
			`{"resourceType":"Observation","id":"o1","meta":{"versionId":"2","tag":[{"code":"x"},` + subsetted + `]},"status":"final",` +
				`"text":{"status":"generated","div":"<div>x</div>"},"code":{"text":"x"},"_status":{"id":"s"}}`},
		{"_summary=data", search.Query{Summary: search.SummaryData}, true,
			`{"resourceType":"Patient","id":"p","meta":{"tag":[` + subsetted + `]},"text":{"div":"x"},"gender":"male"}`,
			`{"resourceType":"Patient","id":"p","meta":{"tag":[` + subsetted + `]},"gender":"male"}`},
		{"_elements with a choice element", search.Query{Elements: []string{"value", "nonsense"}}, true, obs,
			`{"resourceType":"Observation","id":"o1","meta":{"versionId":"2","tag":[{"code":"x"},` + subsetted + `]},"status":"final",` +
				`"code":{"text":"x"},"valueQuantity":{"value":1},"_status":{"id":"s"}}`},
		{"_elements with a typed choice element", search.Query{Elements: []string{"valueQuantity"}}, true, obs,
			`{"resourceType":"Observation","id":"o1","meta":{"versionId":"2","tag":[{"code":"x"},` + subsetted + `]},"status":"final",` +
				`"code":{"text":"x"},"valueQuantity":{"value":1},"_status":{"id":"s"}}`},
		{"_elements and _summary", search.Query{Summary: search.SummaryTrue, Elements: []string{"category", "component"}}, true, obs,
			`{"resourceType":"Observation","id":"o1","meta":{"versionId":"2","tag":[{"code":"x"},` + subsetted + `]},"status":"final",` +
				`"code":{"text":"x"},"_status":{"id":"s"},"component":[{"code":{"text":"a"},"valueString":"v"},{"code":{"text":"b"}}]}`},
		{"unknown type keeps only id and meta", search.Query{Summary: search.SummaryTrue}, true,
			`{"resourceType":"Nope","id":"n","x":1}`, `{"resourceType":"Nope","id":"n","meta":{"tag":[` + subsetted + `]}}`},
	}
	for _, c := range cases {
		got, err := ix.apply(newSubsetter(&c.q), []byte(c.in), c.match)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if string(got) != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
	}
	if _, err := ix.apply(newSubsetter(&search.Query{Summary: search.SummaryTrue}), []byte(`{"resourceType":`), true); err == nil {
		t.Error("broken JSON: no error")
	}
}

// The generated table, against facts of the R4 definitions; these need no
// spec files.
func TestElementTable(t *testing.T) {
	ix := elementIndex(elementTable())
	if len(ix["Patient"]) != 24 || len(ix["Observation"]) != 32 {
		t.Errorf("Patient has %d elements, Observation %d; want 24 and 32", len(ix["Patient"]), len(ix["Observation"]))
	}
	for _, c := range []struct {
		path, name string
		flags      elementFlags
		backbone   string
	}{
		{"Observation", "status", elSummary | elMandatory, ""},
		{"Observation", "code", elSummary | elMandatory, ""},
		{"Observation", "valueQuantity", elChoice | elSummary, ""},
		{"Observation", "category", 0, ""},
		{"Observation", "component", elSummary, "Observation.component"},
		{"Observation", "referenceRange", 0, ""},
		{"Observation.component", "code", elSummary, ""},
		{"Patient", "text", 0, ""},
		{"Patient", "link", elSummary, "Patient.link"},
		{"Bundle", "entry", elSummary, "Bundle.entry"},
		{"Bundle.entry", "link", elSummary, "Bundle.link"},
	} {
		e := lookup(ix[c.path], c.name)
		if e == nil || e.flags != c.flags || e.backbone != c.backbone || lookup(ix[c.path], "_"+c.name) != e {
			t.Errorf("%s.%s = %+v, want flags %b backbone %q", c.path, c.name, e, c.flags, c.backbone)
		}
	}
	if e := lookup(ix["Observation.component"], "interpretation"); e != nil {
		t.Errorf("Observation.component.interpretation is no summary element: %+v", e)
	}
	for _, k := range []string{"value", "valuequantity", "valueQuantityX"[:5], "statusX", "_"} {
		if e := lookup(ix["Observation"], k); e != nil {
			t.Errorf("lookup(Observation, %q) = %+v", k, e)
		}
	}
	for _, rt := range []string{"Patient", "Observation", "Binary", "Parameters", "Bundle"} {
		if len(ix[rt]) == 0 {
			t.Errorf("%s has no elements", rt)
		}
	}
}
