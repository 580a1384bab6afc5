package storetest

import (
	"context"
	"slices"
	"sort"
	"strconv"
	"testing"

	"github.com/fhirserver/fhirserver/fhir/search"
	"github.com/fhirserver/fhirserver/store"
)

// RunAccess is the contract of store.FilteredSearcher: a Filter confines
// matches, includes, totals, counts, pages, chains and _has; granular
// grants (Where) are ORed; grants a store refuses (a chain in Where, Where
// without one type) admit nothing, also next to others; a grant admitting
// everything makes the filter admit everything.
func RunAccess(t *testing.T, opener Opener) {
	s := opener(t)(t)
	defer s.Close()
	fs, ok := s.(store.FilteredSearcher)
	if !ok {
		t.Fatalf("%T does not implement store.FilteredSearcher", s)
	}
	ctx := context.Background()
	obs := func(id, patient, category string) store.Write {
		return store.Write{Type: "Observation", ID: id, Body: []byte(`{"resourceType":"Observation","id":"` + id +
			`","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"` + category +
			`"}]}],"code":{"text":"x"},"subject":{"reference":"Patient/` + patient + `"}}`)}
	}
	for _, w := range []store.Write{
		{Type: "Patient", ID: "a", Body: []byte(`{"resourceType":"Patient","id":"a","name":[{"family":"Smith"}],"generalPractitioner":[{"reference":"Practitioner/doc"}]}`)},
		{Type: "Patient", ID: "b", Body: []byte(`{"resourceType":"Patient","id":"b","name":[{"family":"Smith"}],"generalPractitioner":[{"reference":"Practitioner/doc"}]}`)},
		{Type: "Practitioner", ID: "doc", Body: []byte(`{"resourceType":"Practitioner","id":"doc","name":[{"family":"Who"}]}`)},
		obs("la", "a", "laboratory"), obs("va", "a", "vital-signs"), obs("lb", "b", "laboratory"), obs("vb", "b", "vital-signs"),
	} {
		w.Tenant = store.DefaultTenant
		if _, _, err := s.Update(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	const cat = "category=http://terminology.hl7.org/CodeSystem/observation-category|"
	where := func(raw string) []search.Clause { return query(t, []string{"Observation"}, nil, raw).Clauses }
	compA := &search.Compartment{Type: "Patient", ID: "a"}
	patientA := store.Filter{Grants: []store.Grant{{Compartment: compA}, {Types: []string{"Practitioner"}}}}
	labA := store.Grant{Types: []string{"Observation"}, Compartment: compA, Where: where(cat + "laboratory")}
	vitalAny := store.Grant{Types: []string{"Observation"}, Where: where(cat + "vital-signs")}
	chain := store.Grant{Types: []string{"Observation"}, Where: where("subject:Patient.name=smith")}
	untyped := store.Grant{Where: where("_id=la")}
	for _, tc := range []struct {
		name         string
		f            store.Filter
		typ, query   string
		want         []string
		wantIncluded []string
	}{
		{"allow all", store.AllowAll(), "Observation", "", []string{"Observation/la", "Observation/lb", "Observation/va", "Observation/vb"}, nil},
		{"nothing", store.Filter{}, "Observation", "", nil, nil},
		{"compartment", patientA, "Observation", "", []string{"Observation/la", "Observation/va"}, nil},
		{"compartment, other patient named", patientA, "Observation", "subject=Patient/b", nil, nil},
		{"compartment, system level", patientA, "", "", []string{"Observation/la", "Observation/va", "Patient/a", "Practitioner/doc"}, nil},
		{"includes", patientA, "Observation", "_include=Observation:subject", []string{"Observation/la", "Observation/va"}, []string{"Patient/a"}},
		{"revincludes", patientA, "Practitioner", "_revinclude=Patient:general-practitioner", []string{"Practitioner/doc"}, []string{"Patient/a"}},
		{"chain", patientA, "Observation", "subject:Patient.name=smith", []string{"Observation/la", "Observation/va"}, nil},
		{"_has", patientA, "Patient", "_has:Observation:subject:status=final", []string{"Patient/a"}, nil},
		{"granular", store.Filter{Grants: []store.Grant{labA}}, "Observation", "", []string{"Observation/la"}, nil},
		{"granular OR granular", store.Filter{Grants: []store.Grant{labA, vitalAny}}, "Observation", "", []string{"Observation/la", "Observation/va", "Observation/vb"}, nil},
		{"granular includes", store.Filter{Grants: []store.Grant{labA, {Types: []string{"Patient"}}}}, "Observation", "_include=Observation:subject", []string{"Observation/la"}, []string{"Patient/a"}},
		{"refused chain grant", store.Filter{Grants: []store.Grant{chain}}, "Observation", "", nil, nil},
		{"refused untyped grant", store.Filter{Grants: []store.Grant{untyped}}, "Observation", "", nil, nil},
		{"refused grant beside others", store.Filter{Grants: []store.Grant{labA, chain, untyped, vitalAny}}, "Observation", "status=final", []string{"Observation/la", "Observation/va", "Observation/vb"}, nil},
		{"grants before allow-all", store.Filter{Grants: []store.Grant{labA, chain, {}}}, "Observation", "status=final", []string{"Observation/la", "Observation/lb", "Observation/va", "Observation/vb"}, nil},
		// Searches by one patient decide the filter on the matches' ids
		// before they read resources (sqlstore's late path).
		{"by one patient, granular", store.Filter{Grants: []store.Grant{labA, vitalAny}}, "Observation", "patient=a", []string{"Observation/la", "Observation/va"}, nil},
		{"by one patient, one of two", store.Filter{Grants: []store.Grant{vitalAny}}, "Observation", "patient=b&_sort=_id", []string{"Observation/vb"}, nil},
		{"by one patient, sorted", store.Filter{Grants: []store.Grant{labA}}, "Observation", "patient=a&_sort=-date", []string{"Observation/la"}, nil},
		{"by one patient, token", patientA, "Observation", "patient=a&status=final", []string{"Observation/la", "Observation/va"}, nil},
		{"by another patient", patientA, "Observation", "patient=b", nil, nil},
		{"by another patient, token", patientA, "Observation", "patient=b&status=final", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := func(raw string) *store.SearchPage {
				t.Helper()
				var types []string
				if tc.typ != "" {
					types = []string{tc.typ}
				}
				page, err := fs.SearchAccess(ctx, store.DefaultTenant, query(t, types, nil, raw), tc.f)
				if err != nil {
					t.Fatal(err)
				}
				return page
			}
			sep := "&"
			if tc.query == "" {
				sep = ""
			}
			page := run(tc.query + sep + "_total=accurate")
			got, inc := keysOf(page.Matches), keysOf(page.Included)
			sort.Strings(got)
			sort.Strings(inc)
			if !slices.Equal(got, tc.want) || !slices.Equal(inc, tc.wantIncluded) || page.Total != int64(len(tc.want)) {
				t.Errorf("matches %v included %v total %d; want %v %v %d", got, inc, page.Total, tc.want, tc.wantIncluded, len(tc.want))
			}
			if n := run(tc.query + sep + "_summary=count").Total; n != int64(len(tc.want)) {
				t.Errorf("_summary=count %d, want %d", n, len(tc.want))
			}
			// Pages of one: every page is confined, and together they are the matches.
			var paged []string
			q := tc.query + sep + "_count=1"
			for i := 0; i < 10; i++ {
				var types []string
				if tc.typ != "" {
					types = []string{tc.typ}
				}
				sq := query(t, types, nil, q)
				if len(paged) > 0 {
					sq.Cursor = page.Next
				}
				page, _ = fs.SearchAccess(ctx, store.DefaultTenant, sq, tc.f)
				if page == nil {
					t.Fatal("paging failed")
				}
				paged = append(paged, keysOf(page.Matches)...)
				if page.Next == "" {
					break
				}
				// Hidden resources take no place on a page.
				if len(page.Matches) != 1 {
					t.Errorf("a page of one holds %d matches before its end", len(page.Matches))
				}
			}
			sort.Strings(paged)
			if !slices.Equal(paged, tc.want) {
				t.Errorf("paged %v, want %v", paged, tc.want)
			}
		})
	}

	t.Run("any patient's compartment", func(t *testing.T) {
		// Compartment{Patient, ""}: what belongs to some patient (the
		// Practitioner belongs to none), under the filter, counted alike.
		for _, tc := range []struct {
			name string
			f    store.Filter
			want []string
		}{
			{"allow all", store.AllowAll(), []string{"Observation/la", "Observation/lb", "Observation/va", "Observation/vb", "Patient/a", "Patient/b"}},
			{"patient a", patientA, []string{"Observation/la", "Observation/va", "Patient/a"}},
			{"granular", store.Filter{Grants: []store.Grant{labA, vitalAny}}, []string{"Observation/la", "Observation/va", "Observation/vb"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				q := query(t, nil, nil, "_total=accurate")
				q.Compartment = &search.Compartment{Type: "Patient"}
				page, err := fs.SearchAccess(ctx, store.DefaultTenant, q, tc.f)
				if err != nil {
					t.Fatal(err)
				}
				got := keysOf(page.Matches)
				sort.Strings(got)
				if !slices.Equal(got, tc.want) || page.Total != int64(len(tc.want)) {
					t.Errorf("matches %v total %d; want %v", got, page.Total, tc.want)
				}
			})
		}
		// IncludeTypes narrows _include=*: the Observations' Patients only
		// without it.
		for _, only := range [][]string{nil, {"Practitioner"}, {"Patient", "Practitioner"}} {
			q := query(t, []string{"Observation"}, nil, "_include=*")
			q.Compartment = &search.Compartment{Type: "Patient"}
			q.IncludeTypes = only
			page, err := fs.SearchAccess(ctx, store.DefaultTenant, q, patientA)
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"Patient/a"}
			if len(only) == 1 {
				want = nil
			}
			if got := keysOf(page.Included); !slices.Equal(got, want) || len(page.Matches) != 2 {
				t.Errorf("IncludeTypes %v: included %v, want %v (%d matches)", only, got, want, len(page.Matches))
			}
		}
	})

	t.Run("history", func(t *testing.T) { runHistoryAccess(t, s, patientA, labA) })
	t.Run("several compartments", func(t *testing.T) { runAlsoIn(t, s, fs) })
}

// runAlsoIn is the contract of Grant.AlsoIn: a resource must be in every
// compartment the grant names. Observation ab is in a's compartment (its
// subject) and in b's (its performer); the history test has moved mv to a.
func runAlsoIn(t *testing.T, s store.Store, fs store.FilteredSearcher) {
	ctx := context.Background()
	body := `{"resourceType":"Observation","id":"ab","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/a"},"performer":[{"reference":"Patient/b"}]}`
	if _, _, err := s.Update(ctx, store.Write{Tenant: store.DefaultTenant, Type: "Observation", ID: "ab", Body: []byte(body)}); err != nil {
		t.Fatal(err)
	}
	a := search.Compartment{Type: "Patient", ID: "a"}
	b := search.Compartment{Type: "Patient", ID: "b"}
	nobody := search.Compartment{Type: "Patient", ID: "nobody"}
	for _, tc := range []struct {
		name string
		g    store.Grant
		want []string
	}{
		{"one compartment", store.Grant{Types: []string{"Observation"}, Compartment: &a}, []string{"Observation/ab", "Observation/la", "Observation/mv", "Observation/va"}}, // mv: moved to a by the history test
		{"both", store.Grant{Types: []string{"Observation"}, Compartment: &a, AlsoIn: []search.Compartment{b}}, []string{"Observation/ab"}},
		{"both, AlsoIn only", store.Grant{Types: []string{"Observation"}, AlsoIn: []search.Compartment{a, b}}, []string{"Observation/ab"}},
		{"a third", store.Grant{Types: []string{"Observation"}, Compartment: &a, AlsoIn: []search.Compartment{b, nobody}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			page, err := fs.SearchAccess(ctx, store.DefaultTenant, query(t, []string{"Observation"}, nil, "_total=accurate"), store.Filter{Grants: []store.Grant{tc.g}})
			if err != nil {
				t.Fatal(err)
			}
			got := keysOf(page.Matches)
			sort.Strings(got)
			if !slices.Equal(got, tc.want) || page.Total != int64(len(tc.want)) {
				t.Errorf("matches %v total %d, want %v", got, page.Total, tc.want)
			}
		})
	}
}

// runHistoryAccess is the contract of HistoryQuery.Filter: the versions
// of the resources whose current version the filter admits, at every
// level, counted and paged alike; nothing of a resource deleted now.
func runHistoryAccess(t *testing.T, s store.Store, patientA store.Filter, labA store.Grant) {
	ctx := context.Background()
	write := func(typ, id, body string) {
		t.Helper()
		if _, _, err := s.Update(ctx, store.Write{Tenant: store.DefaultTenant, Type: typ, ID: id, Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	obs := func(id, patient, category, status string) string {
		return `{"resourceType":"Observation","id":"` + id + `","status":"` + status + `","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"` +
			category + `"}]}],"code":{"text":"x"},"subject":{"reference":"Patient/` + patient + `"}}`
	}
	write("Observation", "la", obs("la", "a", "laboratory", "amended"))
	write("Observation", "lb", obs("lb", "b", "laboratory", "amended"))
	// Moved from b to a: its old version (b's) is listed for a, since the
	// decision is on the current version.
	write("Observation", "mv", obs("mv", "b", "vital-signs", "final"))
	write("Observation", "mv", obs("mv", "a", "vital-signs", "amended"))
	write("Observation", "gone", obs("gone", "a", "laboratory", "final"))
	if _, err := s.Delete(ctx, store.Delete{Tenant: store.DefaultTenant, Type: "Observation", ID: "gone"}); err != nil {
		t.Fatal(err)
	}
	nothing := store.Filter{}
	lab := store.Filter{Grants: []store.Grant{labA}}
	for _, tc := range []struct {
		name     string
		f        *store.Filter
		typ, id  string
		want     []string
		anyTotal bool
	}{
		{"system", &patientA, "", "", []string{"Observation/la/1", "Observation/la/2", "Observation/mv/1", "Observation/mv/2", "Observation/va/1", "Patient/a/1", "Practitioner/doc/1"}, false},
		{"type", &patientA, "Observation", "", []string{"Observation/la/1", "Observation/la/2", "Observation/mv/1", "Observation/mv/2", "Observation/va/1"}, false},
		{"instance", &patientA, "Observation", "la", []string{"Observation/la/1", "Observation/la/2"}, false},
		{"other patient's instance", &patientA, "Observation", "lb", nil, false},
		{"deleted instance", &patientA, "Observation", "gone", nil, false},
		{"other patient's type", &patientA, "Patient", "", []string{"Patient/a/1"}, false},
		{"granular", &lab, "", "", []string{"Observation/la/1", "Observation/la/2"}, false},
		{"nothing", &nothing, "", "", nil, false},
		{"no filter", nil, "Observation", "lb", []string{"Observation/lb/1", "Observation/lb/2"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := store.HistoryQuery{Tenant: store.DefaultTenant, Type: tc.typ, ID: tc.id, Filter: tc.f}
			page, err := s.History(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			got := versionKeys(page.Versions)
			if !slices.Equal(got, tc.want) || page.Total != int64(len(tc.want)) {
				t.Fatalf("versions %v total %d, want %v", got, page.Total, tc.want)
			}
			// Pages of one.
			q.Count = 1
			var paged []store.Version
			for i := 0; i < 20; i++ {
				p, err := s.History(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				if p.Total != int64(len(tc.want)) {
					t.Fatalf("page total %d, want %d", p.Total, len(tc.want))
				}
				paged = append(paged, p.Versions...)
				if p.Next == 0 {
					break
				}
				q.Cursor = p.Next
			}
			if got := versionKeys(paged); !slices.Equal(got, tc.want) {
				t.Fatalf("paged %v, want %v", got, tc.want)
			}
		})
	}
}

func versionKeys(vs []store.Version) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Type+"/"+v.ID+"/"+strconv.FormatInt(v.Version, 10))
	}
	sort.Strings(out)
	return out
}
