package server

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/store"
)

// statusOf maps an error kind to the HTTP status and the OperationOutcome
// issue code (http://hl7.org/fhir/issue-type). It is a switch rather than a
// package-level map so that nothing can change it at run time.
func statusOf(k fhir.Kind) (status int, code string) {
	switch k {
	case fhir.KindInvalid:
		return http.StatusBadRequest, "invalid"
	case fhir.KindNotFound:
		return http.StatusNotFound, "not-found"
	case fhir.KindGone:
		return http.StatusGone, "deleted"
	case fhir.KindConflict:
		return http.StatusConflict, "conflict"
	case fhir.KindPreconditionFailed:
		// FHIR uses 412 for a failed If-Match ("version conflict").
		return http.StatusPreconditionFailed, "conflict"
	case fhir.KindForbidden:
		return http.StatusForbidden, "forbidden"
	case fhir.KindUnauthorized:
		return http.StatusUnauthorized, "login"
	case fhir.KindTooCostly:
		// Not 403: clients and proxies read 403 as an access decision,
		// whereas the request was understood and refused for its cost.
		return http.StatusUnprocessableEntity, "too-costly"
	case fhir.KindNotSupported:
		// The method is fine for the URL; what the request asks for (a
		// parameter, a feature) is not implemented.
		return http.StatusBadRequest, "not-supported"
	case fhir.KindUnprocessable:
		// A well-formed request that cannot be applied to the resource as
		// it is (a patch that does not apply or gives an invalid resource).
		return http.StatusUnprocessableEntity, "processing"
	case fhir.KindTooLarge:
		return http.StatusRequestEntityTooLarge, "too-costly"
	case fhir.KindUnsupportedMediaType:
		return http.StatusUnsupportedMediaType, "not-supported"
	case fhir.KindNotAcceptable:
		return http.StatusNotAcceptable, "not-supported"
	case fhir.KindMethodNotAllowed:
		return http.StatusMethodNotAllowed, "not-supported"
	default:
		// KindInternal, and any kind this table does not know yet.
		return http.StatusInternalServerError, "exception"
	}
}

// outcome is the subset of OperationOutcome the server writes.
type outcome struct {
	ResourceType string         `json:"resourceType"`
	Issue        []outcomeIssue `json:"issue"`
}

type outcomeIssue struct {
	Severity    string   `json:"severity"`
	Code        string   `json:"code"`
	Diagnostics string   `json:"diagnostics,omitempty"`
	Expression  []string `json:"expression,omitempty"`
}

func outcomeJSON(severity, code, diagnostics string, expression []string) []byte {
	b, _ := json.Marshal(outcome{
		ResourceType: "OperationOutcome",
		Issue: []outcomeIssue{{
			Severity: severity, Code: code, Diagnostics: diagnostics, Expression: expression,
		}},
	})
	return b
}

// writeError is the one place that answers a request with an error: the
// status and OperationOutcome of errorOutcome, and the headers that go with
// them.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, kind, body := h.errorOutcome(r, err)
	hdr := w.Header()
	if status == http.StatusUnauthorized && hdr.Get("WWW-Authenticate") == "" {
		// RFC 6750 §3: a 401 names the scheme; the bearer middleware sets a
		// more specific value (error="invalid_token") when it has one.
		hdr.Set("WWW-Authenticate", `Bearer realm="fhir"`)
	}
	// Headers describing a resource must not describe an error ...
	for _, k := range []string{"ETag", "Last-Modified", "Location", "Content-Location"} {
		hdr.Del(k)
	}
	// ... except a deletion's own: a 410 names the version and time of the
	// delete, so a client can tell which deletion it saw.
	var gone *store.GoneError
	if kind == fhir.KindGone && errors.As(err, &gone) {
		hdr.Set("ETag", gone.Resource.ETag())
		hdr.Set("Last-Modified", gone.Resource.LastUpdated.UTC().Format(http.TimeFormat))
	}
	h.writeBody(w, r, formatFrom(r.Context()), status, body)
}

// errorOutcome turns an error into its status and OperationOutcome (for
// writeError, and for the entries of a batch, which each carry their own).
// Messages of *fhir.Error are meant for clients; the cause of an internal
// error is only logged, with the request id that the client sees, so that
// a report can be matched with the log.
func (h *Handler) errorOutcome(r *http.Request, err error) (status int, kind fhir.Kind, body []byte) {
	ctx := r.Context()
	id := requestIDFrom(ctx)
	kind = fhir.KindOf(err)
	status, code := statusOf(kind)
	var msg string
	var expr []string
	if status == http.StatusInternalServerError {
		msg = "internal error, request id " + id
		level := slog.LevelError
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			// The client went away mid-request: no fault of the server, and
			// nobody reads this answer.
			level = slog.LevelInfo
		}
		h.log.Log(ctx, level, "internal error", "request_id", id,
			"method", r.Method, "path", r.URL.Path, "error", err)
	} else {
		msg = fhir.MessageOf(err)
		var fe *fhir.Error
		if errors.As(err, &fe) {
			expr = fe.Expression
		}
		h.log.DebugContext(ctx, "request failed", "request_id", id,
			"status", status, "error", err)
	}
	return status, kind, outcomeJSON("error", code, msg, expr)
}

// writeBody writes a JSON body with the negotiated content type, indented
// when _pretty=true asked for it.
func (h *Handler) writeBody(w http.ResponseWriter, r *http.Request, f format, status int, body []byte) {
	body = f.render(body)
	w.Header().Set("Content-Type", f.contentType)
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	if _, err := w.Write(body); err != nil {
		// The client went away; nothing else can be sent.
		h.log.DebugContext(r.Context(), "writing response failed",
			"request_id", requestIDFrom(r.Context()), "error", err)
	}
}

// notFound answers paths no route matches.
func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	h.writeError(w, r, fhir.Errorf(fhir.KindNotFound, "no such path: %s", r.URL.Path))
}

// methodNotAllowed answers a known path with a method it does not serve,
// naming the methods that are allowed (chi does not pass them to a custom
// handler, so they are found by matching each method).
func (h *Handler) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	var allowed []string
	if h.root != nil {
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			if h.root.Match(chi.NewRouteContext(), m, r.URL.Path) {
				allowed = append(allowed, m)
				if m == http.MethodGet {
					allowed = append(allowed, http.MethodHead) // served by GetHead
				}
			}
		}
	}
	if len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
	}
	h.writeError(w, r, fhir.Errorf(fhir.KindMethodNotAllowed, "method %s is not allowed on %s", r.Method, r.URL.Path))
}
