package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fhirserver/fhirserver/authz"
	"github.com/fhirserver/fhirserver/importer"
	"github.com/fhirserver/fhirserver/server"
	"github.com/fhirserver/fhirserver/store/postgres"
)

// mapVerifier maps a token string to a caller: the bearer middleware is
// tested elsewhere (auth_test.go); here the caller is what matters.
type mapVerifier map[string]*authz.Caller

func (v mapVerifier) Verify(ctx context.Context, raw string) (*authz.Caller, error) {
	if c, ok := v[raw]; ok {
		return c, nil
	}
	return nil, server.ErrInvalidToken
}

const labCategory = "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"

// accessCaller is one token of the matrix and what it may see.
type accessCaller struct {
	name   string
	caller *authz.Caller
	// confined: only patient A's compartment (plus non-patient types);
	// obsOnly: only Observation; lab: only laboratory Observations.
	confined, obsOnly, lab bool
	// writes: the token's write permission is unrestricted (on
	// Observation, for an obsOnly writer); cw: it is confined to patient A's
	// compartment; wLab: (with cw) to A's laboratory Observations.
	writes, cw, wLab bool
}

// TestAccessMatrix runs every read path (search at system, type and
// compartment level with _include, _revinclude, chains, _has, _total and
// _summary=count; read; vread; history) and every write (create, update,
// patch, delete, their conditional forms, batch and transaction Bundles:
// access_write_test.go) with patient/, user/ and system/ tokens in v1, v2
// and granular scopes, confined, type-limited and unrestricted, against the
// two Synthea patients, and checks that a token confined to patient A never
// sees, counts, includes or changes anything of patient B, that another
// patient's resource is 404 (like a missing one) and that a good token
// lacking the scope gets 403 with an OperationOutcome.
//
// It runs on SQLite and on PostgreSQL (skipped without PostgreSQL, unless
// required).
func TestAccessMatrix(t *testing.T) {
	smart := func(tokens mapVerifier) func(*server.Deps) {
		return func(d *server.Deps) {
			d.AuthMode = server.AuthSmart
			d.TokenVerifier = tokens
		}
	}
	t.Run("sqlite", func(t *testing.T) {
		tokens := mapVerifier{}
		s, data := syntheaServer(t, smart(tokens))
		runAccessMatrix(t, s, data, tokens)
	})
	t.Run("postgres", func(t *testing.T) {
		tokens := mapVerifier{}
		st, err := postgres.Open(context.Background(), pg.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		h, _ := routerOn(t, st, smart(tokens))
		v, err := validator()
		if err != nil {
			t.Fatal(err)
		}
		im := importer.Importer{Store: st, Validator: v}
		stats, err := im.ImportPaths(context.Background(), []string{filepath.Join("..", "testdata", "synthea")})
		if err != nil || len(stats.Errors) > 0 || stats.Created != 144 {
			t.Fatalf("import: %+v %v", stats, err)
		}
		runAccessMatrix(t, h, readSynthea(t), tokens)
	})
}

func runAccessMatrix(t *testing.T, s http.Handler, data *synthea, tokens mapVerifier) {
	inFile := func(i int) (patient string, compartment []*sampleResource) {
		for _, r := range data.files[i] {
			if r.Type == "Patient" {
				patient = r.ID
			}
		}
		for _, r := range data.files[i] {
			if r.Type != "Organization" && r.Type != "Practitioner" {
				compartment = append(compartment, r)
			}
		}
		return patient, compartment
	}
	a, _ := inFile(0)
	b, bData := inFile(1)
	if a == "" || b == "" || len(bData) < 50 {
		t.Fatalf("patients %q %q, %d resources of B", a, b, len(bData))
	}
	var bObs, bOrg string
	for _, r := range bData {
		if r.Type == "Observation" && bObs == "" {
			bObs = r.ID
		}
	}
	for _, r := range data.files[1] {
		if r.Type == "Organization" {
			bOrg = r.ID
		}
	}
	var aObsList, bObsList []string
	for _, r := range data.files[0] {
		if r.Type == "Observation" {
			aObsList = append(aObsList, r.ID)
		}
	}
	for _, r := range bData {
		if r.Type == "Observation" {
			bObsList = append(bObsList, r.ID)
		}
	}
	// aObs and bObs are read; the others are written.
	aObs, aMove, aUpd, aDel, aPatchMove := aObsList[0], aObsList[1], aObsList[2], aObsList[3], aObsList[4]
	bDel, bPatch := bObsList[1], bObsList[2]

	isLab := func(r *sampleResource) bool {
		cats, _ := r.JSON["category"].([]any)
		for _, c := range cats {
			for _, x := range c.(map[string]any)["coding"].([]any) {
				if x.(map[string]any)["code"] == "laboratory" {
					return true
				}
			}
		}
		return false
	}
	// obs are the Observations a caller may see.
	obs := func(c accessCaller) []string {
		return data.keys(func(r *sampleResource) bool {
			if r.Type != "Observation" {
				return false
			}
			if c.confined && !r.subjectIs("Patient/"+a) {
				return false
			}
			return !c.lab || isLab(r)
		})
	}

	callers := []accessCaller{
		{name: "patient v2 *.rs", caller: &authz.Caller{Scopes: []string{"launch/patient", "patient/*.rs"}, Patient: a}, confined: true},
		{name: "patient v1 *.read", caller: &authz.Caller{Scopes: []string{"patient/*.read"}, Patient: a}, confined: true},
		{name: "patient v1 *.* (writes confined)", caller: &authz.Caller{Scopes: []string{"patient/*.*"}, Patient: a}, confined: true, cw: true},
		{name: "patient granular lab writer", caller: &authz.Caller{Scopes: []string{"patient/Observation.cruds?category=" + labCategory}, Patient: a}, confined: true, obsOnly: true, lab: true, cw: true, wLab: true},
		{name: "patient v2 Observation.rs", caller: &authz.Caller{Scopes: []string{"patient/Observation.rs"}, Patient: a}, confined: true, obsOnly: true},
		{name: "patient granular lab", caller: &authz.Caller{Scopes: []string{"patient/Observation.rs?category=" + labCategory}, Patient: a}, confined: true, obsOnly: true, lab: true},
		{name: "patient user (fhirUser) user/*.rs", caller: &authz.Caller{Scopes: []string{"user/*.rs"}, FHIRUserType: "Patient", FHIRUserID: a}, confined: true},
		{name: "practitioner user/*.cruds", caller: &authz.Caller{Scopes: []string{"user/*.cruds"}, FHIRUserType: "Practitioner", FHIRUserID: "d1"}, writes: true},
		{name: "practitioner user v1 user/*.read", caller: &authz.Caller{Scopes: []string{"user/*.read"}, FHIRUserType: "Practitioner", FHIRUserID: "d1"}},
		{name: "practitioner user/Observation.cruds", caller: &authz.Caller{Scopes: []string{"user/Observation.cruds"}, FHIRUserType: "Practitioner", FHIRUserID: "d1"}, obsOnly: true, writes: true},
		{name: "system v2 *.rs", caller: &authz.Caller{Scopes: []string{"system/*.rs"}}},
		{name: "system v1 *.*", caller: &authz.Caller{Scopes: []string{"system/*.*"}}, writes: true},
		{name: "system Observation.rs", caller: &authz.Caller{Scopes: []string{"system/Observation.rs"}}, obsOnly: true},
		{name: "system granular lab", caller: &authz.Caller{Scopes: []string{"system/Observation.rs?category=" + labCategory}}, obsOnly: true, lab: true},
	}

	// leaks lists what of patient B a body holds.
	leaks := func(body string) []string {
		var out []string
		if strings.Contains(body, b) {
			out = append(out, "Patient/"+b)
		}
		for _, r := range bData {
			if strings.Contains(body, r.ID) {
				out = append(out, r.key())
			}
		}
		return out
	}
	entries := func(t *testing.T, body, mode string) []string {
		t.Helper()
		return decodeSearchset(t, body).keys(mode)
	}
	total := func(t *testing.T, body string) int {
		t.Helper()
		ss := decodeSearchset(t, body)
		if ss.Total == nil {
			t.Fatalf("no total: %.300s", body)
		}
		return *ss.Total
	}
	forbidden := func(t *testing.T, code int, body string) {
		t.Helper()
		if code != http.StatusForbidden {
			t.Fatalf("status %d, want 403: %.300s", code, body)
		}
		var oo outcome
		_ = json.Unmarshal([]byte(body), &oo)
		if oo.ResourceType != "OperationOutcome" || len(oo.Issue) != 1 || oo.Issue[0].Code != "forbidden" ||
			!strings.Contains(oo.Issue[0].Diagnostics, "scopes") {
			t.Fatalf("403 without a forbidden OperationOutcome: %s", body)
		}
	}
	notFound := func(t *testing.T, code int, body, key string) {
		t.Helper()
		if code != http.StatusNotFound {
			t.Fatalf("status %d, want 404: %.300s", code, body)
		}
		var oo outcome
		_ = json.Unmarshal([]byte(body), &oo)
		if len(oo.Issue) != 1 || oo.Issue[0].Code != "not-found" || oo.Issue[0].Diagnostics != key+" is not known" {
			t.Fatalf("404 unlike a missing resource's: %s", body)
		}
	}

	type request struct {
		name, method, path, body string
		header                   []string
		check                    func(t *testing.T, c accessCaller, code int, body string)
	}
	obsBody := func(id, patient, status string) string {
		idm := ""
		if id != "" {
			idm = `"id":"` + id + `",`
		}
		return `{"resourceType":"Observation",` + idm + `"status":"` + status + `","code":{"text":"x"},"subject":{"reference":"Patient/` + patient + `"}}`
	}
	// readAs reads key with an unrestricted token.
	readAs := func(t *testing.T, key string) string {
		t.Helper()
		return do(t, s, "GET", "/fhir/"+key, "", "Authorization", "Bearer "+tokenOf("system v2 *.rs")).Body.String()
	}
	obsAll := func(c accessCaller) []string { return obs(c) }
	patients := func(c accessCaller) []string {
		if c.confined {
			return []string{"Patient/" + a}
		}
		return data.keys(func(r *sampleResource) bool { return r.Type == "Patient" })
	}
	wantOK := func(t *testing.T, code int, body string) {
		t.Helper()
		if code != http.StatusOK {
			t.Fatalf("status %d, want 200: %.300s", code, body)
		}
	}
	requests := []request{
		{name: "type search", path: "/fhir/Observation?_count=1000&_total=accurate", check: func(t *testing.T, c accessCaller, code int, body string) {
			wantOK(t, code, body)
			if got, want := entries(t, body, "match"), obsAll(c); !slices.Equal(got, want) {
				t.Fatalf("matches %d, want %d", len(got), len(want))
			}
			if got := total(t, body); got != len(obsAll(c)) {
				t.Fatalf("total %d, want %d", got, len(obsAll(c)))
			}
		}},
		{name: "_summary=count", path: "/fhir/Observation?_summary=count", check: func(t *testing.T, c accessCaller, code int, body string) {
			wantOK(t, code, body)
			if got := total(t, body); got != len(obsAll(c)) {
				t.Fatalf("total %d, want %d", got, len(obsAll(c)))
			}
		}},
		{name: "paging", path: "/fhir/Observation?_count=7", check: func(t *testing.T, c accessCaller, code int, body string) {
			wantOK(t, code, body)
			var got []string
			for page := 0; ; page++ {
				ss := decodeSearchset(t, body)
				got = append(got, ss.keys("match")...)
				next := ss.link("next")
				if next == "" || page > 50 {
					break
				}
				res := do(t, s, "GET", strings.TrimPrefix(next, base), "", "Authorization", "Bearer "+tokenOf(c.name))
				if res.Code != 200 || len(leaks(res.Body.String())) > 0 && c.confined {
					t.Fatalf("next page %d: %.300s", res.Code, res.Body)
				}
				body = res.Body.String()
			}
			slices.Sort(got)
			if !slices.Equal(got, obsAll(c)) {
				t.Fatalf("pages hold %d, want %d", len(got), len(obsAll(c)))
			}
		}},
		{name: "search naming B", path: "/fhir/Observation?subject=Patient/" + b, check: func(t *testing.T, c accessCaller, code int, body string) {
			wantOK(t, code, body)
			if c.confined && len(entries(t, body, "match")) != 0 {
				t.Fatalf("B's observations: %.300s", body)
			}
			if !c.confined && len(entries(t, body, "match")) == 0 {
				t.Fatalf("nothing for an unconfined caller")
			}
		}},
		{name: "compartment search of B", path: "/fhir/Patient/" + b + "/Observation?_total=accurate", check: func(t *testing.T, c accessCaller, code int, body string) {
			wantOK(t, code, body)
			if c.confined && (len(entries(t, body, "match")) != 0 || total(t, body) != 0) {
				t.Fatalf("B's compartment: %.300s", body)
			}
		}},
		{name: "compartment search of A", path: "/fhir/Patient/" + a + "/Observation?_count=1000", check: func(t *testing.T, c accessCaller, code int, body string) {
			wantOK(t, code, body)
			want := data.keys(func(r *sampleResource) bool {
				return r.Type == "Observation" && r.subjectIs("Patient/"+a) && (!c.lab || isLab(r))
			})
			if got := entries(t, body, "match"); !slices.Equal(got, want) {
				t.Fatalf("matches %d, want %d", len(got), len(want))
			}
		}},
		{name: "chain to B", path: "/fhir/Observation?subject:Patient._id=" + b + "&_total=accurate", check: func(t *testing.T, c accessCaller, code int, body string) {
			wantOK(t, code, body)
			if c.confined && total(t, body) != 0 {
				t.Fatalf("chain reached B: %.300s", body)
			}
		}},
		{name: "_include subject", path: "/fhir/Observation?_include=Observation:subject&_count=1000", check: func(t *testing.T, c accessCaller, code int, body string) {
			wantOK(t, code, body)
			inc := entries(t, body, "include")
			switch {
			case c.obsOnly && len(inc) != 0:
				t.Fatalf("included %v without Patient access", inc)
			case !c.obsOnly && !slices.Equal(inc, patients(c)):
				t.Fatalf("included %v, want %v", inc, patients(c))
			}
		}},
		{name: "compartment everything", path: "/fhir/Patient/" + b + "/*?_count=1000", check: func(t *testing.T, c accessCaller, code int, body string) {
			wantOK(t, code, body)
			if c.confined && len(entries(t, body, "match")) != 0 {
				t.Fatalf("B's compartment: %.300s", body)
			}
		}},
		{name: "$everything of A", path: "/fhir/Patient/" + a + "/$everything?_count=1000", check: func(t *testing.T, c accessCaller, code int, body string) {
			if c.obsOnly {
				forbidden(t, code, body) // Patient not granted: as GET Patient/A
				return
			}
			wantOK(t, code, body)
			want := entries(t, do(t, s, "GET", "/fhir/Patient/"+a+"/*?_count=1000", "", "Authorization", "Bearer "+tokenOf(c.name)).Body.String(), "match")
			if got := entries(t, body, "match"); !slices.Equal(got, want) || !slices.Contains(got, "Patient/"+a) || total(t, body) != len(want) {
				t.Fatalf("matches %d total %d, want A's compartment %d", len(got), total(t, body), len(want))
			}
			if c.confined && len(leaks(body)) > 0 {
				t.Fatalf("B's data: %v", leaks(body))
			}
		}},
		{name: "$everything of B", method: "POST", path: "/fhir/Patient/" + b + "/$everything", check: func(t *testing.T, c accessCaller, code int, body string) {
			switch {
			case c.obsOnly:
				forbidden(t, code, body)
			case c.confined:
				notFound(t, code, body, "Patient/"+b)
			default:
				wantOK(t, code, body)
				if total(t, body) < 50 {
					t.Fatalf("B's $everything holds %d", total(t, body))
				}
			}
		}},
		{name: "type-level $everything", path: "/fhir/Patient/$everything?_count=40", check: func(t *testing.T, c accessCaller, code int, body string) {
			wantOK(t, code, body)
			var want []string
			for _, p := range []string{a, b} {
				want = append(want, entries(t, do(t, s, "GET", "/fhir/Patient/"+p+"/*?_count=1000", "", "Authorization", "Bearer "+tokenOf(c.name)).Body.String(), "match")...)
			}
			slices.Sort(want)
			if total(t, body) != len(want) {
				t.Fatalf("total %d, want %d", total(t, body), len(want))
			}
			var got []string
			for page := 0; ; page++ {
				if c.confined && len(leaks(body)) > 0 {
					t.Fatalf("B's data on page %d: %v", page, leaks(body))
				}
				ss := decodeSearchset(t, body)
				got = append(got, ss.keys("match")...)
				next := ss.link("next")
				if next == "" || page > 50 {
					break
				}
				res := do(t, s, "GET", strings.TrimPrefix(next, base), "", "Authorization", "Bearer "+tokenOf(c.name))
				if res.Code != 200 {
					t.Fatalf("next page %d: %.300s", res.Code, res.Body)
				}
				body = res.Body.String()
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("pages hold %d, want %d", len(got), len(want))
			}
		}},
		{name: "system search", path: "/fhir?_type=Patient,Observation&_count=1000&_total=accurate", check: func(t *testing.T, c accessCaller, code int, body string) {
			wantOK(t, code, body)
			want := obsAll(c)
			if !c.obsOnly {
				want = append(want, patients(c)...)
				slices.Sort(want)
			}
			if got := entries(t, body, "match"); !slices.Equal(got, want) {
				t.Fatalf("matches %d, want %d", len(got), len(want))
			}
		}},
		{name: "Patient search with _revinclude and _has", path: "/fhir/Patient?_revinclude=Observation:subject&_has:Observation:subject:status=final&_count=100&_total=accurate", check: func(t *testing.T, c accessCaller, code int, body string) {
			if c.obsOnly {
				forbidden(t, code, body)
				return
			}
			wantOK(t, code, body)
			if got := entries(t, body, "match"); !slices.Equal(got, patients(c)) {
				t.Fatalf("matches %v, want %v", got, patients(c))
			}
			if got := entries(t, body, "include"); !slices.Equal(got, obsAll(c)) {
				t.Fatalf("included %d, want %d", len(got), len(obsAll(c)))
			}
		}},
		{name: "_has through B's observations", path: "/fhir/Patient?_has:Observation:subject:_id=" + bObs + "&_total=accurate", check: func(t *testing.T, c accessCaller, code int, body string) {
			if c.obsOnly {
				forbidden(t, code, body)
				return
			}
			wantOK(t, code, body)
			if want := map[bool]int{true: 0, false: 1}[c.confined]; total(t, body) != want {
				t.Fatalf("total %d, want %d", total(t, body), want)
			}
		}},
		{name: "type search of a type not granted", path: "/fhir/Condition", check: func(t *testing.T, c accessCaller, code int, body string) {
			if c.obsOnly {
				forbidden(t, code, body)
				return
			}
			wantOK(t, code, body)
		}},
		{name: "read own patient", path: "/fhir/Patient/" + a, check: func(t *testing.T, c accessCaller, code int, body string) {
			if c.obsOnly {
				forbidden(t, code, body)
				return
			}
			wantOK(t, code, body)
		}},
		{name: "read other patient", path: "/fhir/Patient/" + b, check: func(t *testing.T, c accessCaller, code int, body string) {
			switch {
			case c.obsOnly:
				forbidden(t, code, body)
			case c.confined:
				notFound(t, code, body, "Patient/"+b)
			default:
				wantOK(t, code, body)
			}
		}},
		{name: "read own observation", path: "/fhir/Observation/" + aObs, check: func(t *testing.T, c accessCaller, code int, body string) {
			if c.lab && !isLab(data.byKey["Observation/"+aObs]) {
				notFound(t, code, body, "Observation/"+aObs)
				return
			}
			wantOK(t, code, body)
		}},
		{name: "read other's observation", path: "/fhir/Observation/" + bObs, check: func(t *testing.T, c accessCaller, code int, body string) {
			if c.confined || (c.lab && !isLab(data.byKey["Observation/"+bObs])) {
				notFound(t, code, body, "Observation/"+bObs)
				return
			}
			wantOK(t, code, body)
		}},
		{name: "read missing observation", path: "/fhir/Observation/nope", check: func(t *testing.T, c accessCaller, code int, body string) {
			notFound(t, code, body, "Observation/nope")
		}},
		{name: "vread other's observation", path: "/fhir/Observation/" + bObs + "/_history/1", check: func(t *testing.T, c accessCaller, code int, body string) {
			if c.confined || (c.lab && !isLab(data.byKey["Observation/"+bObs])) {
				notFound(t, code, body, "Observation/"+bObs)
				return
			}
			wantOK(t, code, body)
		}},
		{name: "vread own observation", path: "/fhir/Observation/" + aObs + "/_history/1", check: func(t *testing.T, c accessCaller, code int, body string) {
			if c.lab && !isLab(data.byKey["Observation/"+aObs]) {
				notFound(t, code, body, "Observation/"+aObs)
				return
			}
			wantOK(t, code, body)
		}},
		{name: "read a shared organization", path: "/fhir/Organization/" + bOrg, check: func(t *testing.T, c accessCaller, code int, body string) {
			if c.obsOnly {
				forbidden(t, code, body)
				return
			}
			wantOK(t, code, body) // types outside patient compartments are granted whole
		}},
		{name: "instance history", path: "/fhir/Patient/" + a + "/_history", check: func(t *testing.T, c accessCaller, code int, body string) {
			if c.obsOnly {
				forbidden(t, code, body)
				return
			}
			wantOK(t, code, body)
			if got := historyKeys(t, body); !slices.Equal(got, []string{"Patient/" + a}) {
				t.Fatalf("history %v", got)
			}
		}},
		{name: "instance history of B", path: "/fhir/Patient/" + b + "/_history", check: func(t *testing.T, c accessCaller, code int, body string) {
			switch {
			case c.obsOnly:
				forbidden(t, code, body)
			case c.confined:
				notFound(t, code, body, "Patient/"+b)
			default:
				wantOK(t, code, body)
			}
		}},
		{name: "instance history of B's observation", path: "/fhir/Observation/" + bObs + "/_history", check: func(t *testing.T, c accessCaller, code int, body string) {
			if c.confined || (c.lab && !isLab(data.byKey["Observation/"+bObs])) {
				notFound(t, code, body, "Observation/"+bObs)
				return
			}
			wantOK(t, code, body)
		}},
		{name: "type history", path: "/fhir/Observation/_history?_count=1000", check: func(t *testing.T, c accessCaller, code int, body string) {
			wantOK(t, code, body)
			if got := historyKeys(t, body); !slices.Equal(got, obsAll(c)) {
				t.Fatalf("history %d, want %d", len(got), len(obsAll(c)))
			}
		}},
		{name: "system history", path: "/fhir/_history?_count=1000", check: func(t *testing.T, c accessCaller, code int, body string) {
			wantOK(t, code, body)
			want := data.keys(func(r *sampleResource) bool {
				switch {
				case c.obsOnly:
					return slices.Contains(obsAll(c), r.key())
				case c.confined:
					return slices.Contains(data.files[0], r) || r.Type == "Organization" || r.Type == "Practitioner"
				}
				return true
			})
			if got := historyKeys(t, body); !slices.Equal(got, want) {
				t.Fatalf("history %d, want %d", len(got), len(want))
			}
		}},
		{name: "system history, pages and count", path: "/fhir/_history?_count=0", check: func(t *testing.T, c accessCaller, code int, body string) {
			wantOK(t, code, body)
			full := do(t, s, "GET", "/fhir/_history?_count=1000", "", "Authorization", "Bearer "+tokenOf(c.name))
			if want := len(historyKeys(t, full.Body.String())); *decodeBundle(t, body).Total != want {
				t.Fatalf("_count=0 total %d, want %d", *decodeBundle(t, body).Total, want)
			}
		}},
		// Writes: checked before and after in one transaction. Each
		// request writes its own resources, so that callers do not meet
		// each other's results except where the check says so.
		{name: "create for B", method: "POST", path: "/fhir/Observation", body: obsBody("", b, "final"),
			check: func(t *testing.T, c accessCaller, code int, body string) {
				switch {
				case c.cw:
					forbidden(t, code, body)
				case c.writes:
					if code != http.StatusCreated {
						t.Fatalf("status %d: %.300s", code, body)
					}
				default:
					forbidden(t, code, body)
				}
			}},
		{name: "create for A", method: "POST", path: "/fhir/Observation", body: obsBody("", a, "final"),
			check: func(t *testing.T, c accessCaller, code int, body string) {
				if !c.writes && !c.cw || c.wLab { // (not a laboratory Observation)
					forbidden(t, code, body)
					return
				}
				if code != http.StatusCreated {
					t.Fatalf("status %d: %.300s", code, body)
				}
			}},
		{name: "conditional create", method: "POST", path: "/fhir/Observation", body: obsBody("", a, "final"), header: []string{"If-None-Exist", "code:text=nothing-like-this"},
			check: func(t *testing.T, c accessCaller, code int, body string) {
				if !c.writes && !c.cw || c.wLab {
					forbidden(t, code, body)
					return
				}
				if code != http.StatusCreated {
					t.Fatalf("status %d: %.300s", code, body)
				}
			}},
		{name: "update B's observation", method: "PUT", path: "/fhir/Observation/" + bObs, body: obsBody(bObs, b, "amended"),
			check: func(t *testing.T, c accessCaller, code int, body string) {
				switch {
				case c.cw:
					notFound(t, code, body, "Observation/"+bObs)
				case c.writes:
					wantOK(t, code, body)
				default:
					forbidden(t, code, body)
				}
			}},
		{name: "move A's observation to B", method: "PUT", path: "/fhir/Observation/" + aMove, body: obsBody(aMove, b, "amended"),
			check: func(t *testing.T, c accessCaller, code int, body string) {
				switch {
				case c.cw:
					if c.wLab {
						notFound(t, code, body, "Observation/"+aMove) // not a laboratory one
					} else {
						forbidden(t, code, body)
					}
					if got := readAs(t, "Observation/"+aMove); !strings.Contains(got, `"reference":"Patient/`+a) && !strings.Contains(got, a) {
						t.Fatalf("moved although refused: %.300s", got)
					}
				case c.writes:
					wantOK(t, code, body) // after the confined writer: moves it
				default:
					forbidden(t, code, body)
				}
			}},
		{name: "update own observation", method: "PUT", path: "/fhir/Observation/" + aUpd, body: obsBody(aUpd, a, "amended"),
			check: func(t *testing.T, c accessCaller, code int, body string) {
				if !c.writes && !c.cw {
					forbidden(t, code, body)
					return
				}
				if c.wLab {
					notFound(t, code, body, "Observation/"+aUpd)
					return
				}
				wantOK(t, code, body)
			}},
		{name: "update-as-create for B", method: "PUT", path: "/fhir/Observation/new-for-b", body: obsBody("new-for-b", b, "final"),
			check: func(t *testing.T, c accessCaller, code int, body string) {
				switch {
				case c.cw:
					forbidden(t, code, body)
					if got := readAs(t, "Observation/new-for-b"); !strings.Contains(got, "not known") {
						t.Fatalf("created although refused: %.300s", got)
					}
				case c.writes:
					if code != http.StatusCreated && code != http.StatusOK {
						t.Fatalf("status %d: %.300s", code, body)
					}
				default:
					forbidden(t, code, body)
				}
			}},
		{name: "update-as-create for A", method: "PUT", path: "/fhir/Observation/new-for-a", body: obsBody("new-for-a", a, "final"),
			check: func(t *testing.T, c accessCaller, code int, body string) {
				if !c.writes && !c.cw {
					forbidden(t, code, body)
					return
				}
				if c.wLab {
					// The confined writer before it created a vital-signs one.
					notFound(t, code, body, "Observation/new-for-a")
					return
				}
				if code != http.StatusCreated && code != http.StatusOK {
					t.Fatalf("status %d: %.300s", code, body)
				}
			}},
		{name: "patch", method: "PATCH", path: "/fhir/Observation/" + aUpd, body: `[{"op":"replace","path":"/status","value":"final"}]`,
			header: []string{"Content-Type", "application/json-patch+json"},
			check: func(t *testing.T, c accessCaller, code int, body string) {
				if !c.writes && !c.cw {
					forbidden(t, code, body)
					return
				}
				if c.wLab {
					notFound(t, code, body, "Observation/"+aUpd)
					return
				}
				wantOK(t, code, body)
			}},
		{name: "patch B's observation", method: "PATCH", path: "/fhir/Observation/" + bPatch, body: `[{"op":"replace","path":"/status","value":"amended"}]`,
			header: []string{"Content-Type", "application/json-patch+json"},
			check: func(t *testing.T, c accessCaller, code int, body string) {
				switch {
				case c.cw:
					notFound(t, code, body, "Observation/"+bPatch)
				case c.writes:
					wantOK(t, code, body)
				default:
					forbidden(t, code, body)
				}
			}},
		{name: "patch A's observation over to B", method: "PATCH", path: "/fhir/Observation/" + aPatchMove,
			body:   `[{"op":"replace","path":"/subject/reference","value":"Patient/` + b + `"}]`,
			header: []string{"Content-Type", "application/json-patch+json"},
			check: func(t *testing.T, c accessCaller, code int, body string) {
				switch {
				case c.cw:
					if c.wLab {
						notFound(t, code, body, "Observation/"+aPatchMove)
					} else {
						forbidden(t, code, body)
					}
					if got := readAs(t, "Observation/"+aPatchMove); strings.Contains(got, b) {
						t.Fatalf("moved although refused: %.300s", got)
					}
				case c.writes:
					wantOK(t, code, body)
				default:
					forbidden(t, code, body)
				}
			}},
		{name: "conditional patch", method: "PATCH", path: "/fhir/Observation?_id=" + aUpd, body: `[{"op":"replace","path":"/status","value":"final"}]`,
			header: []string{"Content-Type", "application/json-patch+json"},
			check: func(t *testing.T, c accessCaller, code int, body string) {
				switch {
				case !c.writes && !c.cw:
					forbidden(t, code, body)
				case c.wLab:
					// Matches among what it may search: not this one.
					if code != http.StatusNotFound {
						t.Fatalf("status %d, want 404: %.300s", code, body)
					}
				default:
					wantOK(t, code, body)
				}
			}},
		{name: "conditional delete", method: "DELETE", path: "/fhir/Observation?code:text=nothing-like-that", check: func(t *testing.T, c accessCaller, code int, body string) {
			if !c.writes && !c.cw {
				forbidden(t, code, body)
				return
			}
			if code != http.StatusNoContent && code != http.StatusOK {
				t.Fatalf("status %d: %.300s", code, body)
			}
		}},
		{name: "delete B's observation", method: "DELETE", path: "/fhir/Observation/" + bDel, check: func(t *testing.T, c accessCaller, code int, body string) {
			switch {
			case c.cw:
				notFound(t, code, body, "Observation/"+bDel)
				if got := readAs(t, "Observation/"+bDel); !strings.Contains(got, bDel) || strings.Contains(got, "deleted") {
					t.Fatalf("deleted although refused: %.300s", got)
				}
			case c.writes:
				if code != http.StatusNoContent {
					t.Fatalf("status %d: %.300s", code, body)
				}
			default:
				forbidden(t, code, body)
			}
		}},
		{name: "delete own observation", method: "DELETE", path: "/fhir/Observation/" + aDel, check: func(t *testing.T, c accessCaller, code int, body string) {
			if !c.writes && !c.cw {
				forbidden(t, code, body)
				return
			}
			if code != http.StatusNoContent {
				t.Fatalf("status %d: %.300s", code, body)
			}
		}},
		{name: "delete missing", method: "DELETE", path: "/fhir/Observation/" + bObs + "-none", check: func(t *testing.T, c accessCaller, code int, body string) {
			if !c.writes && !c.cw {
				forbidden(t, code, body)
				return
			}
			if code != http.StatusNoContent {
				t.Fatalf("status %d: %.300s", code, body)
			}
		}},
		{name: "read a deleted observation", path: "/fhir/Observation/" + aDel, check: func(t *testing.T, c accessCaller, code int, body string) {
			if c.confined || c.lab {
				// Restricted: a deletion has no compartment or category to
				// decide on, so it is not known.
				notFound(t, code, body, "Observation/"+aDel)
				return
			}
			if code != http.StatusGone {
				t.Fatalf("status %d, want 410: %.300s", code, body)
			}
		}},
		// Bundles: each entry decided on its own (access_write_test.go has
		// more).
		{name: "batch", method: "POST", path: "/fhir",
			body: `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient/` + b + `"}}]}`,
			check: func(t *testing.T, c accessCaller, code int, body string) {
				wantOK(t, code, body)
				want := "200 OK"
				switch {
				case c.obsOnly:
					want = "403 Forbidden"
				case c.confined:
					want = "404 Not Found"
				}
				if got := responseOf(t, body, "batch-response", 1).Entry[0].Response.Status; got != want {
					t.Fatalf("entry status %q, want %q", got, want)
				}
			}},
	}

	for _, c := range callers {
		tokens[tokenOf(c.name)] = c.caller
	}
	n := 0
	// Requests outside, callers inside: the writes at the end of the list
	// run after every read.
	for _, rq := range requests {
		for _, c := range callers {
			n++
			t.Run(c.name+"/"+rq.name, func(t *testing.T) {
				method := rq.method
				if method == "" {
					method = "GET"
				}
				header := []string{"Authorization", "Bearer " + tokenOf(c.name)}
				if rq.body != "" {
					header = append(header, "Content-Type", "application/fhir+json")
				}
				header = append(header, rq.header...)
				res := do(t, s, method, rq.path, rq.body, header...)
				body := res.Body.String()
				if c.confined {
					// Only the request itself may name B (it is echoed in
					// links); no resource, count or message of B may show.
					if l := leaks(stripEcho(body)); len(l) > 0 {
						t.Fatalf("%s %s leaks %d resources of B, such as %v: %.500s", method, rq.path, len(l), l[0], body)
					}
				}
				rq.check(t, c, res.Code, body)
			})
		}
	}
	w := runWriteMatrix(t, s, callers, a, b, leaks)
	t.Logf("access matrix: %d callers x (%d requests + %d write cases) = %d cases", len(callers), len(requests), len(writeCases), n+w)
}

// tokenOf is a bearer token for a caller's name (a token has no spaces).
func tokenOf(name string) string {
	return strings.NewReplacer(" ", "_", "(", "", ")", "", "*", "all", "/", "-").Replace(name)
}

// historyKeys returns the sorted Type/id of a history Bundle's entries.
func historyKeys(t *testing.T, body string) []string {
	t.Helper()
	var out []string
	for _, e := range decodeBundle(t, body).Entry {
		out = append(out, strings.TrimPrefix(e.FullURL, base+"/fhir/"))
	}
	slices.Sort(out)
	return out
}
