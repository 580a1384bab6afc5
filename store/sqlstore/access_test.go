package sqlstore_test

import (
	"context"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/fhirserver/fhirserver/fhir/search"
	"github.com/fhirserver/fhirserver/store"
	"github.com/fhirserver/fhirserver/store/sqlite"
	"github.com/fhirserver/fhirserver/store/sqlstore"
)

// TestAccess checks the access seam: one Access restricts matches,
// includes, totals and what chains and _has may look through.
func TestAccess(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "fhir.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, w := range []store.Write{
		{Type: "Patient", ID: "a", Body: []byte(`{"resourceType":"Patient","id":"a","name":[{"family":"Smith"}],"generalPractitioner":[{"reference":"Practitioner/doc"}]}`)},
		{Type: "Patient", ID: "b", Body: []byte(`{"resourceType":"Patient","id":"b","name":[{"family":"Smith"}],"generalPractitioner":[{"reference":"Practitioner/doc"}]}`)},
		{Type: "Practitioner", ID: "doc", Body: []byte(`{"resourceType":"Practitioner","id":"doc","name":[{"family":"Who"}]}`)},
		{Type: "Observation", ID: "oa", Body: []byte(`{"resourceType":"Observation","id":"oa","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/a"}}`)},
		{Type: "Observation", ID: "lab", Body: []byte(`{"resourceType":"Observation","id":"lab","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],"code":{"text":"x"},"subject":{"reference":"Patient/a"}}`)},
		{Type: "Observation", ID: "ob", Body: []byte(`{"resourceType":"Observation","id":"ob","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/b"}}`)},
	} {
		if _, _, err := s.Update(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	patientA := sqlstore.Access{Grants: []sqlstore.Grant{
		{Compartment: &search.Compartment{Type: "Patient", ID: "a"}},
		{Types: []string{"Practitioner"}},
	}}
	clauses := func(typ, raw string) []search.Clause {
		t.Helper()
		vals, _ := url.ParseQuery(raw)
		q, err := search.Parse(vals, search.Options{Types: []string{typ}, Strict: true})
		if err != nil {
			t.Fatal(err)
		}
		return q.Clauses
	}
	labA := sqlstore.Access{Grants: []sqlstore.Grant{
		{Types: []string{"Observation"}, Compartment: &search.Compartment{Type: "Patient", ID: "a"},
			Where: clauses("Observation", "category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory")},
	}}
	// Granular OR plain: the second grant widens to every Observation of a.
	labOrAll := sqlstore.Access{Grants: append(append([]sqlstore.Grant(nil), labA.Grants...),
		sqlstore.Grant{Types: []string{"Observation"}, Where: clauses("Observation", "_id=ob")})}
	chained := sqlstore.Access{Grants: []sqlstore.Grant{
		{Types: []string{"Observation"}, Where: clauses("Observation", "subject:Patient.name=smith")},
	}}
	untyped := sqlstore.Access{Grants: []sqlstore.Grant{{Where: clauses("Observation", "_id=oa")}}}
	run := func(a sqlstore.Access, typ, raw string) (matches, included []string, total int64) {
		t.Helper()
		vals, _ := url.ParseQuery(raw)
		q, err := search.Parse(vals, search.Options{Types: []string{typ}, Strict: true})
		if err != nil {
			t.Fatal(err)
		}
		page, err := s.SearchAccess(ctx, store.DefaultTenant, q, a)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Matches {
			matches = append(matches, r.Type+"/"+r.ID)
		}
		for _, r := range page.Included {
			included = append(included, r.Type+"/"+r.ID)
		}
		sort.Strings(matches)
		sort.Strings(included)
		return matches, included, page.Total
	}
	for _, tc := range []struct {
		access         sqlstore.Access
		typ, query     string
		match, include []string
		total          int64
	}{
		{sqlstore.AllowAll(), "Patient", "name=smith&_total=accurate", []string{"Patient/a", "Patient/b"}, nil, 2},
		{patientA, "Patient", "name=smith&_total=accurate", []string{"Patient/a"}, nil, 1},
		{patientA, "Observation", "_include=Observation:subject&_total=accurate", []string{"Observation/lab", "Observation/oa"}, []string{"Patient/a"}, 2},
		{labA, "Observation", "_total=accurate", []string{"Observation/lab"}, nil, 1},
		{labA, "Observation", "_include=Observation:subject&_total=accurate", []string{"Observation/lab"}, nil, 1},
		{labA, "Patient", "_revinclude=Observation:subject", nil, nil, 0},
		{labOrAll, "Observation", "_total=accurate", []string{"Observation/lab", "Observation/ob"}, nil, 2},
		{labOrAll, "Observation", "status=final&_summary=count", nil, nil, 2},
		{chained, "Observation", "", nil, nil, 0},
		{untyped, "Observation", "", nil, nil, 0},
		{sqlstore.Access{Grants: []sqlstore.Grant{chained.Grants[0], {Types: []string{"Patient"}}}}, "Patient", "_total=accurate", []string{"Patient/a", "Patient/b"}, nil, 2},
		{patientA, "Patient", "_revinclude=Observation:subject&_include=Patient:general-practitioner", []string{"Patient/a"}, []string{"Observation/lab", "Observation/oa", "Practitioner/doc"}, 1},
		{patientA, "Observation", "subject:Patient.name=smith", []string{"Observation/lab", "Observation/oa"}, nil, 2},
		{patientA, "Patient", "_has:Observation:subject:status=final", []string{"Patient/a"}, nil, 1},
		{sqlstore.AllowAll(), "Practitioner", "_has:Patient:general-practitioner:_id=b", []string{"Practitioner/doc"}, nil, 1},
		{patientA, "Practitioner", "_has:Patient:general-practitioner:_id=b", nil, nil, 0},
		{sqlstore.Access{}, "Patient", "", nil, nil, 0},
	} {
		m, inc, total := run(tc.access, tc.typ, tc.query)
		if !slices.Equal(m, tc.match) || !slices.Equal(inc, tc.include) || total != tc.total {
			t.Errorf("%s?%s: matches %v included %v total %d; want %v %v %d", tc.typ, tc.query, m, inc, total, tc.match, tc.include, tc.total)
		}
	}
}
