package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/fhirserver/fhirserver/server/servertest"
)

const patchPatient = `{"resourceType":"Patient","id":"p1","name":[{"family":"One","given":["Ann"]}],"extension":[{"url":"http://e/w","valueDecimal":176.35499866729558}]}`

func fhirPathPatch(parts ...string) string {
	return `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[` + strings.Join(parts, ",") + `]}]}`
}

func TestPatch(t *testing.T) {
	v1 := []servertest.Scenario{put("/fhir/Patient/p1", patchPatient)}
	unchanged := []servertest.Scenario{{Name: "unchanged", Path: "/fhir/Patient/p1/_history", ExpectStatus: 200, ExpectContains: []string{`"total":1`}}}
	jp := func(extra ...string) map[string]string {
		return hdr(append([]string{"Content-Type", "application/json-patch+json"}, extra...)...)
	}
	runEachStore(t, []servertest.Scenario{
		{Name: "JSON Patch", Method: http.MethodPatch, Path: "/fhir/Patient/p1", Header: jp(), Before: v1,
			Body:         `[{"op":"test","path":"/name/0/family","value":"One"},{"op":"add","path":"/name/0/given/-","value":"Bea"},{"op":"add","path":"/birthDate","value":"1970-01-01"}]`,
			ExpectStatus: 200, ExpectHeader: hdr("ETag", `W/"2"`),
			Check: expectJSON(`"given":["Ann","Bea"]`, `"birthDate":"1970-01-01"`, `"versionId":"2"`, "176.35499866729558", `"id":"p1"`)},
		{Name: "FHIRPath Patch", Method: http.MethodPatch, Path: "/fhir/Patient/p1", Header: fhirJSON, Before: v1,
			Body: fhirPathPatch(`{"name":"type","valueCode":"replace"}`, `{"name":"path","valueString":"Patient.name.first().family"}`,
				`{"name":"value","valueString":"Uno"}`),
			ExpectStatus: 200, Check: expectJSON(`"family":"Uno"`, `"versionId":"2"`)},
		{Name: "If-Match current", Method: http.MethodPatch, Path: "/fhir/Patient/p1", Header: jp("If-Match", `W/"1"`), Before: v1,
			Body: `[{"op":"add","path":"/active","value":true}]`, ExpectStatus: 200},
		{Name: "If-Match stale", Method: http.MethodPatch, Path: "/fhir/Patient/p1", Header: jp("If-Match", `W/"7"`), Before: v1,
			Body: `[{"op":"add","path":"/active","value":true}]`, ExpectStatus: 412, Check: expectOutcome("conflict", "version conflict"), After: unchanged},
		{Name: "the result is not valid", Method: http.MethodPatch, Path: "/fhir/Patient/p1", Header: jp(), Before: v1,
			Body: `[{"op":"add","path":"/gender","value":"robot"}]`, ExpectStatus: 422, Check: expectOutcome("processing", "the patched resource is not valid"), After: unchanged},
		{Name: "an unknown element", Method: http.MethodPatch, Path: "/fhir/Patient/p1", Header: jp(), Before: v1,
			Body: `[{"op":"add","path":"/colour","value":"blue"}]`, ExpectStatus: 422, Check: expectOutcome("processing", "colour"), After: unchanged},
		{Name: "the id cannot change", Method: http.MethodPatch, Path: "/fhir/Patient/p1", Header: jp(), Before: v1,
			Body: `[{"op":"replace","path":"/id","value":"p2"}]`, ExpectStatus: 422, Check: expectOutcome("processing", "cannot change or remove the id"), After: unchanged},
		{Name: "the id cannot go", Method: http.MethodPatch, Path: "/fhir/Patient/p1", Header: jp(), Before: v1,
			Body: `[{"op":"remove","path":"/id"}]`, ExpectStatus: 422, Check: expectOutcome("processing", "cannot change or remove the id"), After: unchanged},
		{Name: "the type cannot change", Method: http.MethodPatch, Path: "/fhir/Patient/p1", Header: jp(), Before: v1,
			Body: `[{"op":"replace","path":"/resourceType","value":"Group"}]`, ExpectStatus: 422, Check: expectOutcome("processing", "cannot change the resource type"), After: unchanged},
		{Name: "a failed test", Method: http.MethodPatch, Path: "/fhir/Patient/p1", Header: jp(), Before: v1,
			Body: `[{"op":"test","path":"/name/0/family","value":"Two"}]`, ExpectStatus: 422, Check: expectOutcome("processing", "test failed"), After: unchanged},
		{Name: "a malformed patch", Method: http.MethodPatch, Path: "/fhir/Patient/p1", Header: jp(), Before: v1,
			Body: `{"op":"add"}`, ExpectStatus: 400, Check: expectOutcome("invalid", "JSON array"), After: unchanged},
		{Name: "a FHIRPath Patch that is not Parameters", Method: http.MethodPatch, Path: "/fhir/Patient/p1", Header: fhirJSON, Before: v1,
			Body: patchPatient, ExpectStatus: 400, Check: expectOutcome("invalid", "Parameters resource"), After: unchanged},
		{Name: "another media type", Method: http.MethodPatch, Path: "/fhir/Patient/p1", Header: hdr("Content-Type", "application/merge-patch+json"), Before: v1,
			Body: `{}`, ExpectStatus: 415, Check: expectOutcome("not-supported", "not a patch format"), After: unchanged},
		{Name: "a missing resource", Method: http.MethodPatch, Path: "/fhir/Patient/p9", Header: jp(),
			Body: `[{"op":"add","path":"/active","value":true}]`, ExpectStatus: 404, After: nothingStored()},
		{Name: "a deleted resource", Method: http.MethodPatch, Path: "/fhir/Patient/p1", Header: jp(),
			Before: append(v1, servertest.Scenario{Method: http.MethodDelete, Path: "/fhir/Patient/p1", ExpectStatus: 204}),
			Body:   `[{"op":"add","path":"/active","value":true}]`, ExpectStatus: 410},
		{Name: "Prefer return=minimal", Method: http.MethodPatch, Path: "/fhir/Patient/p1", Header: jp("Prefer", "return=minimal"), Before: v1,
			Body: `[{"op":"add","path":"/active","value":true}]`, ExpectStatus: 200, ExpectHeader: hdr("ETag", `W/"2"`),
			Check: func(t testing.TB, res *servertest.Response) {
				if res.Body != "" {
					t.Errorf("body %q", res.Body)
				}
			}},
	}, "JSON Patch", "FHIRPath Patch", "If-Match stale", "the result is not valid")
}

// Patches at once on one resource: each appends an identifier, and none
// is lost (the patch reads the resource locked, in its transaction).
func TestConcurrentPatch(t *testing.T) {
	eachStore(t, func(t *testing.T, newHandler func(t *testing.T) http.Handler) {
		h := newHandler(t)
		put("/fhir/Patient/p1", `{"resourceType":"Patient","id":"p1","identifier":[{"value":"0"}]}`).Do(t, h)
		const clients, rounds = 4, 5
		var wg sync.WaitGroup
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := range rounds {
					rec := do(t, h, http.MethodPatch, "/fhir/Patient/p1", fmt.Sprintf(`[{"op":"add","path":"/identifier/-","value":{"value":"%d-%d"}}]`, c, r),
						"Content-Type", "application/json-patch+json", "Prefer", "return=minimal")
					if rec.Code != 200 {
						t.Errorf("status %d: %s", rec.Code, rec.Body.String())
					}
				}
			}()
		}
		wg.Wait()
		rec := do(t, h, http.MethodGet, "/fhir/Patient/p1", "")
		var p struct {
			Identifier []json.RawMessage `json:"identifier"`
			Meta       struct {
				VersionID string `json:"versionId"`
			} `json:"meta"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		if len(p.Identifier) != 1+clients*rounds || p.Meta.VersionID != fmt.Sprint(1+clients*rounds) {
			t.Fatalf("%d identifiers at version %s after %d patches: an update was lost", len(p.Identifier), p.Meta.VersionID, clients*rounds)
		}
	})
}
