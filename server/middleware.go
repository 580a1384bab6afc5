package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/go-chi/chi/v5/middleware"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/store"
)

type requestIDKey struct{}

func contextWithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// requestIDFrom returns the id requestID gave the request, or "" outside it.
func requestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// saneRequestID accepts an incoming X-Request-Id only when it is short and
// made of characters that cannot forge log lines or headers.
func saneRequestID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// requestID gives every request an id: the caller's X-Request-Id when it is
// sane (so that a proxy's id carries through), a random one otherwise. The
// id is echoed in the response and appears in every log line of the request.
func (h *Handler) requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !saneRequestID(id) {
			id = rand.Text()
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(contextWithRequestID(r.Context(), id)))
	})
}

// logAndRecover writes one access-log line per request and turns a panic
// into the 500 OperationOutcome. They are one middleware so that the log
// line of a request that panicked shows the 500 it got.
func (h *Handler) logAndRecover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		defer func() {
			p := recover()
			if p != nil && p != http.ErrAbortHandler {
				err := fmt.Errorf("panic: %v\n%s", p, debug.Stack())
				if ww.Status() == 0 {
					h.writeError(ww, r, fhir.Internal("handling the request", err))
				} else {
					// The response has begun; all that is left is the log.
					h.log.ErrorContext(r.Context(), "panic after response started",
						"request_id", requestIDFrom(r.Context()), "error", err)
				}
			}
			status := ww.Status()
			if status == 0 {
				status = http.StatusOK // the handler wrote nothing at all
			}
			level := slog.LevelInfo
			// A request whose client went away ends in an error nobody
			// reads: no fault of the server, so not an ERROR line.
			gone := r.Context().Err() != nil
			if status >= 500 && !gone {
				level = slog.LevelError
			}
			attrs := []slog.Attr{
				slog.String("request_id", requestIDFrom(r.Context())),
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path), // no query: it may carry personal data
				slog.Int("status", status),
				slog.Int("bytes", ww.BytesWritten()),
				slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
			}
			if gone {
				attrs = append(attrs, slog.Bool("client_gone", true))
			}
			h.log.LogAttrs(r.Context(), level, "request", attrs...)
			if p == http.ErrAbortHandler {
				// net/http uses this panic to abort a response on purpose.
				panic(p)
			}
		}()
		next.ServeHTTP(ww, r)
	})
}

// readBody reads the request body: 413 beyond the limit of limitBody, 400
// when it cannot be read.
func readBody(r *http.Request) ([]byte, error) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, tooLarge(tooBig.Limit)
		}
		return nil, fhir.Errorf(fhir.KindInvalid, "the request body could not be read")
	}
	return raw, nil
}

// limitBody caps request bodies at MaxBody. A declared length over the limit
// is refused at once; otherwise http.MaxBytesReader stops the read and the
// handler reports 413.
func (h *Handler) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > h.maxBody {
			h.writeError(w, r, tooLarge(h.maxBody))
			return
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, h.maxBody)
		}
		next.ServeHTTP(w, r)
	})
}

func tooLarge(limit int64) error {
	return fhir.Errorf(fhir.KindTooLarge, "the request body is larger than the limit of %d bytes", limit)
}

// tenant is the tenant a request addresses and the absolute base URL of its
// FHIR API, from which Location headers and Bundle links are built.
type tenant struct {
	name string
	base string
}

type tenantKey struct{}

// withTenant fixes the tenant of the routes below it. The default tenant is
// mounted at /fhir; a /fhir/{tenant} mount will resolve its own and use the
// same routes.
func (h *Handler) withTenant(name, base string) func(http.Handler) http.Handler {
	t := tenant{name: name, base: base}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tenantKey{}, t)))
		})
	}
}

// tenantFrom returns the request's tenant. Every FHIR route sits below
// withTenant; outside it the default tenant at B/fhir is the safe answer.
func (h *Handler) tenantFrom(ctx context.Context) tenant {
	if t, ok := ctx.Value(tenantKey{}).(tenant); ok {
		return t
	}
	return tenant{name: store.DefaultTenant, base: h.base + "/fhir"}
}
