package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/fhirserver/fhirserver/server/servertest"
)

// seed stores Patient/p1 in two versions, deletes it, and stores
// Observation/o1: four versions in all.
func seed() []servertest.Scenario {
	return []servertest.Scenario{
		put("/fhir/Patient/p1", patientP1),
		put("/fhir/Patient/p1", patientP1v2),
		{Name: "delete p1", Method: http.MethodDelete, Path: "/fhir/Patient/p1", ExpectStatus: 204},
		put("/fhir/Observation/o1", `{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"}}`),
	}
}

func TestHistoryInstance(t *testing.T) {
	h := newServer(t)
	for _, sc := range seed() {
		sc.Do(t, h)
	}
	res := servertest.Scenario{
		Name: "instance history", Path: "/fhir/Patient/p1/_history", ExpectStatus: 200,
		ExpectHeader: hdr("Content-Type", "application/fhir+json; charset=utf-8"),
	}.Do(t, h)
	b := decodeBundle(t, res.Body)
	if *b.Total != 3 || len(b.Entry) != 3 {
		t.Fatalf("total %d, %d entries; want 3: %s", *b.Total, len(b.Entry), res.Body)
	}
	if self := b.link("self"); self != base+"/fhir/Patient/p1/_history" {
		t.Errorf("self link %q", self)
	}
	if next := b.link("next"); next != "" {
		t.Errorf("next link %q on the only page", next)
	}
	// Newest first: the delete, the update, the create (by PUT).
	want := []struct {
		method, url, status, etag string
		resource                  bool
	}{
		{"DELETE", "Patient/p1", "204 No Content", `W/"3"`, false},
		{"PUT", "Patient/p1", "200 OK", `W/"2"`, true},
		{"PUT", "Patient/p1", "201 Created", `W/"1"`, true},
	}
	for i, w := range want {
		e := b.Entry[i]
		if e.FullURL != base+"/fhir/Patient/p1" {
			t.Errorf("entry %d: fullUrl %q", i, e.FullURL)
		}
		if e.Request.Method != w.method || e.Request.URL != w.url {
			t.Errorf("entry %d: request %+v, want %s %s", i, e.Request, w.method, w.url)
		}
		if e.Response.Status != w.status || e.Response.Etag != w.etag || e.Response.LastModified == "" {
			t.Errorf("entry %d: response %+v, want %s %s", i, e.Response, w.status, w.etag)
		}
		if (e.Resource != nil) != w.resource {
			t.Errorf("entry %d: resource present %v, want %v", i, e.Resource != nil, w.resource)
		}
	}
	// The resources are the stored bytes, exactly as vread serves them.
	for i, v := range []string{"2", "1"} {
		vread := do(t, h, http.MethodGet, "/fhir/Patient/p1/_history/"+v, "")
		if got := string(b.Entry[i+1].Resource); got != vread.Body.String() {
			t.Errorf("entry %d resource differs from vread:\n%s\n%s", i+1, got, vread.Body.String())
		}
	}
	// lastModified is meta.lastUpdated of the version.
	var meta struct {
		Meta struct {
			LastUpdated string `json:"lastUpdated"`
		} `json:"meta"`
	}
	if err := json.Unmarshal(b.Entry[1].Resource, &meta); err != nil {
		t.Fatal(err)
	}
	if meta.Meta.LastUpdated != b.Entry[1].Response.LastModified {
		t.Errorf("lastModified %q, meta.lastUpdated %q", b.Entry[1].Response.LastModified, meta.Meta.LastUpdated)
	}
}

func TestHistory(t *testing.T) {
	servertest.Run(t, newHandler, []servertest.Scenario{
		{
			Name: "type", Path: "/fhir/Patient/_history", Before: seed(), ExpectStatus: 200,
			ExpectContains:    []string{`"type":"history"`, `"total":3`, `"url":"` + base + `/fhir/Patient/_history"`},
			ExpectNotContains: []string{"Observation"},
		},
		{
			Name: "type with no versions", Path: "/fhir/Encounter/_history", Before: seed(), ExpectStatus: 200,
			ExpectContains: []string{`"total":0`}, ExpectNotContains: []string{`"entry"`},
		},
		{
			Name: "system", Path: "/fhir/_history", Before: seed(), ExpectStatus: 200,
			ExpectContains: []string{`"total":4`, `"url":"` + base + `/fhir/_history"`, `"fullUrl":"` + base + `/fhir/Observation/o1"`, `"fullUrl":"` + base + `/fhir/Patient/p1"`},
		},
		{
			Name: "self link keeps the query", Path: "/fhir/_history?_count=10&_pretty=false", Before: seed(), ExpectStatus: 200,
			ExpectContains: []string{`"relation":"self","url":"` + base + `/fhir/_history?_count=10&_pretty=false"`},
		},
		{
			Name: "_since in the future", Path: "/fhir/_history?_since=2100-01-01T00:00:00Z", Before: seed(), ExpectStatus: 200,
			ExpectContains: []string{`"total":0`}, ExpectNotContains: []string{`"entry"`},
		},
		{
			Name: "_since in the past", Path: "/fhir/_history?_since=2000-01-01T00:00:00%2B01:00", Before: seed(), ExpectStatus: 200,
			ExpectContains: []string{`"total":4`},
		},
		{
			Name: "_since with an unencoded plus", Path: "/fhir/_history?_since=2000-01-01T00:00:00+01:00", Before: seed(), ExpectStatus: 200,
			ExpectContains: []string{`"total":4`},
		},
		{
			Name: "_since without a time", Path: "/fhir/_history?_since=2020-01-01",
			ExpectStatus: 400, Check: expectOutcome("invalid", `_since "2020-01-01" is not an instant`),
		},
		{
			Name: "_count=0 gives the total only", Path: "/fhir/_history?_count=0", Before: seed(), ExpectStatus: 200,
			ExpectContains: []string{`"total":4`}, ExpectNotContains: []string{`"entry"`, `"next"`},
		},
		{
			Name: "_count not a number", Path: "/fhir/_history?_count=ten",
			ExpectStatus: 400, Check: expectOutcome("invalid", "_count"),
		},
		{
			Name: "_count negative", Path: "/fhir/Patient/_history?_count=-1",
			ExpectStatus: 400, Check: expectOutcome("invalid", "_count"),
		},
		{
			Name: "_cursor not a number", Path: "/fhir/_history?_cursor=abc",
			ExpectStatus: 400, Check: expectOutcome("invalid", "_cursor"),
		},
		{
			Name: "_at invalid", Path: "/fhir/_history?_at=now",
			ExpectStatus: 400, Check: expectOutcome("invalid", "_at"),
		},
		{
			Name: "instance of a resource that never existed", Path: "/fhir/Patient/nobody/_history",
			ExpectStatus: 404, Check: expectOutcome("not-found", "Patient/nobody"),
		},
		{
			Name: "instance filtered to nothing", Path: "/fhir/Patient/p1/_history?_since=2100-01-01T00:00:00Z", Before: seed(),
			ExpectStatus: 200, ExpectContains: []string{`"total":0`},
		},
		{
			Name: "instance with an invalid id", Path: "/fhir/Patient/a_b/_history",
			ExpectStatus: 400, Check: expectOutcome("invalid", "not a valid resource id"),
		},
		{
			Name: "type unknown", Path: "/fhir/Bogus/_history",
			ExpectStatus: 404, Check: expectOutcome("not-found", "unknown resource type"),
		},
		{
			Name: "instance of unknown type", Path: "/fhir/Bogus/p1/_history",
			ExpectStatus: 404, Check: expectOutcome("not-found", "unknown resource type"),
		},
		{
			Name: "pretty", Path: "/fhir/Patient/_history?_pretty=true", Before: seed(), ExpectStatus: 200,
			ExpectContains: []string{"{\n  \"resourceType\": \"Bundle\",\n  \"type\": \"history\",", "\n      \"resource\": {\n        \"resourceType\": \"Patient\","},
		},
		{
			Name: "not acceptable", Path: "/fhir/_history", Header: hdr("Accept", "application/xml"),
			ExpectStatus: 406, Check: expectOutcome("not-supported", "Accept"),
		},
	})
}

// _at gives the version current at an instant: here the one that was
// current when version 2 was written.
func TestHistoryAt(t *testing.T) {
	h := newServer(t)
	for _, body := range []string{patientP1, patientP1v2, `{"resourceType":"Patient","id":"p1","name":[{"family":"Three"}]}`} {
		if res := do(t, h, http.MethodPut, "/fhir/Patient/p1", body, "Content-Type", "application/fhir+json"); res.Code >= 300 {
			t.Fatalf("put: %d %s", res.Code, res.Body.String())
		}
	}
	var v2 struct {
		Meta struct {
			LastUpdated string `json:"lastUpdated"`
		} `json:"meta"`
	}
	if err := json.Unmarshal(do(t, h, http.MethodGet, "/fhir/Patient/p1/_history/2", "").Body.Bytes(), &v2); err != nil {
		t.Fatal(err)
	}
	servertest.Scenario{
		Name: "_at", Path: "/fhir/Patient/p1/_history?_at=" + url.QueryEscape(v2.Meta.LastUpdated), ExpectStatus: 200,
		ExpectContains: []string{`"total":1`, `"family":"Two"`}, ExpectNotContains: []string{"One", "Three"},
	}.Do(t, h)
}

// Paging follows the absolute next links: every version is seen exactly
// once, newest first, and the last page has no next link.
func TestHistoryPaging(t *testing.T) {
	for _, level := range []string{"/fhir/Patient/p1/_history", "/fhir/Patient/_history", "/fhir/_history"} {
		t.Run(level, func(t *testing.T) {
			h := newServer(t)
			for i := 1; i <= 5; i++ {
				body := `{"resourceType":"Patient","id":"p1","name":[{"family":"V` + strconv.Itoa(i) + `"}]}`
				if res := do(t, h, http.MethodPut, "/fhir/Patient/p1", body, "Content-Type", "application/fhir+json"); res.Code >= 300 {
					t.Fatalf("put %d: %d %s", i, res.Code, res.Body.String())
				}
			}
			var seen []string
			next := base + level + "?_count=2"
			for pages := 0; next != ""; pages++ {
				if pages > 5 {
					t.Fatalf("more pages than versions; seen %v", seen)
				}
				if !strings.HasPrefix(next, base+"/fhir/") {
					t.Fatalf("next link %q is not absolute under %s/fhir", next, base)
				}
				res := do(t, h, http.MethodGet, strings.TrimPrefix(next, base), "")
				if res.Code != 200 {
					t.Fatalf("GET %s: %d %s", next, res.Code, res.Body.String())
				}
				b := decodeBundle(t, res.Body.String())
				if *b.Total != 5 {
					t.Errorf("page %d: total %d, want 5", pages, *b.Total)
				}
				if b.link("self") != next {
					t.Errorf("page %d: self %q, want %q", pages, b.link("self"), next)
				}
				if len(b.Entry) > 2 {
					t.Errorf("page %d: %d entries with _count=2", pages, len(b.Entry))
				}
				for _, e := range b.Entry {
					seen = append(seen, e.Response.Etag)
				}
				next = b.link("next")
			}
			want := []string{`W/"5"`, `W/"4"`, `W/"3"`, `W/"2"`, `W/"1"`}
			if strings.Join(seen, " ") != strings.Join(want, " ") {
				t.Errorf("versions seen %v, want %v", seen, want)
			}
		})
	}
}

// Pages stay stable while others write: a version written after the first
// page does not shift later pages.
func TestHistoryPagingStableUnderWrites(t *testing.T) {
	h := newServer(t)
	for i := 1; i <= 4; i++ {
		body := `{"resourceType":"Patient","id":"p` + strconv.Itoa(i) + `"}`
		do(t, h, http.MethodPut, "/fhir/Patient/p"+strconv.Itoa(i), body, "Content-Type", "application/fhir+json")
	}
	first := decodeBundle(t, do(t, h, http.MethodGet, "/fhir/Patient/_history?_count=2", "").Body.String())
	do(t, h, http.MethodPut, "/fhir/Patient/p9", `{"resourceType":"Patient","id":"p9"}`, "Content-Type", "application/fhir+json")
	second := decodeBundle(t, do(t, h, http.MethodGet, strings.TrimPrefix(first.link("next"), base), "").Body.String())
	var got []string
	for _, e := range append(first.Entry, second.Entry...) {
		got = append(got, e.FullURL[strings.LastIndex(e.FullURL, "/")+1:])
	}
	if strings.Join(got, " ") != "p4 p3 p2 p1" {
		t.Errorf("pages hold %v, want p4 p3 p2 p1", got)
	}
}
