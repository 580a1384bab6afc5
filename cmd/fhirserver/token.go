package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/fhirserver/fhirserver/oauth"
)

// tokenCmd mints access tokens for operators and scripts.
type tokenCmd struct {
	Create tokenCreateCmd `cmd:"" help:"Mint an access token for a registered client and print it."`
}

type tokenCreateCmd struct {
	ClientID  string        `name:"client-id" required:"" help:"Registered client the token is for."`
	Scope     string        `name:"scope" required:"" help:"Space-separated scopes (within the client's registration)."`
	Patient   string        `name:"patient" help:"Patient id of the token's launch context."`
	TTL       time.Duration `name:"ttl" default:"1h" help:"Lifetime of the token."`
	NotBefore string        `name:"not-before" help:"Time before which the token is not valid (RFC 3339, or a duration from now)."`
	BaseURL   string        `name:"base-url" env:"FHIR_BASE_URL" default:"http://localhost:8080" help:"Public base URL B of the server (the token's issuer)."`
}

func (c *tokenCreateCmd) Run(e *env) error {
	var nbf time.Time
	if s := strings.TrimSpace(c.NotBefore); s != "" {
		if d, err := time.ParseDuration(strings.TrimPrefix(s, "+")); err == nil {
			nbf = time.Now().Add(d)
		} else if t, err := time.Parse(time.RFC3339, s); err == nil {
			nbf = t
		} else {
			return usageError{fmt.Errorf("--not-before %q is neither an RFC 3339 time nor a duration", s)}
		}
	}
	if c.TTL <= 0 {
		return usageError{fmt.Errorf("--ttl must be positive")}
	}
	st, err := openOAuthStore(e)
	if err != nil {
		return err
	}
	defer st.Close()
	p, err := oauth.New(oauth.Config{BaseURL: c.BaseURL, Logger: e.log}, st)
	if err != nil {
		return usageOrFail(err)
	}
	tok, _, err := p.MintToken(e.ctx, oauth.MintRequest{ClientID: c.ClientID, Scope: c.Scope, Patient: c.Patient, TTL: c.TTL, NotBefore: nbf})
	if err != nil {
		return usageOrFail(err)
	}
	fmt.Fprintln(e.stdout, tok)
	return nil
}
