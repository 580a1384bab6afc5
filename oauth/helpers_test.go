package oauth_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fhirserver/fhirserver/oauth"
	"github.com/fhirserver/fhirserver/store/sqlite"
)

// env is a provider on a real SQLite store behind an httptest server.
type env struct {
	t      testing.TB
	srv    *httptest.Server
	p      *oauth.Provider
	st     *sqlite.Store
	base   string
	offset atomic.Int64 // added to the clock, in nanoseconds

	handler    atomic.Value     // http.Handler of the test server
	adminStore oauth.AdminStore // where admin() registers (st unless replaced)
}

// admin is the store that clients and users are registered in.
func (e *env) admin() oauth.AdminStore {
	if e.adminStore != nil {
		return e.adminStore
	}
	return e.st
}

func (e *env) swap(h http.Handler) { e.handler.Store(h) }

func newEnv(t testing.TB, mods ...func(*oauth.Config)) *env {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "fhir.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, st: st}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.handler.Load().(http.Handler).ServeHTTP(w, r)
	}))
	t.Cleanup(e.srv.Close)
	e.base = e.srv.URL
	cfg := oauth.Config{BaseURL: e.base, Now: func() time.Time { return time.Now().Add(time.Duration(e.offset.Load())) }}
	for _, m := range mods {
		m(&cfg)
	}
	e.p, err = oauth.New(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	e.swap(e.p.Routes())
	return e
}

func (e *env) advance(d time.Duration) { e.offset.Add(int64(d)) }

// confidential registers a client_credentials client with a generated
// secret and returns the secret.
func (e *env) confidential(id, scope string, extraGrants ...string) string {
	e.t.Helper()
	secret, err := oauth.RegisterClient(context.Background(), e.st, oauth.ClientSpec{
		ID: id, GenerateSecret: true, Scope: scope, GrantTypes: append([]string{"client_credentials"}, extraGrants...),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return secret
}

func (e *env) user(name, password, fhirUser, scope string) {
	e.t.Helper()
	if err := oauth.RegisterUser(context.Background(), e.st, oauth.UserSpec{Username: name, Password: password, FHIRUser: fhirUser, Scope: scope, Cost: 4}); err != nil {
		e.t.Fatal(err)
	}
}

type result struct {
	status int
	header http.Header
	body   []byte
	json   map[string]any
}

func (r result) str(k string) string { s, _ := r.json[k].(string); return s }

func (e *env) do(req *http.Request) result {
	e.t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := result{status: resp.StatusCode, header: resp.Header, body: b}
	_ = json.Unmarshal(b, &r.json)
	return r
}

// post sends a form; headers are name, value pairs.
func (e *env) post(path string, form url.Values, headers ...string) result {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return e.do(req)
}

func (e *env) get(path string, headers ...string) result {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.base+path, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return e.do(req)
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(user)+":"+url.QueryEscape(pass)))
}

// rawBasic is HTTP Basic without form-encoding (as /login expects).
func rawBasic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// clientCredentials asks for a token with client_secret_basic.
func (e *env) clientCredentials(id, secret, scope string) result {
	e.t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}}
	if scope != "" {
		form.Set("scope", scope)
	}
	return e.post("/oauth/token", form, "Authorization", basic(id, secret))
}

// jwtParts decodes the header and claims of a JWT without verifying it.
func jwtParts(t testing.TB, token string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, claims
}

func wantStatus(t testing.TB, r result, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
}
