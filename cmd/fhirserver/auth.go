package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/fhirserver/fhirserver/authz"
	"github.com/fhirserver/fhirserver/oauth"
	"github.com/fhirserver/fhirserver/server"
	"github.com/fhirserver/fhirserver/store"
)

// tokenVerifier adapts the authorization server's verifier to the resource
// server: oauth claims become an authz.Caller, and a bad token becomes
// server.ErrInvalidToken (401) while anything else stays internal (500).
type tokenVerifier struct{ v *oauth.Verifier }

func (t tokenVerifier) Verify(ctx context.Context, raw string) (*authz.Caller, error) {
	c, err := t.v.Verify(ctx, raw)
	if errors.Is(err, oauth.ErrInvalidToken) {
		return nil, fmt.Errorf("%w: %v", server.ErrInvalidToken, err)
	}
	if err != nil {
		return nil, err
	}
	caller := &authz.Caller{ClientID: c.ClientID, Subject: c.Subject, Scopes: c.Scopes, Patient: c.Patient}
	caller.FHIRUserType, caller.FHIRUserID, _ = authz.ParseFHIRUser(c.FHIRUser)
	return caller, nil
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
