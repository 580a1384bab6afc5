package integration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/fhirserver/fhirserver/oauth"
	"github.com/fhirserver/fhirserver/store"
	"github.com/fhirserver/fhirserver/store/postgres"
	"github.com/fhirserver/fhirserver/store/sqlite"
)

// These tests drive the authorization server as SMART clients would. They
// use the built binary for everything it already does: its administration
// commands once they are mounted on the command line, and `serve --auth
// smart` once it serves the authorization server. Until then the same
// steps run on oauth.Provider in this process, on the same database.

// cliHas reports whether the binary has a command (it is mounted).
var cliHas = sync.OnceValues(func() (map[string]bool, error) {
	has := map[string]bool{}
	for _, c := range []string{"user", "client", "launch", "token", "keys"} {
		err := exec.Command(binary, c, "--help").Run()
		has[c] = err == nil
	}
	return has, nil
})

func hasCommand(name string) bool {
	has, _ := cliHas()
	return has[name]
}

// smart is a running authorization server on one database.
type smart struct {
	t        *testing.T
	base     string
	db       string
	binary   bool            // the built binary serves it
	provider *oauth.Provider // in-process fallback
	st       oauthStore      // the in-process store (fallback and admin)
}

type oauthStore interface {
	store.Store
	store.OAuthStore
}

func openOAuthStore(t *testing.T, dbURL string) oauthStore {
	t.Helper()
	var s oauthStore
	var err error
	if path, ok := strings.CutPrefix(dbURL, "sqlite:"); ok {
		s, err = sqlite.Open(context.Background(), path)
	} else {
		s, err = postgres.Open(context.Background(), dbURL)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// startSMART starts `fhirserver serve --auth smart`, or the in-process
// provider when the binary does not serve the authorization server yet.
func startSMART(t *testing.T, dbURL string) *smart { return startSMARTAs(t, dbURL, "") }

// startSMARTAs starts a server whose public base URL B is public (its own
// address when empty): servers behind one load balancer share B.
func startSMARTAs(t *testing.T, dbURL, public string) *smart {
	t.Helper()
	s := &smart{t: t, db: dbURL}
	addr := freeAddr(t)
	base := "http://" + addr
	if public == "" {
		public = base
	}
	args := []string{"serve", "--addr", addr, "--base-url", public, "--database-url", dbURL, "--auth", "smart"}
	cmd := exec.Command(binary, args...)
	stderr := &syncBuffer{}
	cmd.Stderr, cmd.Stdout = stderr, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	up := false
	deadline := time.Now().Add(60 * time.Second)
wait:
	for time.Now().Before(deadline) {
		select {
		case <-done:
			break wait // exited: this build does not serve SMART yet
		case <-time.After(50 * time.Millisecond):
		}
		if resp, err := http.Get(base + "/fhir/.well-known/smart-configuration"); err == nil {
			resp.Body.Close()
			up = resp.StatusCode == 200
			break
		}
	}
	if up {
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-done
			if t.Failed() {
				t.Logf("server log:\n%s", stderr.String())
			}
		})
		s.base, s.binary = base, true
		s.st = openOAuthStore(t, dbURL)
		return s
	}
	_ = cmd.Process.Kill()
	s.st = openOAuthStore(t, dbURL)
	var h http.Handler
	var mu sync.RWMutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.RLock()
		defer mu.RUnlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("provider log:\n%s", logs.String())
		}
	})
	if public == base {
		public = srv.URL
	}
	p, err := oauth.New(oauth.Config{BaseURL: public, KeyReload: time.Second, Logger: slog.New(slog.NewTextHandler(logs, nil))}, s.st)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	h = p.Routes()
	mu.Unlock()
	s.base, s.provider = srv.URL, p
	return s
}

// run runs an administration command with the binary when it has it, and
// the equivalent call otherwise. It returns the command's output.
func (s *smart) run(args ...string) string {
	s.t.Helper()
	if hasCommand(args[0]) {
		cmd := exec.Command(binary, append(args, "--database-url", s.db)...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			s.t.Fatalf("fhirserver %v: %v\n%s", args, err, errOut.String())
		}
		return out.String()
	}
	return s.fallback(args)
}

// fallback does what the command would, through package oauth.
func (s *smart) fallback(args []string) string {
	s.t.Helper()
	ctx := context.Background()
	flags := map[string][]string{}
	for i := 2; i < len(args); i++ {
		if i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
			flags[args[i]] = append(flags[args[i]], args[i+1])
			i++
		}
	}
	one := func(k string) string {
		if v := flags[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	var err error
	out := ""
	switch args[0] + " " + args[1] {
	case "client create":
		spec := oauth.ClientSpec{ID: one("--id"), Secret: one("--secret"), Public: slices.Contains(args, "--public"),
			GenerateSecret: slices.Contains(args, "--generate-secret"), JWKSURL: one("--jwks-url"),
			RedirectURIs: flags["--redirect-uri"], Scope: one("--scope"), GrantTypes: flags["--grant-type"]}
		if f := one("--jwks-file"); f != "" {
			b, _ := os.ReadFile(f)
			spec.JWKS = string(b)
		}
		var secret string
		secret, err = oauth.RegisterClient(ctx, s.st, spec)
		if secret != "" {
			out = "client secret (shown once): " + secret + "\n"
		}
	case "user create":
		err = oauth.RegisterUser(ctx, s.st, oauth.UserSpec{Username: one("--username"), Password: one("--password"), FHIRUser: one("--fhir-user"), Scope: one("--scope"), Cost: 4})
	case "launch create":
		out, err = oauth.CreateLaunch(ctx, s.st, oauth.LaunchSpec{Patient: one("--patient"), Encounter: one("--encounter"), Username: one("--user")})
	case "keys rotate":
		_, err = oauth.RotateKeys(ctx, s.st, 2*time.Hour)
	case "token create":
		var p *oauth.Provider
		if p, err = oauth.New(oauth.Config{BaseURL: one("--base-url")}, s.st); err == nil {
			var ttl time.Duration
			if v := one("--ttl"); v != "" {
				ttl, _ = time.ParseDuration(v)
			}
			out, _, err = p.MintToken(ctx, oauth.MintRequest{ClientID: one("--client-id"), Scope: one("--scope"), Patient: one("--patient"), TTL: ttl})
		}
	default:
		s.t.Fatalf("no fallback for %v", args)
	}
	if err != nil {
		s.t.Fatalf("%v: %v", args, err)
	}
	return out + "\n"
}

func secretFrom(t *testing.T, out string) string {
	t.Helper()
	_, after, ok := strings.Cut(out, "client secret (shown once): ")
	if !ok {
		t.Fatalf("no secret in %q", out)
	}
	return strings.TrimSpace(after)
}

type answer struct {
	status int
	header http.Header
	body   []byte
	m      map[string]any
}

func (a answer) s(k string) string { v, _ := a.m[k].(string); return v }

func send(t *testing.T, c *http.Client, method, u string, form url.Values, headers ...string) answer {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	if c == nil {
		c = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, body: b}
	_ = json.Unmarshal(b, &a.m)
	return a
}

func basicAuth(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

// discover reads SMART discovery, as a client starts.
func (s *smart) discover() map[string]any {
	s.t.Helper()
	a := send(s.t, nil, "GET", s.base+"/fhir/.well-known/smart-configuration", nil)
	if a.status != 200 {
		s.t.Fatalf("smart-configuration: %d %s", a.status, a.body)
	}
	return a.m
}

// fhirGet reads B/fhir/Patient with a token, when the binary serves both.
func (s *smart) fhirGet(token string) int {
	st, _ := s.fhirPatients(token)
	return st
}

// fhirPatients reads B/fhir/Patient?_count=1 with a token and returns the
// status and the ids of the Patients in the answer.
func (s *smart) fhirPatients(token string) (int, []string) {
	a := send(s.t, nil, "GET", s.base+"/fhir/Patient?_count=1", nil, "Authorization", "Bearer "+token)
	var ids []string
	entries, _ := a.m["entry"].([]any)
	for _, e := range entries {
		res, _ := e.(map[string]any)["resource"].(map[string]any)
		id, _ := res["id"].(string)
		ids = append(ids, id)
	}
	return a.status, ids
}

// confinedTo checks that a token confined to a patient's compartment is
// served (200) on B/fhir/Patient and sees no Patient but its own.
func (s *smart) confinedTo(token, patient, what string) {
	s.t.Helper()
	st, ids := s.fhirPatients(token)
	if st != 200 {
		s.t.Fatalf("%s on B/fhir: %d, want 200", what, st)
	}
	for _, id := range ids {
		if id != patient {
			s.t.Fatalf("%s on B/fhir sees Patient/%s, want only Patient/%s", what, id, patient)
		}
	}
}

func TestSMARTBackendServices(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			s := startSMART(t, b.url(t))
			conf := s.discover()
			tokenURL := conf["token_endpoint"].(string)
			secret := secretFrom(t, s.run("client", "create", "--id", "backend", "--generate-secret", "--scope", "system/*.rs system/Observation.cruds", "--grant-type", "client_credentials"))

			// A real client library: golang.org/x/oauth2/clientcredentials.
			cc := clientcredentials.Config{ClientID: "backend", ClientSecret: secret, TokenURL: tokenURL, Scopes: []string{"system/Patient.read"}, AuthStyle: oauth2.AuthStyleInHeader}
			tok, err := cc.Token(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if tok.TokenType != "Bearer" || tok.Extra("scope") != "system/Patient.read system/Patient.rs" {
				t.Fatalf("token %+v scope %v", tok, tok.Extra("scope"))
			}
			if s.binary {
				// Confined to one type, served under that filter.
				if st := s.fhirGet(tok.AccessToken); st != 200 {
					t.Fatalf("a token for Patient only on B/fhir: %d, want 200", st)
				}
			}
			cc.AuthStyle, cc.Scopes = oauth2.AuthStyleInParams, nil
			tok2, err := cc.Token(context.Background())
			if err != nil || tok2.Extra("scope") != "system/*.rs system/Observation.cruds" {
				t.Fatalf("client_secret_post, registered scopes: %v %v", err, tok2)
			}
			if s.binary {
				if st := s.fhirGet(tok2.AccessToken); st != 200 {
					t.Fatalf("a system/*.rs token does not work on B/fhir: %d", st)
				}
			}
			for name, a := range map[string]answer{
				"bad secret":   send(t, nil, "POST", tokenURL, url.Values{"grant_type": {"client_credentials"}}, "Authorization", basicAuth("backend", "nope")),
				"bad client":   send(t, nil, "POST", tokenURL, url.Values{"grant_type": {"client_credentials"}}, "Authorization", basicAuth("nobody", secret)),
				"wider scope":  send(t, nil, "POST", tokenURL, url.Values{"grant_type": {"client_credentials"}, "scope": {"system/*.cruds"}}, "Authorization", basicAuth("backend", secret)),
				"unsupported":  send(t, nil, "POST", tokenURL, url.Values{"grant_type": {"password"}}, "Authorization", basicAuth("backend", secret)),
				"missing form": send(t, nil, "POST", tokenURL, url.Values{}, "Authorization", basicAuth("backend", secret)),
			} {
				want := map[string]struct {
					status int
					code   string
				}{"bad secret": {401, "invalid_client"}, "bad client": {401, "invalid_client"}, "wider scope": {400, "invalid_scope"},
					"unsupported": {400, "unsupported_grant_type"}, "missing form": {400, "invalid_request"}}[name]
				if a.status != want.status || a.s("error") != want.code {
					t.Errorf("%s: %d %s, want %d %s", name, a.status, a.body, want.status, want.code)
				}
			}

			// private_key_jwt: RS384 by JWKS file, ES384 by JWKS URL.
			rsKey, _ := rsa.GenerateKey(rand.Reader, 2048)
			esKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
			jwksFile := filepath.Join(t.TempDir(), "jwks.json")
			writeJWKS(t, jwksFile, jose.JSONWebKey{Key: &rsKey.PublicKey, KeyID: "rs", Algorithm: "RS384", Use: "sig"})
			s.run("client", "create", "--id", "bulk-file", "--jwks-file", jwksFile, "--scope", "system/*.rs")
			jwksSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &esKey.PublicKey, KeyID: "es", Algorithm: "ES384", Use: "sig"}}})
				_, _ = w.Write(b)
			}))
			defer jwksSrv.Close()
			s.run("client", "create", "--id", "bulk-url", "--jwks-url", jwksSrv.URL, "--scope", "system/*.rs")

			assert := func(client, kid string, key any, method jwt.SigningMethod, mod func(jwt.MapClaims)) answer {
				c := jwt.MapClaims{"iss": client, "sub": client, "aud": tokenURL, "exp": time.Now().Add(4 * time.Minute).Unix(), "jti": randomString()}
				if mod != nil {
					mod(c)
				}
				tk := jwt.NewWithClaims(method, c)
				tk.Header["kid"] = kid
				signed, err := tk.SignedString(key)
				if err != nil {
					t.Fatal(err)
				}
				return send(t, nil, "POST", tokenURL, url.Values{"grant_type": {"client_credentials"}, "scope": {"system/*.rs"},
					"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {signed}})
			}
			if a := assert("bulk-file", "rs", rsKey, jwt.SigningMethodRS384, nil); a.status != 200 {
				t.Fatalf("RS384 assertion: %d %s", a.status, a.body)
			}
			if a := assert("bulk-url", "es", esKey, jwt.SigningMethodES384, nil); a.status != 200 {
				t.Fatalf("ES384 assertion: %d %s", a.status, a.body)
			}
			jti := randomString()
			if a := assert("bulk-file", "rs", rsKey, jwt.SigningMethodRS384, func(c jwt.MapClaims) { c["jti"] = jti }); a.status != 200 {
				t.Fatalf("first use: %d %s", a.status, a.body)
			}
			for name, a := range map[string]answer{
				"replayed":  assert("bulk-file", "rs", rsKey, jwt.SigningMethodRS384, func(c jwt.MapClaims) { c["jti"] = jti }),
				"expired":   assert("bulk-file", "rs", rsKey, jwt.SigningMethodRS384, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-2 * time.Minute).Unix() }),
				"long exp":  assert("bulk-file", "rs", rsKey, jwt.SigningMethodRS384, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(time.Hour).Unix() }),
				"bad aud":   assert("bulk-file", "rs", rsKey, jwt.SigningMethodRS384, func(c jwt.MapClaims) { c["aud"] = s.base + "/fhir" }),
				"other key": assert("bulk-url", "es", mustECKey(), jwt.SigningMethodES384, nil),
				"RS256":     assert("bulk-file", "rs", rsKey, jwt.SigningMethodRS256, nil),
			} {
				if a.status != 401 || a.s("error") != "invalid_client" {
					t.Errorf("%s assertion: %d %s", name, a.status, a.body)
				}
			}

			// Introspection and revocation.
			other := secretFrom(t, s.run("client", "create", "--id", "other", "--generate-secret", "--grant-type", "client_credentials"))
			intro := func(id, sec, token string) answer {
				return send(t, nil, "POST", conf["introspection_endpoint"].(string), url.Values{"token": {token}}, "Authorization", basicAuth(id, sec))
			}
			if a := intro("backend", secret, tok.AccessToken); a.m["active"] != true || a.s("client_id") != "backend" {
				t.Fatalf("introspection: %s", a.body)
			}
			if a := intro("other", other, tok.AccessToken); a.m["active"] != false {
				t.Fatalf("another client's introspection: %s", a.body)
			}
			if a := intro("backend", "wrong", tok.AccessToken); a.status != 401 {
				t.Fatalf("unauthenticated introspection: %d", a.status)
			}
			if a := send(t, nil, "POST", conf["revocation_endpoint"].(string), url.Values{"token": {tok.AccessToken}}, "Authorization", basicAuth("backend", secret)); a.status != 200 {
				t.Fatalf("revocation: %d %s", a.status, a.body)
			}
			if a := intro("backend", secret, tok.AccessToken); a.m["active"] != false {
				t.Fatalf("revoked token is active: %s", a.body)
			}
			if s.binary {
				time.Sleep(3 * time.Second) // the resource server polls the revocation list
				if st := s.fhirGet(tok.AccessToken); st != 401 {
					t.Fatalf("a revoked token is accepted on B/fhir: %d", st)
				}
			}

			// token create mints a token the server accepts.
			minted := strings.TrimSpace(s.run("token", "create", "--client-id", "backend", "--scope", "system/Patient.rs", "--base-url", s.base, "--ttl", "5m"))
			if a := intro("backend", secret, minted); a.m["active"] != true || a.s("scope") != "system/Patient.rs" {
				t.Fatalf("minted token: %s", a.body)
			}
		})
	}
}

func randomString() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func mustECKey() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

func writeJWKS(t *testing.T, path string, keys ...jose.JSONWebKey) {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// person is a browser with a cookie jar.
type person struct {
	t *testing.T
	c *http.Client
}

func newPerson(t *testing.T) *person {
	jar, _ := cookiejar.New(nil)
	return &person{t: t, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// follow goes through login, patient picker and consent until the app's
// redirect, answering each page; it returns the final redirect.
func (p *person) follow(start, user, password, patient string) *url.URL {
	p.t.Helper()
	u, _ := url.Parse(start)
	for range 10 {
		a := send(p.t, p.c, "GET", u.String(), nil)
		if a.status == http.StatusSeeOther || a.status == http.StatusFound {
			u = u.ResolveReference(mustURL(a.header.Get("Location")))
			if !strings.Contains(u.Path, "/oauth/") {
				return u
			}
			continue
		}
		if a.status != 200 {
			p.t.Fatalf("%s: %d %s", u, a.status, a.body)
		}
		m := csrfField.FindSubmatch(a.body)
		if m == nil {
			p.t.Fatalf("no form at %s: %s", u, a.body)
		}
		form := url.Values{"csrf_token": {string(m[1])}, "req": {u.Query().Get("req")}}
		switch {
		case strings.HasSuffix(u.Path, "/oauth/login"):
			form.Set("username", user)
			form.Set("password", password)
		case strings.HasSuffix(u.Path, "/oauth/patient"):
			form.Set("patient_id", patient)
		case strings.HasSuffix(u.Path, "/oauth/consent"):
			form.Set("action", "approve")
			for _, sm := range regexp.MustCompile(`name="scope" value="([^"]+)" checked`).FindAllSubmatch(a.body, -1) {
				form.Add("scope", strings.ReplaceAll(string(sm[1]), "&#43;", "+"))
			}
			if pm := regexp.MustCompile(`name="patient" value="([^"]+)" checked`).FindSubmatch(a.body); pm != nil {
				form.Set("patient", string(pm[1]))
			}
		}
		post := u
		post.RawQuery = ""
		a = send(p.t, p.c, "POST", post.String(), form)
		if a.status != http.StatusSeeOther && a.status != http.StatusFound {
			p.t.Fatalf("POST %s: %d %s", post, a.status, a.body)
		}
		u = post.ResolveReference(mustURL(a.header.Get("Location")))
		if !strings.Contains(u.Path, "/oauth/") {
			return u
		}
	}
	p.t.Fatal("too many steps")
	return nil
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

const appRedirect = "http://127.0.0.1:9/callback"

func TestSMARTAppLaunch(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			s := startSMART(t, b.url(t))
			conf := s.discover()
			s.run("client", "create", "--id", "app", "--public", "--redirect-uri", appRedirect, "--scope", "launch launch/patient openid fhirUser patient/*.rs user/*.rs offline_access")
			s.run("user", "create", "--username", "alice", "--password", "alice-password", "--fhir-user", "Patient/p1")
			s.run("user", "create", "--username", "doc", "--password", "doc-password", "--fhir-user", "Practitioner/d1")
			// The patients exist (the picker checks a picked id).
			for _, id := range []string{"p1", "p7", "p9"} {
				body := `{"resourceType":"Patient","id":"` + id + `","name":[{"family":"Test","given":["` + id + `"]}]}`
				if _, _, err := s.st.Update(context.Background(), store.Write{Type: "Patient", ID: id, Body: []byte(body)}); err != nil {
					t.Fatal(err)
				}
			}
			app := oauth2.Config{ClientID: "app", RedirectURL: appRedirect, Scopes: []string{"launch/patient", "openid", "fhirUser", "patient/*.read", "offline_access"},
				Endpoint: oauth2.Endpoint{AuthURL: conf["authorization_endpoint"].(string), TokenURL: conf["token_endpoint"].(string), AuthStyle: oauth2.AuthStyleInParams}}
			aud := oauth2.SetAuthURLParam("aud", s.base+"/fhir")
			ctx := context.Background()

			// Standalone launch of a patient.
			verifier := oauth2.GenerateVerifier()
			redirect := newPerson(t).follow(app.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier), aud), "alice", "alice-password", "")
			if redirect.Query().Get("state") != "state-0123456789" || redirect.Query().Get("code") == "" {
				t.Fatalf("redirect %s", redirect)
			}
			code := redirect.Query().Get("code")
			tok, err := app.Exchange(ctx, code, oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatal(err)
			}
			if tok.Extra("patient") != "p1" || tok.Extra("id_token") == nil || tok.RefreshToken == "" || !strings.Contains(tok.Extra("scope").(string), "patient/*.rs") {
				t.Fatalf("token %+v patient %v scope %v", tok, tok.Extra("patient"), tok.Extra("scope"))
			}
			// The code cannot be used again, and its reuse revokes the grant.
			if _, err := app.Exchange(ctx, code, oauth2.VerifierOption(verifier)); !isOAuthError(err, "invalid_grant") {
				t.Fatalf("code reuse: %v", err)
			}
			if _, err := app.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); !isOAuthError(err, "invalid_grant") {
				t.Fatalf("refresh after code reuse: %v", err)
			}

			// Refresh rotation: the old refresh token is refused afterwards
			// and takes the new one down with it.
			verifier = oauth2.GenerateVerifier()
			redirect = newPerson(t).follow(app.AuthCodeURL("state-abcdefghij", oauth2.S256ChallengeOption(verifier), aud), "alice", "alice-password", "")
			tok, err = app.Exchange(ctx, redirect.Query().Get("code"), oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatal(err)
			}
			refreshed, err := app.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
			if err != nil || refreshed.RefreshToken == tok.RefreshToken {
				t.Fatalf("refresh: %v %+v", err, refreshed)
			}
			if _, err := app.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); !isOAuthError(err, "invalid_grant") {
				t.Fatalf("reused refresh token: %v", err)
			}
			if _, err := app.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshed.RefreshToken}).Token(); !isOAuthError(err, "invalid_grant") {
				t.Fatalf("family of a reused refresh token: %v", err)
			}

			// A practitioner picks the patient.
			verifier = oauth2.GenerateVerifier()
			redirect = newPerson(t).follow(app.AuthCodeURL("state-pick-12345", oauth2.S256ChallengeOption(verifier), aud), "doc", "doc-password", "p7")
			tok, err = app.Exchange(ctx, redirect.Query().Get("code"), oauth2.VerifierOption(verifier))
			if err != nil || tok.Extra("patient") != "p7" {
				t.Fatalf("picked patient: %v %v", err, tok.Extra("patient"))
			}

			// EHR launch.
			launch := strings.TrimSpace(s.run("launch", "create", "--patient", "p9", "--encounter", "e9", "--user", "doc"))
			ehr := app
			ehr.Scopes = []string{"launch", "openid", "fhirUser", "patient/*.rs"}
			verifier = oauth2.GenerateVerifier()
			redirect = newPerson(t).follow(ehr.AuthCodeURL("state-ehr-123456", oauth2.S256ChallengeOption(verifier), aud, oauth2.SetAuthURLParam("launch", launch)), "doc", "doc-password", "")
			tok, err = ehr.Exchange(ctx, redirect.Query().Get("code"), oauth2.VerifierOption(verifier))
			if err != nil || tok.Extra("patient") != "p9" || tok.Extra("encounter") != "e9" {
				t.Fatalf("EHR launch: %v %v %v", err, tok.Extra("patient"), tok.Extra("encounter"))
			}
			if s.binary {
				s.confinedTo(tok.AccessToken, "p9", "the app's patient token")
			}

			// Negative cases.
			wrong := oauth2.GenerateVerifier()
			verifier = oauth2.GenerateVerifier()
			redirect = newPerson(t).follow(app.AuthCodeURL("state-wrong-1234", oauth2.S256ChallengeOption(verifier), aud), "alice", "alice-password", "")
			if _, err := app.Exchange(ctx, redirect.Query().Get("code"), oauth2.VerifierOption(wrong)); !isOAuthError(err, "invalid_grant") {
				t.Fatalf("wrong verifier: %v", err)
			}
			for name, u := range map[string]string{
				"plain PKCE": app.AuthCodeURL("state-plain-1234", aud, oauth2.SetAuthURLParam("code_challenge", verifier), oauth2.SetAuthURLParam("code_challenge_method", "plain")),
				"no PKCE":    app.AuthCodeURL("state-nopkce-123", aud),
				"bad aud":    app.AuthCodeURL("state-badaud-123", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", "https://elsewhere/fhir")),
			} {
				a := send(t, nil, "GET", u, nil)
				loc, _ := url.Parse(a.header.Get("Location"))
				if a.status != http.StatusSeeOther && a.status != http.StatusFound || loc == nil || loc.Query().Get("error") != "invalid_request" || !strings.HasPrefix(loc.String(), appRedirect) {
					t.Errorf("%s: %d %v %s", name, a.status, loc, a.body)
				}
			}
			mismatch := app
			mismatch.RedirectURL = "http://127.0.0.1:9/elsewhere"
			a := send(t, nil, "GET", mismatch.AuthCodeURL("state-mismatch-1", oauth2.S256ChallengeOption(verifier), aud), nil)
			if a.status < 400 || strings.HasPrefix(a.header.Get("Location"), "http://127.0.0.1:9/") {
				t.Errorf("redirect mismatch: %d %s", a.status, a.header.Get("Location"))
			}
			// Redirect URI differing at the token endpoint.
			verifier = oauth2.GenerateVerifier()
			redirect = newPerson(t).follow(app.AuthCodeURL("state-tokenredir", oauth2.S256ChallengeOption(verifier), aud), "alice", "alice-password", "")
			if _, err := mismatch.Exchange(ctx, redirect.Query().Get("code"), oauth2.VerifierOption(verifier)); err == nil {
				t.Errorf("a different redirect_uri at the token endpoint was accepted")
			}
		})
	}
}

func isOAuthError(err error, code string) bool {
	var re *oauth2.RetrieveError
	return errors.As(err, &re) && re.ErrorCode == code
}

func TestSMARTBasicLogin(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			s := startSMART(t, b.url(t))
			s.run("user", "create", "--username", "alice", "--password", "alice-password", "--fhir-user", "Patient/p1")
			loginURL := s.base + "/fhir/login"
			raw := func(u, p string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p)) }
			a := send(t, nil, "GET", loginURL, nil, "Authorization", raw("alice", "alice-password"))
			if a.status != 200 || a.s("access_token") == "" || a.s("refresh_token") == "" || a.s("patient") != "p1" || a.header.Get("Cache-Control") != "no-store" {
				t.Fatalf("login: %d %v %s", a.status, a.header, a.body)
			}
			if s.binary {
				for _, id := range []string{"p0", "p1"} {
					body := `{"resourceType":"Patient","id":"` + id + `"}`
					if _, _, err := s.st.Update(context.Background(), store.Write{Type: "Patient", ID: id, Body: []byte(body)}); err != nil {
						t.Fatal(err)
					}
				}
				s.confinedTo(a.s("access_token"), "p1", "a patient user's login token")
			}
			// POST with a narrowing scope.
			n := send(t, nil, "POST", loginURL, url.Values{"scope": {"patient/Observation.rs"}}, "Authorization", raw("alice", "alice-password"))
			if n.status != 200 || !strings.Contains(n.s("scope"), "patient/Observation.rs") || strings.Contains(n.s("scope"), "patient/*.rs") {
				t.Fatalf("narrowed login: %d %s", n.status, n.body)
			}
			// Refresh (client "login"), then logout revokes.
			r := send(t, nil, "POST", s.base+"/oauth/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {"login"}, "refresh_token": {a.s("refresh_token")}})
			if r.status != 200 || r.s("refresh_token") == "" {
				t.Fatalf("refresh: %d %s", r.status, r.body)
			}
			if o := send(t, nil, "POST", s.base+"/fhir/logout", url.Values{}, "Authorization", "Bearer "+r.s("access_token")); o.status != 204 {
				t.Fatalf("logout: %d %s", o.status, o.body)
			}
			if r2 := send(t, nil, "POST", s.base+"/oauth/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {"login"}, "refresh_token": {r.s("refresh_token")}}); r2.status != 400 {
				t.Fatalf("refresh after logout: %d %s", r2.status, r2.body)
			}
			// Failures look alike, then throttle.
			wrong := send(t, nil, "GET", loginURL, nil, "Authorization", raw("alice", "nope"))
			unknown := send(t, nil, "GET", loginURL, nil, "Authorization", raw("mallory", "nope"))
			for _, f := range []answer{wrong, unknown} {
				if f.status != 401 || f.header.Get("WWW-Authenticate") != `Basic realm="fhir"` || f.s("resourceType") != "OperationOutcome" {
					t.Fatalf("failure: %d %v %s", f.status, f.header, f.body)
				}
			}
			if !bytes.Equal(wrong.body, unknown.body) {
				t.Fatalf("wrong password and unknown user differ: %s / %s", wrong.body, unknown.body)
			}
			for range 3 {
				send(t, nil, "GET", loginURL, nil, "Authorization", raw("alice", "nope"))
			}
			th := send(t, nil, "GET", loginURL, nil, "Authorization", raw("alice", "alice-password"))
			if th.status != 429 || th.header.Get("Retry-After") == "" {
				t.Fatalf("throttling: %d %v", th.status, th.header)
			}
		})
	}
}

func TestSMARTKeyRotation(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			db := b.url(t)
			s := startSMART(t, db)
			secret := secretFrom(t, s.run("client", "create", "--id", "backend", "--generate-secret", "--grant-type", "client_credentials"))
			get := func(s *smart) string {
				a := send(t, nil, "POST", s.base+"/oauth/token", url.Values{"grant_type": {"client_credentials"}}, "Authorization", basicAuth("backend", secret))
				if a.status != 200 {
					t.Fatalf("token: %d %s", a.status, a.body)
				}
				return a.s("access_token")
			}
			kid := func(tok string) string {
				h, _, _ := strings.Cut(tok, ".")
				b, _ := base64.RawURLEncoding.DecodeString(h)
				var m map[string]any
				_ = json.Unmarshal(b, &m)
				return fmt.Sprint(m["kid"])
			}
			old := get(s)
			s.run("keys", "rotate")
			// A server started after the rotation (servers share the
			// database) signs with the new key and accepts the old token.
			s2 := startSMARTAs(t, db, s.base)
			fresh := get(s2)
			if kid(fresh) == kid(old) {
				t.Fatalf("signed with the old key %s after rotation", kid(old))
			}
			var set jose.JSONWebKeySet
			_ = json.Unmarshal(send(t, nil, "GET", s2.base+"/oauth/jwks", nil).body, &set)
			if len(set.Key(kid(old))) != 1 || len(set.Key(kid(fresh))) != 1 {
				t.Fatalf("JWKS lacks the old or the new key: %d keys", len(set.Keys))
			}
			for _, srv := range []*smart{s, s2} {
				for _, tok := range []string{old, fresh} {
					a := send(t, nil, "POST", srv.base+"/oauth/introspect", url.Values{"token": {tok}}, "Authorization", basicAuth("backend", secret))
					if a.m["active"] != true {
						t.Fatalf("after rotation a token (kid %s, old %s) is inactive on %s: %s", kid(tok), kid(old), srv.base, a.body)
					}
				}
			}
		})
	}
}

// sha256b64 is a PKCE S256 challenge.
func sha256b64(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
