package oauth_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/fhirserver/fhirserver/oauth"
)

// testKey is a signing key of a fake external issuer.
type testKey struct {
	kid    string
	alg    string
	use    string // "sig" unless set otherwise; "-" for none
	signer crypto.Signer
	// hideAlg leaves alg out of the JWK (any alg of the key's type fits).
	hideAlg bool
}

func newRSAKey(t testing.TB, kid, alg string) *testKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &testKey{kid: kid, alg: alg, signer: k}
}

func newECKey(t testing.TB, kid string) *testKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &testKey{kid: kid, alg: "ES256", signer: k}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwk is the public JWK of k, with its alg.
func (k *testKey) jwk() map[string]any {
	m := map[string]any{"kid": k.kid, "alg": k.alg}
	if k.hideAlg {
		delete(m, "alg")
	}
	switch k.use {
	case "":
		m["use"] = "sig"
	case "-":
	default:
		m["use"] = k.use
	}
	switch pub := k.signer.Public().(type) {
	case *rsa.PublicKey:
		m["kty"], m["n"], m["e"] = "RSA", b64(pub.N.Bytes()), b64(big.NewInt(int64(pub.E)).Bytes())
	case *ecdsa.PublicKey:
		ecdh, err := pub.ECDH()
		if err != nil {
			panic(err)
		}
		raw := ecdh.Bytes() // 0x04 || X || Y
		m["kty"], m["crv"], m["x"], m["y"] = "EC", "P-256", b64(raw[1:33]), b64(raw[33:])
	}
	return m
}

// sign makes a JWT of claims with k (kid in the header unless noKID).
func (k *testKey) sign(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(k.alg), claims)
	tok.Header["kid"] = k.kid
	s, err := tok.SignedString(k.signer)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// jwksServer publishes a JWKS that the test can change, and counts reads.
type jwksServer struct {
	*httptest.Server
	mu    sync.Mutex
	keys  []*testKey
	reads atomic.Int64
}

func newJWKSServer(t testing.TB, keys ...*testKey) *jwksServer {
	s := &jwksServer{keys: keys}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.reads.Add(1)
		s.mu.Lock()
		doc := map[string]any{"keys": []any{}}
		for _, k := range s.keys {
			doc["keys"] = append(doc["keys"].([]any), k.jwk())
		}
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(doc)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) publish(keys ...*testKey) {
	s.mu.Lock()
	s.keys = keys
	s.mu.Unlock()
}

const (
	extIssuer = "https://idp.example/realms/fhir"
	extAud    = "https://fhir.example/fhir"
)

func newExternal(t testing.TB, jwksURL string, mod ...func(*oauth.ExternalConfig)) *oauth.ExternalVerifier {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cfg := oauth.ExternalConfig{Audience: extAud, Issuers: []oauth.TrustedIssuer{{Issuer: extIssuer, JWKSURL: jwksURL}}}
	for _, m := range mod {
		m(&cfg)
	}
	v, err := oauth.NewExternalVerifier(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// claims are valid claims of an external token; edit returns a copy with
// changes (a nil value deletes the claim).
func extClaims(edit map[string]any) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{
		"iss": extIssuer, "aud": []string{"other", extAud}, "sub": "user-7", "azp": "ext-app",
		"exp": now.Add(10 * time.Minute).Unix(), "iat": now.Unix(), "nbf": now.Unix(), "jti": "j1",
		"scope": "patient/Observation.rs launch/patient", "patient": "p123", "fhirUser": "https://idp.example/fhir/Patient/p123",
	}
	for k, v := range edit {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func TestExternalVerifier(t *testing.T) {
	rs := newRSAKey(t, "rsa-1", "RS256")
	es := newECKey(t, "ec-1")
	ps := newRSAKey(t, "ps-1", "PS256")
	enc := newECKey(t, "enc-1")
	enc.use = "enc"
	noAlg := newECKey(t, "noalg-1")
	noAlg.hideAlg, noAlg.use = true, "-"
	unpublished := newECKey(t, "not-there")
	jwks := newJWKSServer(t, rs, es, ps, enc, noAlg)
	v := newExternal(t, jwks.URL)
	ctx := context.Background()

	// Tokens that are not signed by a published key in the ordinary way.
	noneToken := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodNone, extClaims(nil))
		tok.Header["kid"] = "ec-1"
		s, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// HS256 keyed with the public key as a verifier would hold it: the
	// classic confusion attack, with each encoding of the public key.
	hsTokens := func() []string {
		der, err := x509.MarshalPKIXPublicKey(rs.signer.Public())
		if err != nil {
			t.Fatal(err)
		}
		jwkJSON, _ := json.Marshal(rs.jwk())
		var out []string
		for _, secret := range [][]byte{der, jwkJSON, rs.signer.Public().(*rsa.PublicKey).N.Bytes()} {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, extClaims(nil))
			tok.Header["kid"] = "rsa-1"
			s, err := tok.SignedString(secret)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return out
	}
	tamper := func(tok string) string {
		parts := strings.Split(tok, ".")
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		payload = []byte(strings.Replace(string(payload), `"p123"`, `"p999"`, 1))
		parts[1] = b64(payload)
		return strings.Join(parts, ".")
	}
	wrongKID := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, extClaims(nil))
		tok.Header["kid"] = "ec-1" // a published kid, another key
		s, err := tok.SignedString(unpublished.signer)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	algMismatch := func() string {
		// RS384 with the key whose JWK says RS256.
		tok := jwt.NewWithClaims(jwt.SigningMethodRS384, extClaims(nil))
		tok.Header["kid"] = "rsa-1"
		s, err := tok.SignedString(rs.signer)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	noKID := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, extClaims(nil))
		s, err := tok.SignedString(es.signer)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	now := time.Now()

	valid := []struct {
		name, token string
		scopes      []string
		client      string
	}{
		{"RS256", rs.sign(t, extClaims(nil)), []string{"patient/Observation.rs", "launch/patient"}, "ext-app"},
		{"ES256", es.sign(t, extClaims(nil)), []string{"patient/Observation.rs", "launch/patient"}, "ext-app"},
		{"PS256", ps.sign(t, extClaims(nil)), []string{"patient/Observation.rs", "launch/patient"}, "ext-app"},
		{"JWK without alg", noAlg.sign(t, extClaims(nil)), []string{"patient/Observation.rs", "launch/patient"}, "ext-app"},
		{"no kid: every published key is tried", noKID(), []string{"patient/Observation.rs", "launch/patient"}, "ext-app"},
		{"scope as an array", es.sign(t, extClaims(map[string]any{"scope": []string{"patient/*.rs", "openid"}})), []string{"patient/*.rs", "openid"}, "ext-app"},
		{"scp array", es.sign(t, extClaims(map[string]any{"scope": nil, "scp": []string{"patient/Patient.rs"}})), []string{"patient/Patient.rs"}, "ext-app"},
		{"scp string", es.sign(t, extClaims(map[string]any{"scope": nil, "scp": "patient/Patient.rs user/*.rs"})), []string{"patient/Patient.rs", "user/*.rs"}, "ext-app"},
		{"client_id wins over azp", es.sign(t, extClaims(map[string]any{"client_id": "cid-1"})), []string{"patient/Observation.rs", "launch/patient"}, "cid-1"},
		{"aud as a string", es.sign(t, extClaims(map[string]any{"aud": extAud})), []string{"patient/Observation.rs", "launch/patient"}, "ext-app"},
		{"expired within the leeway", es.sign(t, extClaims(map[string]any{"exp": now.Add(-30 * time.Second).Unix()})), []string{"patient/Observation.rs", "launch/patient"}, "ext-app"},
		{"nbf within the leeway", es.sign(t, extClaims(map[string]any{"nbf": now.Add(30 * time.Second).Unix()})), []string{"patient/Observation.rs", "launch/patient"}, "ext-app"},
		{"no iat, no nbf, no jti", es.sign(t, extClaims(map[string]any{"iat": nil, "nbf": nil, "jti": nil})), []string{"patient/Observation.rs", "launch/patient"}, "ext-app"},
	}
	for _, tc := range valid {
		t.Run("accepts "+tc.name, func(t *testing.T) {
			if !v.Trusts(tc.token) {
				t.Fatal("Trusts: false")
			}
			c, err := v.Verify(ctx, tc.token)
			if err != nil {
				t.Fatal(err)
			}
			if c.Issuer != extIssuer || c.Subject != "user-7" || c.ClientID != tc.client || c.Patient != "p123" ||
				c.FHIRUser != "https://idp.example/fhir/Patient/p123" || !slices.Equal(c.Scopes, tc.scopes) ||
				c.Scope != strings.Join(tc.scopes, " ") || c.ExpiresAt.IsZero() {
				t.Errorf("claims %+v", c)
			}
		})
	}

	invalid := []struct{ name, token string }{
		{"unknown issuer", es.sign(t, extClaims(map[string]any{"iss": "https://evil.example"}))},
		{"no issuer", es.sign(t, extClaims(map[string]any{"iss": nil}))},
		{"wrong aud", es.sign(t, extClaims(map[string]any{"aud": "https://other.example/fhir"}))},
		{"no aud", es.sign(t, extClaims(map[string]any{"aud": nil}))},
		{"expired", es.sign(t, extClaims(map[string]any{"exp": now.Add(-2 * time.Minute).Unix()}))},
		{"no exp", es.sign(t, extClaims(map[string]any{"exp": nil}))},
		{"nbf in the future", es.sign(t, extClaims(map[string]any{"nbf": now.Add(5 * time.Minute).Unix()}))},
		{"iat in the future", es.sign(t, extClaims(map[string]any{"iat": now.Add(5 * time.Minute).Unix()}))},
		{"alg none", noneToken()},
		{"HS256 with the public key (DER)", hsTokens()[0]},
		{"HS256 with the public key (JWK JSON)", hsTokens()[1]},
		{"HS256 with the public key (modulus)", hsTokens()[2]},
		{"kid not in the JWKS", unpublished.sign(t, extClaims(nil))},
		{"a published kid, another key", wrongKID()},
		{"tampered payload", tamper(es.sign(t, extClaims(nil)))},
		{"tampered RS256 payload", tamper(rs.sign(t, extClaims(nil)))},
		{"alg other than the JWK's", algMismatch()},
		{"key for encryption", enc.sign(t, extClaims(nil))},
		{"scope neither string nor array", es.sign(t, extClaims(map[string]any{"scope": 42}))},
		{"patient that is not an id", es.sign(t, extClaims(map[string]any{"patient": "../Patient/x"}))},
		{"not a JWT", "abc.def"},
		{"garbage", "a.b.c"},
	}
	for _, tc := range invalid {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			c, err := v.Verify(ctx, tc.token)
			if !errors.Is(err, oauth.ErrInvalidToken) {
				t.Fatalf("Verify: %+v, %v; want ErrInvalidToken", c, err)
			}
		})
	}
}

// TestExternalKeyRotation: a token signed with a key the issuer has just
// published (a new kid) is accepted after one read of the JWKS; a key the
// issuer withdrew stops working once the JWKS is read again; tokens with
// made-up kids do not make the verifier read the JWKS more than the rate
// limit allows.
func TestExternalKeyRotation(t *testing.T) {
	old := newECKey(t, "2024-01")
	jwks := newJWKSServer(t, old)
	v := newExternal(t, jwks.URL, func(c *oauth.ExternalConfig) { c.UnknownKID = 300 * time.Millisecond })
	ctx := context.Background()
	if _, err := v.Verify(ctx, old.sign(t, extClaims(nil))); err != nil {
		t.Fatal(err)
	}
	if n := jwks.reads.Load(); n != 1 {
		t.Fatalf("%d JWKS reads at start, want 1", n)
	}

	next := newRSAKey(t, "2024-02", "RS256")
	jwks.publish(next)
	time.Sleep(350 * time.Millisecond) // the limiter allows a read again
	if _, err := v.Verify(ctx, next.sign(t, extClaims(nil))); err != nil {
		t.Fatalf("token of the new key: %v", err)
	}
	if n := jwks.reads.Load(); n != 2 {
		t.Fatalf("%d JWKS reads after the rotation, want 2", n)
	}
	// The read replaced the keys: the withdrawn one is gone.
	if _, err := v.Verify(ctx, old.sign(t, extClaims(nil))); !errors.Is(err, oauth.ErrInvalidToken) {
		t.Fatalf("token of the withdrawn key: %v", err)
	}

}

// TestExternalUnknownKIDBurst: tokens with made-up kids make at most one
// extra JWKS read per interval (default 1 minute), and are refused at once
// rather than queued behind the rate limit.
func TestExternalUnknownKIDBurst(t *testing.T) {
	k := newECKey(t, "k1")
	jwks := newJWKSServer(t, k)
	v := newExternal(t, jwks.URL)
	ctx := context.Background()
	start := time.Now()
	for i := range 20 {
		made := newECKey(t, "made-up-"+string(rune('a'+i)))
		if _, err := v.Verify(ctx, made.sign(t, extClaims(nil))); !errors.Is(err, oauth.ErrInvalidToken) {
			t.Fatalf("made-up kid: %v", err)
		}
	}
	if n := jwks.reads.Load(); n != 2 {
		t.Errorf("%d JWKS reads (start and 20 unknown kids), want 2", n)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("20 refusals took %v: requests waited for the rate limit", d)
	}
	if _, err := v.Verify(ctx, k.sign(t, extClaims(nil))); err != nil {
		t.Fatalf("the published key after the burst: %v", err)
	}
}

// TestExternalJWKSUnavailable: the server starts when the JWKS cannot be
// read (the keys are read when a token needs them), and refuses tokens
// meanwhile; a JWKS that is too large is refused.
func TestExternalJWKSUnavailable(t *testing.T) {
	k := newECKey(t, "k1")
	var up atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []any{k.jwk()}})
	}))
	defer srv.Close()
	v := newExternal(t, srv.URL, func(c *oauth.ExternalConfig) { c.UnknownKID = 100 * time.Millisecond })
	ctx := context.Background()
	tok := k.sign(t, extClaims(nil))
	if _, err := v.Verify(ctx, tok); !errors.Is(err, oauth.ErrInvalidToken) {
		t.Fatalf("while the JWKS is down: %v", err)
	}
	up.Store(true)
	time.Sleep(150 * time.Millisecond)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("once the JWKS is up: %v", err)
	}

	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"keys":[` + strings.Repeat(" ", 2<<20) + `]}`))
	}))
	defer big.Close()
	v2 := newExternal(t, big.URL)
	if _, err := v2.Verify(ctx, tok); !errors.Is(err, oauth.ErrInvalidToken) {
		t.Fatalf("a 2 MiB JWKS: %v", err)
	}
}

func TestExternalConfig(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		cfg  oauth.ExternalConfig
	}{
		{"no audience", oauth.ExternalConfig{Issuers: []oauth.TrustedIssuer{{Issuer: "a", JWKSURL: "https://a/jwks"}}}},
		{"no issuer", oauth.ExternalConfig{Audience: extAud, Issuers: []oauth.TrustedIssuer{{JWKSURL: "https://a/jwks"}}}},
		{"relative JWKS URL", oauth.ExternalConfig{Audience: extAud, Issuers: []oauth.TrustedIssuer{{Issuer: "a", JWKSURL: "/jwks"}}}},
		{"file JWKS URL", oauth.ExternalConfig{Audience: extAud, Issuers: []oauth.TrustedIssuer{{Issuer: "a", JWKSURL: "file:///etc/jwks"}}}},
		{"issuer twice", oauth.ExternalConfig{Audience: extAud, Issuers: []oauth.TrustedIssuer{{Issuer: "a", JWKSURL: "http://127.0.0.1:1/a"}, {Issuer: "a", JWKSURL: "http://127.0.0.1:1/b"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := oauth.NewExternalVerifier(ctx, tc.cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// TestExternalCache: a token verified once is taken from the cache (no
// signature check), yet still ends when it expires and when its key is
// withdrawn from the issuer's JWKS (at the next read of the JWKS), and a
// kid whose key changed does not let a cached token through.
func TestExternalCache(t *testing.T) {
	ctx := context.Background()
	old := newECKey(t, "k1")
	jwks := newJWKSServer(t, old)
	now := time.Now()
	clock := func() time.Time { return now }
	v := newExternal(t, jwks.URL, func(c *oauth.ExternalConfig) {
		c.UnknownKID = 100 * time.Millisecond
		c.Now = clock
	})
	token := old.sign(t, extClaims(map[string]any{"exp": now.Add(5 * time.Minute).Unix()}))
	for i := 0; i < 3; i++ {
		if c, err := v.Verify(ctx, token); err != nil || c.Patient != "p123" {
			t.Fatalf("verify %d: %+v, %v", i, c, err)
		}
	}
	if n := v.SignatureChecks(); n != 1 {
		t.Errorf("%d signature checks for one token used three times, want 1", n)
	}

	// Expiry is checked on every use (60 s leeway).
	now = now.Add(7 * time.Minute)
	if _, err := v.Verify(ctx, token); !errors.Is(err, oauth.ErrInvalidToken) {
		t.Errorf("expired cached token: %v", err)
	}
	now = time.Now()

	// Withdrawn: the issuer now publishes another key under another kid; a
	// token with that kid makes the verifier read the JWKS again.
	fresh := old.sign(t, extClaims(nil))
	if _, err := v.Verify(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	next := newECKey(t, "k2")
	jwks.publish(next)
	time.Sleep(150 * time.Millisecond)
	if _, err := v.Verify(ctx, next.sign(t, extClaims(nil))); err != nil {
		t.Fatalf("token of the new key: %v", err)
	}
	if _, err := v.Verify(ctx, fresh); !errors.Is(err, oauth.ErrInvalidToken) {
		t.Errorf("cached token of the withdrawn key: %v", err)
	}

	// Same kid, other key: the cached token is not taken.
	k2token := next.sign(t, extClaims(nil))
	if _, err := v.Verify(ctx, k2token); err != nil {
		t.Fatal(err)
	}
	impostor := newECKey(t, "k2")
	jwks.publish(impostor)
	time.Sleep(150 * time.Millisecond)
	if _, err := v.Verify(ctx, newECKey(t, "k3").sign(t, extClaims(nil))); !errors.Is(err, oauth.ErrInvalidToken) {
		t.Fatalf("unknown kid k3 (forces a read of the JWKS): %v", err)
	}
	if _, err := v.Verify(ctx, k2token); !errors.Is(err, oauth.ErrInvalidToken) {
		t.Errorf("cached token whose kid now names another key: %v", err)
	}
}
