package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/server"
	"github.com/fhirserver/fhirserver/server/servertest"
)

func TestMetadata(t *testing.T) {
	servertest.Run(t, newHandler, []servertest.Scenario{
		{
			Name: "metadata", Path: "/fhir/metadata", ExpectStatus: 200,
			ExpectHeader: hdr("Content-Type", "application/fhir+json; charset=utf-8"),
			ExpectContains: []string{
				`"resourceType":"CapabilityStatement"`, `"status":"active"`, `"kind":"instance"`,
				`"fhirVersion":"4.0.1"`, `"format":["json","application/fhir+json","application/json"]`,
				`"implementation":{"description":"FHIR R4 server","url":"` + base + `/fhir"}`,
				`"interaction":[{"code":"transaction"},{"code":"batch"},{"code":"history-system"},{"code":"search-system"}]`,
				`"patchFormat":["application/json-patch+json","application/fhir+json"]`,
			},
			Check: checkCapability,
		},
		{
			Name: "metadata as application/json", Path: "/fhir/metadata?_format=application/json", ExpectStatus: 200,
			ExpectHeader: hdr("Content-Type", "application/json; charset=utf-8"),
		},
		{
			Name: "metadata pretty", Path: "/fhir/metadata?_pretty=true", ExpectStatus: 200,
			ExpectContains: []string{"{\n  \"resourceType\": \"CapabilityStatement\","},
		},
		{
			Name: "metadata as XML", Path: "/fhir/metadata?_format=xml",
			ExpectStatus: 406, Check: expectOutcome("not-supported", "_format"),
		},
		{
			Name: "metadata HEAD", Method: http.MethodHead, Path: "/fhir/metadata", ExpectStatus: 200,
		},
		{
			// POST B/fhir/{type} matches, and "metadata" is no type.
			Name: "POST metadata", Method: http.MethodPost, Path: "/fhir/metadata", Header: fhirJSON, Body: `{"resourceType":"Patient"}`,
			ExpectStatus: 404, Check: expectOutcome("not-found", `unknown resource type "metadata"`), After: nothingStored(),
		},
		{
			Name: "DELETE metadata", Method: http.MethodDelete, Path: "/fhir/metadata",
			ExpectStatus: 405, ExpectHeader: hdr("Allow", "GET, HEAD, POST"), Check: expectOutcome("not-supported", "method DELETE is not allowed"),
		},
	})
}

// checkCapability decodes the statement and checks each resource entry
// states exactly what the handlers do.
func checkCapability(t testing.TB, res *servertest.Response) {
	var cs struct {
		Date string `json:"date"`
		Rest []struct {
			Mode     string `json:"mode"`
			Resource []struct {
				Type        string `json:"type"`
				Interaction []struct {
					Code string `json:"code"`
				} `json:"interaction"`
				Versioning        string `json:"versioning"`
				ReadHistory       bool   `json:"readHistory"`
				UpdateCreate      bool   `json:"updateCreate"`
				ConditionalCreate bool   `json:"conditionalCreate"`
				ConditionalRead   string `json:"conditionalRead"`
				ConditionalUpdate bool   `json:"conditionalUpdate"`
				ConditionalDelete string `json:"conditionalDelete"`
			} `json:"resource"`
		} `json:"rest"`
	}
	if err := json.Unmarshal([]byte(res.Body), &cs); err != nil {
		t.Fatal(err)
	}
	if _, err := time.Parse(time.RFC3339, cs.Date); err != nil {
		t.Errorf("date %q: %v", cs.Date, err)
	}
	types := fhir.ResourceTypes()
	if len(cs.Rest) != 1 || cs.Rest[0].Mode != "server" || len(cs.Rest[0].Resource) != len(types) {
		t.Fatalf("want one server rest with %d resources", len(types))
	}
	for _, r := range cs.Rest[0].Resource {
		var codes []string
		for _, i := range r.Interaction {
			codes = append(codes, i.Code)
		}
		if got := strings.Join(codes, " "); got != "read vread update patch delete history-instance history-type create search-type" {
			t.Errorf("%s: interactions %s", r.Type, got)
		}
		if r.Versioning != "versioned-update" || !r.ReadHistory || !r.UpdateCreate || !r.ConditionalCreate ||
			r.ConditionalRead != "not-supported" || !r.ConditionalUpdate || r.ConditionalDelete != "single" {
			t.Errorf("%s: %+v", r.Type, r)
		}
	}
}

func TestHealth(t *testing.T) {
	servertest.Run(t, newHandler, []servertest.Scenario{
		{Name: "healthz", Path: "/healthz", ExpectStatus: 200, ExpectContains: []string{"ok"}},
		{Name: "readyz", Path: "/readyz", ExpectStatus: 200, ExpectContains: []string{"ok"}},
	})
}

// With the database gone, readiness fails and the FHIR API answers 500
// with the request id only; the driver's message stays in the log.
func TestDatabaseDown(t *testing.T) {
	s := newServer(t)
	if err := s.store.Close(); err != nil {
		t.Fatal(err)
	}
	servertest.Scenario{Name: "healthz still up", Path: "/healthz", ExpectStatus: 200}.Do(t, s)
	servertest.Scenario{Name: "readyz", Path: "/readyz", ExpectStatus: 503}.Do(t, s)
	servertest.Scenario{
		Name: "read", Path: "/fhir/Patient/p1", Header: hdr("X-Request-Id", "trace-123"),
		ExpectStatus: 500, ExpectHeader: hdr("X-Request-Id", "trace-123"),
		ExpectNotContains: []string{"sql", "closed"},
		Check:             expectOutcome("exception", "internal error, request id trace-123"),
	}.Do(t, s)
	logs := s.logs.String()
	if !strings.Contains(logs, `"msg":"internal error","request_id":"trace-123"`) || !strings.Contains(logs, "closed") {
		t.Errorf("the internal error is not logged with its cause and request id:\n%s", logs)
	}
}

func TestRouting(t *testing.T) {
	servertest.Run(t, newHandler, []servertest.Scenario{
		{
			Name: "unknown path", Path: "/nowhere",
			ExpectStatus: 404, Check: expectOutcome("not-found", "/nowhere"),
		},
		{
			Name: "unknown FHIR path", Path: "/fhir/Patient/p1/_history/1/more",
			ExpectStatus: 404, Check: expectOutcome("not-found", "no such path"),
		},
		{
			Name: "search on an unknown type", Path: "/fhir/Bogus",
			ExpectStatus: 404, Check: expectOutcome("not-found", "unknown resource type"),
		},
		{
			Name: "PATCH history", Method: http.MethodPatch, Path: "/fhir/Patient/p1/_history", Header: hdr("Content-Type", "application/json-patch+json"), Body: `[]`,
			ExpectStatus: 405, ExpectHeader: hdr("Allow", "GET, HEAD"), Check: expectOutcome("not-supported", "PATCH"),
		},
		{
			Name: "POST on an instance", Method: http.MethodPost, Path: "/fhir/Patient/p1", Header: fhirJSON, Body: patientP1,
			ExpectStatus: 405, Check: expectOutcome("not-supported", "POST"), After: nothingStored(),
		},
		{
			Name: "malformed query", Path: "/fhir/metadata?_pretty=%zz",
			ExpectStatus: 400, Check: expectOutcome("invalid", "query string is malformed"),
		},
	})
}

func TestRequestID(t *testing.T) {
	s := newServer(t)
	servertest.Scenario{
		Name: "a sane incoming id is kept", Path: "/fhir/metadata", Header: hdr("X-Request-Id", "abc-123_x.y:z"),
		ExpectStatus: 200, ExpectHeader: hdr("X-Request-Id", "abc-123_x.y:z"),
	}.Do(t, s)
	for _, bad := range []string{"", "has space", "line\x01break", strings.Repeat("a", 129), `quote"d`} {
		res := do(t, s, http.MethodGet, "/fhir/metadata", "", "X-Request-Id", bad)
		got := res.Header().Get("X-Request-Id")
		if got == "" || got == bad {
			t.Errorf("incoming %q: response id %q, want a new one", bad, got)
		}
	}
	a := do(t, s, http.MethodGet, "/healthz", "").Header().Get("X-Request-Id")
	b := do(t, s, http.MethodGet, "/healthz", "").Header().Get("X-Request-Id")
	if a == "" || a == b {
		t.Errorf("generated ids %q and %q", a, b)
	}
}

// One JSON access-log line per request, with request id, method, path,
// status and duration, and no query string.
func TestAccessLog(t *testing.T) {
	s := newServer(t)
	do(t, s, http.MethodGet, "/fhir/Patient/nobody?name=secret", "", "X-Request-Id", "log-1")
	var found int
	sc := bufio.NewScanner(strings.NewReader(s.logs.String()))
	for sc.Scan() {
		var line struct {
			Msg        string   `json:"msg"`
			Level      string   `json:"level"`
			RequestID  string   `json:"request_id"`
			Method     string   `json:"method"`
			Path       string   `json:"path"`
			Status     int      `json:"status"`
			DurationMS *float64 `json:"duration_ms"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line is not JSON: %s", sc.Text())
		}
		if line.Msg != "request" {
			continue
		}
		found++
		if line.RequestID != "log-1" || line.Method != "GET" || line.Path != "/fhir/Patient/nobody" ||
			line.Status != 404 || line.DurationMS == nil || line.Level != "INFO" {
			t.Errorf("access log line %s", sc.Text())
		}
	}
	if found != 1 {
		t.Errorf("%d access log lines, want 1:\n%s", found, s.logs.String())
	}
	if strings.Contains(s.logs.String(), "secret") {
		t.Errorf("the query string was logged:\n%s", s.logs.String())
	}
}

func TestNewRouterRefusesBadConfig(t *testing.T) {
	good := func(t *testing.T) server.Deps {
		s := newServer(t)
		return server.Deps{Store: s.store, BaseURL: base, AuthMode: server.AuthNone}
	}
	tests := []struct {
		name   string
		change func(*server.Deps)
		want   string
	}{
		{"no store", func(d *server.Deps) { d.Store = nil }, "Store is required"},
		{"no base URL", func(d *server.Deps) { d.BaseURL = "" }, "base URL"},
		{"relative base URL", func(d *server.Deps) { d.BaseURL = "/fhir" }, "base URL"},
		{"base URL with a query", func(d *server.Deps) { d.BaseURL = base + "?x=1" }, "base URL"},
		{"not a resource type", func(d *server.Deps) { d.ResourceTypes = []string{"Patient", "HumanName"} }, `"HumanName" is not an R4 resource type`},
		{"no auth mode", func(d *server.Deps) { d.AuthMode = "" }, "AuthMode is required"},
		{"smart without a verifier", func(d *server.Deps) { d.AuthMode = server.AuthSmart }, "needs Deps.TokenVerifier"},
		{"unknown auth mode", func(d *server.Deps) { d.AuthMode = "basic" }, `auth mode "basic" is not implemented`},
		{"negative body limit", func(d *server.Deps) { d.MaxBody = -1 }, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := good(t)
			tt.change(&d)
			h, err := server.NewRouter(d)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewRouter: %v, %v; want an error containing %q", h, err, tt.want)
			}
		})
	}
	t.Run("good", func(t *testing.T) {
		d := good(t)
		d.AuthMode = server.AuthNone
		d.BaseURL = "https://example.org/base/"
		h, err := server.NewRouter(d)
		if err != nil {
			t.Fatal(err)
		}
		// A trailing slash in the base URL does not double in links.
		servertest.Scenario{
			Path: "/fhir/metadata", ExpectStatus: 200,
			ExpectContains: []string{`"url":"https://example.org/base/fhir"`},
		}.Do(t, h)
	})
}

// The http.Server has timeouts, serves the router, and shuts down promptly.
func TestHTTPServer(t *testing.T) {
	s := newServer(t)
	srv := server.NewHTTPServer("127.0.0.1:0", s)
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 {
		t.Errorf("timeouts: %+v", srv)
	}
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	res, err := http.Get("http://" + ln.Addr().String() + "/fhir/metadata")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), "CapabilityStatement") {
		t.Errorf("metadata over TCP: %d %s", res.StatusCode, body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; err != http.ErrServerClosed {
		t.Errorf("Serve returned %v", err)
	}
}

// Deps.ResourceTypes narrows what is served; metadata says the same.
func TestServedTypes(t *testing.T) {
	s := newServer(t, func(d *server.Deps) { d.ResourceTypes = []string{"Patient", "Observation"} })
	servertest.Scenario{
		Name: "metadata", Path: "/fhir/metadata", ExpectStatus: 200,
		ExpectContains:    []string{`"type":"Patient"`, `"type":"Observation"`},
		ExpectNotContains: []string{`"type":"Encounter"`},
	}.Do(t, s)
	servertest.Scenario{
		Name: "unserved type", Method: http.MethodPut, Path: "/fhir/Encounter/e1", Header: fhirJSON,
		Body:         `{"resourceType":"Encounter","id":"e1","status":"planned","class":{"code":"AMB"}}`,
		ExpectStatus: 404, Check: expectOutcome("not-found", `unknown resource type "Encounter"`), After: nothingStored(),
	}.Do(t, s)
}
