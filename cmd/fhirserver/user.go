package main

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"text/tabwriter"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/oauth"
	"github.com/fhirserver/fhirserver/store"
)

// userCmd manages the users who can log in (login page and B/fhir/login).
type userCmd struct {
	Create userCreateCmd `cmd:"" help:"Add a user who can log in."`
	List   userListCmd   `cmd:"" help:"List users."`
	Delete userDeleteCmd `cmd:"" help:"Remove a user."`
}

type userCreateCmd struct {
	Username string `name:"username" required:"" help:"Login name."`
	Password string `name:"password" required:"" env:"FHIR_USER_PASSWORD" help:"Password (hashed with bcrypt)."`
	FHIRUser string `name:"fhir-user" help:"The user's resource: Patient/ID, Practitioner/ID or RelatedPerson/ID."`
	Scope    string `name:"scope" help:"Space-separated scopes that cap what the user may be granted (default by --fhir-user kind)."`
	Cost     int    `name:"bcrypt-cost" default:"10" help:"bcrypt cost of the password hash."`
}

func (c *userCreateCmd) Run(e *env) error {
	st, err := openOAuthStore(e)
	if err != nil {
		return err
	}
	defer st.Close()
	if len(c.Password) < 8 {
		fmt.Fprintln(e.stderr, "warning: a password shorter than 8 characters is easy to guess")
	}
	err = oauth.RegisterUser(e.ctx, st, oauth.UserSpec{
		Tenant: store.DefaultTenant, Username: c.Username, Password: c.Password,
		FHIRUser: c.FHIRUser, Scope: c.Scope, Cost: c.Cost,
	})
	if err != nil {
		return usageOrFail(err)
	}
	fmt.Fprintf(e.stdout, "user %s created\n", c.Username)
	return nil
}

type userListCmd struct{}

func (userListCmd) Run(e *env) error {
	st, err := openOAuthStore(e)
	if err != nil {
		return err
	}
	defer st.Close()
	users, err := st.ListUsers(e.ctx, store.DefaultTenant)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USERNAME\tFHIR USER\tSCOPE")
	for _, u := range users {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", u.Username, u.FHIRUser, u.Scope)
	}
	return tw.Flush()
}

type userDeleteCmd struct {
	Username string `name:"username" required:"" help:"Login name."`
}

func (c *userDeleteCmd) Run(e *env) error {
	st, err := openOAuthStore(e)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.DeleteUser(e.ctx, store.DefaultTenant, c.Username); err != nil {
		return usageOrFail(err)
	}
	fmt.Fprintf(e.stdout, "user %s deleted\n", c.Username)
	return nil
}

// oauthStore is a store with the authorization server's tables.
type oauthStore interface {
	store.Store
	store.OAuthStore
}

// openOAuthStore opens (and migrates) the database of --database-url.
func openOAuthStore(e *env) (oauthStore, error) {
	st, err := openStore(e.ctx, e.cli.DatabaseURL, e.cli.FullText)
	if err != nil {
		return nil, err
	}
	os, ok := st.(oauthStore)
	if !ok {
		st.Close()
		return nil, fmt.Errorf("the %T store has no OAuth tables", st)
	}
	return os, nil
}

// usageOrFail makes errors the caller can fix by changing the command line
// (bad values, existing or missing names) exit with status 2.
func usageOrFail(err error) error {
	switch fhir.KindOf(err) {
	case fhir.KindConflict, fhir.KindNotFound, fhir.KindInvalid:
		return usageError{errors.New(fhir.MessageOf(err))}
	}
	return err
}

// demoPassword is the password of the demo users (serve --demo only).
const demoPassword = "demo-password"

// demoUsers bind users to patients and a practitioner of the demo data.
var demoUsers = []struct{ username, fhirUser string }{
	{"alberto", "Patient/4e8ed886-fd5f-40bb-8feb-f339b04d853a"},
	{"edward", "Patient/4ef9f896-10bc-4479-acd6-1153e7318f14"},
	{"luigi", "Patient/1ae0605d-e5b8-4d6d-a96d-c93dcbd57e06"},
	{"doctor", "Practitioner/90a218f2-1ad5-498d-a07c-7d40dfe04917"},
}

// demoRedirect is where the demo app's authorization answers go.
const demoRedirect = "http://localhost:8000/callback"

// seedDemoAuth registers the demo public app and the demo users (once;
// running it again changes nothing), creates an EHR launch context and
// prints how to get a token. serve --demo calls it.
func seedDemoAuth(e *env, st store.OAuthStore, base string) error {
	_, err := oauth.RegisterClient(e.ctx, st, oauth.ClientSpec{
		Tenant: store.DefaultTenant, ID: "demo-app", Public: true,
		RedirectURIs: []string{demoRedirect, "http://127.0.0.1:8000/callback"},
	})
	if err != nil && fhir.KindOf(err) != fhir.KindConflict {
		return fmt.Errorf("registering the demo app: %w", err)
	}
	for _, u := range demoUsers {
		err := oauth.RegisterUser(e.ctx, st, oauth.UserSpec{Tenant: store.DefaultTenant, Username: u.username, Password: demoPassword, FHIRUser: u.fhirUser})
		if err != nil && fhir.KindOf(err) != fhir.KindConflict {
			return fmt.Errorf("adding demo user %s: %w", u.username, err)
		}
	}
	launch, err := oauth.CreateLaunch(e.ctx, st, oauth.LaunchSpec{Tenant: store.DefaultTenant, Patient: demoUsers[0].fhirUser[len("Patient/"):], Username: "doctor"})
	if err != nil {
		return fmt.Errorf("creating the demo launch: %w", err)
	}
	// A fixed PKCE pair, for copying into a browser; real apps make their own.
	const verifier = "demo-verifier-demo-verifier-demo-verifier-0123"
	sum := sha256.Sum256([]byte(verifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])
	q := url.Values{
		"response_type": {"code"}, "client_id": {"demo-app"}, "redirect_uri": {demoRedirect},
		"scope": {"launch/patient openid fhirUser patient/*.rs offline_access"}, "state": {"demo-state-1"},
		"aud": {base + "/fhir"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"},
	}
	fmt.Fprintf(e.stdout, `demo users (password %q): alberto, edward, luigi (patients), doctor (practitioner)
  token:           curl -u alberto:%s %s/fhir/login
  standalone app:  %s/oauth/authorize?%s
                   (then: curl -d grant_type=authorization_code -d client_id=demo-app -d redirect_uri=%s -d code_verifier=%s -d code=CODE %s/oauth/token)
  EHR launch:      launch=%s iss=%s/fhir (for user doctor, patient alberto)
`, demoPassword, demoPassword, base, base, q.Encode(), demoRedirect, verifier, base, launch, base)
	return nil
}
