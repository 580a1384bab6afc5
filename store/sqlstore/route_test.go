package sqlstore

import (
	"net/url"
	"testing"

	"github.com/fhirserver/fhirserver/fhir/search"
)

// TestPatientRoute checks which searches start from one patient's token
// and date rows; the results of both routes are compared on both stores
// by the contract suite (storetest, PatientRoute).
func TestPatientRoute(t *testing.T) {
	cases := []struct {
		types, query string
		narrow       string // the parameter narrowed to the patient; "" for no route
	}{
		{"Observation", "patient=p1&code=1-1", "code"},
		{"Observation", "code=1-1&patient=Patient/p1", "code"},
		{"Observation", "patient:Patient=p1&date=ge2020", "date"},
		{"Observation", "patient=p1&subject:Patient.name=x&code=1-1", "code"},
		{"Observation", "patient=p1&date=ge2020&code=1-1", "code"},
		{"Observation,Condition", "patient=p1&code=1-1", "code"},
		// No route: several patients, a version, an absolute URL, a
		// non-Patient type, nothing on token or date rows, a negation.
		{"Observation", "patient=p1,p2&code=1-1", ""},
		{"Observation", "patient=Patient/p1/_history/2&code=1-1", ""},
		{"Observation", "patient=http://other.org/fhir/Patient/p1&code=1-1", ""},
		{"Observation", "subject=Group/p1&code=1-1", ""},
		{"Observation", "subject=Patient/p1&code=1-1", ""},
		{"Observation", "patient=p1", ""},
		{"Observation", "patient=p1&performer=Practitioner/x", ""},
		{"Observation", "patient=p1&code:not=1-1", ""},
		{"Observation", "patient=p1&code:missing=false", ""},
		{"Observation", "patient=p1&code-value-concept=1-1$2-2", ""},
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			vals, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			types := []string{tc.types}
			if tc.types == "Observation,Condition" {
				types = []string{"Observation", "Condition"}
			}
			q, err := search.Parse(vals, search.Options{Types: types, Strict: true})
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			c := &compiler{}
			c.tenant = c.bind("")
			before := len(c.a)
			got := c.planPatientRoute(scope{r: "r", types: types}, q)
			if tc.narrow == "" {
				if got.skip != -1 || got.narrow != -1 {
					t.Fatalf("route (skip %d, narrow %d), want none", got.skip, got.narrow)
				}
			} else if got.skip < 0 || got.narrow < 0 || q.Clauses[got.skip].Code != "patient" || q.Clauses[got.narrow].Code != tc.narrow || got.patient != "p1" {
				t.Fatalf("route %+v, want patient p1 narrowing %s", got, tc.narrow)
			}
			if len(c.a) != before {
				t.Fatalf("planning bound %d values", len(c.a)-before)
			}
		})
	}
}
