package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/fhirserver/fhirserver/importer"
	"github.com/fhirserver/fhirserver/server"
	"github.com/fhirserver/fhirserver/server/servertest"
)

// synthea is what the test bundles in ../testdata/synthea hold, read
// independently of the server so that search results can be checked
// against sets computed here.
type synthea struct {
	byKey    map[string]*sampleResource // "Type/id"
	patients map[string]string          // family name -> patient id
	files    [][]*sampleResource        // the resources of each file
}

type sampleResource struct {
	Type, ID string
	JSON     map[string]any
	Refs     []string // every reference, as Type/id, urn:uuid ones resolved
}

func (r *sampleResource) key() string { return r.Type + "/" + r.ID }

func readSynthea(t testing.TB) *synthea {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "testdata", "synthea", "*.json"))
	if err != nil || len(files) != 2 {
		t.Fatalf("want the 2 Synthea bundles, found %v (%v)", files, err)
	}
	s := &synthea{byKey: map[string]*sampleResource{}, patients: map[string]string{}}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var b struct {
			Entry []struct {
				FullURL  string         `json:"fullUrl"`
				Resource map[string]any `json:"resource"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(raw, &b); err != nil {
			t.Fatal(err)
		}
		urls := map[string]string{}
		var list []*sampleResource
		for _, e := range b.Entry {
			r := &sampleResource{Type: e.Resource["resourceType"].(string), ID: e.Resource["id"].(string), JSON: e.Resource}
			urls[e.FullURL] = r.key()
			list = append(list, r)
			s.byKey[r.key()] = r
		}
		for _, r := range list {
			walkRefs(r.JSON, func(ref string) {
				if k, ok := urls[ref]; ok {
					ref = k
				}
				r.Refs = append(r.Refs, ref)
			})
			if r.Type == "Patient" {
				name := r.JSON["name"].([]any)[0].(map[string]any)
				s.patients[name["family"].(string)] = r.ID
			}
		}
		s.files = append(s.files, list)
	}
	return s
}

// walkRefs calls fn with the value of every "reference" member in v.
func walkRefs(v any, fn func(string)) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && k == "reference" {
				fn(s)
			} else {
				walkRefs(x, fn)
			}
		}
	case []any:
		for _, x := range v {
			walkRefs(x, fn)
		}
	}
}

// keys returns the sorted Type/id keys of the resources that pass keep.
func (s *synthea) keys(keep func(*sampleResource) bool) []string {
	var out []string
	for k, r := range s.byKey {
		if keep(r) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func (r *sampleResource) refersTo(key string) bool { return slices.Contains(r.Refs, key) }

// subjectIs is whether r's subject is the reference key.
func (r *sampleResource) subjectIs(key string) bool {
	subj, _ := r.JSON["subject"].(map[string]any)
	return subj != nil && subj["reference"] != nil && r.refersTo(key) && refKey(r, subj["reference"].(string)) == key
}

// refKey resolves one reference of r the way Refs did.
func refKey(r *sampleResource, ref string) string {
	if strings.HasPrefix(ref, "urn:uuid:") {
		id := strings.TrimPrefix(ref, "urn:uuid:")
		for _, k := range r.Refs {
			if strings.HasSuffix(k, "/"+id) {
				return k
			}
		}
	}
	return ref
}

// hasCoding is whether r.code has a coding with system and code.
func (r *sampleResource) hasCoding(system, code string) bool {
	c, _ := r.JSON["code"].(map[string]any)
	codings, _ := c["coding"].([]any)
	for _, x := range codings {
		m := x.(map[string]any)
		if m["system"] == system && m["code"] == code {
			return true
		}
	}
	return false
}

// syntheaServer is a test server loaded with the two Synthea bundles
// through the importer.
func syntheaServer(t *testing.T, change ...func(*server.Deps)) (*testServer, *synthea) {
	t.Helper()
	s := newServer(t, change...)
	v, err := validator()
	if err != nil {
		t.Fatal(err)
	}
	im := importer.Importer{Store: s.store, Validator: v}
	stats, err := im.ImportPaths(context.Background(), []string{filepath.Join("..", "testdata", "synthea")})
	if err != nil {
		t.Fatal(err)
	}
	if len(stats.Errors) > 0 || stats.Created != 144 {
		t.Fatalf("import: %+v", stats)
	}
	return s, readSynthea(t)
}

// searchset is a search Bundle as a client reads it.
type searchset struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Total        *int   `json:"total"`
	Link         []struct {
		Relation string `json:"relation"`
		URL      string `json:"url"`
	} `json:"link"`
	Entry []searchEntry `json:"entry"`
}

type searchEntry struct {
	FullURL  string          `json:"fullUrl"`
	Resource json.RawMessage `json:"resource"`
	Search   struct {
		Mode string `json:"mode"`
	} `json:"search"`
}

func (b *searchset) link(rel string) string {
	for _, l := range b.Link {
		if l.Relation == rel {
			return l.URL
		}
	}
	return ""
}

// keys returns the sorted Type/id of the entries with search.mode mode.
func (b *searchset) keys(mode string) []string {
	out := []string{}
	for _, e := range b.Entry {
		if e.Search.Mode != mode {
			continue
		}
		var head struct{ ResourceType, ID string }
		_ = json.Unmarshal(e.Resource, &head)
		out = append(out, head.ResourceType+"/"+head.ID)
	}
	sort.Strings(out)
	return out
}

func (b *searchset) outcomes() []string {
	var out []string
	for _, e := range b.Entry {
		if e.Search.Mode == "outcome" {
			out = append(out, string(e.Resource))
		}
	}
	return out
}

func decodeSearchset(t testing.TB, body string) *searchset {
	t.Helper()
	var b searchset
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		t.Fatalf("body is not JSON: %v: %.500s", err, body)
	}
	if b.ResourceType != "Bundle" || b.Type != "searchset" {
		t.Fatalf("not a searchset Bundle: %.500s", body)
	}
	for _, e := range b.Entry {
		var head struct{ ResourceType, ID string }
		if err := json.Unmarshal(e.Resource, &head); err != nil || head.ResourceType == "" {
			t.Fatalf("entry without a resource: %+v", e)
		}
		switch e.Search.Mode {
		case "match", "include":
			if e.FullURL != base+"/fhir/"+head.ResourceType+"/"+head.ID {
				t.Errorf("fullUrl %q for %s/%s", e.FullURL, head.ResourceType, head.ID)
			}
		case "outcome":
			if head.ResourceType != "OperationOutcome" {
				t.Errorf("outcome entry holds a %s", head.ResourceType)
			}
		default:
			t.Errorf("entry %s/%s has search.mode %q", head.ResourceType, head.ID, e.Search.Mode)
		}
	}
	return &b
}

// get searches with GET and expects 200.
func get(t testing.TB, h http.Handler, path string, header ...string) *searchset {
	t.Helper()
	res := do(t, h, http.MethodGet, path, "", header...)
	if res.Code != 200 {
		t.Fatalf("GET %s: %d %s", path, res.Code, res.Body.String())
	}
	return decodeSearchset(t, res.Body.String())
}

// local turns an absolute link under the test base into a request path.
func local(t testing.TB, link string) string {
	t.Helper()
	if !strings.HasPrefix(link, base+"/fhir") {
		t.Fatalf("link %q is not an absolute URL under %s/fhir", link, base)
	}
	return strings.TrimPrefix(link, base)
}

// form is the header of a POST _search.
var form = []string{"Content-Type", "application/x-www-form-urlencoded"}

// equal compares sorted lists and names what is missing and extra.
func equal(t testing.TB, what string, got, want []string) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	var missing, extra []string
	for _, w := range want {
		if !slices.Contains(got, w) {
			missing = append(missing, w)
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			extra = append(extra, g)
		}
	}
	t.Errorf("%s: got %d, want %d; missing %v; extra %v", what, len(got), len(want), missing, extra)
}

func TestSearch(t *testing.T) {
	s, data := syntheaServer(t)
	ned := "Patient/" + data.patients["Hintz"]
	liz := "Patient/" + data.patients["Conn"]
	if ned == "Patient/" || liz == "Patient/" {
		t.Fatalf("patients %v", data.patients)
	}
	obsOf := func(p string) []string {
		return data.keys(func(r *sampleResource) bool { return r.Type == "Observation" && r.subjectIs(p) })
	}
	ofType := func(types ...string) []string {
		return data.keys(func(r *sampleResource) bool { return slices.Contains(types, r.Type) })
	}

	t.Run("type level", func(t *testing.T) {
		b := get(t, s, "/fhir/Observation?_count=100&patient="+ned)
		want := obsOf(ned)
		if len(want) != 35 {
			t.Fatalf("the bundle has %d Observations of Ned, want 35", len(want))
		}
		equal(t, "matches", b.keys("match"), want)
		if b.Total == nil || *b.Total != len(want) {
			t.Errorf("total %v, want %d", b.Total, len(want))
		}
		if self := b.link("self"); !strings.HasPrefix(self, base+"/fhir/Observation?") || !strings.Contains(self, "patient=") {
			t.Errorf("self link %q", self)
		}
		if b.link("next") != "" {
			t.Errorf("next link on the only page: %q", b.link("next"))
		}
		// The self link reproduces the search.
		again := get(t, s, local(t, b.link("self")))
		equal(t, "self link matches", again.keys("match"), want)
	})

	t.Run("terminology", func(t *testing.T) {
		// v3-ActEncounterCode holds AMB and IMP, the classes of the Synthea
		// encounters; :below IMP is IMP, ACUTE and NONAC.
		classIs := func(codes ...string) []string {
			return data.keys(func(r *sampleResource) bool {
				c, _ := r.JSON["class"].(map[string]any)
				return r.Type == "Encounter" && c["system"] == "http://terminology.hl7.org/CodeSystem/v3-ActCode" && slices.Contains(codes, c["code"].(string))
			})
		}
		b := get(t, s, "/fhir/Encounter?_count=100&class:in=http://terminology.hl7.org/ValueSet/v3-ActEncounterCode")
		equal(t, "in", b.keys("match"), classIs("AMB", "IMP"))
		again := get(t, s, local(t, b.link("self")))
		equal(t, "self link of in", again.keys("match"), classIs("AMB", "IMP"))
		b = get(t, s, "/fhir/Encounter?_count=100&class:below=http://terminology.hl7.org/CodeSystem/v3-ActCode%7CIMP")
		want := classIs("IMP", "ACUTE", "NONAC")
		if len(want) == 0 {
			t.Fatal("no inpatient encounter in the data")
		}
		equal(t, "below", b.keys("match"), want)
		b = get(t, s, "/fhir/Encounter?_count=100&class:not-in=http://terminology.hl7.org/ValueSet/v3-ActEncounterCode")
		equal(t, "not-in", b.keys("match"), nil)
	})

	t.Run("all of a type", func(t *testing.T) {
		b := get(t, s, "/fhir/Patient")
		equal(t, "patients", b.keys("match"), ofType("Patient"))
		if b.Total == nil || *b.Total != 2 {
			t.Errorf("total %v, want 2", b.Total)
		}
	})

	t.Run("GET and POST _search are identical", func(t *testing.T) {
		for _, c := range []struct{ get, postPath, postBody string }{
			{"/fhir/Observation?patient=" + ned + "&code=http://loinc.org|8302-2",
				"/fhir/Observation/_search", "patient=" + url.QueryEscape(ned) + "&code=" + url.QueryEscape("http://loinc.org|8302-2")},
			// URL and body parameters are merged.
			{"/fhir/Observation?patient=" + ned + "&code=http://loinc.org|8302-2&_count=2",
				"/fhir/Observation/_search?_count=2", "patient=" + url.QueryEscape(ned) + "&code=" + url.QueryEscape("http://loinc.org|8302-2")},
			{"/fhir?_type=Patient,Condition", "/fhir/_search", "_type=Patient,Condition"},
			// _format and _pretty in the form work as in the URL.
			{"/fhir/Patient?family=Hintz&_pretty=true&_format=application/json",
				"/fhir/Patient/_search", "family=Hintz&_pretty=true&_format=" + url.QueryEscape("application/json")},
			{"/fhir/Patient/" + data.patients["Hintz"] + "/Condition", "/fhir/Patient/" + data.patients["Hintz"] + "/Condition/_search", ""},
		} {
			g := do(t, s, http.MethodGet, c.get, "")
			p := do(t, s, http.MethodPost, c.postPath, c.postBody, form...)
			if g.Code != 200 || p.Code != 200 {
				t.Fatalf("GET %s: %d; POST %s: %d %s", c.get, g.Code, c.postPath, p.Code, p.Body.String())
			}
			if g.Body.String() != p.Body.String() || g.Header().Get("Content-Type") != p.Header().Get("Content-Type") {
				t.Errorf("GET %s and POST %s differ:\n%s\n%s", c.get, c.postPath, g.Body.String(), p.Body.String())
			}
			if len(decodeSearchset(t, g.Body.String()).Entry) == 0 {
				t.Errorf("GET %s found nothing", c.get)
			}
		}
	})

	t.Run("system level", func(t *testing.T) {
		b := get(t, s, "/fhir?_type=Patient,Condition")
		equal(t, "patients and conditions", b.keys("match"), ofType("Patient", "Condition"))
		if self := b.link("self"); !strings.HasPrefix(self, base+"/fhir?") || !strings.Contains(self, "_type=") {
			t.Errorf("self link %q", self)
		}
		b = get(t, s, "/fhir?_id="+data.patients["Conn"])
		equal(t, "by _id across types", b.keys("match"), []string{liz})
	})

	t.Run("compartment level", func(t *testing.T) {
		id := data.patients["Hintz"]
		b := get(t, s, "/fhir/Patient/"+id+"/Observation?_count=100")
		equal(t, "Ned's observations", b.keys("match"), obsOf(ned))
		if self := b.link("self"); self != base+"/fhir/Patient/"+id+"/Observation?_count=100" {
			t.Errorf("self link %q", self)
		}
		b = get(t, s, "/fhir/Patient/"+id+"/Observation?code=http://loinc.org|8302-2")
		equal(t, "Ned's heights", b.keys("match"), data.keys(func(r *sampleResource) bool {
			return r.Type == "Observation" && r.subjectIs(ned) && r.hasCoding("http://loinc.org", "8302-2")
		}))
		// Every type: what refers to Ned, and nothing of Liz.
		b = get(t, s, "/fhir/Patient/"+id+"/*?_count=1000")
		got := slices.DeleteFunc(b.keys("match"), func(k string) bool { return k == ned })
		equal(t, "Ned's compartment", got, data.keys(func(r *sampleResource) bool { return r.Type != "Patient" && r.refersTo(ned) }))
	})

	t.Run("paging", func(t *testing.T) {
		want := ofType("Observation")
		for _, start := range []struct{ method, path, body string }{
			{http.MethodGet, "/fhir/Observation?_count=7&_total=accurate", ""},
			{http.MethodPost, "/fhir/Observation/_search", "_count=7&_total=accurate"},
		} {
			res := do(t, s, start.method, start.path, start.body, form...)
			if res.Code != 200 {
				t.Fatalf("%s %s: %d %s", start.method, start.path, res.Code, res.Body.String())
			}
			b := decodeSearchset(t, res.Body.String())
			first := b.link("first")
			seen := map[string]bool{}
			var all []string
			pages := 0
			for {
				pages++
				if b.Total == nil || *b.Total != len(want) {
					t.Errorf("page %d: total %v, want %d", pages, b.Total, len(want))
				}
				if len(b.Entry) > 7 {
					t.Errorf("page %d has %d entries, _count was 7", pages, len(b.Entry))
				}
				if b.link("first") != first {
					t.Errorf("page %d: first link %q, was %q", pages, b.link("first"), first)
				}
				for _, k := range b.keys("match") {
					if seen[k] {
						t.Errorf("page %d repeats %s", pages, k)
					}
					seen[k] = true
					all = append(all, k)
				}
				next := b.link("next")
				if next == "" {
					break
				}
				if !strings.Contains(next, "_count=7") {
					t.Errorf("next link %q lost the query", next)
				}
				if pages > 20 {
					t.Fatal("more than 20 pages")
				}
				b = get(t, s, local(t, next))
			}
			sort.Strings(all)
			equal(t, start.method+" pages together", all, want)
			if pages != (len(want)+6)/7 {
				t.Errorf("%d pages, want %d", pages, (len(want)+6)/7)
			}
			// first goes back to the first page.
			again := get(t, s, local(t, first))
			if len(again.Entry) != 7 {
				t.Errorf("first link %q: %d entries", first, len(again.Entry))
			}
		}
	})

	t.Run("_summary=count", func(t *testing.T) {
		b := get(t, s, "/fhir/Observation?patient="+ned+"&_summary=count")
		if b.Total == nil || *b.Total != len(obsOf(ned)) || len(b.Entry) != 0 || b.link("next") != "" {
			t.Errorf("total %v, %d entries, next %q", b.Total, len(b.Entry), b.link("next"))
		}
	})

	t.Run("_elements", func(t *testing.T) {
		b := get(t, s, "/fhir/Observation?_count=100&patient="+ned+"&_elements=status,subject")
		equal(t, "matches", b.keys("match"), obsOf(ned))
		for _, e := range b.Entry {
			var m map[string]json.RawMessage
			_ = json.Unmarshal(e.Resource, &m)
			var got []string
			for k := range m {
				got = append(got, k)
			}
			sort.Strings(got)
			// code is mandatory (1..1), so it stays.
			equal(t, "members", got, []string{"code", "id", "meta", "resourceType", "status", "subject"})
			checkSubsetted(t, e.Resource)
		}
	})

	t.Run("_summary", func(t *testing.T) {
		// The summary elements of Patient in R4.
		summary := []string{"active", "address", "birthDate", "deceasedBoolean", "deceasedDateTime", "gender", "id",
			"identifier", "implicitRules", "link", "managingOrganization", "meta", "name", "resourceType", "telecom"}
		full := get(t, s, "/fhir/Patient?_id="+data.patients["Hintz"])
		b := get(t, s, "/fhir/Patient?_id="+data.patients["Hintz"]+"&_summary=true")
		if len(b.Entry) != 1 || len(full.Entry) != 1 {
			t.Fatalf("%d and %d entries", len(b.Entry), len(full.Entry))
		}
		var fm, m map[string]json.RawMessage
		_ = json.Unmarshal(full.Entry[0].Resource, &fm)
		_ = json.Unmarshal(b.Entry[0].Resource, &m)
		for k := range fm {
			if _, kept := m[k]; kept != slices.Contains(summary, k) {
				t.Errorf("_summary=true: %s kept %v", k, kept)
			}
		}
		if _, ok := fm["text"]; !ok {
			t.Fatal("the Synthea patient has no text; the test needs one")
		}
		checkSubsetted(t, b.Entry[0].Resource)

		b = get(t, s, "/fhir/Patient?_id="+data.patients["Hintz"]+"&_summary=text")
		m = nil
		_ = json.Unmarshal(b.Entry[0].Resource, &m)
		for k := range m {
			if !slices.Contains([]string{"resourceType", "id", "meta", "text"}, k) {
				t.Errorf("_summary=text kept %s", k)
			}
		}
		b = get(t, s, "/fhir/Patient?_id="+data.patients["Hintz"]+"&_summary=data")
		m = nil
		_ = json.Unmarshal(b.Entry[0].Resource, &m)
		for k := range fm {
			if _, kept := m[k]; kept != (k != "text") {
				t.Errorf("_summary=data: %s kept %v", k, kept)
			}
		}
		checkSubsetted(t, b.Entry[0].Resource)

		// Without a subset the entries are the stored bytes, as read serves them.
		read := do(t, s, http.MethodGet, "/fhir/Patient/"+data.patients["Hintz"], "")
		if string(full.Entry[0].Resource) != read.Body.String() {
			t.Errorf("entry differs from read:\n%s\n%s", full.Entry[0].Resource, read.Body.String())
		}
	})

	t.Run("_include and _revinclude", func(t *testing.T) {
		heights := data.keys(func(r *sampleResource) bool {
			return r.Type == "Observation" && r.subjectIs(ned) && r.hasCoding("http://loinc.org", "8302-2")
		})
		b := get(t, s, "/fhir/Observation?patient="+ned+"&code=http://loinc.org|8302-2&_include=Observation:patient")
		equal(t, "matches", b.keys("match"), heights)
		equal(t, "includes", b.keys("include"), []string{ned})
		if b.Total == nil || *b.Total != len(heights) {
			t.Errorf("total %v counts the includes", b.Total)
		}

		b = get(t, s, "/fhir/Patient?_id="+data.patients["Hintz"]+"&_revinclude=Condition:subject")
		equal(t, "matches", b.keys("match"), []string{ned})
		equal(t, "includes", b.keys("include"), data.keys(func(r *sampleResource) bool {
			return r.Type == "Condition" && r.subjectIs(ned)
		}))
	})

	t.Run("chained and _has", func(t *testing.T) {
		b := get(t, s, "/fhir/Observation?subject:Patient.family=Hintz&_count=100")
		equal(t, "chained", b.keys("match"), obsOf(ned))
		b = get(t, s, "/fhir/Observation?patient.family=Conn&_count=1000")
		equal(t, "chained without a type", b.keys("match"), obsOf(liz))

		eGFR := func(p string) bool {
			for _, r := range data.byKey {
				if r.Type == "Observation" && r.subjectIs(p) && r.hasCoding("http://loinc.org", "33914-3") {
					return true
				}
			}
			return false
		}
		var want []string
		for _, p := range []string{liz, ned} {
			if eGFR(p) {
				want = append(want, p)
			}
		}
		if len(want) != 1 {
			t.Fatalf("patients with an eGFR: %v; the test needs exactly one", want)
		}
		b = get(t, s, "/fhir/Patient?_has:Observation:patient:code=http://loinc.org|33914-3")
		equal(t, "_has", b.keys("match"), want)
	})

	t.Run("lenient and strict", func(t *testing.T) {
		b := get(t, s, "/fhir/Patient?family=Hintz&nonsense=1")
		equal(t, "matches", b.keys("match"), []string{ned})
		oo := b.outcomes()
		if len(oo) != 1 || !strings.Contains(oo[0], `"severity":"warning"`) || !strings.Contains(oo[0], "nonsense") {
			t.Errorf("outcome entries %v", oo)
		}
		if strings.Contains(b.link("self"), "nonsense") {
			t.Errorf("self link %q keeps the ignored parameter", b.link("self"))
		}
		b = get(t, s, "/fhir/Patient?family=Hintz&nonsense=1", "Prefer", "handling=lenient")
		if len(b.outcomes()) != 1 {
			t.Errorf("handling=lenient: outcome entries %v", b.outcomes())
		}
		b = get(t, s, "/fhir/Patient?family=Hintz")
		if len(b.outcomes()) != 0 {
			t.Errorf("outcome entries without ignored parameters: %v", b.outcomes())
		}
		servertest.Scenario{
			Name: "strict", Path: "/fhir/Patient?family=Hintz&nonsense=1", Header: hdr("Prefer", "handling=strict"),
			ExpectStatus: 400, Check: expectOutcome("invalid", "nonsense"),
		}.Do(t, s)
	})

	t.Run("errors", func(t *testing.T) {
		for _, sc := range []servertest.Scenario{
			{Name: "malformed date", Path: "/fhir/Observation?date=yesterday",
				ExpectStatus: 400, Check: expectOutcome("invalid", "yesterday")},
			{Name: "malformed _count", Path: "/fhir/Observation?_count=many",
				ExpectStatus: 400, Check: expectOutcome("invalid", "_count")},
			{Name: "malformed in a POST body", Method: http.MethodPost, Path: "/fhir/Observation/_search",
				Header: hdr(form...), Body: "date=yesterday",
				ExpectStatus: 400, Check: expectOutcome("invalid", "yesterday")},
			{Name: "unknown type", Path: "/fhir/Bogus?x=1",
				ExpectStatus: 404, Check: expectOutcome("not-found", "Bogus")},
			{Name: "not a compartment", Path: "/fhir/Observation/x/Patient",
				ExpectStatus: 404, Check: expectOutcome("not-found", "not a compartment")},
			{Name: "not in the compartment", Path: "/fhir/Patient/x/Organization",
				ExpectStatus: 404, Check: expectOutcome("not-found", "not in the Patient compartment")},
			{Name: "bad compartment id", Path: "/fhir/Patient/a$b/Observation",
				ExpectStatus: 400, Check: expectOutcome("invalid", "not a valid resource id")},
			{Name: "POST _search as JSON", Method: http.MethodPost, Path: "/fhir/Patient/_search",
				Header: fhirJSON, Body: `{"family":"x"}`,
				ExpectStatus: 415, Check: expectOutcome("not-supported", "x-www-form-urlencoded")},
			{Name: "POST _search without a Content-Type", Method: http.MethodPost, Path: "/fhir/Patient/_search",
				Body: "family=x", ExpectStatus: 415, Check: expectOutcome("not-supported", "Content-Type")},
			{Name: "malformed form", Method: http.MethodPost, Path: "/fhir/Patient/_search",
				Header: hdr(form...), Body: "family=%zz", ExpectStatus: 400, Check: expectOutcome("invalid", "form")},
			{Name: "PUT _search", Method: http.MethodPut, Path: "/fhir/_search",
				ExpectStatus: 405},
			// Terminology: a value set that needs SNOMED CT or LOINC, and one
			// that is not known, are errors even without handling=strict.
			{Name: "value set not expandable", Path: "/fhir/Condition?code:in=http://hl7.org/fhir/ValueSet/condition-code",
				ExpectStatus: 400, Check: expectOutcome("not-supported", "value set http://hl7.org/fhir/ValueSet/condition-code cannot be expanded without a terminology server, which this server does not have: its filter (concept is-a 404684003) needs http://snomed.info/sct")},
			{Name: "value set not expandable, not-in", Method: http.MethodPost, Path: "/fhir/Observation/_search",
				Header: hdr(form...), Body: "code:not-in=http://hl7.org/fhir/ValueSet/observation-codes",
				ExpectStatus: 400, Check: expectOutcome("not-supported", "it includes every code of http://loinc.org")},
			{Name: "value set unknown", Path: "/fhir/Observation?code:in=http://example.org/ValueSet/mine",
				ExpectStatus: 400, Check: expectOutcome("invalid", "value set http://example.org/ValueSet/mine is not known here")},
			{Name: "hierarchy not known", Path: "/fhir/Observation?code:below=http://loinc.org%7C8302-2",
				ExpectStatus: 400, Check: expectOutcome("not-supported", "the concepts of code system http://loinc.org are not known here")},
			{Name: "below without a system", Path: "/fhir/Encounter?class:below=IMP",
				ExpectStatus: 400, Check: expectOutcome("invalid", ":below takes system|code")},
		} {
			sc.Do(t, s)
		}
	})

	t.Run("_format and _pretty", func(t *testing.T) {
		res := servertest.Scenario{
			Name: "pretty JSON", Path: "/fhir/Patient?family=Hintz&_pretty=true&_format=application/json",
			ExpectStatus: 200, ExpectHeader: hdr("Content-Type", "application/json; charset=utf-8"),
			ExpectContains: []string{"{\n  \"resourceType\": \"Bundle\","},
		}.Do(t, s)
		b := decodeSearchset(t, res.Body)
		if self := b.link("self"); !strings.Contains(self, "_pretty=true") || !strings.Contains(self, "_format=") {
			t.Errorf("self link %q drops _pretty or _format", self)
		}
	})
}

// A server that serves some types only searches those, even when the
// store holds others.
func TestSearchServedTypes(t *testing.T) {
	s, data := syntheaServer(t, func(d *server.Deps) { d.ResourceTypes = []string{"Patient", "Observation"} })
	want := data.keys(func(r *sampleResource) bool { return r.Type == "Patient" || r.Type == "Observation" })
	b := get(t, s, "/fhir?_count=1000")
	equal(t, "system level", b.keys("match"), want)
	ned := "Patient/" + data.patients["Hintz"]
	b = get(t, s, "/fhir/"+ned+"/*?_count=1000")
	got := slices.DeleteFunc(b.keys("match"), func(k string) bool { return k == ned })
	equal(t, "compartment", got, data.keys(func(r *sampleResource) bool { return r.Type == "Observation" && r.refersTo(ned) }))
	for _, sc := range []servertest.Scenario{
		{Name: "unserved _type", Path: "/fhir?_type=Encounter", ExpectStatus: 404, Check: expectOutcome("not-found", "Encounter")},
		{Name: "unserved type", Path: "/fhir/Encounter?subject=" + ned, ExpectStatus: 404, Check: expectOutcome("not-found", "Encounter")},
		{Name: "unserved member", Path: "/fhir/" + ned + "/Encounter", ExpectStatus: 404, Check: expectOutcome("not-found", "Encounter")},
	} {
		sc.Do(t, s)
	}
}

// checkSubsetted asserts meta.tag holds SUBSETTED once.
func checkSubsetted(t testing.TB, resource json.RawMessage) {
	t.Helper()
	var r struct {
		Meta struct {
			Tag []struct{ System, Code string }
		}
	}
	_ = json.Unmarshal(resource, &r)
	n := 0
	for _, tag := range r.Meta.Tag {
		if tag.System == "http://terminology.hl7.org/CodeSystem/v3-ObservationValue" && tag.Code == "SUBSETTED" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d SUBSETTED tags: %s", n, resource)
	}
}

// The CapabilityStatement lists each type's search parameters, includes and
// revincludes, from the registry.
func TestSearchCapability(t *testing.T) {
	res := do(t, newServer(t), http.MethodGet, "/fhir/metadata", "")
	var cs struct {
		Rest []struct {
			Interaction []struct{ Code string } `json:"interaction"`
			SearchParam []struct {
				Name, Definition, Type string
			} `json:"searchParam"`
			Resource []struct {
				Type             string   `json:"type"`
				SearchInclude    []string `json:"searchInclude"`
				SearchRevInclude []string `json:"searchRevInclude"`
				SearchParam      []struct {
					Name, Definition, Type string
				} `json:"searchParam"`
			} `json:"resource"`
		} `json:"rest"`
	}
	if err := json.Unmarshal(res.Body.Bytes(), &cs); err != nil || len(cs.Rest) != 1 {
		t.Fatalf("%v: %.300s", err, res.Body.String())
	}
	rest := cs.Rest[0]
	var system []string
	for _, p := range rest.SearchParam {
		system = append(system, p.Name)
	}
	equal(t, "system search parameters", system, []string{"_id", "_lastUpdated", "_profile", "_security", "_source", "_tag"})
	found := 0
	for _, r := range rest.Resource {
		params := map[string]string{}
		for _, p := range r.SearchParam {
			if p.Definition == "" || p.Type == "" {
				t.Errorf("%s: parameter %+v", r.Type, p)
			}
			params[p.Name] = p.Type + " " + p.Definition
		}
		if params["_id"] != "token http://hl7.org/fhir/SearchParameter/Resource-id" {
			t.Errorf("%s: _id is %q", r.Type, params["_id"])
		}
		if len(r.SearchInclude) == 0 || r.SearchInclude[0] != "*" {
			t.Errorf("%s: searchInclude %v", r.Type, r.SearchInclude)
		}
		switch r.Type {
		case "Patient":
			found++
			for name, want := range map[string]string{
				"birthdate":            "date http://hl7.org/fhir/SearchParameter/individual-birthdate",
				"family":               "string http://hl7.org/fhir/SearchParameter/individual-family",
				"general-practitioner": "reference http://hl7.org/fhir/SearchParameter/Patient-general-practitioner",
			} {
				if params[name] != want {
					t.Errorf("Patient %s: %q, want %q", name, params[name], want)
				}
			}
			if !slices.Contains(r.SearchInclude, "Patient:general-practitioner") ||
				!slices.Contains(r.SearchRevInclude, "Observation:subject") ||
				!slices.Contains(r.SearchRevInclude, "Condition:patient") {
				t.Errorf("Patient includes %v revincludes %v", r.SearchInclude, r.SearchRevInclude)
			}
		case "Location":
			if params["near"] != "special http://hl7.org/fhir/SearchParameter/Location-near" || params["address-city"] == "" {
				t.Errorf("Location parameters %v", params)
			}
		case "Observation":
			found++
			if params["code-value-quantity"] == "" || params["_text"] != "" {
				t.Errorf("Observation parameters %v", params)
			}
		}
	}
	if found != 2 {
		t.Errorf("Patient and Observation not listed")
	}
}
