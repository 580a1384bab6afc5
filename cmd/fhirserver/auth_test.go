package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alecthomas/kong"
	"github.com/golang-jwt/jwt/v5"

	"github.com/fhirserver/fhirserver/oauth"
	"github.com/fhirserver/fhirserver/server"
	"github.com/fhirserver/fhirserver/store/sqlite"
)

// extIdP is a fake external authorization server: ES256 keys it can
// rotate, published as a JWKS over HTTP.
type extIdP struct {
	srv  *httptest.Server
	mu   sync.Mutex
	keys map[string]*ecdsa.PrivateKey
}

func newExtIdP(t *testing.T) *extIdP {
	p := &extIdP{keys: map[string]*ecdsa.PrivateKey{}}
	p.rotate(t, "k1")
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		var keys []any
		for kid, k := range p.keys {
			raw, _ := k.PublicKey.ECDH()
			b := raw.Bytes()
			enc := base64.RawURLEncoding.EncodeToString
			keys = append(keys, map[string]string{"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig", "x": enc(b[1:33]), "y": enc(b[33:])})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": keys})
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// rotate replaces the published keys by a new one named kid.
func (p *extIdP) rotate(t *testing.T, kid string) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.keys = map[string]*ecdsa.PrivateKey{kid: k}
	p.mu.Unlock()
}

func (p *extIdP) token(t *testing.T, kid string, claims jwt.MapClaims) string {
	p.mu.Lock()
	k := p.keys[kid]
	p.mu.Unlock()
	if k == nil {
		var err error
		if k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			t.Fatal(err)
		}
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestExternalIssuerTokens drives the resource server with tokens of a
// trusted external issuer, through the tokenVerifier that serve builds:
// valid ones are served within their scopes and patient, bad ones get 401
// with error="invalid_token", and our own tokens still work beside them.
func TestExternalIssuerTokens(t *testing.T) {
	ctx := context.Background()
	const base = "http://fhir.test"
	idp := newExtIdP(t)
	iss := "https://idp.test/realms/fhir"

	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "fhir.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	open, err := server.NewRouter(server.Deps{Store: st, BaseURL: base, AuthMode: server.AuthNone, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{
		`{"resourceType":"Patient","id":"a"}`,
		`{"resourceType":"Patient","id":"b"}`,
		`{"resourceType":"Observation","id":"oa","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/a"}}`,
		`{"resourceType":"Observation","id":"ob","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/b"}}`,
	} {
		var head struct{ ResourceType, ID string }
		_ = json.Unmarshal([]byte(r), &head)
		req := httptest.NewRequest(http.MethodPut, "/fhir/"+head.ResourceType+"/"+head.ID, strings.NewReader(r))
		req.Header.Set("Content-Type", "application/fhir+json")
		w := httptest.NewRecorder()
		open.ServeHTTP(w, req)
		if w.Code != 201 {
			t.Fatalf("PUT %s: %d %s", head.ID, w.Code, w.Body)
		}
	}

	e := &env{ctx: ctx, log: quiet}
	cmd := &serveCmd{BaseURL: base, TrustedIssuers: []string{iss + "=" + idp.srv.URL}}
	ext, err := newExternalVerifier(e, cmd)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := oauth.New(oauth.Config{BaseURL: base, Logger: quiet}, st)
	if err != nil {
		t.Fatal(err)
	}
	h, err := server.NewRouter(server.Deps{Store: st, BaseURL: base, AuthMode: server.AuthSmart, Logger: quiet,
		TokenVerifier: tokenVerifier{own: auth.Verifier(), ext: ext}})
	if err != nil {
		t.Fatal(err)
	}
	get := func(path, token string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	claims := func(edit map[string]any) jwt.MapClaims {
		now := time.Now()
		c := jwt.MapClaims{"iss": iss, "aud": base + "/fhir", "sub": "u1", "client_id": "ext-app",
			"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(),
			"scope": "launch/patient patient/Observation.rs", "patient": "a"}
		for k, v := range edit {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return c
	}

	good := idp.token(t, "k1", claims(nil))
	for _, tc := range []struct {
		path   string
		status int
		has    []string
		hasNot []string
	}{
		{"/fhir/Observation", 200, []string{`"id":"oa"`, `"total":1`}, []string{`"id":"ob"`}},
		{"/fhir/Observation/oa", 200, []string{`"id":"oa"`}, nil},
		{"/fhir/Observation/ob", 404, nil, []string{`"id":"ob"`}},
		{"/fhir/Patient/a", 403, []string{"OperationOutcome"}, nil}, // no Patient scope
		{"/fhir/Patient", 403, []string{"OperationOutcome"}, nil},
	} {
		w := get(tc.path, good)
		body := w.Body.String()
		if w.Code != tc.status {
			t.Errorf("external token, GET %s: %d, want %d: %s", tc.path, w.Code, tc.status, body)
		}
		for _, s := range tc.has {
			if !strings.Contains(body, s) {
				t.Errorf("GET %s: no %s in %s", tc.path, s, body)
			}
		}
		for _, s := range tc.hasNot {
			if strings.Contains(body, s) {
				t.Errorf("GET %s: %s in %s", tc.path, s, body)
			}
		}
	}

	// Rotation at the issuer: a token of the new kid makes the verifier
	// read the JWKS again; the withdrawn key no longer verifies.
	idp.rotate(t, "k2")
	if w := get("/fhir/Observation", idp.token(t, "k2", claims(nil))); w.Code != 200 {
		t.Errorf("token of the rotated-in key: %d %s", w.Code, w.Body)
	}
	if w := get("/fhir/Observation", good); w.Code != 401 {
		t.Errorf("token of the withdrawn key: %d %s", w.Code, w.Body)
	}
	good = idp.token(t, "k2", claims(nil))

	tampered := func() string {
		parts := strings.Split(good, ".")
		p, _ := base64.RawURLEncoding.DecodeString(parts[1])
		parts[1] = base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(p), `"patient":"a"`, `"patient":"b"`, 1)))
		return strings.Join(parts, ".")
	}
	noneTok := func() string {
		s, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
		return s
	}
	for name, tok := range map[string]string{
		"unknown issuer":     idp.token(t, "k2", claims(map[string]any{"iss": "https://evil.test"})),
		"wrong aud":          idp.token(t, "k2", claims(map[string]any{"aud": "http://other.test/fhir"})),
		"expired":            idp.token(t, "k2", claims(map[string]any{"exp": time.Now().Add(-2 * time.Minute).Unix()})),
		"alg none":           noneTok(),
		"kid not in JWKS":    idp.token(t, "nope", claims(nil)),
		"tampered (patient)": tampered(),
	} {
		w := get("/fhir/Observation", tok)
		if w.Code != 401 || !strings.Contains(w.Header().Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("%s: %d %q %s", name, w.Code, w.Header().Get("WWW-Authenticate"), w.Body)
		}
	}

	// Our own tokens are verified as before.
	if _, err := oauth.RegisterClient(ctx, st, oauth.ClientSpec{ID: "own", GenerateSecret: true, Scope: "system/*.rs", GrantTypes: []string{"client_credentials"}}); err != nil {
		t.Fatal(err)
	}
	own, _, err := auth.MintToken(ctx, oauth.MintRequest{ClientID: "own", Scope: "system/*.rs"})
	if err != nil {
		t.Fatal(err)
	}
	if w := get("/fhir/Observation", own); w.Code != 200 || !strings.Contains(w.Body.String(), `"total":2`) {
		t.Errorf("own token: %d %s", w.Code, w.Body)
	}

}

func TestParseTrustedIssuers(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []oauth.TrustedIssuer
		bad  bool
	}{
		{in: nil},
		{in: []string{"https://idp/realm=https://idp/jwks?a=b"}, want: []oauth.TrustedIssuer{{Issuer: "https://idp/realm", JWKSURL: "https://idp/jwks?a=b"}}},
		{in: []string{" a=http://x/j ", ""}, want: []oauth.TrustedIssuer{{Issuer: "a", JWKSURL: "http://x/j"}}},
		{in: []string{"no-url"}, bad: true},
		{in: []string{"=http://x/j"}, bad: true},
		{in: []string{"a="}, bad: true},
		{in: []string{"http://fhir.test/=http://x/j"}, bad: true}, // our own issuer
	} {
		got, err := parseTrustedIssuers(tc.in, "http://fhir.test")
		if (err != nil) != tc.bad {
			t.Errorf("%q: error %v", tc.in, err)
			continue
		}
		if len(got) != len(tc.want) || (len(got) > 0 && got[0] != tc.want[0]) {
			t.Errorf("%q: %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

// TestTrustedIssuerFlags: --trusted-issuer repeats, and FHIR_TRUSTED_ISSUERS
// takes a comma-separated list.
func TestTrustedIssuerFlags(t *testing.T) {
	parse := func(args ...string) []string {
		t.Helper()
		var c cli
		parser, err := kong.New(&c, kong.Exit(func(int) {}))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parser.Parse(args); err != nil {
			t.Fatal(err)
		}
		return c.Serve.TrustedIssuers
	}
	want := []string{"a=http://x/j", "b=http://y/j?k=v"}
	if got := parse("serve", "--trusted-issuer", want[0], "--trusted-issuer", want[1]); !slices.Equal(got, want) {
		t.Errorf("flags: %q", got)
	}
	t.Setenv("FHIR_TRUSTED_ISSUERS", strings.Join(want, ","))
	if got := parse("serve"); !slices.Equal(got, want) {
		t.Errorf("environment: %q", got)
	}
}
