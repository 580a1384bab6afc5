package oauth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"

	"github.com/fhirserver/fhirserver/store"
)

// tokenStrategy issues access tokens as ES256 JWTs (typ at+jwt) and keeps
// fosite's HMAC tokens for refresh tokens and codes. An access token's
// "signature" (its storage key) is its jti.
type tokenStrategy struct {
	p *Provider
	*oauth2.HMACSHAStrategyUnPrefixed
}

var _ oauth2.CoreStrategy = (*tokenStrategy)(nil)

func newJTI() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// AccessTokenSignature returns the jti of a token (unverified).
func (s *tokenStrategy) AccessTokenSignature(ctx context.Context, token string) string {
	var c accessClaims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &c); err != nil {
		return ""
	}
	return c.JTI
}

// GenerateAccessToken signs the access token of a request.
func (s *tokenStrategy) GenerateAccessToken(ctx context.Context, r fosite.Requester) (string, string, error) {
	p := s.p
	sess := sessionOf(r)
	now := p.now()
	exp := sess.GetExpiresAt(fosite.AccessToken)
	if exp.IsZero() {
		exp = now.Add(p.cfg.AccessTokenTTL)
	}
	sub := sess.GetSubject()
	if sub == "" {
		sub = r.GetClient().GetID()
	}
	c := accessClaims{
		Issuer: p.base, Subject: sub, Audience: p.fhirBase,
		ExpiresAt: jwt.NewNumericDate(exp), IssuedAt: jwt.NewNumericDate(now), JTI: newJTI(),
		Scope: strings.Join(r.GetGrantedScopes(), " "), ClientID: r.GetClient().GetID(),
		FHIRUser: sess.FHIRUser, Patient: sess.Patient, Encounter: sess.Encounter,
	}
	token, err := p.signAccess(ctx, &c)
	if err != nil {
		return "", "", err
	}
	return token, c.JTI, nil
}

// ValidateAccessToken verifies a token as the resource server would.
func (s *tokenStrategy) ValidateAccessToken(ctx context.Context, _ fosite.Requester, token string) error {
	_, err := s.p.verifier.Verify(ctx, token)
	return err
}

// signAccess signs access-token claims with the current ES256 key.
func (p *Provider) signAccess(ctx context.Context, c *accessClaims) (string, error) {
	snap, err := p.keys.snapshot(ctx)
	if err != nil {
		return "", err
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	t.Header["typ"] = "at+jwt"
	t.Header["kid"] = snap.accessKID
	return t.SignedString(snap.access)
}

// smartScopes runs before the grant handlers: a client_credentials request
// without scope asks for the client's registered scopes, and v1 scopes are
// asked for in v2 form as well, so that both are granted and recorded.
type smartScopes struct{ p *Provider }

func (h *smartScopes) CanHandleTokenEndpointRequest(ctx context.Context, r fosite.AccessRequester) bool {
	return r.GetGrantTypes().ExactOne("client_credentials")
}

func (h *smartScopes) CanSkipClientAuth(ctx context.Context, r fosite.AccessRequester) bool {
	return false
}

func (h *smartScopes) HandleTokenEndpointRequest(ctx context.Context, r fosite.AccessRequester) error {
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	requested := []string(r.GetRequestedScopes())
	if len(requested) == 0 {
		if c, ok := r.GetClient().(*client); ok {
			requested = strings.Fields(c.c.Scope)
		}
	}
	for _, s := range requested {
		if sc, ok := parseScope(s); ok && sc.context != "system" {
			return fosite.ErrInvalidScope.WithHintf("Scope %q needs a user or a patient; client_credentials grants system/ scopes.", s)
		}
	}
	r.SetRequestedScopes(normalizeScopes(requested))
	return nil
}

func (h *smartScopes) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	return fosite.ErrUnknownRequest
}

// smartContext runs after the grant handlers: a client_credentials request
// is granted the scopes fosite checked, a refresh request may narrow its
// scopes, and the token response carries the SMART launch context.
type smartContext struct{ p *Provider }

func (h *smartContext) CanHandleTokenEndpointRequest(ctx context.Context, r fosite.AccessRequester) bool {
	return r.GetGrantTypes().ExactOne("refresh_token") || r.GetGrantTypes().ExactOne("client_credentials")
}

func (h *smartContext) CanSkipClientAuth(ctx context.Context, r fosite.AccessRequester) bool {
	return false
}

func (h *smartContext) HandleTokenEndpointRequest(ctx context.Context, r fosite.AccessRequester) error {
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	if r.GetGrantTypes().ExactOne("client_credentials") {
		for _, s := range r.GetRequestedScopes() {
			r.GrantScope(s)
		}
		r.GrantAudience(h.p.fhirBase)
		return nil
	}
	asked := strings.Fields(r.GetRequestForm().Get("scope"))
	if len(asked) == 0 {
		return nil
	}
	granted := []string(r.GetGrantedScopes())
	for _, s := range asked {
		if !scopeCovered(granted, s) {
			return fosite.ErrInvalidScope.WithHintf("Scope %q was not granted to the refresh token.", s)
		}
	}
	ar, ok := r.(*fosite.AccessRequest)
	if !ok {
		return fosite.ErrServerError.WithDebug("unexpected access request type")
	}
	narrowed := normalizeScopes(asked)
	// Keep the refresh token usable: the scope that allows refreshing stays.
	for _, s := range []string{"offline_access", "online_access"} {
		if granted := ar.GrantedScope; granted.Has(s) {
			narrowed = appendOnce(narrowed, s)
		}
	}
	ar.GrantedScope = fosite.Arguments(narrowed)
	return nil
}

func (h *smartContext) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	if resp.GetAccessToken() == "" {
		return fosite.ErrUnknownRequest
	}
	resp.SetTokenType("Bearer")
	sess := sessionOf(r)
	if sess.Patient != "" {
		resp.SetExtra("patient", sess.Patient)
		resp.SetExtra("need_patient_banner", sess.NeedPatientBanner)
	}
	if sess.Encounter != "" {
		resp.SetExtra("encounter", sess.Encounter)
	}
	if sess.SmartStyleURL != "" {
		resp.SetExtra("smart_style_url", sess.SmartStyleURL)
	}
	if sess.FHIRUser != "" && r.GetGrantedScopes().Has("fhirUser") {
		resp.SetExtra("fhirUser", sess.FHIRUser)
	}
	return nil
}

// revoker is the revocation handler (RFC 7009): a refresh token revokes its
// whole family (refresh tokens and access tokens of the grant); an access
// token is put on the revocation list until it expires. Tokens of other
// clients and unknown tokens are ignored (the endpoint answers 200).
type revoker struct{ p *Provider }

func (h *revoker) RevokeToken(ctx context.Context, token string, hint fosite.TokenType, c fosite.Client) error {
	p := h.p
	if strings.Count(token, ".") != 2 { // not a JWT: a refresh token
		t, err := p.store.GetToken(ctx, store.TokenRefresh, p.hmac.RefreshTokenSignature(ctx, token))
		if err != nil || t.Tenant != p.cfg.Tenant {
			return nil
		}
		if t.ClientID != c.GetID() {
			return fosite.ErrUnauthorizedClient
		}
		return p.fstore.apply(ctx, store.OAuthTokenChanges{RevokeFamilies: []string{t.RequestID}})
	}
	claims, err := p.parseOwnToken(ctx, token)
	if err != nil {
		return nil
	}
	if claims.ClientID != c.GetID() {
		return fosite.ErrUnauthorizedClient
	}
	return p.fstore.apply(ctx, store.OAuthTokenChanges{Revoke: []store.Revocation{{JTI: claims.JTI, ExpiresAt: claims.ExpiresAt.Time.Add(p.cfg.Leeway)}}})
}

// parseOwnToken checks the signature and issuer of one of our access
// tokens, ignoring expiry and revocation.
func (p *Provider) parseOwnToken(ctx context.Context, raw string) (*accessClaims, error) {
	var c accessClaims
	_, err := jwt.NewParser(jwt.WithValidMethods([]string{"ES256", "RS256"}), jwt.WithIssuer(p.base), jwt.WithoutClaimsValidation()).
		ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
			kid, _ := t.Header["kid"].(string)
			k, err := p.keys.lookup(ctx, kid)
			if err != nil {
				return nil, err
			}
			if k.alg != t.Method.Alg() {
				return nil, errors.New("algorithm mismatch")
			}
			return k.key, nil
		})
	if err != nil {
		return nil, err
	}
	if c.Issuer != p.base || c.JTI == "" || c.ExpiresAt == nil {
		return nil, errors.New("not one of our access tokens")
	}
	return &c, nil
}

// tokenResponse is a token endpoint answer written by us (B/fhir/login).
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	Scope        string `json:"scope"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Patient      string `json:"patient,omitempty"`
	FHIRUser     string `json:"fhirUser,omitempty"`
}

func (t tokenResponse) json() []byte {
	b, _ := json.Marshal(t)
	return b
}

// expiresIn is the whole seconds until exp.
func expiresIn(exp, now time.Time) int64 {
	d := exp.Sub(now).Round(time.Second)
	if d < 0 {
		return 0
	}
	return int64(d / time.Second)
}
