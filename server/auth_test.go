package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/fhirserver/fhirserver/authz"
	"github.com/fhirserver/fhirserver/store/sqlite"
)

// The oauth package exports no test helpers, and server must not import
// oauth, so these tests mint their own ES256 access tokens and check them
// with testVerifier, which verifies the way oauth.Verifier does: alg
// allow-list (ES256, RS256), our key by kid, typ at+jwt, iss = B, aud =
// B/fhir, exp required, exp/nbf/iat with 60 s leeway. What they test is the
// middleware: which tokens reach the handler, and what a refusal looks like.

const (
	testIssuer   = "http://fhir.test"
	testAudience = "http://fhir.test/fhir"
	testKid      = "k1"
)

type testVerifier struct {
	keys map[string]*ecdsa.PublicKey
	now  func() time.Time
}

type testClaims struct {
	jwt.RegisteredClaims
	Scope    string `json:"scope"`
	ClientID string `json:"client_id"`
	FHIRUser string `json:"fhirUser,omitempty"`
	Patient  string `json:"patient,omitempty"`
}

func (v *testVerifier) Verify(ctx context.Context, raw string) (*authz.Caller, error) {
	if raw == "boom" {
		return nil, errors.New("database down")
	}
	p := jwt.NewParser(jwt.WithValidMethods([]string{"ES256", "RS256"}), jwt.WithIssuer(testIssuer),
		jwt.WithAudience(testAudience), jwt.WithLeeway(60*time.Second), jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(), jwt.WithTimeFunc(v.now))
	var c testClaims
	_, err := p.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); typ != "at+jwt" {
			return nil, fmt.Errorf("typ %q", typ)
		}
		kid, _ := t.Header["kid"].(string)
		if k, ok := v.keys[kid]; ok {
			return k, nil
		}
		return nil, fmt.Errorf("unknown kid %q", kid)
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	caller := &authz.Caller{ClientID: c.ClientID, Subject: c.Subject, Scopes: strings.Fields(c.Scope), Patient: c.Patient}
	if c.FHIRUser != "" {
		caller.FHIRUserType, caller.FHIRUserID, _ = authz.ParseFHIRUser(c.FHIRUser)
	}
	return caller, nil
}

func TestBearer(t *testing.T) {
	ours, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	v := &testVerifier{keys: map[string]*ecdsa.PublicKey{testKid: &ours.PublicKey}, now: func() time.Time { return now }}

	claims := func(change func(*testClaims)) *testClaims {
		c := &testClaims{
			RegisteredClaims: jwt.RegisteredClaims{
				Issuer: testIssuer, Subject: "alice", Audience: jwt.ClaimStrings{testAudience},
				ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)), IssuedAt: jwt.NewNumericDate(now), ID: "jti1",
			},
			Scope: "launch/patient patient/*.rs", ClientID: "app", Patient: "a",
			FHIRUser: "http://fhir.test/fhir/Patient/a",
		}
		if change != nil {
			change(c)
		}
		return c
	}
	sign := func(m jwt.SigningMethod, key any, kid string, c *testClaims) string {
		t.Helper()
		tok := jwt.NewWithClaims(m, c)
		tok.Header["typ"] = "at+jwt"
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := sign(jwt.SigningMethodES256, ours, testKid, claims(nil))
	der, _ := x509.MarshalPKIXPublicKey(&ours.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	tampered := func() string {
		parts := strings.Split(good, ".")
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		payload = []byte(strings.Replace(string(payload), `"patient":"a"`, `"patient":"b"`, 1))
		parts[1] = base64.RawURLEncoding.EncodeToString(payload)
		return strings.Join(parts, ".")
	}()
	untyped := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims(nil))
		tok.Header["kid"] = testKid
		s, _ := tok.SignedString(ours)
		return s
	}()

	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "fhir.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h, err := newHandler(Deps{Store: st, BaseURL: testIssuer, AuthMode: AuthNone})
	if err != nil {
		t.Fatal(err)
	}
	srv := h.bearer(v)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := CallerFrom(r.Context())
		if !ok {
			t.Error("no caller in the context")
			return
		}
		fmt.Fprintf(w, "%s %s %s/%s %v", c.ClientID, c.Patient, c.FHIRUserType, c.FHIRUserID, c.Scopes)
	}))

	const (
		noToken = `Bearer realm="fhir"`
		invalid = `Bearer realm="fhir", error="invalid_token"`
		badReq  = `Bearer realm="fhir", error="invalid_request"`
	)
	for _, tc := range []struct {
		name      string
		url       string
		auth      []string
		status    int
		challenge string
	}{
		{"good token", "/fhir/Patient", []string{"Bearer " + good}, 200, ""},
		{"scheme is case-insensitive", "/fhir/Patient", []string{"bearer " + good}, 200, ""},
		{"within the leeway", "/fhir/Patient", []string{"Bearer " + sign(jwt.SigningMethodES256, ours, testKid, claims(func(c *testClaims) {
			c.ExpiresAt = jwt.NewNumericDate(now.Add(-30 * time.Second))
		}))}, 200, ""},
		{"no credentials", "/fhir/Patient", nil, 401, noToken},
		{"basic credentials", "/fhir/Patient", []string{"Basic YWxpY2U6cHc="}, 401, noToken},
		{"empty bearer", "/fhir/Patient", []string{"Bearer "}, 401, invalid},
		{"bearer alone", "/fhir/Patient", []string{"Bearer"}, 401, invalid},
		{"two tokens", "/fhir/Patient", []string{"Bearer " + good + " " + good}, 401, invalid},
		{"two headers", "/fhir/Patient", []string{"Bearer " + good, "Bearer " + good}, 401, badReq},
		{"query token", "/fhir/Patient?access_token=" + good, nil, 401, badReq},
		{"query token with a good header", "/fhir/Patient?access_token=" + good, []string{"Bearer " + good}, 401, badReq},
		{"garbage", "/fhir/Patient", []string{"Bearer not.a.jwt"}, 401, invalid},
		{"alg none", "/fhir/Patient", []string{"Bearer " + sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, testKid, claims(nil))}, 401, invalid},
		{"HS256 with the public key", "/fhir/Patient", []string{"Bearer " + sign(jwt.SigningMethodHS256, pubPEM, testKid, claims(nil))}, 401, invalid},
		{"HS256 with the public key DER", "/fhir/Patient", []string{"Bearer " + sign(jwt.SigningMethodHS256, der, testKid, claims(nil))}, 401, invalid},
		{"foreign key with our kid", "/fhir/Patient", []string{"Bearer " + sign(jwt.SigningMethodES256, foreign, testKid, claims(nil))}, 401, invalid},
		{"unknown kid", "/fhir/Patient", []string{"Bearer " + sign(jwt.SigningMethodES256, foreign, "k2", claims(nil))}, 401, invalid},
		{"tampered payload", "/fhir/Patient", []string{"Bearer " + tampered}, 401, invalid},
		{"no typ", "/fhir/Patient", []string{"Bearer " + untyped}, 401, invalid},
		{"wrong audience", "/fhir/Patient", []string{"Bearer " + sign(jwt.SigningMethodES256, ours, testKid, claims(func(c *testClaims) {
			c.Audience = jwt.ClaimStrings{"http://other.test/fhir"}
		}))}, 401, invalid},
		{"wrong issuer", "/fhir/Patient", []string{"Bearer " + sign(jwt.SigningMethodES256, ours, testKid, claims(func(c *testClaims) {
			c.Issuer = "http://evil.test"
		}))}, 401, invalid},
		{"expired", "/fhir/Patient", []string{"Bearer " + sign(jwt.SigningMethodES256, ours, testKid, claims(func(c *testClaims) {
			c.ExpiresAt = jwt.NewNumericDate(now.Add(-2 * time.Minute))
		}))}, 401, invalid},
		{"no exp", "/fhir/Patient", []string{"Bearer " + sign(jwt.SigningMethodES256, ours, testKid, claims(func(c *testClaims) {
			c.ExpiresAt = nil
		}))}, 401, invalid},
		{"not yet valid", "/fhir/Patient", []string{"Bearer " + sign(jwt.SigningMethodES256, ours, testKid, claims(func(c *testClaims) {
			c.NotBefore = jwt.NewNumericDate(now.Add(5 * time.Minute))
		}))}, 401, invalid},
		{"issued in the future", "/fhir/Patient", []string{"Bearer " + sign(jwt.SigningMethodES256, ours, testKid, claims(func(c *testClaims) {
			c.IssuedAt = jwt.NewNumericDate(now.Add(5 * time.Minute))
		}))}, 401, invalid},
		{"verifier outage", "/fhir/Patient", []string{"Bearer boom"}, 500, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, tc.url, nil)
			for _, a := range tc.auth {
				req.Header.Add("Authorization", a)
			}
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != tc.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, tc.challenge)
			}
			if tc.status == 200 {
				if want := "app a Patient/a [launch/patient patient/*.rs]"; rec.Body.String() != want {
					t.Errorf("caller %q, want %q", rec.Body, want)
				}
				return
			}
			var oo struct {
				ResourceType string
				Issue        []struct{ Code, Diagnostics string }
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) != 1 {
				t.Fatalf("body %s", rec.Body)
			}
			if strings.Contains(rec.Body.String(), "database") || strings.Contains(rec.Body.String(), good) {
				t.Errorf("the body tells too much: %s", rec.Body)
			}
		})
	}
}
