package oauth

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/ory/fosite"

	"github.com/fhirserver/fhirserver/store"
)

// cors lets browser apps (public SMART clients) call the discovery, JWKS
// and token endpoints from another origin. No cookies are involved there.
func cors(w http.ResponseWriter, r *http.Request) bool {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	if r.Method == http.MethodOptions {
		h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// scopesSupported lists example scopes for discovery.
var scopesSupported = []string{
	"openid", "fhirUser", "launch", "launch/patient", "launch/encounter", "offline_access", "online_access",
	"patient/*.rs", "patient/*.cruds", "user/*.rs", "user/*.cruds", "system/*.rs", "system/*.cruds",
	"patient/*.read", "patient/*.write", "user/*.read", "user/*.write", "system/*.read", "system/*.write",
}

var authMethods = []string{"client_secret_basic", "client_secret_post", "private_key_jwt"}

// smartConfiguration serves B/fhir/.well-known/smart-configuration.
func (p *Provider) smartConfiguration(w http.ResponseWriter, r *http.Request) {
	if cors(w, r) {
		return
	}
	e := p.Endpoints()
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                p.base,
		"jwks_uri":                              e.JWKS,
		"authorization_endpoint":                e.Authorize,
		"token_endpoint":                        e.Token,
		"introspection_endpoint":                e.Introspect,
		"revocation_endpoint":                   e.Revoke,
		"grant_types_supported":                 []string{"authorization_code", "refresh_token", "client_credentials"},
		"token_endpoint_auth_methods_supported": authMethods,
		"token_endpoint_auth_signing_alg_values_supported": []string{"RS384", "ES384"},
		"scopes_supported":                 scopesSupported,
		"response_types_supported":         []string{"code"},
		"code_challenge_methods_supported": []string{"S256"},
		"capabilities":                     p.capabilities(),
	})
}

// capabilities are the SMART capabilities of this server.
func (p *Provider) capabilities() []string {
	c := []string{
		"launch-ehr", "launch-standalone", "authorize-post",
		"client-public", "client-confidential-symmetric", "client-confidential-asymmetric",
		"context-ehr-patient", "context-ehr-encounter", "context-standalone-patient", "context-banner",
		"permission-offline", "permission-online", "permission-patient", "permission-user",
		"permission-v1", "permission-v2", "sso-openid-connect",
	}
	if p.cfg.SmartStyleURL != "" {
		c = append(c, "context-style")
	}
	return c
}

// openIDConfiguration serves B/.well-known/openid-configuration.
func (p *Provider) openIDConfiguration(w http.ResponseWriter, r *http.Request) {
	if cors(w, r) {
		return
	}
	e := p.Endpoints()
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                           p.base,
		"jwks_uri":                                         e.JWKS,
		"authorization_endpoint":                           e.Authorize,
		"token_endpoint":                                   e.Token,
		"introspection_endpoint":                           e.Introspect,
		"revocation_endpoint":                              e.Revoke,
		"response_types_supported":                         []string{"code"},
		"response_modes_supported":                         []string{"query"},
		"grant_types_supported":                            []string{"authorization_code", "refresh_token", "client_credentials"},
		"subject_types_supported":                          []string{"public"},
		"id_token_signing_alg_values_supported":            []string{"RS256"},
		"token_endpoint_auth_methods_supported":            authMethods,
		"token_endpoint_auth_signing_alg_values_supported": []string{"RS384", "ES384"},
		"scopes_supported":                                 scopesSupported,
		"claims_supported":                                 []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "fhirUser"},
		"code_challenge_methods_supported":                 []string{"S256"},
		"request_parameter_supported":                      false,
	})
}

// jwksDocument serves the public keys: the current and still-needed ES256
// access-token keys and RS256 id_token keys.
func (p *Provider) jwksDocument(w http.ResponseWriter, r *http.Request) {
	if cors(w, r) {
		return
	}
	snap, err := p.keys.snapshot(r.Context())
	if err != nil {
		p.internal(w, r, "loading keys", err)
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=60")
	_, _ = w.Write(snap.jwks)
}

// token is the token endpoint.
func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	if cors(w, r) {
		return
	}
	p.maybePurge()
	ctx := r.Context()
	w.Header().Set("Cache-Control", "no-store")
	if r.Method == http.MethodPost {
		switch g := r.PostFormValue("grant_type"); g {
		case "", "authorization_code", "refresh_token", "client_credentials":
		default:
			p.accessError(w, r, nil, fosite.ErrUnsupportedGrantType.WithHintf("The grant type %q is not supported.", g))
			return
		}
	}
	ar, err := p.fosite.NewAccessRequest(ctx, r, newSession(p.cfg.Tenant))
	if err != nil {
		p.accessError(w, r, ar, err)
		return
	}
	resp, err := p.fosite.NewAccessResponse(ctx, ar)
	if err != nil {
		p.accessError(w, r, ar, err)
		return
	}
	p.fosite.WriteAccessResponse(ctx, w, ar, resp)
}

// accessError writes an RFC 6749 error, logging server errors.
func (p *Provider) accessError(w http.ResponseWriter, r *http.Request, ar fosite.AccessRequester, err error) {
	rfc := fosite.ErrorToRFC6749Error(err)
	if rfc.CodeField >= 500 {
		p.cfg.Logger.ErrorContext(r.Context(), "token endpoint failed", "error", rfc.WithExposeDebug(true).GetDescription(), "cause", errors.Unwrap(rfc))
	}
	if ar == nil {
		ar = fosite.NewAccessRequest(newSession(p.cfg.Tenant))
	}
	p.fosite.WriteAccessError(r.Context(), w, ar, err)
}

// introspect is the introspection endpoint (RFC 7662). The caller
// authenticates as a client (like at the token endpoint); a client may
// introspect the tokens issued to it, and a client registered with scope
// "introspect" any token of its tenant. Others' tokens, unknown, expired
// and revoked tokens are {"active": false}.
func (p *Provider) introspect(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	if r.Method != http.MethodPost {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "invalid_request", "error_description": "use POST"})
		return
	}
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "the body is not a form"})
		return
	}
	ctx := r.Context()
	c, err := p.authenticateClient(ctx, r, r.PostForm)
	if err == nil && c.IsPublic() {
		err = fosite.ErrInvalidClient.WithHint("Public clients cannot introspect tokens.")
	}
	if err != nil {
		rfc := fosite.ErrorToRFC6749Error(err)
		if rfc.CodeField >= 500 {
			p.internal(w, r, "authenticating a client", err)
			return
		}
		if _, _, basic := r.BasicAuth(); basic {
			w.Header().Set("WWW-Authenticate", `Basic realm="oauth"`)
		}
		writeJSON(w, rfc.CodeField, map[string]string{"error": rfc.ErrorField, "error_description": rfc.GetDescription()})
		return
	}
	token := r.PostForm.Get("token")
	if token == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "token is required"})
		return
	}
	mayAll := false
	if cl, ok := c.(*client); ok {
		mayAll = cl.scopes.Has("introspect")
	}
	inactive := map[string]any{"active": false}
	if strings.Count(token, ".") == 2 {
		claims, err := p.verifier.Verify(ctx, token)
		if err != nil {
			writeJSON(w, http.StatusOK, inactive)
			return
		}
		if claims.ClientID != c.GetID() && !mayAll {
			writeJSON(w, http.StatusOK, inactive)
			return
		}
		out := map[string]any{
			"active": true, "token_type": "Bearer", "scope": claims.Scope, "client_id": claims.ClientID,
			"sub": claims.Subject, "aud": claims.Audience, "iss": claims.Issuer, "jti": claims.JTI,
			"exp": claims.ExpiresAt.Unix(), "iat": claims.IssuedAt.Unix(),
		}
		for k, v := range map[string]string{"fhirUser": claims.FHIRUser, "patient": claims.Patient, "encounter": claims.Encounter} {
			if v != "" {
				out[k] = v
			}
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	req, err := p.fstore.GetRefreshTokenSession(ctx, p.hmac.RefreshTokenSignature(ctx, token), newSession(p.cfg.Tenant))
	if err != nil {
		writeJSON(w, http.StatusOK, inactive)
		return
	}
	sess := sessionOf(req)
	exp := sess.GetExpiresAt(fosite.RefreshToken)
	if (req.GetClient().GetID() != c.GetID() && !mayAll) || (!exp.IsZero() && !exp.After(p.now())) {
		writeJSON(w, http.StatusOK, inactive)
		return
	}
	out := map[string]any{
		"active": true, "token_type": "refresh_token", "scope": strings.Join(req.GetGrantedScopes(), " "),
		"client_id": req.GetClient().GetID(), "sub": sess.GetSubject(), "iss": p.base, "aud": p.fhirBase,
		"iat": req.GetRequestedAt().Unix(),
	}
	if !exp.IsZero() {
		out["exp"] = exp.Unix()
	}
	for k, v := range map[string]string{"fhirUser": sess.FHIRUser, "patient": sess.Patient, "encounter": sess.Encounter} {
		if v != "" {
			out[k] = v
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// revoke is the revocation endpoint (RFC 7009).
func (p *Provider) revoke(w http.ResponseWriter, r *http.Request) {
	if cors(w, r) {
		return
	}
	ctx := r.Context()
	err := p.fosite.NewRevocationRequest(ctx, r)
	if err != nil && fosite.ErrorToRFC6749Error(err).CodeField >= 500 {
		p.cfg.Logger.ErrorContext(ctx, "revocation failed", "error", err)
	}
	p.fosite.WriteRevocationResponse(ctx, w, err)
}

// internal answers 500 and logs the cause (never shown to the client).
func (p *Provider) internal(w http.ResponseWriter, r *http.Request, doing string, err error) {
	p.cfg.Logger.ErrorContext(r.Context(), "oauth: "+doing, "error", err)
	writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
}

// revokeFamilyOf revokes the grant an access token belongs to (when it has
// one) and the token itself.
func (p *Provider) revokeFamilyOf(r *http.Request, c *accessClaims) error {
	ctx := r.Context()
	ch := store.OAuthTokenChanges{Revoke: []store.Revocation{{JTI: c.JTI, ExpiresAt: c.ExpiresAt.Time.Add(p.cfg.Leeway)}}}
	if t, err := p.store.GetToken(ctx, store.TokenAccess, c.JTI); err == nil && t.RequestID != "" {
		ch.RevokeFamilies = []string{t.RequestID}
	}
	return p.fstore.apply(ctx, ch)
}
