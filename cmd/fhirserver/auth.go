package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/fhirserver/fhirserver/authz"
	"github.com/fhirserver/fhirserver/oauth"
	"github.com/fhirserver/fhirserver/server"
	"github.com/fhirserver/fhirserver/store"
)

// tokenVerifier adapts the authorization server's verifier, and the
// verifier of trusted external issuers (nil when there are none), to the
// resource server: a token whose iss is a trusted issuer goes to ext, any
// other to own; oauth claims become an authz.Caller, and a bad token
// becomes server.ErrInvalidToken (401) while anything else stays internal
// (500).
type tokenVerifier struct {
	own *oauth.Verifier
	ext *oauth.ExternalVerifier
}

func (t tokenVerifier) Verify(ctx context.Context, raw string) (*authz.Caller, error) {
	verify, external := t.own.Verify, t.ext.Trusts(raw)
	if external {
		verify = t.ext.Verify
	}
	c, err := verify(ctx, raw)
	if errors.Is(err, oauth.ErrInvalidToken) {
		return nil, fmt.Errorf("%w: %v", server.ErrInvalidToken, err)
	}
	if err != nil {
		return nil, err
	}
	caller := &authz.Caller{ClientID: c.ClientID, Subject: c.Subject, Scopes: c.Scopes, Patient: c.Patient}
	if external {
		caller.Issuer = c.Issuer
	}
	caller.FHIRUserType, caller.FHIRUserID, _ = authz.ParseFHIRUser(c.FHIRUser)
	return caller, nil
}

// parseTrustedIssuers reads --trusted-issuer values, ISSUER=JWKS_URL (split
// at the first "=", since a JWKS URL may have a query). Our own issuer
// cannot be one: its tokens are verified against our keys and revocation
// list.
func parseTrustedIssuers(values []string, ownIssuer string) ([]oauth.TrustedIssuer, error) {
	var out []oauth.TrustedIssuer
	for _, v := range values {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		iss, jwks, ok := strings.Cut(v, "=")
		if !ok || iss == "" || jwks == "" {
			return nil, fmt.Errorf("--trusted-issuer %q: give ISSUER=JWKS_URL", v)
		}
		if strings.TrimRight(iss, "/") == strings.TrimRight(ownIssuer, "/") {
			return nil, fmt.Errorf("--trusted-issuer %q: that is this server's own issuer", v)
		}
		out = append(out, oauth.TrustedIssuer{Issuer: iss, JWKSURL: jwks})
	}
	return out, nil
}

// newExternalVerifier builds the verifier of the trusted issuers given to
// serve, or returns nil when there are none. Its JWKS refreshes stop when
// the command's context ends.
func newExternalVerifier(e *env, c *serveCmd) (*oauth.ExternalVerifier, error) {
	issuers, err := parseTrustedIssuers(c.TrustedIssuers, c.BaseURL)
	if err != nil {
		return nil, usageError{err}
	}
	if len(issuers) == 0 {
		return nil, nil
	}
	v, err := oauth.NewExternalVerifier(e.ctx, oauth.ExternalConfig{
		Audience: strings.TrimRight(c.BaseURL, "/") + "/fhir",
		Issuers:  issuers,
		Logger:   e.log,
	})
	if err != nil {
		return nil, usageError{err}
	}
	for _, ti := range issuers {
		e.log.Info("trusting an external issuer", "issuer", ti.Issuer, "jwks_url", ti.JWKSURL)
	}
	return v, nil
}

// newAuthServer builds the SMART authorization server on the store.
func newAuthServer(e *env, c *serveCmd, st store.Store) (*oauth.Provider, error) {
	ost, ok := st.(store.OAuthStore)
	if !ok {
		return nil, fmt.Errorf("the %T store keeps no OAuth data", st)
	}
	cfg := oauth.Config{BaseURL: c.BaseURL, AccessTokenTTL: c.TokenTTL, Logger: e.log, Reader: st, Patients: oauth.SearchDirectory(st)}
	p, err := oauth.New(cfg, ost)
	if err != nil {
		return nil, fmt.Errorf("starting the authorization server: %w", err)
	}
	if c.Demo {
		if err := seedDemoAuth(e, ost, c.BaseURL); err != nil {
			return nil, err
		}
	}
	return p, nil
}
