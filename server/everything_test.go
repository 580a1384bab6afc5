package server_test

import (
	"context"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fhirserver/fhirserver/authz"
	"github.com/fhirserver/fhirserver/importer"
	"github.com/fhirserver/fhirserver/server"
	"github.com/fhirserver/fhirserver/store/postgres"
)

// TestPatientEverything runs Patient $everything (instance and type level,
// GET and POST) on SQLite and PostgreSQL with the two Synthea patients:
// the compartment as matches, what it refers to as includes, _type,
// _since, _count with stable paging links, bad input, and the access
// cases: a token confined to patient A gets only A's data with the right
// total, and 404 for B.
func TestPatientEverything(t *testing.T) {
	tokens := mapVerifier{
		"system":    {Scopes: []string{"system/*.rs"}},
		"patient-a": nil, // set once the ids are known
		"obs-a":     nil,
		"obs-all":   {Scopes: []string{"system/Observation.rs"}},
		"write":     {Scopes: []string{"system/*.cud"}},
	}
	smart := func(d *server.Deps) {
		d.AuthMode = server.AuthSmart
		d.TokenVerifier = tokens
	}
	data := readSynthea(t)
	a, b := data.patients["Conn"], data.patients["Hintz"]
	if a == "" || b == "" {
		t.Fatalf("patients %v", data.patients)
	}
	tokens["patient-a"] = &authz.Caller{Scopes: []string{"launch/patient", "patient/*.rs"}, Patient: a}
	tokens["obs-a"] = &authz.Caller{Scopes: []string{"patient/Observation.rs"}, Patient: a}

	t.Run("sqlite", func(t *testing.T) {
		s, _ := syntheaServer(t, smart)
		runEverything(t, s, data, a, b)
	})
	t.Run("postgres", func(t *testing.T) {
		st, err := postgres.Open(context.Background(), pg.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		h, _ := routerOn(t, st, smart)
		v, err := validator()
		if err != nil {
			t.Fatal(err)
		}
		im := importer.Importer{Store: st, Validator: v}
		stats, err := im.ImportPaths(context.Background(), []string{filepath.Join("..", "testdata", "synthea")})
		if err != nil || len(stats.Errors) > 0 || stats.Created != 144 {
			t.Fatalf("import: %+v %v", stats, err)
		}
		runEverything(t, h, data, a, b)
	})
}

func runEverything(t *testing.T, s http.Handler, data *synthea, a, b string) {
	as := func(token string) []string { return []string{"Authorization", "Bearer " + token} }
	call := func(t *testing.T, token, method, path, body string, header ...string) (int, string) {
		t.Helper()
		res := do(t, s, method, path, body, append(as(token), header...)...)
		return res.Code, res.Body.String()
	}
	// all reads every page of a $everything answer and returns its matches
	// and includes (each checked to be unique among the matches) and the
	// total of the first page, checking that every page states it.
	all := func(t *testing.T, token, method, path, body string, header ...string) (matches, includes []string, total int) {
		t.Helper()
		code, text := call(t, token, method, path, body, header...)
		if code != 200 {
			t.Fatalf("%s %s: %d %.400s", method, path, code, text)
		}
		total = -1
		for page := 0; ; page++ {
			ss := decodeSearchset(t, text)
			if ss.Total == nil {
				t.Fatalf("page %d has no total", page)
			}
			if total >= 0 && *ss.Total != total {
				t.Fatalf("page %d total %d, first page %d", page, *ss.Total, total)
			}
			total = *ss.Total
			for _, l := range []string{"self", "first"} {
				if u := ss.link(l); strings.Contains(path, "$everything") && !strings.Contains(u, "/$everything") {
					t.Fatalf("%s link %q", l, u)
				}
			}
			matches = append(matches, ss.keys("match")...)
			includes = append(includes, ss.keys("include")...)
			next := ss.link("next")
			if next == "" {
				break
			}
			if page > 100 {
				t.Fatal("more than 100 pages")
			}
			if code, text = call(t, token, "GET", local(t, next), ""); code != 200 {
				t.Fatalf("next page %s: %d %.300s", next, code, text)
			}
		}
		seen := map[string]bool{}
		for _, m := range matches {
			if seen[m] {
				t.Fatalf("%s is on two pages", m)
			}
			seen[m] = true
		}
		slices.Sort(matches)
		slices.Sort(includes)
		includes = slices.Compact(includes)
		return matches, includes, total
	}
	compartment := func(t *testing.T, token, patient string) []string {
		t.Helper()
		m, _, _ := all(t, token, "GET", "/fhir/Patient/"+patient+"/*?_count=1000", "")
		return m
	}
	inFile := func(i int) map[string]bool {
		out := map[string]bool{}
		for _, r := range data.files[i] {
			out[r.key()] = true
		}
		return out
	}
	fileA, fileB := inFile(0), inFile(1)
	if !fileA["Patient/"+a] {
		fileA, fileB = fileB, fileA
	}
	// referencedOutside is what matches refer to that is stored and not a
	// match itself: what the includes must be.
	referencedOutside := func(matches []string, keep func(string) bool) []string {
		var out []string
		for _, m := range matches {
			for _, ref := range data.byKey[m].Refs {
				if data.byKey[ref] != nil && !slices.Contains(matches, ref) && !slices.Contains(out, ref) && keep(ref) {
					out = append(out, ref)
				}
			}
		}
		slices.Sort(out)
		return out
	}
	anyType := func(string) bool { return true }

	// Patient A as the system token sees it: the reference for the rest.
	evA, incA, totalA := all(t, "system", "GET", "/fhir/Patient/"+a+"/$everything?_count=1000", "")
	t.Run("instance, unrestricted", func(t *testing.T) {
		if want := compartment(t, "system", a); !slices.Equal(evA, want) {
			t.Errorf("matches %d, want the compartment's %d", len(evA), len(want))
		}
		if !slices.Contains(evA, "Patient/"+a) || totalA != len(evA) || len(evA) < 30 {
			t.Errorf("%d matches, total %d, Patient in them: %v", len(evA), totalA, slices.Contains(evA, "Patient/"+a))
		}
		for _, k := range append(slices.Clone(evA), incA...) {
			if fileB[k] {
				t.Errorf("%s of patient B in A's $everything", k)
			}
		}
		want := referencedOutside(evA, anyType)
		if !slices.Equal(incA, want) || len(incA) == 0 {
			t.Errorf("includes %v, want %v", incA, want)
		}
		for _, k := range incA {
			if typ, _, _ := strings.Cut(k, "/"); slices.Contains([]string{"Observation", "Encounter", "Condition", "Patient"}, typ) {
				t.Errorf("include %s is of a compartment type", k)
			}
		}
	})
	t.Run("paging", func(t *testing.T) {
		m, inc, total := all(t, "system", "GET", "/fhir/Patient/"+a+"/$everything?_count=7", "")
		if !slices.Equal(m, evA) || total != totalA {
			t.Errorf("pages of 7: %d matches total %d, want %d", len(m), total, len(evA))
		}
		if !slices.Equal(inc, incA) {
			t.Errorf("pages of 7 include %v, want %v", inc, incA)
		}
		code, text := call(t, "system", "GET", "/fhir/Patient/"+a+"/$everything?_count=7&_pretty=true", "")
		ss := decodeSearchset(t, text)
		next, _ := url.Parse(ss.link("next"))
		if code != 200 || next == nil || next.Path != "/fhir/Patient/"+a+"/$everything" || next.Query().Get("_count") != "7" ||
			next.Query().Get("_pretty") != "true" || next.Query().Get("_cursor") == "" || ss.link("first") != base+"/fhir/Patient/"+a+"/$everything?_count=7&_pretty=true" {
			t.Errorf("links %+v", ss.Link)
		}
	})
	t.Run("POST", func(t *testing.T) {
		params := `{"resourceType":"Parameters","parameter":[{"name":"_count","valueInteger":5},{"name":"_type","valueCode":"Encounter"},{"name":"_type","valueCode":"Practitioner"}]}`
		m, inc, total := all(t, "system", "POST", "/fhir/Patient/"+a+"/$everything", params, "Content-Type", "application/fhir+json")
		encounters := slices.DeleteFunc(slices.Clone(evA), func(k string) bool { return !strings.HasPrefix(k, "Encounter/") })
		if !slices.Equal(m, encounters) || total != len(encounters) {
			t.Errorf("matches %v total %d, want A's %d encounters", m, total, len(encounters))
		}
		practitioners := referencedOutside(encounters, func(k string) bool { return strings.HasPrefix(k, "Practitioner/") })
		if !slices.Equal(inc, practitioners) || len(inc) == 0 {
			t.Errorf("includes %v, want %v", inc, practitioners)
		}
		form := url.Values{"_type": {"Encounter,Practitioner"}, "_count": {"5"}}.Encode()
		fm, finc, _ := all(t, "system", "POST", "/fhir/Patient/"+a+"/$everything", form, "Content-Type", "application/x-www-form-urlencoded")
		if !slices.Equal(fm, m) || !slices.Equal(finc, inc) {
			t.Errorf("form: %v %v", fm, finc)
		}
		get, ginc, _ := all(t, "system", "GET", "/fhir/Patient/"+a+"/$everything?_type=Encounter,Practitioner", "")
		if !slices.Equal(get, m) || !slices.Equal(ginc, inc) {
			t.Errorf("GET: %v %v", get, ginc)
		}
		empty, _, _ := all(t, "system", "POST", "/fhir/Patient/"+a+"/$everything?_count=1000", "")
		if !slices.Equal(empty, evA) {
			t.Errorf("POST without a body: %d matches", len(empty))
		}
	})
	t.Run("_since", func(t *testing.T) {
		future := url.QueryEscape(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
		m, inc, total := all(t, "system", "GET", "/fhir/Patient/"+a+"/$everything?_since="+future, "")
		if len(m) != 0 || len(inc) != 0 || total != 0 {
			t.Errorf("since an hour ahead: %v %v %d", m, inc, total)
		}
		past := url.QueryEscape("2000-01-01T00:00:00+02:00")
		m, _, total = all(t, "system", "GET", "/fhir/Patient/"+a+"/$everything?_count=1000&_since="+past, "")
		if !slices.Equal(m, evA) || total != totalA {
			t.Errorf("since 2000: %d, want %d", len(m), len(evA))
		}
	})
	t.Run("type level", func(t *testing.T) {
		m, _, total := all(t, "system", "GET", "/fhir/Patient/$everything?_count=50", "")
		evB, _, _ := all(t, "system", "GET", "/fhir/Patient/"+b+"/$everything?_count=1000", "")
		want := append(slices.Clone(evA), evB...)
		slices.Sort(want)
		if !slices.Equal(m, want) || total != len(want) {
			t.Errorf("type level: %d matches total %d, want %d", len(m), total, len(want))
		}
	})
	t.Run("patient A token", func(t *testing.T) {
		m, inc, total := all(t, "patient-a", "GET", "/fhir/Patient/"+a+"/$everything?_count=10", "")
		if !slices.Equal(m, evA) || total != totalA {
			t.Errorf("A's $everything for A's token: %d total %d, want %d", len(m), total, len(evA))
		}
		// Referenced Practitioners and Organizations belong to no patient:
		// patient/*.rs grants them.
		if !slices.Equal(inc, incA) {
			t.Errorf("includes %v, want %v", inc, incA)
		}
		tm, tinc, ttotal := all(t, "patient-a", "GET", "/fhir/Patient/$everything?_count=10", "")
		if !slices.Equal(tm, evA) || ttotal != totalA || !slices.Equal(tinc, incA) {
			t.Errorf("type level for A's token: %d total %d, want %d", len(tm), ttotal, len(evA))
		}
		for _, path := range []string{"/fhir/Patient/" + b + "/$everything", "/fhir/Patient/" + b + "/$everything?_type=Observation", "/fhir/Patient/nope/$everything"} {
			code, text := call(t, "patient-a", "GET", path, "")
			id := strings.Split(path, "/")[3]
			if code != 404 || !strings.Contains(text, `"Patient/`+id+` is not known"`) {
				t.Errorf("%s for A's token: %d %.300s", path, code, text)
			}
			if strings.Contains(text, "Hintz") {
				t.Errorf("B's data in %s", text)
			}
		}
		code, text := call(t, "patient-a", "POST", "/fhir/Patient/"+b+"/$everything", "")
		if code != 404 {
			t.Errorf("POST B's $everything for A's token: %d %.300s", code, text)
		}
	})
	t.Run("Observation-only tokens", func(t *testing.T) {
		code, text := call(t, "obs-a", "GET", "/fhir/Patient/"+a+"/$everything", "")
		if code != 403 || !strings.Contains(text, "forbidden") {
			t.Errorf("instance level without Patient read: %d %.300s", code, text)
		}
		obsOf := func(keep map[string]bool) []string {
			return data.keys(func(r *sampleResource) bool { return r.Type == "Observation" && keep[r.key()] })
		}
		m, inc, total := all(t, "obs-a", "GET", "/fhir/Patient/$everything?_count=1000", "")
		if want := obsOf(fileA); !slices.Equal(m, want) || len(inc) != 0 || total != len(want) {
			t.Errorf("patient/Observation.rs: %d matches %v includes, total %d; want %d", len(m), inc, total, len(want))
		}
		m, _, total = all(t, "obs-all", "GET", "/fhir/Patient/$everything?_count=1000", "")
		want := append(obsOf(fileA), obsOf(fileB)...)
		slices.Sort(want)
		if !slices.Equal(m, want) || total != len(want) {
			t.Errorf("system/Observation.rs: %d matches total %d, want %d", len(m), total, len(want))
		}
		if code, text := call(t, "write", "GET", "/fhir/Patient/$everything", ""); code != 403 {
			t.Errorf("a token without read: %d %.300s", code, text)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		for _, tc := range []struct {
			name, method, path, body string
			header                   []string
			status                   int
			msg                      string
		}{
			{"missing patient", "GET", "/fhir/Patient/nope/$everything", "", nil, 404, "Patient/nope is not known"},
			{"invalid id", "GET", "/fhir/Patient/a$b/$everything", "", nil, 400, "not a valid resource id"},
			{"_type of no compartment type", "GET", "/fhir/Patient/" + a + "/$everything?_type=Practitioner", "", nil, 400, "names no type of the Patient compartment"},
			{"_type not a type", "GET", "/fhir/Patient/" + a + "/$everything?_type=Bogus", "", nil, 400, `Bogus`},
			{"_since not an instant", "GET", "/fhir/Patient/" + a + "/$everything?_since=2024-01-01", "", nil, 400, "not an instant"},
			{"_since twice", "GET", "/fhir/Patient/" + a + "/$everything?_since=2024-01-01T00:00:00Z&_since=2024-01-01T00:00:00Z", "", nil, 400, "give it once"},
			{"_count not a number", "GET", "/fhir/Patient/" + a + "/$everything?_count=many", "", nil, 400, "_count"},
			{"bad cursor", "GET", "/fhir/Patient/" + a + "/$everything?_cursor=xyz", "", nil, 400, "cursor"},
			{"start with strict handling", "GET", "/fhir/Patient/" + a + "/$everything?start=2020-01-01", "", []string{"Prefer", "handling=strict"}, 400, "start, end"},
			{"body not Parameters", "POST", "/fhir/Patient/" + a + "/$everything", `{"resourceType":"Patient"}`, []string{"Content-Type", "application/fhir+json"}, 400, "must be a Parameters resource"},
			{"body not JSON", "POST", "/fhir/Patient/" + a + "/$everything", `{"resourceType":`, []string{"Content-Type", "application/fhir+json"}, 400, "not a JSON Parameters"},
			{"parameter with a resource", "POST", "/fhir/Patient/" + a + "/$everything", `{"resourceType":"Parameters","parameter":[{"name":"_type","resource":{"resourceType":"Patient"}}]}`, []string{"Content-Type", "application/fhir+json"}, 400, "primitive"},
			{"body of another media type", "POST", "/fhir/Patient/" + a + "/$everything", `_type=Encounter`, []string{"Content-Type", "text/plain"}, 415, "Content-Type"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				code, text := call(t, "system", tc.method, tc.path, tc.body, tc.header...)
				if code != tc.status || !strings.Contains(text, "OperationOutcome") || !strings.Contains(text, tc.msg) {
					t.Errorf("%d %.400s; want %d with %q", code, text, tc.status, tc.msg)
				}
			})
		}
		// start and end are ignored with a warning by default.
		code, text := call(t, "system", "GET", "/fhir/Patient/"+a+"/$everything?start=2020-01-01&_count=1000", "")
		ss := decodeSearchset(t, text)
		if code != 200 || len(ss.outcomes()) != 1 || !strings.Contains(ss.outcomes()[0], "start") || !slices.Equal(ss.keys("match"), evA) {
			t.Errorf("start, lenient: %d %v", code, ss.outcomes())
		}
	})
	t.Run("routes beside it", func(t *testing.T) {
		for _, tc := range []struct{ method, path, body string }{
			{"GET", "/fhir/Patient/" + a, ""},
			{"GET", "/fhir/Patient/" + a + "/Observation?_count=1", ""},
			{"POST", "/fhir/Patient/_search", "_id=" + a},
			{"GET", "/fhir/Patient?_id=" + a, ""},
		} {
			code, text := call(t, "system", tc.method, tc.path, tc.body, "Content-Type", "application/x-www-form-urlencoded")
			if code != 200 || !strings.Contains(text, a) {
				t.Errorf("%s %s: %d %.300s", tc.method, tc.path, code, text)
			}
		}
		code, text := call(t, "system", "GET", "/fhir/metadata", "")
		if code != 200 || !strings.Contains(text, `"operation":[{"name":"everything","definition":"http://hl7.org/fhir/OperationDefinition/Patient-everything"}]`) {
			t.Errorf("CapabilityStatement without the operation: %d", code)
		}
	})
}
