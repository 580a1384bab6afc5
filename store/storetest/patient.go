package storetest

import (
	"context"
	"slices"
	"strconv"
	"testing"

	"github.com/fhirserver/fhirserver/fhir/search"
	"github.com/fhirserver/fhirserver/store"
)

// testPatientRoute checks the searches by one patient that start from the
// patient column of token and date rows (sqlstore's patient route) against
// the same searches by several patients, which do not, and against hand
// computed sets: resources that refer to several patients, to a Group, and
// after updates, imports and deletes.
func testPatientRoute(t *testing.T, s store.Store, se store.Searcher) {
	ctx := context.Background()
	const tenant = "patients"
	appointment := func(id, status, start string, actors ...string) []byte {
		parts := ""
		for i, a := range actors {
			if i > 0 {
				parts += ","
			}
			parts += `{"actor":{"reference":"` + a + `"},"status":"accepted"}`
		}
		return []byte(`{"resourceType":"Appointment","id":"` + id + `","status":"` + status + `","start":"` + start + `","end":"` + start + `","participant":[` + parts + `]}`)
	}
	observation := func(id, subject, code, when string) []byte {
		return []byte(`{"resourceType":"Observation","id":"` + id + `","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"` + code + `"}]},"subject":{"reference":"` + subject + `"},"effectiveDateTime":"` + when + `"}`)
	}
	put := func(typ, id string, body []byte) {
		t.Helper()
		if _, _, err := s.Update(ctx, store.Write{Tenant: tenant, Type: typ, ID: id, Body: body}); err != nil {
			t.Fatalf("storing %s/%s: %v", typ, id, err)
		}
	}
	put("Appointment", "a1", appointment("a1", "booked", "2020-05-01T10:00:00Z", "Patient/pa", "Patient/pb", "Practitioner/dr"))
	put("Appointment", "a2", appointment("a2", "cancelled", "2021-01-01T10:00:00Z", "Patient/pa"))
	put("Appointment", "a3", appointment("a3", "booked", "2020-06-01T10:00:00Z", "Practitioner/dr"))
	put("Observation", "o1", observation("o1", "Patient/pa", "1-1", "2019-01-01"))
	put("Observation", "o2", observation("o2", "Group/pa", "1-1", "2019-01-01"))
	put("Observation", "o3", observation("o3", "Patient/pb", "1-1", "2019-02-01"))
	put("Observation", "o4", observation("o4", "Patient/pa", "2-2", "2018-01-01"))
	put("Observation", "o5", observation("o5", "Patient/pa", "2-2", "2020-01-01"))
	// pa's, performed by pb: in both patients' compartments.
	for _, id := range []string{"o6", "o7"} {
		put("Observation", id, []byte(`{"resourceType":"Observation","id":"`+id+`","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"3-3"}]},"subject":{"reference":"Patient/pa"},"performer":[{"reference":"Patient/pb"}],"effectiveDateTime":"2017-01-01"}`))
	}

	A := func(ids ...string) []string { return keys("Appointment", ids...) }
	O := func(ids ...string) []string { return keys("Observation", ids...) }
	runCases(t, se, tenant, []searchCase{
		{name: "second of several patients and token", types: "Appointment", query: "patient=pb&status=booked", want: A("a1")},
		{name: "first of several patients and token", types: "Appointment", query: "patient=pa&status=booked,cancelled", want: A("a1", "a2")},
		{name: "typed and date", types: "Appointment", query: "patient=Patient/pb&date=ge2020-01-01", want: A("a1")},
		{name: "date sorted", types: "Appointment", query: "patient=pa&date=ge2020-01-01&_sort=-date", want: A("a2", "a1"), order: true},
		{name: "date and token", types: "Appointment", query: "patient=pa&date=lt2021-01-01&status=booked", want: A("a1")},
		{name: "no patient", types: "Appointment", query: "patient=dr&status=booked", want: nil},
		{name: "observation", types: "Observation", query: "patient=pa&code=1-1", want: O("o1")},
		{name: "group subject is no patient", types: "Observation", query: "patient=pa&code=http://loinc.org|1-1", want: O("o1")},
		{name: "group by subject", types: "Observation", query: "subject=Group/pa&code=1-1", want: O("o2")},
		{name: "type modifier", types: "Observation", query: "patient:Patient=pb&code=1-1", want: O("o3")},
		{name: "token :not is not narrowed", types: "Observation", query: "patient=pa&code:not=1-1", want: O("o4", "o5", "o6", "o7")},
		{name: "two patients", types: "Observation", query: "patient=pa,pb&code=1-1", want: O("o1", "o3")},
		{name: "token sorted by date", types: "Observation", query: "patient=pa&code=2-2&_sort=-date", want: O("o5", "o4"), order: true},
		{name: "token sorted by date, paged", types: "Observation", query: "patient=pa&code=2-2,3-3&_sort=date&_count=1", want: O("o6", "o7", "o4", "o5"), order: true},
		{name: "two clauses narrowed once", types: "Observation", query: "patient=pa&code=1-1,2-2&date=lt2019-01-01", want: O("o4")},
		{name: "several types", types: "Observation,Appointment", query: "patient=pa&date=ge2019-01-01", want: append(O("o1", "o5"), A("a1", "a2")...)},
	})

	// Sorted by the date the patient's rows are narrowed on, the key
	// comes from those rows: it must be the key of all of the resource's
	// values, also those that do not match. e1 has two location periods.
	encounter := func(id string, periods ...string) []byte {
		locs := ""
		for i, p := range periods {
			if i > 0 {
				locs += ","
			}
			locs += `{"location":{"reference":"Location/l` + strconv.Itoa(i) + `"},"period":{"start":"` + p + `","end":"` + p + `"}}`
		}
		return []byte(`{"resourceType":"Encounter","id":"` + id + `","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/pa"},"location":[` + locs + `]}`)
	}
	put("Encounter", "e1", encounter("e1", "2020-01-10", "2020-06-10"))
	put("Encounter", "e2", encounter("e2", "2020-03-10"))
	put("Encounter", "e3", encounter("e3", "2019-03-10", "2021-03-10"))
	put("Encounter", "e4", []byte(`{"resourceType":"Encounter","id":"e4","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/pa"}}`))
	E := func(ids ...string) []string { return keys("Encounter", ids...) }
	sorted := []searchCase{
		{name: "latest end first", query: "location-period=ge2019-01-01&_sort=-location-period", want: E("e3", "e1", "e2")},
		{name: "earliest start first", query: "location-period=ge2019-01-01&_sort=location-period", want: E("e3", "e1", "e2")},
		{name: "key of a value that does not match", query: "location-period=lt2020-02-01&_sort=-location-period", want: E("e3", "e1")},
		{name: "key of a value that does not match ascending", query: "location-period=gt2020-02-01&_sort=location-period", want: E("e3", "e1", "e2")},
		{name: "then by id", query: "location-period=ge2020-01-01&_sort=-location-period,-_id", want: E("e3", "e1", "e2")},
		// Sorted by a date without a clause on it: the key from the
		// patient's date rows, a resource without a value last.
		{name: "by date only", query: "_sort=-location-period", want: E("e3", "e1", "e2", "e4")},
		{name: "by date only ascending", query: "_sort=location-period", want: E("e3", "e1", "e2", "e4")},
		{name: "by a token and a date", query: "status=finished&_sort=-location-period,_id", want: E("e3", "e1", "e2", "e4")},
		{name: "by id then date", query: "status=finished&_sort=-_id,location-period", want: E("e4", "e3", "e2", "e1")},
	}
	for _, tc := range sorted {
		t.Run("sorted "+tc.name, func(t *testing.T) {
			for _, count := range []string{"", "&_count=1"} {
				routed := searchAll(t, se, tenant, query(t, []string{"Encounter"}, nil, "patient=pa&"+tc.query+count))
				probed := searchAll(t, se, tenant, query(t, []string{"Encounter"}, nil, "patient=pa,nobody&"+tc.query+count))
				if !slices.Equal(routed, tc.want) || !slices.Equal(probed, tc.want) {
					t.Fatalf("%s%s: one patient %v, two %v, want %v", tc.query, count, routed, probed, tc.want)
				}
			}
			for _, total := range []string{"&_total=accurate&_count=1", "&_summary=count"} {
				page, err := se.Search(ctx, tenant, query(t, []string{"Encounter"}, nil, "patient=pa&"+tc.query+total))
				if err != nil {
					t.Fatal(err)
				}
				if page.Total != int64(len(tc.want)) {
					t.Fatalf("%s%s: total %d, want %d", tc.query, total, page.Total, len(tc.want))
				}
			}
		})
	}

	// Under an access filter the matches' ids are filtered before they are
	// paged: pa's o1, o4 and o5 (not in pb's compartment) sort before o6
	// and o7, and pages of one must still bring both; a granular filter
	// likewise (o4, o5).
	if fs, ok := s.(store.FilteredSearcher); ok {
		compB := store.Filter{Grants: []store.Grant{{Compartment: &search.Compartment{Type: "Patient", ID: "pb"}}}}
		code22 := store.Filter{Grants: []store.Grant{{Types: []string{"Observation"}, Where: query(t, []string{"Observation"}, nil, "code=2-2").Clauses}}}
		for _, tc := range []struct {
			f    store.Filter
			want []string
		}{{compB, O("o6", "o7")}, {code22, O("o4", "o5")}} {
			for _, q := range []string{"patient=pa", "patient=pa&_sort=_id", "patient=pa&_sort=date", "patient=pa&date=ge2000-01-01&_sort=-date", "patient=pa&status=final"} {
				var got []string
				sq := query(t, []string{"Observation"}, nil, q+"&_count=1")
				for i := 0; i < 5; i++ {
					page, err := fs.SearchAccess(ctx, tenant, sq, tc.f)
					if err != nil {
						t.Fatalf("%s: %v", q, err)
					}
					got = append(got, keysOf(page.Matches)...)
					if page.Next == "" {
						break
					}
					next := *sq
					next.Cursor = page.Next
					sq = &next
				}
				if !sameSet(got, tc.want) {
					t.Fatalf("%s under a filter, in pages of one: %v, want %v", q, got, tc.want)
				}
			}
		}
	}

	find := func(q string) []string { return searchAll(t, se, tenant, query(t, []string{"Appointment"}, nil, q)) }
	// An update that drops a patient drops its rows.
	put("Appointment", "a1", appointment("a1", "booked", "2020-05-01T10:00:00Z", "Patient/pa"))
	if got := find("patient=pb&status=booked"); len(got) != 0 {
		t.Fatalf("after the update, patient pb still finds %v", got)
	}
	if got := find("patient=pa&status=booked"); !sameSet(got, A("a1")) {
		t.Fatalf("after the update, patient pa finds %v", got)
	}
	// An import writes the rows of every patient.
	if _, err := s.Import(ctx, tenant, []store.Write{{Type: "Appointment", ID: "a1", Body: appointment("a1", "booked", "2020-05-01T10:00:00Z", "Patient/pb", "Patient/pc")}}); err != nil {
		t.Fatalf("import: %v", err)
	}
	for _, p := range []string{"pb", "pc"} {
		if got := find("patient=" + p + "&date=2020-05-01"); !sameSet(got, A("a1")) {
			t.Fatalf("after the import, patient %s finds %v", p, got)
		}
	}
	if got := find("patient=pa&status=booked"); len(got) != 0 {
		t.Fatalf("after the import, patient pa still finds %v", got)
	}
	if _, err := s.Delete(ctx, store.Delete{Tenant: tenant, Type: "Appointment", ID: "a1"}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if got := find("patient=pc&status=booked"); len(got) != 0 {
		t.Fatalf("after the delete, patient pc finds %v", got)
	}
}
