package storetest

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/search"
	"github.com/fhirserver/fhirserver/importer"
	"github.com/fhirserver/fhirserver/store"
)

// The search contract runs on three data sets in separate tenants: the two
// Synthea bundles of testdata/synthea (imported with package importer, so
// urn:uuid references become Type/id), with expected results computed by
// walking the bundle JSON in the test; and small hand-written resources for
// the edge cases and for terminology (terminology.go), with expected results
// worked out by hand.

const (
	syntheaTenant = "synthea"
	edgeTenant    = "edge"
)

// runSearch runs the search contract on s when it implements
// store.Searcher.
func runSearch(t *testing.T, s store.Store) {
	se, ok := s.(store.Searcher)
	if !ok {
		t.Skip("the store does not implement store.Searcher")
	}
	ctx := context.Background()
	corpus := loadSynthea(t)
	im := &importer.Importer{Store: s, Tenant: syntheaTenant}
	stats, err := im.ImportPaths(ctx, []string{syntheaDir(t)})
	must(t, err)
	if stats.Skipped > 0 || stats.FailedFiles > 0 || stats.Created != len(corpus.all) {
		t.Fatalf("importing Synthea: %+v, want %d created", stats, len(corpus.all))
	}
	loadEdge(t, s)
	loadTerminology(t, s)
	loadValueSets(t, s)

	t.Run("Synthea", func(t *testing.T) { testSyntheaSearch(t, se, corpus) })
	t.Run("Edge", func(t *testing.T) { testEdgeSearch(t, se) })
	t.Run("Terminology", func(t *testing.T) { testTerminologySearch(t, se, corpus) })
	t.Run("StoredValueSets", func(t *testing.T) { testStoredValueSets(t, s, se) })
	t.Run("Sort", func(t *testing.T) { testSort(t, se, corpus) })
	t.Run("Includes", func(t *testing.T) { testIncludes(t, se, corpus) })
	t.Run("Totals", func(t *testing.T) { testTotals(t, se, corpus) })
	t.Run("Paging", func(t *testing.T) { testPaging(t, s, se) })
	t.Run("IndexFollowsWrites", func(t *testing.T) { testIndexFollowsWrites(t, s, se) })
	t.Run("Errors", func(t *testing.T) { testSearchErrors(t, se) })
	t.Run("Near", func(t *testing.T) { testNear(t, s, se) })
	t.Run("PatientRoute", func(t *testing.T) { testPatientRoute(t, s, se) })
}

// query parses a search the way the server does.
func query(t *testing.T, types []string, comp *search.Compartment, rawQuery string) *search.Query {
	t.Helper()
	vals, err := url.ParseQuery(rawQuery)
	must(t, err)
	q, err := search.Parse(vals, search.Options{Types: types, Compartment: comp, Strict: true})
	if err != nil {
		t.Fatalf("parsing %q: %v", rawQuery, err)
	}
	return q
}

func typesOf(typ string) []string {
	if typ == "" {
		return nil
	}
	return strings.Split(typ, ",")
}

// keysOf returns Type/id of each resource.
func keysOf(rs []fhir.Resource) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Type + "/" + r.ID
	}
	return out
}

func sameSet(got, want []string) bool {
	g, w := slices.Clone(got), slices.Clone(want)
	sort.Strings(g)
	sort.Strings(w)
	return slices.Equal(g, w)
}

// searchAll follows Next to the end and returns every match in order.
func searchAll(t *testing.T, se store.Searcher, tenant string, q *search.Query) []string {
	t.Helper()
	var out []string
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("more than 1000 pages")
		}
		page, err := se.Search(context.Background(), tenant, q)
		if err != nil {
			t.Fatalf("search: %v", err)
		}
		out = append(out, keysOf(page.Matches)...)
		if page.Next == "" {
			return out
		}
		next := *q
		next.Cursor = page.Next
		q = &next
	}
}

// --- Synthea corpus, walked as plain JSON ---

type corpus struct {
	all    []obj
	byType map[string][]obj
	byKey  map[string]obj
}

type obj = map[string]any

func syntheaDir(t testing.TB) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate testdata")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "synthea")
}

func loadSynthea(t *testing.T) *corpus {
	c := &corpus{byType: map[string][]obj{}, byKey: map[string]obj{}}
	files, err := filepath.Glob(filepath.Join(syntheaDir(t), "*.json"))
	must(t, err)
	if len(files) != 2 {
		t.Fatalf("want the two Synthea bundles in testdata/synthea, found %d", len(files))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		must(t, err)
		var bundle struct {
			Entry []struct {
				Resource obj `json:"resource"`
			} `json:"entry"`
		}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.UseNumber()
		must(t, dec.Decode(&bundle))
		for _, e := range bundle.Entry {
			r := e.Resource
			typ, id := r["resourceType"].(string), r["id"].(string)
			c.all = append(c.all, r)
			c.byType[typ] = append(c.byType[typ], r)
			c.byKey[typ+"/"+id] = r
		}
	}
	return c
}

func key(r obj) string { return r["resourceType"].(string) + "/" + r["id"].(string) }

// refID returns the id a Reference object points to ("urn:uuid:X" or
// "Type/X" give X).
func refID(v any) string {
	m, _ := v.(obj)
	s, _ := m["reference"].(string)
	s = strings.TrimPrefix(s, "urn:uuid:")
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

func list(v any) []any {
	switch v := v.(type) {
	case []any:
		return v
	case nil:
		return nil
	}
	return []any{v}
}

func codings(cc any) []obj {
	var out []obj
	for _, c := range list(cc.(obj)["coding"]) {
		out = append(out, c.(obj))
	}
	return out
}

func hasCoding(cc any, system, code string) bool {
	if cc == nil {
		return false
	}
	for _, c := range codings(cc) {
		if c["code"] == code && (system == "" || c["system"] == system) {
			return true
		}
	}
	return false
}

func (c *corpus) filter(typ string, keep func(r obj) bool) []string {
	var out []string
	for _, r := range c.byType[typ] {
		if keep(r) {
			out = append(out, key(r))
		}
	}
	return out
}

// instant parses a FHIR dateTime with seconds and a zone.
func instant(t *testing.T, s string) time.Time {
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatalf("parsing %q: %v", s, err)
	}
	return tm
}

func decimal(t *testing.T, v any) float64 {
	f, err := strconv.ParseFloat(string(v.(json.Number)), 64)
	must(t, err)
	return f
}

type searchCase struct {
	name  string
	types string // comma-separated; "" for all
	comp  *search.Compartment
	query string
	want  []string
	order bool // compare in order
}

func runCases(t *testing.T, se store.Searcher, tenant string, cases []searchCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := query(t, typesOf(tc.types), tc.comp, tc.query)
			got := searchAll(t, se, tenant, q)
			if tc.order {
				if !slices.Equal(got, tc.want) {
					t.Fatalf("%s?%s:\n got %v\nwant %v", tc.types, tc.query, got, tc.want)
				}
				return
			}
			if !sameSet(got, tc.want) {
				t.Fatalf("%s?%s:\n got %d %v\nwant %d %v", tc.types, tc.query, len(got), got, len(tc.want), tc.want)
			}
		})
	}
}

func testSyntheaSearch(t *testing.T, se store.Searcher, c *corpus) {
	ned, liz := c.byType["Patient"][0], c.byType["Patient"][1]
	if ned["gender"] != "male" {
		ned, liz = liz, ned
	}
	nedID, lizID := ned["id"].(string), liz["id"].(string)
	subjectIs := func(id string) func(obj) bool { return func(r obj) bool { return refID(r["subject"]) == id } }
	heightOf := func(id string) func(obj) bool {
		return func(r obj) bool {
			return refID(r["subject"]) == id && hasCoding(r["code"], "http://loinc.org", "8302-2")
		}
	}
	effective := func(r obj) time.Time {
		s, _ := r["effectiveDateTime"].(string)
		if s == "" {
			return time.Time{}
		}
		return instant(t, s)
	}
	cut := instant(t, "2015-01-01T00:00:00Z")
	// A Condition code only Ned has, for _has.
	nedOnly := ""
	for _, o := range c.byType["Condition"] {
		for _, cd := range codings(o["code"]) {
			code := cd["code"].(string)
			if len(c.filter("Condition", func(r obj) bool { return hasCoding(r["code"], "", code) && refID(r["subject"]) != nedID })) == 0 {
				nedOnly = code
			}
		}
	}
	if nedOnly == "" {
		t.Fatal("no condition code that only Ned has")
	}
	encountersOf := func(id string) map[string]bool {
		m := map[string]bool{}
		for _, e := range c.byType["Encounter"] {
			if refID(e["subject"]) == id {
				m[e["id"].(string)] = true
			}
		}
		return m
	}
	nedEncounters := encountersOf(nedID)
	bmiOver := func(r obj, v float64) bool {
		q, _ := r["valueQuantity"].(obj)
		return q != nil && hasCoding(r["code"], "http://loinc.org", "39156-5") && decimal(t, q["value"]) > v
	}

	cases := []searchCase{
		{name: "string prefix", types: "Patient", query: "name=hin", want: []string{key(ned)}},
		{name: "string other name", types: "Patient", query: "name=ROWE", want: []string{key(liz)}},
		{name: "string given or family", types: "Patient", query: "name=liz,ned", want: []string{key(ned), key(liz)}},
		{name: "string AND", types: "Patient", query: "name=liz&name=conn", want: []string{key(liz)}},
		{name: "string no match", types: "Patient", query: "name=xyz", want: nil},
		{name: "address city", types: "Patient", query: "address-city=" + url.QueryEscape(ned["address"].([]any)[0].(obj)["city"].(string)), want: []string{key(ned)}},
		{name: "token code", types: "Patient", query: "gender=male", want: []string{key(ned)}},
		{name: "token system|code", types: "Observation", query: "code=http://loinc.org|8302-2",
			want: c.filter("Observation", func(r obj) bool { return hasCoding(r["code"], "http://loinc.org", "8302-2") })},
		{name: "token wrong system", types: "Observation", query: "code=http://snomed.info/sct|8302-2", want: nil},
		{name: "token system only", types: "Observation", query: "category=http://terminology.hl7.org/CodeSystem/observation-category|",
			want: c.filter("Observation", func(r obj) bool { return len(list(r["category"])) > 0 })},
		{name: "identifier", types: "Patient", query: "identifier=" + url.QueryEscape("http://hospital.smarthealthit.org|"+ned["identifier"].([]any)[1].(obj)["value"].(string)), want: []string{key(ned)}},
		{name: "reference", types: "Observation", query: "subject=Patient/" + nedID, want: c.filter("Observation", subjectIs(nedID))},
		{name: "reference bare id", types: "Observation", query: "patient=" + lizID, want: c.filter("Observation", subjectIs(lizID))},
		{name: "reference and token", types: "Observation", query: "patient=" + nedID + "&code=http://loinc.org|8302-2", want: c.filter("Observation", heightOf(nedID))},
		{name: "date ge", types: "Observation", query: "date=ge2015-01-01",
			want: c.filter("Observation", func(r obj) bool { return !effective(r).Before(cut) })},
		{name: "date lt", types: "Observation", query: "date=lt2015-01-01",
			want: c.filter("Observation", func(r obj) bool { e := effective(r); return !e.IsZero() && e.Before(cut) })},
		// A reference to given resources anchors the search (the other
		// clauses are probed per row): with two values, with a chain, a
		// :missing and a composite beside it.
		{name: "anchor two patients and token", types: "Observation", query: "patient=" + nedID + "," + lizID + "&code=http://loinc.org|8302-2",
			want: c.filter("Observation", func(r obj) bool { return heightOf(nedID)(r) || heightOf(lizID)(r) })},
		{name: "anchor and chain", types: "Observation", query: "patient=" + nedID + "," + lizID + "&subject:Patient.gender=female&code=http://loinc.org|8302-2", want: c.filter("Observation", heightOf(lizID))},
		{name: "anchor and missing", types: "Observation", query: "patient=" + nedID + "&value-quantity:missing=false&category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
			want: c.filter("Observation", func(r obj) bool {
				return refID(r["subject"]) == nedID && r["valueQuantity"] != nil && hasCategory(r, "laboratory")
			})},
		{name: "anchor and composite", types: "Observation", query: "subject=Patient/" + lizID + "&code-value-quantity=http://loinc.org|39156-5$gt25",
			want: c.filter("Observation", func(r obj) bool { return refID(r["subject"]) == lizID && bmiOver(r, 25.5) })},
		{name: "date day", types: "Observation", query: "patient=" + nedID + "&date=2012-03-07",
			want: c.filter("Observation", func(r obj) bool {
				return refID(r["subject"]) == nedID && effective(r).UTC().Format("2006-01-02") == "2012-03-07"
			})},
		{name: "quantity gt with unit", types: "Observation", query: "code=39156-5&value-quantity=gt25|http://unitsofmeasure.org|kg/m2",
			want: c.filter("Observation", func(r obj) bool { return bmiOver(r, 25.5) })},
		{name: "composite same element", types: "Observation", query: "code-value-quantity=http://loinc.org|39156-5$gt25",
			want: c.filter("Observation", func(r obj) bool { return bmiOver(r, 25.5) })},
		{name: "composite other code", types: "Observation", query: "code-value-quantity=http://loinc.org|8302-2$gt25",
			want: c.filter("Observation", func(r obj) bool { return hasCoding(r["code"], "http://loinc.org", "8302-2") })},
		{name: "chain", types: "Encounter", query: "subject:Patient.name=hintz", want: c.filter("Encounter", subjectIs(nedID))},
		{name: "chain any target", types: "Observation", query: "subject.gender=female", want: c.filter("Observation", subjectIs(lizID))},
		{name: "chain two levels", types: "Observation", query: "encounter.subject:Patient.name=hintz",
			want: c.filter("Observation", func(r obj) bool { return nedEncounters[refID(r["encounter"])] })},
		{name: "has", types: "Patient", query: "_has:Condition:patient:code=" + nedOnly, want: []string{key(ned)}},
		{name: "has nested", types: "Patient", query: "_has:Encounter:patient:_has:Condition:encounter:code=" + nedOnly, want: []string{key(ned)}},
		{name: "_id", types: "Patient", query: "_id=" + lizID, want: []string{key(liz)}},
		{name: "_lastUpdated", types: "Patient", query: "_lastUpdated=ge2000-01-01", want: []string{key(ned), key(liz)}},
		{name: "_lastUpdated future", types: "Patient", query: "_lastUpdated=gt2999-01-01", want: nil},
		{name: "compartment type", types: "Encounter", comp: &search.Compartment{Type: "Patient", ID: nedID}, query: "", want: c.filter("Encounter", subjectIs(nedID))},
		{name: "compartment with clause", types: "Observation", comp: &search.Compartment{Type: "Patient", ID: lizID}, query: "code=8302-2", want: c.filter("Observation", heightOf(lizID))},
		{name: "system level several types", types: "", query: "_type=Patient,Practitioner&name=hin",
			want: append([]string{key(ned)}, c.filter("Practitioner", func(r obj) bool {
				return strings.HasPrefix(strings.ToLower(r["name"].([]any)[0].(obj)["family"].(string)), "hin")
			})...)},
		{name: "system level all types by _id", types: "", query: "_id=" + nedID, want: []string{key(ned)}},
	}
	for _, tc := range cases {
		if strings.Contains(tc.name, "no match") || strings.Contains(tc.name, "future") || strings.Contains(tc.name, "wrong") {
			continue
		}
		if len(tc.want) == 0 {
			t.Fatalf("case %q expects nothing; the corpus no longer exercises it", tc.name)
		}
	}
	runCases(t, se, syntheaTenant, cases)
}

// --- hand-written edge cases ---

var edgeResources = []string{
	// Names: accents and case; gender present and missing; identifiers with a type.
	`{"resourceType":"Patient","id":"p1","meta":{"profile":["http://example.org/fhir/StructureDefinition/my-patient"],"tag":[{"system":"http://example.org/tags","code":"vip"}],"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}],"source":"http://example.org/source#a"},"name":[{"family":"Müller","given":["José"]}],"gender":"male","birthDate":"1990","identifier":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}],"text":"Medical record"},"system":"http://example.org/mrn","value":"12345"}],"managingOrganization":{"reference":"Organization/o1"}}`,
	`{"resourceType":"Patient","id":"p2","name":[{"family":"Mullins","given":["Jo"]}],"gender":"female","birthDate":"1990-05"}`,
	`{"resourceType":"Patient","id":"p3","name":[{"family":"Ållen","given":["Zoë"]}],"birthDate":"1990-05-15"}`,
	`{"resourceType":"Organization","id":"o1","name":"Acme Hospital"}`,
	// Encounters with a closed and an open period.
	`{"resourceType":"Encounter","id":"e1","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/p1"},"period":{"start":"2020-01-01T10:00:00Z","end":"2020-01-01T12:00:00Z"}}`,
	`{"resourceType":"Encounter","id":"e2","status":"in-progress","class":{"code":"AMB"},"subject":{"reference":"Patient/p2"},"period":{"start":"2020-02-01"}}`,
	// Quantities: precision, comparator, units.
	`{"resourceType":"Observation","id":"q100","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"2345-7"}],"text":"Glucose in blood"},"subject":{"reference":"Patient/p1"},"encounter":{"reference":"Encounter/e1"},"valueQuantity":{"value":100,"unit":"mg","system":"http://unitsofmeasure.org","code":"mg"}}`,
	`{"resourceType":"Observation","id":"q100.0","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"2345-7"}]},"subject":{"reference":"Patient/p2"},"valueQuantity":{"value":100.0,"unit":"mg","system":"http://unitsofmeasure.org","code":"mg"}}`,
	`{"resourceType":"Observation","id":"q99.6","status":"amended","code":{"coding":[{"system":"http://loinc.org","code":"2345-7"}]},"valueQuantity":{"value":99.6,"unit":"mg","system":"http://unitsofmeasure.org","code":"mg"}}`,
	`{"resourceType":"Observation","id":"q101","status":"final","code":{"coding":[{"code":"local-1"}]},"valueQuantity":{"value":101,"unit":"g","system":"http://unitsofmeasure.org","code":"g"}}`,
	`{"resourceType":"Observation","id":"qlt5","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"2345-7"}]},"valueQuantity":{"value":5,"comparator":"<","unit":"mg/L"}}`,
	// Blood pressures: the composite must match within one component.
	`{"resourceType":"Observation","id":"bp1","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},"subject":{"identifier":{"system":"http://example.org/mrn","value":"12345"}},"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":140,"unit":"mm[Hg]","system":"http://unitsofmeasure.org","code":"mm[Hg]"}},{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":80,"unit":"mm[Hg]","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`,
	`{"resourceType":"Observation","id":"bp2","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},"subject":{"reference":"http://other.example.org/fhir/Patient/p1"},"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":120,"unit":"mm[Hg]","system":"http://unitsofmeasure.org","code":"mm[Hg]"}},{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":140,"unit":"mm[Hg]","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`,
	// Numbers.
	`{"resourceType":"RiskAssessment","id":"r1","status":"final","subject":{"reference":"Patient/p1"},"prediction":[{"probabilityDecimal":0.25}]}`,
	`{"resourceType":"RiskAssessment","id":"r2","status":"final","subject":{"reference":"Patient/p2"},"prediction":[{"probabilityDecimal":0.8}]}`,
	// URIs and canonicals.
	`{"resourceType":"ValueSet","id":"vs1","url":"http://example.org/fhir/ValueSet/a","status":"active"}`,
	`{"resourceType":"ValueSet","id":"vs2","url":"http://example.org/fhir/ValueSet/a/b","status":"active"}`,
	`{"resourceType":"ValueSet","id":"vs3","url":"http://example.org/other/c","status":"active"}`,
	`{"resourceType":"QuestionnaireResponse","id":"qr1","status":"completed","questionnaire":"http://example.org/Questionnaire/x|2"}`,
}

func loadEdge(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, body := range edgeResources {
		typ, id, err := fhir.Envelope([]byte(body))
		must(t, err)
		if _, _, err := s.Update(ctx, store.Write{Tenant: edgeTenant, Type: typ, ID: id, Body: []byte(body)}); err != nil {
			t.Fatalf("loading %s/%s: %v", typ, id, err)
		}
	}
}

func keys(typ string, ids ...string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = typ + "/" + id
	}
	return out
}

func testEdgeSearch(t *testing.T, se store.Searcher) {
	P := func(ids ...string) []string { return keys("Patient", ids...) }
	O := func(ids ...string) []string { return keys("Observation", ids...) }
	E := func(ids ...string) []string { return keys("Encounter", ids...) }
	runCases(t, se, edgeTenant, []searchCase{
		// string: starts-with, case and accents folded; :exact; :contains.
		{name: "accent folded", types: "Patient", query: "name=jose", want: P("p1")},
		{name: "accent in query", types: "Patient", query: "name=MÜL", want: P("p1", "p2")},
		{name: "prefix of a later part", types: "Patient", query: "family=all", want: P("p3")},
		{name: "exact", types: "Patient", query: "family:exact=Müller", want: P("p1")},
		{name: "exact is case sensitive", types: "Patient", query: "family:exact=müller", want: nil},
		{name: "contains", types: "Patient", query: "family:contains=LLE", want: P("p1", "p3")},
		{name: "not a prefix", types: "Patient", query: "family=ller", want: nil},
		// token modifiers.
		{name: "not includes missing", types: "Patient", query: "gender:not=male", want: P("p2", "p3")},
		{name: "not several", types: "Patient", query: "gender:not=male,female", want: P("p3")},
		{name: "missing true", types: "Patient", query: "gender:missing=true", want: P("p3")},
		{name: "missing false", types: "Patient", query: "gender:missing=false", want: P("p1", "p2")},
		{name: "text word", types: "Observation", query: "code:text=blood", want: O("q100")},
		{name: "text start", types: "Observation", query: "code:text=gluc", want: O("q100")},
		{name: "no system", types: "Observation", query: "code=|local-1", want: O("q101")},
		{name: "no system excludes coded", types: "Observation", query: "code=|2345-7", want: nil},
		{name: "of-type", types: "Patient", query: "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|12345", want: P("p1")},
		{name: "identifier text", types: "Patient", query: "identifier:text=medical", want: P("p1")},
		{name: "_tag", types: "Patient", query: "_tag=http://example.org/tags|vip", want: P("p1")},
		{name: "_security", types: "Patient", query: "_security=R", want: P("p1")},
		{name: "_profile", types: "Patient", query: "_profile=http://example.org/fhir/StructureDefinition/my-patient", want: P("p1")},
		{name: "_source", types: "Patient", query: "_source=" + url.QueryEscape("http://example.org/source#a"), want: P("p1")},
		// dates: partial dates are ranges.
		{name: "year contains all", types: "Patient", query: "birthdate=1990", want: P("p1", "p2", "p3")},
		{name: "month excludes the year", types: "Patient", query: "birthdate=1990-05", want: P("p2", "p3")},
		{name: "ne month", types: "Patient", query: "birthdate=ne1990-05", want: P("p1")},
		{name: "ge reaches above", types: "Patient", query: "birthdate=ge1990-06", want: P("p1")},
		{name: "gt", types: "Patient", query: "birthdate=gt1990-05-14", want: P("p1", "p2", "p3")},
		{name: "lt starts below", types: "Patient", query: "birthdate=lt1990-05-15", want: P("p1", "p2")},
		{name: "le", types: "Patient", query: "birthdate=le1990-05-15", want: P("p1", "p2", "p3")},
		{name: "sa", types: "Patient", query: "birthdate=sa1989", want: P("p1", "p2", "p3")},
		{name: "sa excludes overlap", types: "Patient", query: "birthdate=sa1990-04", want: P("p2", "p3")},
		{name: "eb", types: "Patient", query: "birthdate=eb1990-06", want: P("p2", "p3")},
		{name: "ap", types: "Patient", query: "birthdate=ap1990-05-15", want: P("p1", "p2", "p3")},
		{name: "period within day", types: "Encounter", query: "date=2020-01-01", want: E("e1")},
		{name: "open period reaches above", types: "Encounter", query: "date=ge2021", want: E("e2")},
		{name: "period starts before", types: "Encounter", query: "date=lt2020-01-01T11:00:00Z", want: E("e1")},
		{name: "open period not within", types: "Encounter", query: "date=2020-02", want: nil},
		{name: "period eb", types: "Encounter", query: "date=eb2020-01-02", want: E("e1")},
		// numbers and quantities: precision ranges.
		{name: "quantity implicit range", types: "Observation", query: "value-quantity=100", want: O("q100", "q100.0", "q99.6")},
		{name: "quantity finer precision", types: "Observation", query: "value-quantity=100.0", want: O("q100.0")},
		{name: "quantity gt", types: "Observation", query: "value-quantity=gt100", want: O("q101")},
		{name: "quantity ge", types: "Observation", query: "value-quantity=ge100", want: O("q100", "q100.0", "q99.6", "q101")},
		{name: "quantity lt comparator", types: "Observation", query: "value-quantity=lt3", want: O("qlt5")},
		{name: "quantity le", types: "Observation", query: "value-quantity=le99.6", want: O("q100", "q99.6", "qlt5")},
		{name: "quantity ap", types: "Observation", query: "value-quantity=ap100", want: O("q100", "q100.0", "q99.6", "q101")},
		{name: "quantity ne", types: "Observation", query: "value-quantity=ne100", want: O("q101", "qlt5")},
		{name: "quantity sa", types: "Observation", query: "value-quantity=sa100", want: O("q101")},
		{name: "quantity eb", types: "Observation", query: "value-quantity=eb100", want: O("qlt5")},
		{name: "quantity system and code", types: "Observation", query: "value-quantity=100|http://unitsofmeasure.org|mg", want: O("q100", "q100.0", "q99.6")},
		{name: "quantity other unit", types: "Observation", query: "value-quantity=ge100|http://unitsofmeasure.org|g", want: O("q101")},
		{name: "quantity unit text", types: "Observation", query: "value-quantity=lt10||mg/L", want: O("qlt5")},
		{name: "number", types: "RiskAssessment", query: "probability=0.25", want: keys("RiskAssessment", "r1")},
		{name: "number gt", types: "RiskAssessment", query: "probability=gt0.5", want: keys("RiskAssessment", "r2")},
		{name: "number le", types: "RiskAssessment", query: "probability=le0.3", want: keys("RiskAssessment", "r1")},
		// composite within one component.
		{name: "composite component", types: "Observation", query: "component-code-value-quantity=http://loinc.org|8480-6$gt130", want: O("bp1")},
		{name: "composite other component", types: "Observation", query: "component-code-value-quantity=http://loinc.org|8462-4$gt130", want: O("bp2")},
		// references.
		{name: "reference identifier", types: "Observation", query: "subject:identifier=http://example.org/mrn|12345", want: O("bp1")},
		{name: "absolute reference", types: "Observation", query: "subject=http://other.example.org/fhir/Patient/p1", want: O("bp2")},
		{name: "local reference excludes absolute", types: "Observation", query: "subject=Patient/p1", want: O("q100")},
		{name: "reference missing", types: "Observation", query: "subject:missing=true", want: O("q99.6", "q101", "qlt5")},
		{name: "canonical", types: "QuestionnaireResponse", query: "questionnaire=http://example.org/Questionnaire/x", want: keys("QuestionnaireResponse", "qr1")},
		{name: "canonical version", types: "QuestionnaireResponse", query: "questionnaire=" + url.QueryEscape("http://example.org/Questionnaire/x|2"), want: keys("QuestionnaireResponse", "qr1")},
		{name: "canonical other version", types: "QuestionnaireResponse", query: "questionnaire=" + url.QueryEscape("http://example.org/Questionnaire/x|3"), want: nil},
		// uri.
		{name: "uri", types: "ValueSet", query: "url=http://example.org/fhir/ValueSet/a", want: keys("ValueSet", "vs1")},
		{name: "uri below", types: "ValueSet", query: "url:below=http://example.org/fhir/ValueSet", want: keys("ValueSet", "vs1", "vs2")},
		{name: "uri above", types: "ValueSet", query: "url:above=http://example.org/fhir/ValueSet/a/b/c", want: keys("ValueSet", "vs1", "vs2")},
		// chains, _has, compartments over the edge data.
		{name: "chain to organization", types: "Encounter", query: "subject:Patient.organization.name=acme", want: E("e1")},
		{name: "has with date", types: "Patient", query: "_has:Encounter:patient:date=ge2021", want: P("p2")},
		{name: "compartment all types", types: "", comp: &search.Compartment{Type: "Patient", ID: "p1"}, query: "",
			want: append(append(P("p1"), E("e1")...), append(O("q100"), keys("RiskAssessment", "r1")...)...)},
		{name: "_id not", types: "Patient", query: "_id:not=p1", want: P("p2", "p3")},
	})
}

func testSort(t *testing.T, se store.Searcher, c *corpus) {
	runCases(t, se, edgeTenant, []searchCase{
		{name: "birthdate asc", types: "Patient", query: "_sort=birthdate", order: true, want: keys("Patient", "p1", "p2", "p3")},
		{name: "birthdate desc", types: "Patient", query: "_sort=-birthdate", order: true, want: keys("Patient", "p1", "p2", "p3")},
		{name: "family", types: "Patient", query: "_sort=family", order: true, want: keys("Patient", "p3", "p1", "p2")},
		{name: "family desc", types: "Patient", query: "_sort=-family", order: true, want: keys("Patient", "p2", "p1", "p3")},
		{name: "missing last asc", types: "Patient", query: "_sort=gender", order: true, want: keys("Patient", "p2", "p1", "p3")},
		{name: "missing last desc", types: "Patient", query: "_sort=-gender", order: true, want: keys("Patient", "p1", "p2", "p3")},
		{name: "two keys", types: "Observation", query: "code=2345-7&_sort=status,-value-quantity", order: true, want: keys("Observation", "q99.6", "q100", "q100.0", "qlt5")},
		{name: "quantity asc", types: "Observation", query: "code=2345-7&_sort=value-quantity,_id", order: true, want: keys("Observation", "qlt5", "q99.6", "q100", "q100.0")},
		{name: "number desc", types: "RiskAssessment", query: "_sort=-probability", order: true, want: keys("RiskAssessment", "r2", "r1")},
		{name: "_id desc", types: "Patient", query: "_sort=-_id", order: true, want: keys("Patient", "p3", "p2", "p1")},
		{name: "paged missing last", types: "Patient", query: "_sort=gender&_count=1", order: true, want: keys("Patient", "p2", "p1", "p3")},
		{name: "paged missing last desc", types: "Patient", query: "_sort=-gender,_id&_count=2", order: true, want: keys("Patient", "p1", "p2", "p3")},
		{name: "paged several types", types: "Patient,Encounter,RiskAssessment", query: "_count=2", order: true, want: append(append(keys("Encounter", "e1", "e2"), keys("Patient", "p1", "p2", "p3")...), keys("RiskAssessment", "r1", "r2")...)},
		{name: "paged sort", types: "Observation", query: "code=2345-7&_sort=value-quantity,_id&_count=1", order: true, want: keys("Observation", "qlt5", "q99.6", "q100", "q100.0")},
	})
	// Synthea: observations of a patient, newest first; ties by id.
	pat := c.byType["Patient"][0]["id"].(string)
	type ob struct {
		key string
		at  time.Time
	}
	var obs []ob
	for _, o := range c.byType["Observation"] {
		if refID(o["subject"]) == pat {
			obs = append(obs, ob{key(o), instant(t, o["effectiveDateTime"].(string))})
		}
	}
	sort.Slice(obs, func(i, j int) bool {
		if !obs[i].at.Equal(obs[j].at) {
			return obs[i].at.After(obs[j].at)
		}
		return obs[i].key < obs[j].key
	})
	var want []string
	for _, o := range obs {
		if !o.at.Before(instant(t, "2013-01-01T00:00:00Z")) {
			want = append(want, o.key)
		}
	}
	runCases(t, se, syntheaTenant, []searchCase{
		{name: "synthea date desc paged", types: "Observation", query: "patient=" + pat + "&date=ge2013-01-01&_sort=-date&_count=5", order: true, want: want},
	})
}

func testIncludes(t *testing.T, se store.Searcher, c *corpus) {
	ctx := context.Background()
	pat := c.byType["Patient"][0]
	patID := pat["id"].(string)
	var encs []string
	var orgs []string
	for _, e := range c.byType["Encounter"] {
		if refID(e["subject"]) == patID {
			encs = append(encs, key(e))
			org := "Organization/" + refID(e["serviceProvider"])
			if !slices.Contains(orgs, org) {
				orgs = append(orgs, org)
			}
		}
	}
	var height obj
	for _, o := range c.byType["Observation"] {
		if refID(o["subject"]) == patID && o["encounter"] != nil {
			height = o
			break
		}
	}
	enc := "Encounter/" + refID(height["encounter"])
	encRes := c.byKey[enc]
	cases := []struct {
		name     string
		typ      string
		query    string
		matches  []string
		included []string
	}{
		{"revinclude", "Patient", "_id=" + patID + "&_revinclude=Encounter:patient", []string{key(pat)}, encs},
		{"include", "Observation", "_id=" + height["id"].(string) + "&_include=Observation:patient&_include=Observation:encounter", []string{key(height)}, []string{key(pat), enc}},
		{"include target type", "Observation", "_id=" + height["id"].(string) + "&_include=Observation:subject:Group", []string{key(height)}, nil},
		{"include iterate", "Observation", "_id=" + height["id"].(string) + "&_include=Observation:encounter&_include:iterate=Encounter:service-provider",
			[]string{key(height)}, []string{enc, "Organization/" + refID(encRes["serviceProvider"])}},
		{"include without iterate stops", "Observation", "_id=" + height["id"].(string) + "&_include=Observation:encounter", []string{key(height)}, []string{enc}},
		{"match not included", "Encounter", "subject=" + patID + "&_include=Encounter:subject&_revinclude=Encounter:part-of&_include=Encounter:service-provider", encs, append([]string{key(pat)}, orgs...)},
		{"include star", "Encounter", "_id=" + strings.TrimPrefix(enc, "Encounter/") + "&_include=*", []string{enc}, func() []string {
			out := []string{key(pat), "Organization/" + refID(encRes["serviceProvider"])}
			for _, p := range list(encRes["participant"]) {
				if id := refID(p.(obj)["individual"]); id != "" {
					out = append(out, "Practitioner/"+id)
				}
			}
			return out
		}()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := query(t, typesOf(tc.typ), nil, tc.query)
			if tc.name == "include without iterate stops" {
				// Parse refuses this; a store must still not follow it.
				q.Includes = append(q.Includes, search.Include{Source: "Encounter", Param: "service-provider"})
			}
			page, err := se.Search(ctx, syntheaTenant, q)
			must(t, err)
			if got := keysOf(page.Matches); !sameSet(got, tc.matches) {
				t.Fatalf("matches %v, want %v", got, tc.matches)
			}
			got := keysOf(page.Included)
			if !sameSet(got, tc.included) {
				t.Fatalf("included %v, want %v", got, tc.included)
			}
		})
	}
}

func testTotals(t *testing.T, se store.Searcher, c *corpus) {
	ctx := context.Background()
	n := int64(len(c.filter("Observation", func(r obj) bool { return hasCoding(r["code"], "", "8302-2") })))
	if n < 3 {
		t.Fatalf("corpus has %d heights", n)
	}
	for _, tc := range []struct {
		query string
		want  int64
		page  int
	}{
		{"code=8302-2&_count=2", -1, 2},                    // full first page: not counted
		{"code=8302-2&_count=100", n, int(n)},              // every match on the first page
		{"code=8302-2&_count=2&_total=accurate", n, 2},     // counted
		{"code=8302-2&_count=2&_total=estimate", n, 2},     // small enough to count
		{"code=8302-2&_count=100&_total=none", -1, int(n)}, // not asked
		{"code=8302-2&_summary=count", n, 0},               // count only
		{"code=8302-2&_count=2&_total=accurate&_sort=-date", n, 2},
	} {
		t.Run(tc.query, func(t *testing.T) {
			page, err := se.Search(ctx, syntheaTenant, query(t, []string{"Observation"}, nil, tc.query))
			must(t, err)
			if page.Total != tc.want || len(page.Matches) != tc.page {
				t.Fatalf("total %d with %d matches, want %d with %d", page.Total, len(page.Matches), tc.want, tc.page)
			}
		})
	}
}

// testPaging checks that a write between two pages neither repeats nor
// skips a resource that exists throughout.
func testPaging(t *testing.T, s store.Store, se store.Searcher) {
	ctx := context.Background()
	const tenant = "paging"
	obsAt := func(day int) []byte {
		return []byte(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8302-2"}]},"effectiveDateTime":"2020-01-` + strconv.Itoa(10+day/3) + `"}`)
	}
	var all []string
	for i := 0; i < 30; i++ {
		res, err := s.Create(ctx, store.Write{Tenant: tenant, Type: "Observation", Body: obsAt(i)})
		must(t, err)
		all = append(all, "Observation/"+res.ID)
	}
	var deleted []string // deleted or created during a run: not there throughout
	for _, sortBy := range []string{"", "&_sort=date", "&_sort=-date,_lastUpdated", "&_sort=-_lastUpdated"} {
		t.Run("sort"+sortBy, func(t *testing.T) {
			q := query(t, []string{"Observation"}, nil, "code=8302-2&_count=4"+sortBy)
			seen := map[string]int{}
			for pages := 0; ; pages++ {
				page, err := se.Search(ctx, tenant, q)
				must(t, err)
				for _, k := range keysOf(page.Matches) {
					seen[k]++
				}
				if pages == 1 {
					// Delete one already seen and one not yet seen; create one.
					for _, k := range all {
						if seen[k] > 0 && !slices.Contains(deleted, k) {
							deleted = append(deleted, k)
							break
						}
					}
					for _, k := range all {
						if seen[k] == 0 && !slices.Contains(deleted, k) {
							deleted = append(deleted, k)
							break
						}
					}
					for _, k := range deleted[len(deleted)-2:] { // the two just picked
						_, err := s.Delete(ctx, store.Delete{Tenant: tenant, Type: "Observation", ID: strings.TrimPrefix(k, "Observation/")})
						must(t, err)
					}
					res, err := s.Create(ctx, store.Write{Tenant: tenant, Type: "Observation", Body: obsAt(15)})
					must(t, err)
					all = append(all, "Observation/"+res.ID)
					deleted = append(deleted, "Observation/"+res.ID) // did not exist throughout
				}
				if page.Next == "" {
					break
				}
				next := *q
				next.Cursor = page.Next
				q = &next
			}
			for k, n := range seen {
				if n > 1 {
					t.Errorf("%s returned %d times", k, n)
				}
			}
			for _, k := range all {
				if seen[k] == 0 && !slices.Contains(deleted, k) {
					t.Errorf("%s, which existed throughout, was skipped", k)
				}
			}
		})
	}
}

// testIndexFollowsWrites checks that update replaces and delete removes
// index rows, and that tenants do not see each other.
func testIndexFollowsWrites(t *testing.T, s store.Store, se store.Searcher) {
	ctx := context.Background()
	const tenant = "writes"
	find := func(q string) []string {
		page, err := se.Search(ctx, tenant, query(t, []string{"Patient"}, nil, q))
		must(t, err)
		return keysOf(page.Matches)
	}
	res, err := s.Create(ctx, store.Write{Tenant: tenant, Type: "Patient", Body: []byte(`{"resourceType":"Patient","name":[{"family":"Before"}]}`)})
	must(t, err)
	if got := find("family=before"); !slices.Equal(got, []string{"Patient/" + res.ID}) {
		t.Fatalf("after create: %v", got)
	}
	_, _, err = s.Update(ctx, store.Write{Tenant: tenant, Type: "Patient", ID: res.ID, Body: []byte(`{"resourceType":"Patient","id":"` + res.ID + `","name":[{"family":"After"}]}`)})
	must(t, err)
	if got := find("family=before"); len(got) != 0 {
		t.Fatalf("old value still found after update: %v", got)
	}
	if got := find("family=after"); len(got) != 1 {
		t.Fatalf("new value not found after update: %v", got)
	}
	// Import replaces rows too.
	_, err = s.Import(ctx, tenant, []store.Write{{Type: "Patient", ID: res.ID, Body: []byte(`{"resourceType":"Patient","id":"` + res.ID + `","name":[{"family":"Imported"}]}`)}})
	must(t, err)
	if got := find("family=after"); len(got) != 0 {
		t.Fatalf("old value still found after import: %v", got)
	}
	if got := find("family=imported"); len(got) != 1 {
		t.Fatalf("imported value not found: %v", got)
	}
	_, err = s.Delete(ctx, store.Delete{Tenant: tenant, Type: "Patient", ID: res.ID})
	must(t, err)
	if got := find("family=imported"); len(got) != 0 {
		t.Fatalf("deleted resource found: %v", got)
	}
	if got := find("gender:missing=true"); len(got) != 0 {
		t.Fatalf("deleted resource found by :missing: %v", got)
	}
	// Reindexing rewrites the same rows.
	if rx, ok := s.(interface {
		Reindex(ctx context.Context, tenant string) (int, error)
	}); ok {
		for _, body := range []string{`{"resourceType":"Patient","name":[{"family":"Kept"}]}`, `{"resourceType":"Patient","name":[{"family":"Kept"}],"gender":"male"}`} {
			_, err := s.Create(ctx, store.Write{Tenant: tenant, Type: "Patient", Body: []byte(body)})
			must(t, err)
		}
		n, err := rx.Reindex(ctx, tenant)
		must(t, err)
		if n != 2 {
			t.Fatalf("reindexed %d resources, want the 2 current ones", n)
		}
		if got := find("family=kept&gender=male"); len(got) != 1 {
			t.Fatalf("after reindex: %v", got)
		}
		if got := find("family=kept"); len(got) != 2 {
			t.Fatalf("after reindex: %v", got)
		}
	}
	// The Synthea patients are in another tenant.
	if got := find("name=hintz"); len(got) != 0 {
		t.Fatalf("another tenant's resources found: %v", got)
	}
	// A value that cannot be indexed refuses the write.
	_, err = s.Create(ctx, store.Write{Tenant: tenant, Type: "Patient", Body: []byte(`{"resourceType":"Patient","birthDate":"1990-13-45"}`)})
	wantKind(t, err, fhir.KindInvalid)
}

func testSearchErrors(t *testing.T, se store.Searcher) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		q    *search.Query
		kind fhir.Kind
	}{
		{"bad cursor", &search.Query{Types: []string{"Patient"}, Cursor: "not-a-cursor"}, fhir.KindInvalid},
		{"not a type", &search.Query{Types: []string{"Nope"}}, fhir.KindInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := se.Search(ctx, edgeTenant, tc.q)
			wantKind(t, err, tc.kind)
		})
	}
}

// hasCategory reports whether an Observation has the observation-category
// code.
func hasCategory(r obj, code string) bool {
	for _, cc := range list(r["category"]) {
		if hasCoding(cc, "http://terminology.hl7.org/CodeSystem/observation-category", code) {
			return true
		}
	}
	return false
}
