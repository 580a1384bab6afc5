package authz_test

import (
	"context"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/fhirserver/fhirserver/authz"
	"github.com/fhirserver/fhirserver/fhir/search"
	"github.com/fhirserver/fhirserver/store"
	"github.com/fhirserver/fhirserver/store/sqlite"
)

const labScope = "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
const vitalScope = "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs"

// seed stores two patients' data and some shared directory resources.
func seed(t *testing.T) *sqlite.Store {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "fhir.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	obs := func(id, patient, category string) store.Write {
		return store.Write{Type: "Observation", ID: id, Body: []byte(`{"resourceType":"Observation","id":"` + id +
			`","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"` + category +
			`"}]}],"code":{"text":"x"},"subject":{"reference":"Patient/` + patient + `"}}`)}
	}
	for _, w := range []store.Write{
		{Type: "Patient", ID: "a", Body: []byte(`{"resourceType":"Patient","id":"a","generalPractitioner":[{"reference":"Practitioner/doc"}]}`)},
		{Type: "Patient", ID: "b", Body: []byte(`{"resourceType":"Patient","id":"b","generalPractitioner":[{"reference":"Practitioner/doc"}]}`)},
		{Type: "Practitioner", ID: "doc", Body: []byte(`{"resourceType":"Practitioner","id":"doc"}`)},
		{Type: "Organization", ID: "org", Body: []byte(`{"resourceType":"Organization","id":"org"}`)},
		{Type: "Condition", ID: "ca", Body: []byte(`{"resourceType":"Condition","id":"ca","subject":{"reference":"Patient/a"}}`)},
		{Type: "Condition", ID: "cb", Body: []byte(`{"resourceType":"Condition","id":"cb","subject":{"reference":"Patient/b"}}`)},
		obs("la", "a", "laboratory"), obs("va", "a", "vital-signs"), obs("lb", "b", "laboratory"), obs("vb", "b", "vital-signs"),
	} {
		if _, _, err := s.Update(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// visible runs a search of typ ("" = every type) under f and returns the
// matches and the accurate total.
func visible(t *testing.T, s *sqlite.Store, f store.Filter, typ, raw string) []string {
	t.Helper()
	got, _ := visibleTotal(t, s, f, typ, raw)
	return got
}

func visibleTotal(t *testing.T, s *sqlite.Store, f store.Filter, typ, raw string) ([]string, int64) {
	t.Helper()
	vals, _ := url.ParseQuery(raw + "&_total=accurate&_count=100")
	var types []string
	if typ != "" {
		types = []string{typ}
	}
	q, err := search.Parse(vals, search.Options{Types: types, Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	page, err := s.SearchAccess(context.Background(), store.DefaultTenant, q, f)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range page.Matches {
		out = append(out, r.Type+"/"+r.ID)
	}
	for _, r := range page.Included {
		out = append(out, "+"+r.Type+"/"+r.ID)
	}
	if page.Total != int64(len(page.Matches)) && q.Summary != search.SummaryCount {
		t.Errorf("total %d, %d matches", page.Total, len(page.Matches))
	}
	sort.Strings(out)
	return out, page.Total
}

func list(s string) []string {
	if s == "" {
		return nil
	}
	out := strings.Fields(s)
	sort.Strings(out)
	return out
}

// TestCallerSearch decides a search for callers with v1, v2, granular and
// mixed scopes, runs it with the decision's filter on a real store holding
// two patients' data, and checks exactly what each sees.
func TestCallerSearch(t *testing.T) {
	s := seed(t)
	patientA := func(scopes ...string) authz.Caller {
		return authz.Caller{Scopes: append([]string{"launch/patient", "openid"}, scopes...), Patient: "a"}
	}
	allA := "Patient/a Observation/la Observation/va Condition/ca Practitioner/doc Organization/org"
	for _, tc := range []struct {
		name   string
		caller authz.Caller
		typ    string
		query  string
		want   string // "" with deny true: denied
		deny   bool
	}{
		{"v1 patient *.read, system search", patientA("patient/*.read"), "", "", allA, false},
		{"v2 patient *.rs, system search", patientA("patient/*.rs"), "", "", allA, false},
		{"v2 patient *.s, Observation", patientA("patient/*.s"), "Observation", "", "Observation/la Observation/va", false},
		{"patient type scope", patientA("patient/Observation.rs"), "Observation", "", "Observation/la Observation/va", false},
		{"patient type scope, other type denied", patientA("patient/Observation.rs"), "Condition", "", "", true},
		{"patient type scope, system search sees that type", patientA("patient/Observation.rs"), "", "", "Observation/la Observation/va", false},
		{"search naming the other patient is empty", patientA("patient/*.rs"), "Observation", "subject=Patient/b", "", false},
		{"_id of the other patient is empty", patientA("patient/*.rs"), "Patient", "_id=b", "", false},
		{"include of shared types", patientA("patient/*.rs"), "Patient", "_include=Patient:general-practitioner", "Patient/a +Practitioner/doc", false},
		{"revinclude confined", patientA("patient/Patient.rs"), "Patient", "_revinclude=Observation:subject", "Patient/a", false},
		{"revinclude with both scopes", patientA("patient/Patient.rs", "patient/Observation.rs"), "Patient", "_revinclude=Observation:subject", "Patient/a +Observation/la +Observation/va", false},
		{"non-compartment type named", patientA("patient/Practitioner.rs"), "Practitioner", "", "Practitioner/doc", false},
		{"non-compartment type not named", patientA("patient/Observation.rs"), "Practitioner", "", "", true},
		{"include of unnamed shared type", patientA("patient/Patient.rs"), "Patient", "_include=Patient:general-practitioner", "Patient/a", false},
		{"granular", patientA(labScope), "Observation", "", "Observation/la", false},
		{"granular OR granular", patientA(labScope, vitalScope), "Observation", "", "Observation/la Observation/va", false},
		{"granular OR plain", patientA(labScope, "patient/Observation.rs"), "Observation", "", "Observation/la Observation/va", false},
		{"granular is not read of other types", patientA(labScope), "Condition", "", "", true},
		{"granular count", patientA(labScope), "Observation", "_summary=count", "#1", false},
		{"count of the other patient", patientA("patient/*.rs"), "Observation", "subject=Patient/b&_summary=count", "#0", false},
		{"mixed v1 and v2", patientA("patient/Observation.read", "patient/Condition.rs"), "", "", "Observation/la Observation/va Condition/ca", false},
		{"read only is not search", patientA("patient/*.r"), "Observation", "", "", true},
		{"write is not search", patientA("patient/*.write"), "Observation", "", "", true},
		{"malformed scopes ignored", patientA("patient/*.sr", "patient/Observation.rs?nosuch=1", "garbage", "patient/Condition.rs"), "", "", "Condition/ca", false},
		{"patient scope without patient", authz.Caller{Scopes: []string{"patient/*.rs"}}, "Observation", "", "", true},
		{"Patient fhirUser without launch", authz.Caller{Scopes: []string{"patient/*.rs"}, FHIRUserType: "Patient", FHIRUserID: "b"}, "Observation", "", "Observation/lb Observation/vb", false},
		{"user scope, Patient user", authz.Caller{Scopes: []string{"user/*.rs"}, FHIRUserType: "Patient", FHIRUserID: "b"}, "Condition", "", "Condition/cb", false},
		{"user scope, Practitioner user", authz.Caller{Scopes: []string{"user/Condition.rs"}, FHIRUserType: "Practitioner", FHIRUserID: "doc"}, "Condition", "", "Condition/ca Condition/cb", false},
		{"user scope without user", authz.Caller{Scopes: []string{"user/*.rs"}}, "Condition", "", "", true},
		{"system scope", authz.Caller{Scopes: []string{"system/*.read"}}, "Observation", "", "Observation/la Observation/lb Observation/va Observation/vb", false},
		{"system granular", authz.Caller{Scopes: []string{"system/Observation.s?category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs"}}, "Observation", "", "Observation/va Observation/vb", false},
		{"no scopes", authz.Caller{Patient: "a"}, "Observation", "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.caller.Decide(authz.Request{Interaction: authz.Search, Type: tc.typ})
			if d.Allow == tc.deny {
				t.Fatalf("allow %v (rule %s), want %v", d.Allow, d.Rule, !tc.deny)
			}
			if tc.deny {
				if got := visible(t, s, d.Filter, tc.typ, ""); len(got) != 0 {
					t.Errorf("a denied decision's filter admits %v", got)
				}
				return
			}
			if n, ok := strings.CutPrefix(tc.want, "#"); ok {
				if _, total := visibleTotal(t, s, d.Filter, tc.typ, tc.query); strconv.FormatInt(total, 10) != n {
					t.Errorf("total %d, want %s", total, n)
				}
				return
			}
			if got := visible(t, s, d.Filter, tc.typ, tc.query); !slices.Equal(got, list(tc.want)) {
				t.Errorf("sees %v, want %v", got, list(tc.want))
			}
		})
	}
}

// TestCallerInteractions checks which interactions scopes allow.
func TestCallerInteractions(t *testing.T) {
	type want map[authz.Interaction]bool
	all := []authz.Interaction{authz.Read, authz.VRead, authz.History, authz.Search, authz.Create, authz.Update,
		authz.Patch, authz.Delete, authz.CondCreate, authz.CondUpdate, authz.CondPatch, authz.CondDelete}
	for _, tc := range []struct {
		scopes []string
		allow  []authz.Interaction
	}{
		{[]string{"patient/Observation.read"}, []authz.Interaction{authz.Read, authz.VRead, authz.History, authz.Search}},
		{[]string{"patient/Observation.write"}, []authz.Interaction{authz.Create, authz.Update, authz.Patch, authz.Delete}},
		{[]string{"patient/Observation.*"}, all},
		{[]string{"patient/*.cruds"}, all},
		{[]string{"patient/Observation.r"}, []authz.Interaction{authz.Read, authz.VRead, authz.History}},
		{[]string{"patient/Observation.s"}, []authz.Interaction{authz.Search}},
		{[]string{"patient/Observation.c"}, []authz.Interaction{authz.Create}},
		{[]string{"patient/Observation.cs"}, []authz.Interaction{authz.Create, authz.CondCreate, authz.Search}},
		{[]string{"patient/Observation.u"}, []authz.Interaction{authz.Update, authz.Patch}},
		{[]string{"patient/Observation.us"}, []authz.Interaction{authz.Update, authz.Patch, authz.Search, authz.CondUpdate, authz.CondPatch}},
		{[]string{"patient/Observation.d"}, []authz.Interaction{authz.Delete}},
		{[]string{"patient/Observation.ds"}, []authz.Interaction{authz.Delete, authz.CondDelete, authz.Search}},
		{[]string{"patient/Observation.rs", "patient/Observation.c"}, []authz.Interaction{authz.Read, authz.VRead, authz.History, authz.Search, authz.Create, authz.CondCreate}},
		{[]string{"patient/Condition.cruds"}, nil},
		{[]string{"patient/Observation.rsx", "patient/Observation.dr"}, nil},
	} {
		c := authz.Caller{Scopes: tc.scopes, Patient: "a"}
		for _, i := range all {
			d := c.Decide(authz.Request{Interaction: i, Type: "Observation"})
			if d.Allow != slices.Contains(tc.allow, i) {
				t.Errorf("%v %s: allow %v", tc.scopes, i, d.Allow)
			}
			if d.Allow && (len(d.Filter.Grants) == 0 || d.Filter.IsAllowAll()) {
				t.Errorf("%v %s: patient filter %+v", tc.scopes, i, d.Filter)
			}
			if cond := strings.HasPrefix(string(i), "conditional"); d.Allow && cond && len(d.Match.Grants) == 0 {
				t.Errorf("%v %s: no match filter", tc.scopes, i)
			}
		}
	}
	// Operations declare what they need.
	c := authz.Caller{Scopes: []string{"patient/*.rs"}, Patient: "a"}
	for _, tc := range []struct {
		needs authz.Perms
		allow bool
	}{{authz.PermRead, true}, {authz.PermRead | authz.PermSearch, true}, {authz.PermRead | authz.PermCreate, false}, {authz.PermDelete, false}, {0, true}} {
		if d := c.Decide(authz.Request{Interaction: authz.Operation, Type: "Patient", Needs: tc.needs}); d.Allow != tc.allow {
			t.Errorf("operation needing %s: allow %v", tc.needs, d.Allow)
		}
	}
	if d := c.Decide(authz.Request{Interaction: "frobnicate", Type: "Patient"}); d.Allow {
		t.Error("unknown interaction allowed")
	}
}

func TestParseFHIRUser(t *testing.T) {
	for _, tc := range []struct{ in, typ, id string }{
		{"https://ehr.example/fhir/Practitioner/doc", "Practitioner", "doc"},
		{"Patient/123", "Patient", "123"},
		{"https://ehr.example/fhir/Patient/123/", "Patient", "123"},
		{"https://ehr.example/fhir/Nope/1", "", ""},
		{"123", "", ""},
		{"", "", ""},
	} {
		typ, id, ok := authz.ParseFHIRUser(tc.in)
		if typ != tc.typ || id != tc.id || ok != (tc.typ != "") {
			t.Errorf("%q: %q %q %v", tc.in, typ, id, ok)
		}
	}
}
