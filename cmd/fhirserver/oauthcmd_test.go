package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alecthomas/kong"

	"github.com/fhirserver/fhirserver/oauth"
	"github.com/fhirserver/fhirserver/store/sqlite"
)

// oauthCommands are the commands of user.go, client.go, launch.go,
// token.go and keys.go, as the cli struct mounts them.
type oauthCommands struct {
	User   userCmd   `cmd:""`
	Client clientCmd `cmd:""`
	Launch launchCmd `cmd:""`
	Token  tokenCmd  `cmd:""`
	Keys   keysCmd   `cmd:""`
}

// runOAuthCmd runs one of those commands against a database and returns
// stdout, stderr and the exit status run would give.
func runOAuthCmd(t *testing.T, dbURL string, args ...string) (string, string, int) {
	t.Helper()
	var cmds oauthCommands
	var stdout, stderr bytes.Buffer
	parser, err := kong.New(&cmds, kong.Writers(&stdout, &stderr), kong.Exit(func(int) {}))
	if err != nil {
		t.Fatal(err)
	}
	kctx, err := parser.Parse(args)
	if err != nil {
		return stdout.String(), err.Error(), 2
	}
	e := &env{ctx: context.Background(), stdout: &stdout, stderr: &stderr, cli: &cli{DatabaseURL: dbURL},
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := kctx.Run(e); err != nil {
		var u usageError
		if errors.As(err, &u) {
			return stdout.String(), err.Error(), 2
		}
		return stdout.String(), err.Error(), 1
	}
	return stdout.String(), stderr.String(), 0
}

func TestOAuthCommands(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fhir.db")
	db := "sqlite:" + path
	ok := func(args ...string) string {
		t.Helper()
		out, errOut, code := runOAuthCmd(t, db, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		return out
	}
	fails := func(code int, args ...string) {
		t.Helper()
		if _, errOut, got := runOAuthCmd(t, db, args...); got != code {
			t.Fatalf("%v: exit %d, want %d (%s)", args, got, code, errOut)
		}
	}

	out := ok("client", "create", "--id", "backend", "--generate-secret", "--scope", "system/*.rs", "--grant-type", "client_credentials")
	if !strings.Contains(out, "client secret (shown once): ") {
		t.Fatalf("no secret printed: %q", out)
	}
	ok("client", "create", "--id", "app", "--public", "--redirect-uri", "http://localhost/cb", "--redirect-uri", "https://app.example/cb")
	ok("client", "create", "--id", "legacy", "--secret", "a-shared-secret", "--grant-type", "client_credentials,authorization_code", "--redirect-uri", "https://x/cb")
	fails(2, "client", "create", "--id", "backend", "--generate-secret")            // exists
	fails(2, "client", "create", "--id", "x", "--public", "--secret", "s")          // two kinds
	fails(2, "client", "create", "--id", "x")                                       // no kind
	fails(2, "client", "create", "--id", "x", "--public")                           // no redirect URI
	fails(2, "client", "create", "--id", "x", "--generate-secret", "--scope", "p*") // bad scope
	fails(2, "client", "create", "--id", "login", "--generate-secret", "--grant-type", "client_credentials")
	list := ok("client", "list")
	for _, want := range []string{"backend", "app", "legacy", "public", "client_secret"} {
		if !strings.Contains(list, want) {
			t.Fatalf("client list lacks %q:\n%s", want, list)
		}
	}
	out = ok("client", "rotate-secret", "--id", "backend")
	if !strings.Contains(out, "client secret") {
		t.Fatalf("rotate-secret: %q", out)
	}
	fails(2, "client", "rotate-secret", "--id", "app")
	ok("client", "delete", "--id", "legacy")
	fails(2, "client", "delete", "--id", "legacy")

	ok("user", "create", "--username", "alice", "--password", "correct horse", "--fhir-user", "Patient/p1")
	ok("user", "create", "--username", "doc", "--password", "stethoscope", "--fhir-user", "Practitioner/d1", "--scope", "user/*.rs", "--bcrypt-cost", "4")
	fails(2, "user", "create", "--username", "alice", "--password", "again")
	fails(2, "user", "create", "--username", "x", "--password", "p", "--fhir-user", "Observation/1")
	fails(2, "user", "create", "--username", "y", "--password", "p", "--scope", "nonsense")
	if l := ok("user", "list"); !strings.Contains(l, "alice") || !strings.Contains(l, "Practitioner/d1") {
		t.Fatalf("user list:\n%s", l)
	}

	launch := strings.TrimSpace(ok("launch", "create", "--patient", "p1", "--encounter", "e1", "--user", "doc"))
	if len(launch) < 40 {
		t.Fatalf("launch value %q", launch)
	}
	fails(2, "launch", "create", "--patient", "p1", "--user", "nobody")
	fails(2, "launch", "create", "--patient", "not an id!")

	tok := strings.TrimSpace(ok("token", "create", "--client-id", "backend", "--scope", "system/Patient.rs", "--patient", "p1", "--base-url", "http://fhir.example", "--ttl", "10m"))
	fails(2, "token", "create", "--client-id", "backend", "--scope", "system/*.cruds", "--base-url", "http://fhir.example")
	fails(2, "token", "create", "--client-id", "nobody", "--scope", "system/*.rs")
	fails(2, "token", "create", "--client-id", "backend", "--scope", "system/*.rs", "--not-before", "tomorrow")
	nbf := strings.TrimSpace(ok("token", "create", "--client-id", "backend", "--scope", "system/*.rs", "--base-url", "http://fhir.example", "--not-before", "10m"))

	out = ok("keys", "rotate")
	if !strings.Contains(out, "new signing keys") {
		t.Fatalf("keys rotate: %q", out)
	}

	// What the commands stored works with a provider on the same database.
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p, err := oauth.New(oauth.Config{BaseURL: "http://fhir.example"}, st)
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.Verifier().Verify(context.Background(), tok)
	if err != nil {
		t.Fatalf("minted token (signed before the rotation) does not verify: %v", err)
	}
	if c.ClientID != "backend" || c.Patient != "p1" || c.Scope != "system/Patient.rs" || c.ExpiresAt.Sub(c.IssuedAt).Minutes() != 10 {
		t.Fatalf("minted claims %+v", c)
	}
	if _, err := p.Verifier().Verify(context.Background(), nbf); !errors.Is(err, oauth.ErrInvalidToken) {
		t.Fatalf("a token not valid for 10 minutes verifies: %v", err)
	}
}

func TestSeedDemoAuth(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "fhir.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for range 2 { // the second start changes nothing
		var out bytes.Buffer
		e := &env{ctx: context.Background(), stdout: &out, stderr: io.Discard, cli: &cli{}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		if err := seedDemoAuth(e, st, "http://localhost:8080"); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "curl -u alberto:"+demoPassword+" http://localhost:8080/fhir/login") || !strings.Contains(out.String(), "launch=") {
			t.Fatalf("demo output:\n%s", out.String())
		}
	}
	users, err := st.ListUsers(context.Background(), "")
	if err != nil || len(users) != len(demoUsers) {
		t.Fatalf("demo users %v %v", users, err)
	}
	if _, err := st.GetClient(context.Background(), "", "demo-app"); err != nil {
		t.Fatal(err)
	}
}
