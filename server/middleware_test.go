package server

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A panic becomes the 500 OperationOutcome with the request id, the stack
// goes to the log, and the access-log line shows the 500.
func TestRecoverPanic(t *testing.T) {
	var logs bytes.Buffer
	h := &Handler{log: slog.New(slog.NewJSONHandler(&logs, nil))}
	boom := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom at the handler") })
	chain := h.requestID(h.logAndRecover(boom))

	req := httptest.NewRequest(http.MethodGet, "/fhir/Patient/x", nil)
	req.Header.Set("X-Request-Id", "panic-1")
	rec := httptest.NewRecorder()
	chain.ServeHTTP(rec, req)

	if rec.Code != 500 {
		t.Fatalf("status %d", rec.Code)
	}
	oo := decodeOutcome(t, rec.Body.Bytes())
	if oo.Issue[0].Code != "exception" || oo.Issue[0].Diagnostics != "internal error, request id panic-1" {
		t.Errorf("outcome %+v", oo.Issue[0])
	}
	if strings.Contains(rec.Body.String(), "boom") {
		t.Errorf("panic text reached the client: %s", rec.Body.String())
	}
	l := logs.String()
	if !strings.Contains(l, "boom at the handler") || !strings.Contains(l, "goroutine") {
		t.Errorf("panic and stack not logged:\n%s", l)
	}
	if !strings.Contains(l, `"msg":"request","request_id":"panic-1","method":"GET","path":"/fhir/Patient/x","status":500`) {
		t.Errorf("access log line does not show the 500:\n%s", l)
	}
}

// A panic after the response began cannot change it; it is logged.
func TestRecoverPanicAfterWrite(t *testing.T) {
	var logs bytes.Buffer
	h := &Handler{log: slog.New(slog.NewJSONHandler(&logs, nil))}
	late := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("partial"))
		panic("late boom")
	})
	rec := httptest.NewRecorder()
	h.requestID(h.logAndRecover(late)).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/x", nil))
	if rec.Code != 200 || rec.Body.String() != "partial" {
		t.Errorf("response changed after the panic: %d %q", rec.Code, rec.Body.String())
	}
	if !strings.Contains(logs.String(), "panic after response started") || !strings.Contains(logs.String(), "late boom") {
		t.Errorf("late panic not logged:\n%s", logs.String())
	}
}

// http.ErrAbortHandler is net/http's way to abort a response; it passes
// through so that the server drops the connection.
func TestAbortHandlerPassesThrough(t *testing.T) {
	h := &Handler{log: slog.New(slog.DiscardHandler)}
	abort := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) })
	defer func() {
		if p := recover(); p != http.ErrAbortHandler {
			t.Errorf("recovered %v, want http.ErrAbortHandler", p)
		}
	}()
	h.logAndRecover(abort).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/x", nil))
}

func TestAcceptable(t *testing.T) {
	tests := []struct {
		accept string
		want   string // "" = not acceptable
	}{
		{"application/fhir+json", ctFHIRJSON},
		{"application/json", ctJSON},
		{"application/json+fhir", ctFHIRJSON},
		{"*/*", ctFHIRJSON},
		{"application/*", ctFHIRJSON},
		{"application/fhir+json; fhirVersion=4.0", ctFHIRJSON},
		{"application/fhir+json; fhirVersion=3.0", ""},
		{"application/fhir+xml", ""},
		{"text/html", ""},
		{"application/json;q=0.2, application/fhir+json;q=0.9", ctFHIRJSON},
		{"application/fhir+json;q=0.2, application/json;q=0.9", ctJSON},
		{"application/fhir+xml, application/json;q=0.1", ctJSON},
		{"application/json;q=0", ""},
		{"garbage;;;, application/json", ctJSON},
	}
	for _, tt := range tests {
		got, ok := acceptable(tt.accept)
		if (tt.want == "") == ok || got != tt.want {
			t.Errorf("acceptable(%q) = %q, %v; want %q", tt.accept, got, ok, tt.want)
		}
	}
}

// A request whose client went away is logged at INFO with client_gone,
// not as a server error.
func TestClientGoneIsNotAnError(t *testing.T) {
	var logs bytes.Buffer
	h := &Handler{log: slog.New(slog.NewJSONHandler(&logs, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cancel() // the client hangs up while the handler works
		h.writeError(w, r, fmt.Errorf("searching: %w", r.Context().Err()))
	})
	req := httptest.NewRequest(http.MethodGet, "/fhir/Patient", nil).WithContext(ctx)
	h.requestID(h.logAndRecover(slow)).ServeHTTP(httptest.NewRecorder(), req)
	l := logs.String()
	if strings.Contains(l, `"level":"ERROR"`) || !strings.Contains(l, `"status":500`) || !strings.Contains(l, `"client_gone":true`) {
		t.Errorf("log:\n%s", l)
	}
}
