package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// The second half of the access matrix: conditional create, update, patch
// and delete, transactions and batches, which restricted tokens are served
// with their decision applied per interaction (and per Bundle entry). Each
// case runs for each caller on fixtures of its own: Observations of patient
// A and of patient B, lab or not, stored with an unrestricted token and named
// after the case, so that what a case expects depends only on the caller:
// what it may see (its search and read access) and what it may write. After
// the request the fixtures are read back with an unrestricted token: a
// refused interaction, or one whose criteria would have matched hidden
// resources, has changed nothing.

const (
	identSystem = "http://access.test"
	adminToken  = "system v1 *.*" // the unrestricted writer of the callers
)

// sees reports whether c may see an Observation of patient p (lab or not);
// a is patient A.
func (c accessCaller) sees(a, p string, lab bool) bool {
	return (!c.confined || p == a) && (!c.lab || lab)
}

// mayWrite reports whether c may write Observations at all.
func (c accessCaller) mayWrite() bool { return c.writes || c.cw }

// writesTo reports whether c may write an Observation of patient p.
func (c accessCaller) writesTo(a, p string, lab bool) bool {
	return c.mayWrite() && (!c.cw || p == a) && (!c.wLab || lab)
}

// obsFixture is an Observation of patient with an identifier, lab or
// vital-signs; extra JSON members go at the end (may be "").
func obsFixture(id, patient string, lab bool, ident, status, extra string) string {
	cat := "vital-signs"
	if lab {
		cat = "laboratory"
	}
	idm := ""
	if id != "" {
		idm = `"id":"` + id + `",`
	}
	if extra != "" {
		extra = "," + extra
	}
	subject := patient
	if !strings.Contains(patient, "?") {
		subject = "Patient/" + patient
	}
	return `{"resourceType":"Observation",` + idm + `"identifier":[{"system":"` + identSystem + `","value":"` + ident + `"}],"status":"` + status +
		`","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"` + cat + `"}]}],"code":{"text":"x"},"subject":{"reference":"` + subject + `"}` + extra + `}`
}

// writeCase is one (case, caller) run of the write matrix.
type writeCase struct {
	t      *testing.T
	s      http.Handler
	c      accessCaller
	k      string // the case's prefix of ids and identifiers
	a, b   string // patients A and B
	hidden []string
	leaks  func(string) []string
}

// id names a fixture of the case; ident is an identifier value of the case.
func (x *writeCase) id(n string) string    { return x.k + "-" + n }
func (x *writeCase) ident(n string) string { return x.k + "-" + n }

// criteria is the search for the case's identifier n.
func (x *writeCase) criteria(n string) string {
	return "identifier=" + url.QueryEscape(identSystem+"|"+x.ident(n))
}

// fix stores an Observation fixture n of patient p with identifier ident,
// as an unrestricted caller; one the caller may not see must never show in
// its responses.
func (x *writeCase) fix(n, p string, lab bool, ident string) string {
	x.t.Helper()
	id := x.id(n)
	res := x.sys("PUT", "/fhir/Observation/"+id, obsFixture(id, p, lab, x.ident(ident), "final", ""))
	if res.Code != http.StatusCreated {
		x.t.Fatalf("fixture %s: %d %s", id, res.Code, res.Body)
	}
	if !x.c.sees(x.a, p, lab) {
		x.hidden = append(x.hidden, id)
	}
	return id
}

// sys sends a request with the unrestricted writer's token.
func (x *writeCase) sys(method, path, body string, header ...string) *httptest.ResponseRecorder {
	x.t.Helper()
	h := []string{"Authorization", "Bearer " + tokenOf(adminToken), "Content-Type", "application/fhir+json"}
	return do(x.t, x.s, method, path, body, append(h, header...)...)
}

// as sends a request with the caller's token and checks that the response
// names nothing the caller may not see: no hidden fixture and, for a
// caller confined to A, nothing of B. Only echoes of the request itself
// (links, "Bundle.entry[i] (GET url): ", "X is not known") are left out.
func (x *writeCase) as(method, path, body string, header ...string) (int, string) {
	x.t.Helper()
	code, out := x.send(method, path, body, header...)
	seen := stripEcho(out)
	for _, id := range x.hidden {
		if strings.Contains(seen, id) {
			x.t.Fatalf("%s %s names hidden %s: %.600s", method, path, id, out)
		}
	}
	if x.c.confined {
		if l := x.leaks(seen); len(l) > 0 {
			x.t.Fatalf("%s %s leaks %d resources of B, such as %v: %.600s", method, path, len(l), l[0], out)
		}
	}
	return code, out
}

// send sends a request with the caller's token, unchecked: for a case that
// checks its answer against the answer about a missing resource.
func (x *writeCase) send(method, path, body string, header ...string) (int, string) {
	x.t.Helper()
	h := []string{"Authorization", "Bearer " + tokenOf(x.c.name), "Content-Type", "application/fhir+json"}
	res := do(x.t, x.s, method, path, body, append(h, header...)...)
	return res.Code, res.Body.String()
}

// want fails unless code is want.
func (x *writeCase) want(code, want int, body string) {
	x.t.Helper()
	if code != want {
		x.t.Fatalf("status %d, want %d: %.600s", code, want, body)
	}
}

// version is the current version of fixture id as an unrestricted caller
// reads it; 0 when it is deleted.
func (x *writeCase) version(id string) int {
	x.t.Helper()
	res := x.sys("GET", "/fhir/Observation/"+id, "")
	if res.Code == http.StatusGone {
		return 0
	}
	var m struct {
		Meta struct{ VersionID string } `json:"meta"`
	}
	if res.Code != http.StatusOK || json.Unmarshal(res.Body.Bytes(), &m) != nil {
		x.t.Fatalf("reading %s: %d %s", id, res.Code, res.Body)
	}
	var v int
	fmt.Sscan(m.Meta.VersionID, &v)
	return v
}

// unchanged fails unless the fixtures are still at version 1.
func (x *writeCase) unchanged(ids ...string) {
	x.t.Helper()
	for _, id := range ids {
		if v := x.version(id); v != 1 {
			x.t.Fatalf("%s is at version %d (0: deleted) although the caller may not touch it", id, v)
		}
	}
}

// stored returns the current body of fixture id (unrestricted read).
func (x *writeCase) stored(id string) string {
	x.t.Helper()
	return x.sys("GET", "/fhir/Observation/"+id, "").Body.String()
}

// count is how many current resources of typ carry the case's identifier n.
func (x *writeCase) count(typ, n string) int {
	x.t.Helper()
	res := x.sys("GET", "/fhir/"+typ+"?_summary=count&"+x.criteria(n), "")
	var b struct{ Total int }
	if res.Code != http.StatusOK || json.Unmarshal(res.Body.Bytes(), &b) != nil {
		x.t.Fatalf("counting %s: %d %s", n, res.Code, res.Body)
	}
	return b.Total
}

// bodyID is the id of a resource body.
func bodyID(t *testing.T, body string) string {
	t.Helper()
	var m struct{ ID string }
	if err := json.Unmarshal([]byte(body), &m); err != nil || m.ID == "" {
		t.Fatalf("no resource in %.300s", body)
	}
	return m.ID
}

// responseOf decodes a batch- or transaction-response with n entries.
func responseOf(t *testing.T, body, typ string, n int) responseBundle {
	t.Helper()
	b := decodeResponse(t, body, typ)
	if len(b.Entry) != n {
		t.Fatalf("%d entries, want %d: %.600s", len(b.Entry), n, body)
	}
	return b
}

// codes is the text of entry statuses, as responseBundle.statuses gives it.
func codes(cs ...int) string {
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = fmt.Sprint(c)
	}
	return strings.Join(s, " ")
}

// echo is the part of an entry's message that repeats its request.
var echo = regexp.MustCompile(`^Bundle\.entry\[\d+\] \((GET|HEAD|POST|PUT|PATCH|DELETE) [^)]*\): `)

// stripEcho drops what a response repeats of its request: the links of
// every Bundle in it (they carry the query), the "Bundle.entry[i] (METHOD
// url): " start of entry messages, and "X is not known" messages (checked
// to be the same as for a missing resource). Everything the server found
// stays.
func stripEcho(body string) string {
	var v any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		return body
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			switch v["resourceType"] {
			case "Bundle":
				delete(v, "link")
			case "OperationOutcome":
				issues, _ := v["issue"].([]any)
				for _, is := range issues {
					m, _ := is.(map[string]any)
					d, _ := m["diagnostics"].(string)
					d = echo.ReplaceAllString(d, "")
					if strings.HasSuffix(d, " is not known") {
						delete(m, "diagnostics")
					} else if d != "" {
						m["diagnostics"] = d
					}
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
	out, _ := json.Marshal(v)
	return string(out)
}

// notKnownOutcome fails unless body is the 404 of a missing key.
func notKnownOutcome(t *testing.T, code int, body, key string) {
	t.Helper()
	var oo outcome
	_ = json.Unmarshal([]byte(body), &oo)
	if code != http.StatusNotFound || len(oo.Issue) != 1 || oo.Issue[0].Code != "not-found" || !strings.HasSuffix(oo.Issue[0].Diagnostics, key+" is not known") {
		t.Fatalf("status %d, want the 404 of a missing %s: %.600s", code, key, body)
	}
}

const jsonPatch = "application/json-patch+json"

// writeSpec is a write case as data: the fixtures it stores, the request
// it sends as the caller, and what it expects of three kinds of caller:
// one that may not write Observations at all (noWrite), one for which when
// holds (then), and any other (otherwise).
type writeSpec struct {
	fixtures  []fixture
	request   func(x *writeCase) writeRequest
	when      func(x *writeCase) bool // nil: only noWrite and otherwise
	noWrite   writeWant
	then      writeWant
	otherwise writeWant
	unchanged []string     // fixtures every caller leaves at version 1
	counts    []writeCount // what every caller leaves
}

// fixture is an Observation fixture of a writeSpec, stored with fix.
type fixture struct {
	n     string // the fixture's name in the case
	p     string // its patient: "A" or "B"
	lab   bool
	ident string // the case's identifier it carries
}

// writeRequest is the request of a writeSpec.
type writeRequest struct {
	method, path, body string
	header             []string
}

// writeWant is what a writeSpec expects of one kind of caller. The answer
// is one of status, scopes or notKnown; the rest are checked after it.
type writeWant struct {
	status    int          // the response status
	scopes    bool         // a 403 that blames the token's scopes (forbiddenOutcome)
	notKnown  string       // the 404 of a missing Observation: this fixture's (notKnownOutcome)
	match     string       // the fixture the response body is
	fresh     bool         // the response body is a new resource, not a fixture
	unchanged []string     // fixtures at version 1
	updated   []string     // fixtures at version 2
	deleted   []string     // fixtures deleted
	counts    []writeCount // resources with a case identifier
	check     func(x *writeCase, body string)
}

// writeCount is how many current resources of typ carry the case's
// identifier ident.
type writeCount struct {
	typ, ident string
	n          int
}

// seesB and writesToB are the usual when of a writeSpec: the caller may
// see, or write, B's lab Observations.
func seesB(x *writeCase) bool     { return x.c.sees(x.a, x.b, true) }
func writesToB(x *writeCase) bool { return x.c.writesTo(x.a, x.b, true) }

// run runs the spec as one case of the matrix.
func (w writeSpec) run(x *writeCase) {
	x.t.Helper()
	for _, f := range w.fixtures {
		p := x.a
		if f.p == "B" {
			p = x.b
		}
		x.fix(f.n, p, f.lab, f.ident)
	}
	r := w.request(x)
	code, body := x.as(r.method, r.path, r.body, r.header...)
	want := w.otherwise
	switch {
	case !x.c.mayWrite():
		want = w.noWrite
	case w.when != nil && w.when(x):
		want = w.then
	}
	switch {
	case want.scopes:
		forbiddenOutcome(x.t, code, body)
	case want.notKnown != "":
		notKnownOutcome(x.t, code, body, "Observation/"+x.id(want.notKnown))
	default:
		x.want(code, want.status, body)
	}
	if want.match != "" {
		if got := bodyID(x.t, body); got != x.id(want.match) {
			x.t.Fatalf("the answer is %s, want %s", got, x.id(want.match))
		}
	}
	if want.fresh {
		got := bodyID(x.t, body)
		for _, f := range w.fixtures {
			if got == x.id(f.n) {
				x.t.Fatalf("the answer is fixture %s, want a new resource", got)
			}
		}
	}
	x.versions(1, want.unchanged...)
	x.versions(2, want.updated...)
	x.versions(0, want.deleted...)
	x.counts(want.counts...)
	if want.check != nil {
		want.check(x, body)
	}
	x.versions(1, w.unchanged...)
	x.counts(w.counts...)
}

// versions fails unless the fixtures named ns are at version v (0:
// deleted).
func (x *writeCase) versions(v int, ns ...string) {
	x.t.Helper()
	for _, n := range ns {
		if got := x.version(x.id(n)); got != v {
			x.t.Fatalf("%s is at version %d (0: deleted), want %d", x.id(n), got, v)
		}
	}
}

// counts fails unless each count holds.
func (x *writeCase) counts(cs ...writeCount) {
	x.t.Helper()
	for _, c := range cs {
		if got := x.count(c.typ, c.ident); got != c.n {
			x.t.Fatalf("%d %s resources with identifier %s, want %d", got, c.typ, x.ident(c.ident), c.n)
		}
	}
}

// The requests of the writeSpecs. The conditional ones search the case's
// identifier "x" unless named otherwise; a transaction starts with the
// create of an Observation of A with the case's identifier "t".

// createIfNoneExist creates an Observation of A with identifier "x" if
// none exists.
func createIfNoneExist(x *writeCase) writeRequest {
	return writeRequest{method: "POST", path: "/fhir/Observation",
		body:   obsFixture("", x.a, true, x.ident("x"), "final", ""),
		header: []string{"If-None-Exist", x.criteria("x")}}
}

// updateX updates what matches identifier match with an amended
// Observation of patient p ("A" or "B") carrying the id of fixture id (none
// when "").
func updateX(match, id, p string) func(x *writeCase) writeRequest {
	return func(x *writeCase) writeRequest {
		patient, rid := x.a, ""
		if p == "B" {
			patient = x.b
		}
		if id != "" {
			rid = x.id(id)
		}
		return writeRequest{method: "PUT", path: "/fhir/Observation?" + x.criteria(match),
			body: obsFixture(rid, patient, true, x.ident("x"), "amended", "")}
	}
}

// patchX patches what matches with the JSON Patch patch(x).
func patchX(patch func(x *writeCase) string) func(x *writeCase) writeRequest {
	return func(x *writeCase) writeRequest {
		return writeRequest{method: "PATCH", path: "/fhir/Observation?" + x.criteria("x"), body: patch(x),
			header: []string{"Content-Type", jsonPatch}}
	}
}

// amend and toB are JSON Patches: the status to amended, the subject to B.
func amend(*writeCase) string { return `[{"op":"replace","path":"/status","value":"amended"}]` }
func toB(x *writeCase) string {
	return `[{"op":"replace","path":"/subject/reference","value":"Patient/` + x.b + `"}]`
}

// deleteX deletes what matches.
func deleteX(x *writeCase) writeRequest {
	return writeRequest{method: "DELETE", path: "/fhir/Observation?" + x.criteria("x")}
}

// transactionT is a transaction of the create and the entry entry(x).
func transactionT(entry func(x *writeCase) string) func(x *writeCase) writeRequest {
	return func(x *writeCase) writeRequest {
		return writeRequest{method: "POST", path: "/fhir", body: txBundle(
			entryOf("", "POST", "Observation", obsFixture("", x.a, true, x.ident("t"), "final", ""), ""),
			entry(x))}
	}
}

// hasMember is a transaction of the create alone, its Observation a
// member of the Observations with identifier ident (a conditional
// reference).
func hasMember(ident string) func(x *writeCase) writeRequest {
	return func(x *writeCase) writeRequest {
		return writeRequest{method: "POST", path: "/fhir", body: txBundle(
			entryOf("", "POST", "Observation", obsFixture("", x.a, true, x.ident("t"), "final",
				`"hasMember":[{"reference":"Observation?`+x.criteria(ident)+`"}]`), ""))}
	}
}

// created is the count of the Observations a transaction created (those
// with identifier "t").
func created(n int) []writeCount { return []writeCount{{"Observation", "t", n}} }

// writeCases are the cases of the write matrix: a writeSpec where one
// request and its answer per kind of caller say it all, code where the case
// checks more (Bundles of searches, per-entry statuses, two answers
// compared).
var writeCases = []struct {
	name string
	run  func(x *writeCase)
}{
	// Batch GET entries run under the caller's filter as the plain
	// searches do. (First: on PostgreSQL, the tables the later cases
	// grow are not analyzed again during the test, and these searches get
	// slow plans.)
	{"batch: searches with _include, _revinclude and _total", func(x *writeCase) {
		x.fix("a1", x.a, true, "s")
		x.fix("b1", x.b, true, "s")
		x.fix("a2", x.a, false, "s")
		c := x.c
		code, body := x.as("POST", "/fhir", batchBundle(
			entryOf("", "GET", "Observation?"+x.criteria("s")+"&_total=accurate", "", ""),
			entryOf("", "GET", "Observation?"+x.criteria("s")+"&_include=Observation:subject", "", ""),
			entryOf("", "GET", "Patient?_id="+x.a+","+x.b+"&_revinclude=Observation:subject&_total=accurate&_count=500", "", ""),
			entryOf("", "GET", "Observation?"+x.criteria("s")+"&_summary=count", "", ""),
			entryOf("", "GET", "Patient/"+x.b+"/Observation?"+x.criteria("s")+"&_total=accurate", "", ""),
			entryOf("", "GET", "Observation?subject:Patient._id="+x.b+"&_total=accurate", "", ""),
			entryOf("", "GET", "Patient?_has:Observation:subject:"+x.criteria("s")+"&_total=accurate", "", "")))
		x.want(code, http.StatusOK, body)
		res := responseOf(x.t, body, "batch-response", 7)
		set := func(i int) *searchset {
			x.t.Helper()
			if res.Entry[i].Response.Status != "200 OK" {
				x.t.Fatalf("entry %d: %s %s", i, res.Entry[i].Response.Status, res.Entry[i].Response.Outcome)
			}
			return decodeSearchset(x.t, string(res.Entry[i].Resource))
		}
		var visible []string
		for _, f := range []struct {
			n, p string
			lab  bool
		}{{"a1", x.a, true}, {"b1", x.b, true}, {"a2", x.a, false}} {
			if c.sees(x.a, f.p, f.lab) {
				visible = append(visible, "Observation/"+x.id(f.n))
			}
		}
		slices.Sort(visible)
		if got := set(0); !slices.Equal(got.keys("match"), visible) || got.Total == nil || *got.Total != len(visible) {
			x.t.Fatalf("search: %v, want %v", got.keys("match"), visible)
		}
		var subjects []string
		if !c.obsOnly {
			subjects = append(subjects, "Patient/"+x.a)
			if !c.confined {
				subjects = append(subjects, "Patient/"+x.b)
				slices.Sort(subjects)
			}
		}
		if got := set(1).keys("include"); !slices.Equal(got, subjects) {
			x.t.Fatalf("included %v, want %v", got, subjects)
		}
		if c.obsOnly {
			if res.Entry[2].Response.Status != "403 Forbidden" || res.Entry[6].Response.Status != "403 Forbidden" {
				x.t.Fatalf("Patient searches of an Observation-only token: %s, %s", res.Entry[2].Response.Status, res.Entry[6].Response.Status)
			}
		} else {
			got := set(2)
			if want := map[bool]int{true: 1, false: 2}[c.confined]; len(got.keys("match")) != want || *got.Total != want {
				x.t.Fatalf("_revinclude search matched %v", got.keys("match"))
			}
			if want := map[bool]int{true: 1, false: 2}[c.confined]; *set(6).Total != want {
				x.t.Fatalf("_has total %d, want %d", *set(6).Total, want)
			}
		}
		if got := set(3); got.Total == nil || *got.Total != len(visible) {
			x.t.Fatalf("_summary=count: %v, want %d", got.Total, len(visible))
		}
		if got := set(4); c.confined && (*got.Total != 0 || len(got.keys("match")) != 0) {
			x.t.Fatalf("B's compartment: %v", got.keys("match"))
		}
		if got := set(5); c.confined && *got.Total != 0 {
			x.t.Fatalf("chain to B: total %d", *got.Total)
		}
	}},
	// Batch history entries: the versions of what the caller may see.
	{"batch: history entries", func(x *writeCase) {
		since := time.Now().UTC().Format(time.RFC3339Nano)
		fixtures := []struct {
			n, p string
			lab  bool
		}{{"a1", x.a, true}, {"a2", x.a, false}, {"b1", x.b, true}}
		var visible []string
		for _, f := range fixtures {
			id := x.fix(f.n, f.p, f.lab, "h")
			if x.c.sees(x.a, f.p, f.lab) {
				visible = append(visible, "Observation/"+id)
			}
		}
		slices.Sort(visible)
		q := "?_since=" + url.QueryEscape(since)
		code, body := x.as("POST", "/fhir", batchBundle(
			entryOf("", "GET", "_history"+q, "", ""),
			entryOf("", "GET", "Observation/_history"+q, "", ""),
			entryOf("", "GET", "Observation/"+x.id("b1")+"/_history", "", ""),
			entryOf("", "GET", "Patient/"+x.b+"/_history", "", "")))
		x.want(code, http.StatusOK, body)
		c := x.c
		res := responseOf(x.t, body, "batch-response", 4)
		obsB, patientB := 404, 200
		if c.sees(x.a, x.b, true) {
			obsB = 200
		}
		switch {
		case c.obsOnly:
			patientB = 403
		case c.confined:
			patientB = 404
		}
		if got, want := res.statuses(), codes(200, 200, obsB, patientB); got != want {
			x.t.Fatalf("statuses %s, want %s: %.800s", got, want, body)
		}
		for i := range 2 {
			if got := historyKeys(x.t, string(res.Entry[i].Resource)); !slices.Equal(got, visible) {
				x.t.Fatalf("entry %d: history of %v, want %v", i, got, visible)
			}
		}
	}},
	// Conditional create: the criteria match among what the caller may
	// search; a hidden match is not there for it.
	{"conditional create, only B's matches", writeSpec{
		fixtures:  []fixture{{"b1", "B", true, "x"}},
		request:   createIfNoneExist,
		when:      seesB,
		noWrite:   writeWant{status: http.StatusForbidden},
		then:      writeWant{status: http.StatusOK, match: "b1"},
		otherwise: writeWant{status: http.StatusCreated, counts: []writeCount{{"Observation", "x", 2}}}, // as if B's did not exist
		unchanged: []string{"b1"},
	}.run},
	{"conditional create, A's and B's match", writeSpec{
		fixtures:  []fixture{{"a1", "A", true, "x"}, {"b1", "B", true, "x"}},
		request:   createIfNoneExist,
		when:      seesB,
		noWrite:   writeWant{status: http.StatusForbidden},
		then:      writeWant{status: http.StatusPreconditionFailed},
		otherwise: writeWant{status: http.StatusOK, match: "a1"}, // one match: B's is not counted
		unchanged: []string{"a1", "b1"},
		counts:    []writeCount{{"Observation", "x", 2}},
	}.run},
	// Conditional update: matches only what the caller may see; the
	// target is checked before and after like a plain update.
	{"conditional update, only B's matches", writeSpec{
		fixtures:  []fixture{{"b1", "B", true, "x"}},
		request:   updateX("x", "", "A"),
		when:      seesB,
		noWrite:   writeWant{status: http.StatusForbidden, unchanged: []string{"b1"}},
		then:      writeWant{status: http.StatusOK, match: "b1", updated: []string{"b1"}},
		otherwise: writeWant{status: http.StatusCreated, fresh: true, unchanged: []string{"b1"}}, // no match: creates
	}.run},
	{"conditional update, A's and B's match", writeSpec{
		fixtures:  []fixture{{"a1", "A", true, "x"}, {"b1", "B", true, "x"}},
		request:   updateX("x", "", "A"),
		when:      seesB,
		noWrite:   writeWant{status: http.StatusForbidden, unchanged: []string{"a1"}},
		then:      writeWant{status: http.StatusPreconditionFailed, unchanged: []string{"a1"}},
		otherwise: writeWant{status: http.StatusOK, match: "a1", updated: []string{"a1"}},
		unchanged: []string{"b1"},
	}.run},
	{"conditional update moving A's to B", writeSpec{
		fixtures:  []fixture{{"a1", "A", true, "x"}},
		request:   updateX("x", "", "B"),
		when:      writesToB,
		noWrite:   writeWant{status: http.StatusForbidden, unchanged: []string{"a1"}},
		then:      writeWant{status: http.StatusOK},
		otherwise: writeWant{scopes: true, unchanged: []string{"a1"}},
	}.run},
	{"conditional update naming B's id, no match", writeSpec{
		fixtures:  []fixture{{"b1", "B", true, "y"}},
		request:   updateX("none", "b1", "A"),
		when:      seesB,
		noWrite:   writeWant{status: http.StatusForbidden, unchanged: []string{"b1"}},
		then:      writeWant{status: http.StatusOK},                     // update-as-create finds it
		otherwise: writeWant{notKnown: "b1", unchanged: []string{"b1"}}, // as for a plain update
	}.run},
	// Conditional patch.
	{"conditional patch, only B's matches", writeSpec{
		fixtures:  []fixture{{"b1", "B", true, "x"}},
		request:   patchX(amend),
		when:      seesB,
		noWrite:   writeWant{status: http.StatusForbidden, unchanged: []string{"b1"}},
		then:      writeWant{status: http.StatusOK},
		otherwise: writeWant{status: http.StatusNotFound, unchanged: []string{"b1"}}, // no match, as for no resource
	}.run},
	{"conditional patch moving A's to B", writeSpec{
		fixtures:  []fixture{{"a1", "A", true, "x"}},
		request:   patchX(toB),
		when:      writesToB,
		noWrite:   writeWant{status: http.StatusForbidden, unchanged: []string{"a1"}},
		then:      writeWant{status: http.StatusOK},
		otherwise: writeWant{scopes: true, unchanged: []string{"a1"}},
	}.run},
	{"conditional patch of A's", writeSpec{
		fixtures:  []fixture{{"a1", "A", true, "x"}},
		request:   patchX(amend),
		noWrite:   writeWant{status: http.StatusForbidden, unchanged: []string{"a1"}},
		otherwise: writeWant{status: http.StatusOK, updated: []string{"a1"}},
	}.run},
	// Conditional delete.
	{"conditional delete, only B's matches", writeSpec{
		fixtures:  []fixture{{"b1", "B", true, "x"}},
		request:   deleteX,
		when:      seesB,
		noWrite:   writeWant{status: http.StatusForbidden, unchanged: []string{"b1"}},
		then:      writeWant{status: http.StatusNoContent, deleted: []string{"b1"}},
		otherwise: writeWant{status: http.StatusNoContent, unchanged: []string{"b1"}}, // nothing matched, nothing deleted
	}.run},
	{"conditional delete, A's and B's match", writeSpec{
		fixtures:  []fixture{{"a1", "A", true, "x"}, {"b1", "B", true, "x"}},
		request:   deleteX,
		when:      seesB,
		noWrite:   writeWant{status: http.StatusForbidden, unchanged: []string{"a1"}},
		then:      writeWant{status: http.StatusPreconditionFailed, unchanged: []string{"a1"}}, // one per conditional delete
		otherwise: writeWant{status: http.StatusNoContent, deleted: []string{"a1"}},            // A's only
		unchanged: []string{"b1"},
	}.run},
	{"conditional delete of A's non-lab", writeSpec{
		fixtures:  []fixture{{"a1", "A", false, "x"}},
		request:   deleteX,
		when:      func(x *writeCase) bool { return x.c.sees(x.a, x.a, false) },
		noWrite:   writeWant{status: http.StatusForbidden, unchanged: []string{"a1"}},
		then:      writeWant{status: http.StatusNoContent, deleted: []string{"a1"}},
		otherwise: writeWant{status: http.StatusNoContent, unchanged: []string{"a1"}}, // a lab-only token does not see it
	}.run},
	// Transactions: each entry decided on its own; one denied entry fails
	// the whole, and nothing is committed.
	{"transaction: a create and an update of B's", writeSpec{
		fixtures: []fixture{{"b1", "B", true, "y"}},
		request: transactionT(func(x *writeCase) string {
			return entryOf("", "PUT", "Observation/"+x.id("b1"), obsFixture(x.id("b1"), x.b, true, x.ident("y"), "amended", ""), "")
		}),
		when:      writesToB,
		noWrite:   writeWant{scopes: true, unchanged: []string{"b1"}, counts: created(0)},
		then:      writeWant{status: http.StatusOK, updated: []string{"b1"}, counts: created(1)},
		otherwise: writeWant{notKnown: "b1", unchanged: []string{"b1"}, counts: created(0)},
	}.run},
	{"transaction: a create and a type the token may not write", writeSpec{
		request: transactionT(func(x *writeCase) string {
			return entryOf("", "POST", "Patient", `{"resourceType":"Patient","identifier":[{"system":"`+identSystem+`","value":"`+x.ident("t")+`"}]}`, "")
		}),
		when:      func(x *writeCase) bool { return x.c.writes && !x.c.obsOnly },
		noWrite:   writeWant{scopes: true, counts: []writeCount{{"Observation", "t", 0}, {"Patient", "t", 0}}},
		then:      writeWant{status: http.StatusOK, counts: []writeCount{{"Observation", "t", 1}, {"Patient", "t", 1}}},
		otherwise: writeWant{scopes: true, counts: []writeCount{{"Observation", "t", 0}, {"Patient", "t", 0}}},
	}.run},
	{"transaction: a create and a read of B's", writeSpec{
		fixtures: []fixture{{"b1", "B", true, "y"}},
		request: transactionT(func(x *writeCase) string {
			return entryOf("", "GET", "Observation/"+x.id("b1"), "", "")
		}),
		when:    seesB,
		noWrite: writeWant{scopes: true, counts: created(0)},
		then: writeWant{status: http.StatusOK, check: func(x *writeCase, body string) {
			if st := responseOf(x.t, body, "transaction-response", 2).statuses(); st != "201 200" {
				x.t.Fatalf("statuses %v", st)
			}
		}},
		otherwise: writeWant{notKnown: "b1", counts: created(0)},
	}.run},
	{"transaction: a conditional reference matching A's and B's", writeSpec{
		fixtures: []fixture{{"a1", "A", true, "s"}, {"b1", "B", true, "s"}},
		request:  hasMember("s"),
		when:     seesB,
		noWrite:  writeWant{scopes: true},
		then:     writeWant{status: http.StatusPreconditionFailed}, // two matches
		otherwise: writeWant{status: http.StatusOK, check: func(x *writeCase, body string) { // resolved among what it may search
			id := idOf(x.t, responseOf(x.t, body, "transaction-response", 1).Entry[0].Response.Location, "Observation")
			if got := x.stored(id); !strings.Contains(got, "Observation/"+x.id("a1")) {
				x.t.Fatalf("hasMember not resolved to %s: %s", x.id("a1"), got)
			}
		}},
	}.run},
	{"transaction: a conditional reference matching only B's", writeSpec{
		fixtures: []fixture{{"b1", "B", true, "y"}},
		request:  hasMember("y"),
		when:     seesB,
		noWrite:  writeWant{scopes: true, unchanged: []string{"b1"}, counts: created(0)},
		then: writeWant{status: http.StatusOK, counts: created(1), check: func(x *writeCase, body string) {
			if !strings.Contains(body, "201") {
				x.t.Fatalf("not created: %s", body)
			}
		}},
		otherwise: writeWant{status: http.StatusBadRequest, unchanged: []string{"b1"}, counts: created(0)}, // matches no resource
	}.run},
	{"transaction: a conditional reference to the patient", writeSpec{
		request: func(x *writeCase) writeRequest {
			return writeRequest{method: "POST", path: "/fhir", body: txBundle(
				entryOf("", "POST", "Observation", obsFixture("", "Patient?_id="+x.a, true, x.ident("t"), "final", ""), ""))}
		},
		when:      func(x *writeCase) bool { return x.c.obsOnly },
		noWrite:   writeWant{scopes: true, counts: created(0)},
		then:      writeWant{scopes: true, counts: created(0)}, // may not search Patient
		otherwise: writeWant{status: http.StatusOK, counts: created(1)},
	}.run},
	{"transaction: a reference to B's is one to a missing resource", func(x *writeCase) {
		bID := x.fix("b1", x.b, true, "y")
		refer := func(to string) (int, string) {
			// Unchecked: the answer names the id the request gave; it
			// must be the answer about a missing one.
			return x.send("POST", "/fhir", txBundle(entryOf("", "POST", "Observation",
				obsFixture("", x.a, true, x.ident("t"), "final", `"hasMember":[{"reference":"Observation/`+to+`"}]`), "")))
		}
		code, body := refer(bID)
		switch c := x.c; {
		case !c.mayWrite():
			forbiddenOutcome(x.t, code, body)
		case c.sees(x.a, x.b, true):
			x.want(code, http.StatusOK, body)
		default:
			// The same answer as for an id that does not exist.
			missing := x.id("missing")
			mcode, mbody := refer(missing)
			if code != http.StatusBadRequest || mcode != code || strings.ReplaceAll(mbody, missing, bID) != body {
				x.t.Fatalf("a reference to B's answers %d %s; to a missing one %d %s", code, body, mcode, mbody)
			}
		}
	}},
	// Batches: each entry on its own, with its own status.
	{"batch: per-entry statuses", func(x *writeCase) {
		aID, bID := x.fix("a1", x.a, true, "s"), x.fix("b1", x.b, true, "s")
		b2, b3 := x.fix("b2", x.b, true, "y"), x.fix("b3", x.b, true, "y")
		code, body := x.as("POST", "/fhir", batchBundle(
			entryOf("", "GET", "Observation/"+aID, "", ""),
			entryOf("", "GET", "Observation/"+bID, "", ""),
			entryOf("", "POST", "Observation", obsFixture("", x.a, true, x.ident("t"), "final", ""), ""),
			entryOf("", "PUT", "Observation/"+b2, obsFixture(b2, x.b, true, x.ident("y"), "amended", ""), ""),
			entryOf("", "DELETE", "Observation/"+b3, "", ""),
			entryOf("", "GET", "Patient/"+x.a, "", ""),
			entryOf("", "GET", "Patient/"+x.b, "", ""),
			entryOf("", "GET", "Observation/"+bID+"/_history/1", "", "")))
		x.want(code, http.StatusOK, body)
		c := x.c
		pick := func(ok bool, yes, no int) int {
			if ok {
				return yes
			}
			return no
		}
		write := func(p string, ok int) int {
			switch {
			case !c.mayWrite():
				return 403
			case c.writesTo(x.a, p, true):
				return ok
			}
			return 404
		}
		patient := func(p string) int {
			switch {
			case c.obsOnly:
				return 403
			case c.confined && p != x.a:
				return 404
			}
			return 200
		}
		want := []int{200, pick(c.sees(x.a, x.b, true), 200, 404),
			pick(c.writesTo(x.a, x.a, true), 201, 403), write(x.b, 200), write(x.b, 204),
			patient(x.a), patient(x.b), pick(c.sees(x.a, x.b, true), 200, 404)}
		if got := responseOf(x.t, body, "batch-response", len(want)).statuses(); got != codes(want...) {
			x.t.Fatalf("statuses %v, want %v: %.800s", got, want, body)
		}
		if !c.writesTo(x.a, x.b, true) {
			x.unchanged(b2, b3)
		}
	}},
}

// runWriteMatrix runs every write case for every caller and returns how
// many ran.
func runWriteMatrix(t *testing.T, s http.Handler, callers []accessCaller, a, b string, leaks func(string) []string) int {
	n := 0
	for i, wc := range writeCases {
		for j, c := range callers {
			n++
			t.Run(c.name+"/"+wc.name, func(t *testing.T) {
				wc.run(&writeCase{t: t, s: s, c: c, k: fmt.Sprintf("w%d-%d", i, j), a: a, b: b, leaks: leaks})
			})
		}
	}
	return n
}

// forbiddenOutcome fails unless body is a 403 that blames the token's
// scopes.
func forbiddenOutcome(t *testing.T, code int, body string) {
	t.Helper()
	var oo outcome
	_ = json.Unmarshal([]byte(body), &oo)
	if code != http.StatusForbidden || len(oo.Issue) != 1 || oo.Issue[0].Code != "forbidden" || !strings.Contains(oo.Issue[0].Diagnostics, "scopes") {
		t.Fatalf("status %d, want 403 for the token's scopes: %.600s", code, body)
	}
}
