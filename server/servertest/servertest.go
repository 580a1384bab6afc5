// Package servertest runs table-driven HTTP scenarios against a handler: each
// scenario is a request plus what its answer must and must not contain, with
// optional requests before it (to set up state) and after it (to show what
// it changed or, for a refused request, that it changed nothing).
package servertest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// Scenario is one request and the expectations on its response.
type Scenario struct {
	Name   string
	Method string // GET when empty
	Path   string // path and query, e.g. /fhir/Patient/p1?_pretty=true
	// Header holds request headers; Body is sent as is.
	Header map[string]string
	Body   string

	ExpectStatus      int
	ExpectContains    []string // substrings the body must contain
	ExpectNotContains []string // substrings the body must not contain
	// ExpectHeader maps a header to its exact expected value; an empty
	// value means the header must be absent.
	ExpectHeader map[string]string
	// ExpectHeaderPrefix maps a header to a prefix of its value, for values
	// that hold server-assigned parts such as a Location with a new id.
	ExpectHeaderPrefix map[string]string
	// Check, when set, runs further checks on the response.
	Check func(t testing.TB, res *Response)

	// Before runs first on the same handler; each must meet its own
	// expectations. After runs once this scenario's checks have passed.
	Before []Scenario
	After  []Scenario
}

// Response is what a scenario's request got back.
type Response struct {
	Status int
	Header http.Header
	Body   string
}

// Run runs every scenario as a subtest, each on a fresh handler, so that no
// scenario depends on another's leftovers.
func Run(t *testing.T, newHandler func(t *testing.T) http.Handler, scenarios []Scenario) {
	t.Helper()
	for _, sc := range scenarios {
		t.Run(sc.Name, func(t *testing.T) {
			sc.Do(t, newHandler(t))
		})
	}
}

// Do runs the scenario's Before requests, its own request and checks, and
// its After requests against h, and returns its own response.
func (sc Scenario) Do(t testing.TB, h http.Handler) *Response {
	t.Helper()
	for i, b := range sc.Before {
		if b.Name == "" {
			b.Name = sc.Name + " (before " + strconv.Itoa(i) + ")"
		}
		b.Do(t, h)
	}
	res := sc.send(h)
	sc.check(t, res)
	for i, a := range sc.After {
		if a.Name == "" {
			a.Name = sc.Name + " (after " + strconv.Itoa(i) + ")"
		}
		a.Do(t, h)
	}
	return res
}

func (sc Scenario) send(h http.Handler) *Response {
	method := sc.Method
	if method == "" {
		method = http.MethodGet
	}
	var body io.Reader
	if sc.Body != "" {
		body = strings.NewReader(sc.Body)
	}
	req := httptest.NewRequest(method, sc.Path, body)
	for k, v := range sc.Header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return &Response{Status: rec.Code, Header: rec.Header(), Body: rec.Body.String()}
}

func (sc Scenario) check(t testing.TB, res *Response) {
	t.Helper()
	method := sc.Method
	if method == "" {
		method = http.MethodGet
	}
	where := sc.Name + ": " + method + " " + sc.Path
	if sc.ExpectStatus != 0 && res.Status != sc.ExpectStatus {
		t.Errorf("%s: status %d, want %d; body: %s", where, res.Status, sc.ExpectStatus, res.Body)
	}
	for _, s := range sc.ExpectContains {
		if !strings.Contains(res.Body, s) {
			t.Errorf("%s: body does not contain %q; body: %s", where, s, res.Body)
		}
	}
	for _, s := range sc.ExpectNotContains {
		if strings.Contains(res.Body, s) {
			t.Errorf("%s: body contains %q; body: %s", where, s, res.Body)
		}
	}
	for k, want := range sc.ExpectHeader {
		got, present := res.Header.Get(k), len(res.Header.Values(k)) > 0
		switch {
		case want == "" && present:
			t.Errorf("%s: header %s is %q, want it absent", where, k, got)
		case want != "" && got != want:
			t.Errorf("%s: header %s is %q, want %q", where, k, got, want)
		}
	}
	for k, want := range sc.ExpectHeaderPrefix {
		if got := res.Header.Get(k); !strings.HasPrefix(got, want) {
			t.Errorf("%s: header %s is %q, want a value starting with %q", where, k, got, want)
		}
	}
	if sc.Check != nil {
		sc.Check(t, res)
	}
}
