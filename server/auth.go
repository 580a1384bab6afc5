package server

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/fhirserver/fhirserver/authz"
	"github.com/fhirserver/fhirserver/fhir"
)

// ErrInvalidToken is what a TokenVerifier wraps when the token itself is
// bad (malformed, bad signature, wrong issuer or audience, expired,
// revoked): the answer is 401 with error="invalid_token". Any other
// verifier error is internal (500), so that an outage is not reported as
// the client's fault, and no request passes either way.
var ErrInvalidToken = errors.New("invalid token")

// TokenVerifier checks a bearer access token and says who is calling. cmd
// adapts oauth.Verifier to it (mapping oauth.ErrInvalidToken to
// ErrInvalidToken and oauth.Claims to authz.Caller); the server does not
// import oauth.
type TokenVerifier interface {
	Verify(ctx context.Context, raw string) (*authz.Caller, error)
}

type callerKey struct{}

// CallerFrom returns the caller that the bearer middleware verified, if
// any (with AuthNone there is none).
func CallerFrom(ctx context.Context) (*authz.Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(*authz.Caller)
	return c, ok && c != nil
}

// withCaller puts c in ctx.
func withCaller(ctx context.Context, c *authz.Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// WWW-Authenticate values (RFC 6750 §3).
const (
	challengeNoToken      = `Bearer realm="fhir"`
	challengeInvalidToken = `Bearer realm="fhir", error="invalid_token"`
	challengeBadRequest   = `Bearer realm="fhir", error="invalid_request"`
)

// bearer is the bearer-token middleware: the token comes only from one
// "Authorization: Bearer" header; a request without one gets 401 with a
// bare Bearer challenge, one whose token v refuses gets 401 with
// error="invalid_token", and one that sends a token in the query string
// (access_token=, which leaks into logs and Referer headers) gets 401 with
// error="invalid_request" even when a header is sent too. A verified
// caller is put in the request context (CallerFrom), with the server's
// access policy and the request's tenant.
func (h *Handler) bearer(v TokenVerifier) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			deny := func(challenge, msg string) {
				w.Header().Set("WWW-Authenticate", challenge)
				h.writeError(w, r, fhir.Errorf(fhir.KindUnauthorized, "%s", msg))
			}
			if _, ok := r.URL.Query()["access_token"]; ok {
				deny(challengeBadRequest, "access tokens are accepted only in the Authorization header")
				return
			}
			hdrs := r.Header.Values("Authorization")
			if len(hdrs) == 0 {
				deny(challengeNoToken, "this request needs an access token (Authorization: Bearer)")
				return
			}
			if len(hdrs) > 1 {
				deny(challengeBadRequest, "more than one Authorization header")
				return
			}
			scheme, raw, _ := strings.Cut(hdrs[0], " ")
			if !strings.EqualFold(scheme, "Bearer") {
				deny(challengeNoToken, "this request needs an access token (Authorization: Bearer)")
				return
			}
			raw = strings.TrimSpace(raw)
			if raw == "" || strings.ContainsAny(raw, " \t") {
				deny(challengeInvalidToken, "the access token is missing or malformed")
				return
			}
			caller, err := v.Verify(r.Context(), raw)
			switch {
			case err == nil && caller != nil:
			case err == nil || errors.Is(err, ErrInvalidToken) || fhir.KindOf(err) == fhir.KindUnauthorized:
				// The reason stays in the debug log: the client learns only
				// that the token is not accepted.
				h.log.DebugContext(r.Context(), "token refused", "request_id", requestIDFrom(r.Context()), "error", err)
				deny(challengeInvalidToken, "the access token is invalid or expired")
				return
			default:
				h.writeError(w, r, err)
				return
			}
			// A copy: the verifier may hand out cached callers. The copy
			// carries the access policy and the tenant the token is used
			// on, so that every decision made for it (caller.Decide) applies
			// both.
			c := *caller
			c.Access = h.policy
			c.Tenant = h.tenantFrom(r.Context()).name
			next.ServeHTTP(w, r.WithContext(withCaller(r.Context(), &c)))
		})
	}
}
