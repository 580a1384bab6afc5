package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fhirserver/fhirserver/server"
	"github.com/fhirserver/fhirserver/server/servertest"
	"github.com/fhirserver/fhirserver/store/sqlite"
	"github.com/fhirserver/fhirserver/validate"
)

// base is the public base URL the test servers claim to have.
const base = "http://fhir.test"

// validator is the real R4 validator, built once per test binary (it is
// safe for concurrent use and holds no per-call state).
var validator = sync.OnceValues(validate.New)

// testServer is a router on a real SQLite store in a temp dir, with its log
// captured.
type testServer struct {
	http.Handler
	store *sqlite.Store
	logs  *syncBuffer
}

// newServer builds a test server; change may adjust the Deps first.
func newServer(t *testing.T, change ...func(*server.Deps)) *testServer {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "fhir.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h, logs := routerOn(t, st, change...)
	return &testServer{Handler: h, store: st, logs: logs}
}

// routerOn builds the router on st with the real validator and a captured
// log (shown when the test fails); change may adjust the Deps first.
func routerOn(t testing.TB, st server.Store, change ...func(*server.Deps)) (http.Handler, *syncBuffer) {
	t.Helper()
	v, err := validator()
	if err != nil {
		t.Fatalf("creating the validator: %v", err)
	}
	logs := &syncBuffer{}
	deps := server.Deps{
		Store:     st,
		Validator: v,
		Logger:    slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		BaseURL:   base,
		AuthMode:  server.AuthNone,
	}
	for _, c := range change {
		c(&deps)
	}
	h, err := server.NewRouter(deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return h, logs
}

func newHandler(t *testing.T) http.Handler { return newServer(t) }

// syncBuffer is a log sink safe for the concurrent writes of a server.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// do sends one request and returns the recorded response.
func do(t testing.TB, h http.Handler, method, path, body string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, r)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// hdr builds a scenario header map from pairs.
func hdr(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// fhirJSON is the Content-Type header of a normal FHIR write.
var fhirJSON = hdr("Content-Type", "application/fhir+json")

// put is a Before step that stores body at path with PUT.
func put(path, body string) servertest.Scenario {
	return servertest.Scenario{Name: "PUT " + path, Method: http.MethodPut, Path: path,
		Header: fhirJSON, Body: body}
}

// nothingStored is an After step showing the server holds no version at all.
func nothingStored() []servertest.Scenario {
	return []servertest.Scenario{{
		Name: "nothing stored", Path: "/fhir/_history",
		ExpectStatus: 200, ExpectContains: []string{`"total":0`}, ExpectNotContains: []string{`"entry"`},
	}}
}

// outcome is an OperationOutcome as a client reads it.
type outcome struct {
	ResourceType string `json:"resourceType"`
	Issue        []struct {
		Severity    string   `json:"severity"`
		Code        string   `json:"code"`
		Diagnostics string   `json:"diagnostics"`
		Expression  []string `json:"expression"`
	} `json:"issue"`
}

// expectOutcome returns a Check asserting an OperationOutcome whose one
// issue has the given code and diagnostics containing msg.
func expectOutcome(code, msg string) func(testing.TB, *servertest.Response) {
	return func(t testing.TB, res *servertest.Response) {
		t.Helper()
		var oo outcome
		if err := json.Unmarshal([]byte(res.Body), &oo); err != nil {
			t.Fatalf("body is not JSON: %v: %s", err, res.Body)
		}
		if oo.ResourceType != "OperationOutcome" || len(oo.Issue) != 1 {
			t.Fatalf("not an OperationOutcome with one issue: %s", res.Body)
		}
		if oo.Issue[0].Severity != "error" || oo.Issue[0].Code != code {
			t.Errorf("issue severity %q code %q, want error %q", oo.Issue[0].Severity, oo.Issue[0].Code, code)
		}
		if !strings.Contains(oo.Issue[0].Diagnostics, msg) {
			t.Errorf("diagnostics %q do not contain %q", oo.Issue[0].Diagnostics, msg)
		}
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/") || !strings.Contains(ct, "json") {
			t.Errorf("Content-Type %q", ct)
		}
	}
}

// bundle is a history Bundle as a client reads it.
type bundle struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Total        *int   `json:"total"`
	Link         []struct {
		Relation string `json:"relation"`
		URL      string `json:"url"`
	} `json:"link"`
	Entry []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Request  struct {
			Method string `json:"method"`
			URL    string `json:"url"`
		} `json:"request"`
		Response struct {
			Status       string `json:"status"`
			Etag         string `json:"etag"`
			LastModified string `json:"lastModified"`
		} `json:"response"`
	} `json:"entry"`
}

func decodeBundle(t testing.TB, body string) bundle {
	t.Helper()
	var b bundle
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, body)
	}
	if b.ResourceType != "Bundle" || b.Type != "history" || b.Total == nil {
		t.Fatalf("not a history Bundle with a total: %s", body)
	}
	return b
}

func (b bundle) link(rel string) string {
	for _, l := range b.Link {
		if l.Relation == rel {
			return l.URL
		}
	}
	return ""
}
