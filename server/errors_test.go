package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/store"
)

// TestWriteError covers every error kind: status, issue code, the message a
// client sees, and that only internal errors are logged with their cause.
func TestWriteError(t *testing.T) {
	tests := []struct {
		kind     fhir.Kind
		status   int
		code     string
		internal bool
	}{
		{fhir.KindInvalid, 400, "invalid", false},
		{fhir.KindNotFound, 404, "not-found", false},
		{fhir.KindGone, 410, "deleted", false},
		{fhir.KindConflict, 409, "conflict", false},
		{fhir.KindPreconditionFailed, 412, "conflict", false},
		{fhir.KindForbidden, 403, "forbidden", false},
		{fhir.KindUnauthorized, 401, "login", false},
		{fhir.KindTooCostly, 422, "too-costly", false},
		{fhir.KindNotSupported, 400, "not-supported", false},
		{fhir.KindUnprocessable, 422, "processing", false},
		{fhir.KindTooLarge, 413, "too-costly", false},
		{fhir.KindUnsupportedMediaType, 415, "not-supported", false},
		{fhir.KindNotAcceptable, 406, "not-supported", false},
		{fhir.KindMethodNotAllowed, 405, "not-supported", false},
		{fhir.KindInternal, 500, "exception", true},
		{fhir.Kind("a-kind-from-the-future"), 500, "exception", true},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			var logs bytes.Buffer
			h := &Handler{log: slog.New(slog.NewJSONHandler(&logs, nil))}
			err := &fhir.Error{Kind: tt.kind, Message: "the message for " + string(tt.kind),
				Expression: []string{"Patient.name"}, Err: errors.New("secret cause")}
			req := httptest.NewRequest(http.MethodGet, "/fhir/Patient/x", nil)
			req = req.WithContext(contextWithRequestID(req.Context(), "req-42"))
			rec := httptest.NewRecorder()
			h.writeError(rec, req, err)

			if rec.Code != tt.status {
				t.Errorf("status %d, want %d", rec.Code, tt.status)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/fhir+json; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			oo := decodeOutcome(t, rec.Body.Bytes())
			issue := oo.Issue[0]
			if issue.Severity != "error" || issue.Code != tt.code {
				t.Errorf("issue %+v, want severity error, code %s", issue, tt.code)
			}
			if strings.Contains(rec.Body.String(), "secret cause") {
				t.Errorf("the cause reached the client: %s", rec.Body.String())
			}
			if tt.internal {
				if issue.Diagnostics != "internal error, request id req-42" {
					t.Errorf("diagnostics %q", issue.Diagnostics)
				}
				if strings.Contains(rec.Body.String(), "the message for") || len(issue.Expression) > 0 {
					t.Errorf("an internal error's message reached the client: %s", rec.Body.String())
				}
				if !strings.Contains(logs.String(), "secret cause") || !strings.Contains(logs.String(), `"request_id":"req-42"`) {
					t.Errorf("the internal error was not logged with cause and request id: %s", logs.String())
				}
			} else {
				if issue.Diagnostics != "the message for "+string(tt.kind) {
					t.Errorf("diagnostics %q", issue.Diagnostics)
				}
				if len(issue.Expression) != 1 || issue.Expression[0] != "Patient.name" {
					t.Errorf("expression %v", issue.Expression)
				}
				if strings.Contains(logs.String(), "secret cause") {
					t.Errorf("a client error was logged at the default level: %s", logs.String())
				}
			}
			if tt.kind == fhir.KindUnauthorized {
				if got := rec.Header().Get("WWW-Authenticate"); got != `Bearer realm="fhir"` {
					t.Errorf("WWW-Authenticate %q", got)
				}
			}
		})
	}
}

// A foreign error (not *fhir.Error) is internal, whatever its text says.
func TestWriteErrorForeign(t *testing.T) {
	var logs bytes.Buffer
	h := &Handler{log: slog.New(slog.NewJSONHandler(&logs, nil))}
	req := httptest.NewRequest(http.MethodGet, "/fhir/Patient/x", nil)
	req = req.WithContext(contextWithRequestID(req.Context(), "req-7"))
	rec := httptest.NewRecorder()
	h.writeError(rec, req, errors.New(`pq: relation "resources" does not exist`))
	if rec.Code != 500 {
		t.Fatalf("status %d", rec.Code)
	}
	if strings.Contains(rec.Body.String(), "relation") {
		t.Errorf("driver text reached the client: %s", rec.Body.String())
	}
	if oo := decodeOutcome(t, rec.Body.Bytes()); oo.Issue[0].Diagnostics != "internal error, request id req-7" {
		t.Errorf("diagnostics %q", oo.Issue[0].Diagnostics)
	}
	if !strings.Contains(logs.String(), "relation") {
		t.Errorf("the cause was not logged: %s", logs.String())
	}
}

// A 410 keeps the ETag and Last-Modified of the deletion; other errors drop
// resource headers a handler may have set before failing.
func TestWriteErrorHeaders(t *testing.T) {
	h := &Handler{log: slog.New(slog.DiscardHandler)}
	when := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	gone := &fhir.Error{Kind: fhir.KindGone, Message: "Patient/p was deleted",
		Err: &store.GoneError{Resource: fhir.Resource{Type: "Patient", ID: "p", Version: 3, LastUpdated: when, Deleted: true}}}
	rec := httptest.NewRecorder()
	h.writeError(rec, httptest.NewRequest(http.MethodGet, "/fhir/Patient/p", nil), gone)
	if rec.Code != 410 || rec.Header().Get("ETag") != `W/"3"` || rec.Header().Get("Last-Modified") != "Mon, 06 May 2024 07:08:09 GMT" {
		t.Errorf("410: status %d, ETag %q, Last-Modified %q", rec.Code, rec.Header().Get("ETag"), rec.Header().Get("Last-Modified"))
	}

	rec = httptest.NewRecorder()
	rec.Header().Set("ETag", `W/"1"`)
	rec.Header().Set("Location", "http://x/fhir/Patient/p/_history/1")
	h.writeError(rec, httptest.NewRequest(http.MethodGet, "/fhir/Patient/p", nil), fhir.Errorf(fhir.KindInvalid, "bad"))
	if rec.Header().Get("ETag") != "" || rec.Header().Get("Location") != "" {
		t.Errorf("resource headers survived an error: %v", rec.Header())
	}
}

func decodeOutcome(t testing.TB, body []byte) outcome {
	t.Helper()
	var oo outcome
	if err := json.Unmarshal(body, &oo); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, body)
	}
	if oo.ResourceType != "OperationOutcome" || len(oo.Issue) != 1 {
		t.Fatalf("not an OperationOutcome with one issue: %s", body)
	}
	return oo
}

// An error caused by the client hanging up is logged without alarm.
func TestWriteErrorClientGone(t *testing.T) {
	var logs bytes.Buffer
	h := &Handler{log: slog.New(slog.NewJSONHandler(&logs, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequest(http.MethodGet, "/fhir/Patient/x", nil).WithContext(ctx)
	h.writeError(httptest.NewRecorder(), req, fhir.Internal("reading a resource", fmt.Errorf("query: %w", context.Canceled)))
	if !strings.Contains(logs.String(), `"level":"INFO","msg":"internal error"`) {
		t.Errorf("log: %s", logs.String())
	}
}
