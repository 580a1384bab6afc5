package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/fhirserver/fhirserver/oauth"
	"github.com/fhirserver/fhirserver/store"
)

// clientCmd manages OAuth clients.
type clientCmd struct {
	Create       clientCreateCmd       `cmd:"" help:"Register an OAuth client."`
	List         clientListCmd         `cmd:"" help:"List clients."`
	Delete       clientDeleteCmd       `cmd:"" help:"Remove a client."`
	RotateSecret clientRotateSecretCmd `cmd:"" name:"rotate-secret" help:"Give a confidential client a new generated secret."`
}

type clientCreateCmd struct {
	ID             string   `name:"id" required:"" help:"Client id."`
	Secret         string   `name:"secret" env:"FHIR_CLIENT_SECRET" help:"Client secret (confidential client; prefer --generate-secret)." xor:"auth"`
	GenerateSecret bool     `name:"generate-secret" help:"Generate a secret and print it (confidential client)." xor:"auth"`
	Public         bool     `name:"public" help:"Public client (no secret; PKCE required)." xor:"auth"`
	JWKSURL        string   `name:"jwks-url" help:"URL of the client's JSON Web Key Set (private_key_jwt)." xor:"auth"`
	JWKSFile       string   `name:"jwks-file" help:"File with the client's JSON Web Key Set (private_key_jwt)." xor:"auth" type:"existingfile"`
	RedirectURIs   []string `name:"redirect-uri" help:"Allowed redirect URI (repeatable)."`
	Scope          string   `name:"scope" help:"Space-separated scopes the client may be granted."`
	GrantTypes     []string `name:"grant-type" help:"authorization_code, refresh_token or client_credentials (repeatable; default by kind)."`
}

func (c *clientCreateCmd) Run(e *env) error {
	spec := oauth.ClientSpec{
		Tenant: store.DefaultTenant, ID: c.ID, Secret: c.Secret, GenerateSecret: c.GenerateSecret, Public: c.Public,
		JWKSURL: c.JWKSURL, RedirectURIs: c.RedirectURIs, Scope: c.Scope, GrantTypes: splitEach(c.GrantTypes),
	}
	if c.JWKSFile != "" {
		b, err := os.ReadFile(c.JWKSFile)
		if err != nil {
			return usageError{err}
		}
		spec.JWKS = string(b)
	}
	if spec.Secret == "" && !spec.GenerateSecret && !spec.Public && spec.JWKS == "" && spec.JWKSURL == "" {
		return usageError{fmt.Errorf("give one of --secret, --generate-secret, --public, --jwks-url, --jwks-file")}
	}
	if c.Secret != "" && len(c.Secret) < 32 {
		fmt.Fprintln(e.stderr, "warning: secrets shorter than 32 characters are guessable; --generate-secret makes a strong one")
	}
	st, err := openOAuthStore(e)
	if err != nil {
		return err
	}
	defer st.Close()
	secret, err := oauth.RegisterClient(e.ctx, st, spec)
	if err != nil {
		return usageOrFail(err)
	}
	fmt.Fprintf(e.stdout, "client %s created\n", c.ID)
	if secret != "" {
		fmt.Fprintf(e.stdout, "client secret (shown once): %s\n", secret)
	}
	return nil
}

// splitEach accepts both repeated flags and comma- or space-separated lists.
func splitEach(in []string) []string {
	var out []string
	for _, s := range in {
		out = append(out, strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })...)
	}
	return out
}

type clientListCmd struct{}

func (clientListCmd) Run(e *env) error {
	st, err := openOAuthStore(e)
	if err != nil {
		return err
	}
	defer st.Close()
	clients, err := st.ListClients(e.ctx, store.DefaultTenant)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAUTH\tGRANTS\tSCOPE\tREDIRECT URIS")
	for _, c := range clients {
		auth := "client_secret"
		switch {
		case c.Public:
			auth = "public"
		case c.JWKS != "" || c.JWKSURL != "":
			auth = "private_key_jwt"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.ID, auth, strings.Join(c.GrantTypes, ","), c.Scope, strings.Join(c.RedirectURIs, " "))
	}
	return tw.Flush()
}

type clientDeleteCmd struct {
	ID string `name:"id" required:"" help:"Client id."`
}

func (c *clientDeleteCmd) Run(e *env) error {
	st, err := openOAuthStore(e)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.DeleteClient(e.ctx, store.DefaultTenant, c.ID); err != nil {
		return usageOrFail(err)
	}
	fmt.Fprintf(e.stdout, "client %s deleted\n", c.ID)
	return nil
}

type clientRotateSecretCmd struct {
	ID string `name:"id" required:"" help:"Client id."`
}

func (c *clientRotateSecretCmd) Run(e *env) error {
	st, err := openOAuthStore(e)
	if err != nil {
		return err
	}
	defer st.Close()
	secret, err := oauth.RotateClientSecret(e.ctx, st, store.DefaultTenant, c.ID)
	if err != nil {
		return usageOrFail(err)
	}
	fmt.Fprintf(e.stdout, "client secret (shown once): %s\n", secret)
	return nil
}
