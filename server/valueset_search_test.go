package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
)

// A ValueSet a client POSTs serves token :in and :not-in right away, by
// its url or as ValueSet/id, and a changed one the next search.
func TestSearchStoredValueSet(t *testing.T) {
	eachStore(t, func(t *testing.T, newHandler func(t *testing.T) http.Handler) {
		h := newHandler(t)
		for id, code := range map[string]string{"o1": "8302-2", "o2": "29463-7", "o3": "8867-4", "o4": "red"} {
			system := "http://loinc.org"
			if code == "red" {
				system = "http://example.org/cs/colors"
			}
			body := `{"resourceType":"Observation","id":"` + id + `","status":"final","code":{"coding":[{"system":"` + system + `","code":"` + code + `"}]}}`
			if res := do(t, h, http.MethodPut, "/fhir/Observation/"+id, body, "Content-Type", "application/fhir+json"); res.Code != 201 {
				t.Fatalf("PUT Observation/%s: %d %s", id, res.Code, res.Body.String())
			}
		}
		post := func(body string) string {
			t.Helper()
			res := do(t, h, http.MethodPost, "/fhir/ValueSet", body, "Content-Type", "application/fhir+json")
			if res.Code != 201 {
				t.Fatalf("POST ValueSet: %d %s", res.Code, res.Body.String())
			}
			var created struct{ ID string }
			if err := json.Unmarshal(res.Body.Bytes(), &created); err != nil || created.ID == "" {
				t.Fatalf("POST ValueSet answered %s", res.Body.String())
			}
			return created.ID
		}
		const vitals = "http://example.org/vs/vitals"
		vitalsBody := func(codes ...string) string {
			concepts := ""
			for i, c := range codes {
				if i > 0 {
					concepts += ","
				}
				concepts += `{"code":"` + c + `"}`
			}
			return `{"resourceType":"ValueSet","url":"` + vitals + `","status":"active","compose":{"include":[{"system":"http://loinc.org","concept":[` + concepts + `]}]}}`
		}
		id := post(vitalsBody("8302-2", "29463-7"))
		in := "/fhir/Observation?code:in=" + url.QueryEscape(vitals)
		equal(t, "in", get(t, h, in).keys("match"), []string{"Observation/o1", "Observation/o2"})
		equal(t, "in by reference", get(t, h, "/fhir/Observation?code:in=ValueSet/"+id).keys("match"), []string{"Observation/o1", "Observation/o2"})
		equal(t, "not-in", get(t, h, "/fhir/Observation?code:not-in="+url.QueryEscape(vitals)).keys("match"), []string{"Observation/o3", "Observation/o4"})
		equal(t, "POST _search", decodeSearchset(t, do(t, h, http.MethodPost, "/fhir/Observation/_search", "code:in="+url.QueryEscape(vitals), form...).Body.String()).keys("match"),
			[]string{"Observation/o1", "Observation/o2"})

		// A code system of the server's own, and the value set changed to use it.
		if res := do(t, h, http.MethodPut, "/fhir/CodeSystem/colors", `{"resourceType":"CodeSystem","id":"colors","url":"http://example.org/cs/colors","status":"active","content":"complete",`+
			`"concept":[{"code":"warm","concept":[{"code":"red"}]},{"code":"blue"}]}`, "Content-Type", "application/fhir+json"); res.Code != 201 {
			t.Fatalf("PUT CodeSystem: %d %s", res.Code, res.Body.String())
		}
		changed := `{"resourceType":"ValueSet","id":"` + id + `","url":"` + vitals + `","status":"active","compose":{"include":[{"system":"http://loinc.org","concept":[{"code":"8867-4"}]},` +
			`{"system":"http://example.org/cs/colors","filter":[{"property":"concept","op":"is-a","value":"warm"}]}]}}`
		if res := do(t, h, http.MethodPut, "/fhir/ValueSet/"+id, changed, "Content-Type", "application/fhir+json"); res.Code != 200 {
			t.Fatalf("PUT ValueSet: %d %s", res.Code, res.Body.String())
		}
		equal(t, "in after the change", get(t, h, in).keys("match"), []string{"Observation/o3", "Observation/o4"})

		// One that cannot be expanded: 400 with an OperationOutcome that says why.
		bad := post(`{"resourceType":"ValueSet","url":"http://example.org/vs/findings","status":"active","compose":{"include":[{"system":"http://snomed.info/sct","filter":[{"property":"concept","op":"is-a","value":"404684003"}]}]}}`)
		res := do(t, h, http.MethodGet, "/fhir/Observation?code:in=ValueSet/"+bad, "")
		if res.Code != 400 {
			t.Fatalf("unexpandable value set: %d %s", res.Code, res.Body.String())
		}
		var oo outcome
		if err := json.Unmarshal(res.Body.Bytes(), &oo); err != nil || len(oo.Issue) != 1 || oo.Issue[0].Code != "not-supported" ||
			oo.Issue[0].Diagnostics != "value set http://example.org/vs/findings cannot be expanded here: compose.include[0]: the concepts of code system http://snomed.info/sct are not known here (no CodeSystem with that url listing them is stored on this server, and the FHIR R4 specification does not list them)" {
			t.Fatalf("unexpandable value set: %s", res.Body.String())
		}
	})
}
