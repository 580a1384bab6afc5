package oauth_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/oauth"
	"github.com/fhirserver/fhirserver/store"
)

func TestDiscovery(t *testing.T) {
	e := newEnv(t)
	r := e.get("/fhir/.well-known/smart-configuration")
	wantStatus(t, r, 200)
	for k, want := range map[string]string{
		"issuer": e.base, "token_endpoint": e.base + "/oauth/token", "authorization_endpoint": e.base + "/oauth/authorize",
		"jwks_uri": e.base + "/oauth/jwks", "introspection_endpoint": e.base + "/oauth/introspect", "revocation_endpoint": e.base + "/oauth/revoke",
	} {
		if r.str(k) != want {
			t.Errorf("%s = %q, want %q", k, r.str(k), want)
		}
	}
	list := func(k string) []string {
		var out []string
		for _, v := range r.json[k].([]any) {
			out = append(out, v.(string))
		}
		return out
	}
	if got := list("code_challenge_methods_supported"); !slices.Equal(got, []string{"S256"}) {
		t.Errorf("code_challenge_methods_supported %v", got)
	}
	for _, m := range []string{"private_key_jwt", "client_secret_basic"} {
		if !slices.Contains(list("token_endpoint_auth_methods_supported"), m) {
			t.Errorf("auth method %s missing", m)
		}
	}
	for _, c := range []string{"launch-ehr", "launch-standalone", "client-public", "client-confidential-symmetric", "client-confidential-asymmetric",
		"context-ehr-patient", "context-ehr-encounter", "context-standalone-patient", "permission-offline", "permission-online",
		"permission-patient", "permission-user", "permission-v1", "permission-v2", "sso-openid-connect", "authorize-post"} {
		if !slices.Contains(list("capabilities"), c) {
			t.Errorf("capability %s missing", c)
		}
	}
	for _, k := range []string{"grant_types_supported", "scopes_supported", "response_types_supported"} {
		if len(list(k)) == 0 {
			t.Errorf("%s empty", k)
		}
	}
	r = e.get("/.well-known/openid-configuration")
	wantStatus(t, r, 200)
	if r.str("issuer") != e.base || r.str("jwks_uri") != e.base+"/oauth/jwks" {
		t.Errorf("openid configuration: %s", r.body)
	}
	r = e.get("/oauth/jwks")
	wantStatus(t, r, 200)
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(r.body, &set); err != nil {
		t.Fatal(err)
	}
	algs := map[string]bool{}
	for _, k := range set.Keys {
		algs[k.Algorithm] = true
		if !k.IsPublic() {
			t.Fatalf("JWKS publishes a private key: %s", k.KeyID)
		}
	}
	if !algs["ES256"] || !algs["RS256"] || len(set.Keys) != 2 {
		t.Fatalf("JWKS: %s", r.body)
	}
}

func TestClientCredentials(t *testing.T) {
	e := newEnv(t)
	secret := e.confidential("backend", "system/*.rs system/Observation.cruds")
	ctx := context.Background()

	r := e.clientCredentials("backend", secret, "system/Patient.rs")
	wantStatus(t, r, 200)
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", r.header.Get("Cache-Control"))
	}
	if r.str("token_type") != "Bearer" || r.json["expires_in"].(float64) < 3500 || r.str("scope") != "system/Patient.rs" {
		t.Fatalf("token response %s", r.body)
	}
	tok := r.str("access_token")
	h, c := jwtParts(t, tok)
	if h["typ"] != "at+jwt" || h["alg"] != "ES256" || h["kid"] == "" {
		t.Fatalf("header %v", h)
	}
	if c["iss"] != e.base || c["aud"] != e.base+"/fhir" || c["client_id"] != "backend" || c["sub"] != "backend" || c["jti"] == "" || c["iat"] == nil || c["exp"] == nil {
		t.Fatalf("claims %v", c)
	}
	claims, err := e.p.Verifier().Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if claims.ClientID != "backend" || !slices.Equal(claims.Scopes, []string{"system/Patient.rs"}) {
		t.Fatalf("verified claims %+v", claims)
	}
	// Nothing is written per client_credentials token.
	if _, err := e.st.GetToken(ctx, store.TokenAccess, claims.JTI); fhir.KindOf(err) != fhir.KindNotFound {
		t.Fatalf("a client_credentials token was stored: %v", err)
	}

	// No scope: the registered scopes. v1 scopes are granted in v2 form too.
	r = e.clientCredentials("backend", secret, "")
	wantStatus(t, r, 200)
	if r.str("scope") != "system/*.rs system/Observation.cruds" {
		t.Fatalf("default scope %q", r.str("scope"))
	}
	r = e.clientCredentials("backend", secret, "system/*.read system/Observation.write")
	wantStatus(t, r, 200)
	if r.str("scope") != "system/*.read system/*.rs system/Observation.write system/Observation.cud" {
		t.Fatalf("v1 scope %q", r.str("scope"))
	}

	// client_secret_post.
	r = e.post("/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"backend"}, "client_secret": {secret}})
	wantStatus(t, r, 200)

	for name, tc := range map[string]struct {
		r      result
		status int
		code   string
	}{
		"wrong secret":      {e.clientCredentials("backend", secret+"x", ""), 401, "invalid_client"},
		"unknown client":    {e.clientCredentials("nobody", secret, ""), 401, "invalid_client"},
		"no credentials":    {e.post("/oauth/token", url.Values{"grant_type": {"client_credentials"}}), 401, "invalid_client"},
		"wider scope":       {e.clientCredentials("backend", secret, "system/*.cruds"), 400, "invalid_scope"},
		"patient scope":     {e.clientCredentials("backend", secret, "patient/*.rs"), 400, "invalid_scope"},
		"unknown grant":     {e.post("/oauth/token", url.Values{"grant_type": {"password"}, "username": {"a"}}, "Authorization", basic("backend", secret)), 400, "unsupported_grant_type"},
		"unregistered code": {e.post("/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {"x"}}, "Authorization", basic("backend", secret)), 400, "unauthorized_client"},
	} {
		if tc.r.status != tc.status || tc.r.str("error") != tc.code {
			t.Errorf("%s: %d %s, want %d %s", name, tc.r.status, tc.r.body, tc.status, tc.code)
		}
	}
}

// assertionKey is a client key for private_key_jwt.
type assertionKey struct {
	alg  string
	kid  string
	priv crypto.Signer
}

func newAssertionKey(t *testing.T, alg string) assertionKey {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case "ES384":
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	default:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatal(err)
	}
	return assertionKey{alg: alg, kid: "k-" + alg, priv: priv}
}

func jwksOf(keys ...assertionKey) string {
	var set jose.JSONWebKeySet
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: k.alg, Use: "sig"})
	}
	b, _ := json.Marshal(set)
	return string(b)
}

func (k assertionKey) sign(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(k.alg), claims)
	tok.Header["kid"] = k.kid
	s, err := tok.SignedString(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *env) assertionClaims(client string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"iss": client, "sub": client, "aud": e.base + "/oauth/token", "exp": now.Add(4 * time.Minute).Unix(), "iat": now.Unix(), "jti": oauth.NewJTIForTest()}
}

func (e *env) assertionToken(assertion, scope string) result {
	return e.post("/oauth/token", url.Values{
		"grant_type": {"client_credentials"}, "scope": {scope},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion},
	})
}

func TestPrivateKeyJWT(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	rs, es := newAssertionKey(t, "RS384"), newAssertionKey(t, "ES384")
	if _, err := oauth.RegisterClient(ctx, e.st, oauth.ClientSpec{ID: "inline", JWKS: jwksOf(rs, es), Scope: "system/*.rs"}); err != nil {
		t.Fatal(err)
	}
	var fetches atomic.Int32
	jwksSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		_, _ = w.Write([]byte(jwksOf(es)))
	}))
	defer jwksSrv.Close()
	if _, err := oauth.RegisterClient(ctx, e.st, oauth.ClientSpec{ID: "byurl", JWKSURL: jwksSrv.URL, Scope: "system/*.rs"}); err != nil {
		t.Fatal(err)
	}

	for _, k := range []assertionKey{rs, es} {
		r := e.assertionToken(k.sign(t, e.assertionClaims("inline")), "system/*.rs")
		wantStatus(t, r, 200)
	}
	for range 3 {
		r := e.assertionToken(es.sign(t, e.assertionClaims("byurl")), "system/*.rs")
		wantStatus(t, r, 200)
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("JWKS fetched %d times, want once (cached)", n)
	}

	replayed := rs.sign(t, e.assertionClaims("inline"))
	wantStatus(t, e.assertionToken(replayed, ""), 200)

	expired := e.assertionClaims("inline")
	expired["exp"] = time.Now().Add(-2 * time.Minute).Unix()
	tooLong := e.assertionClaims("inline")
	tooLong["exp"] = time.Now().Add(time.Hour).Unix()
	wrongAud := e.assertionClaims("inline")
	wrongAud["aud"] = e.base + "/fhir"
	wrongIss := e.assertionClaims("inline")
	wrongIss["iss"] = "someone"
	noJTI := e.assertionClaims("inline")
	delete(noJTI, "jti")
	other := newAssertionKey(t, "ES384")
	rs256 := assertionKey{alg: "RS256", kid: rs.kid, priv: rs.priv}
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, e.assertionClaims("inline"))
	hsSigned, _ := hs.SignedString([]byte("0123456789abcdef0123456789abcdef"))
	none := jwt.NewWithClaims(jwt.SigningMethodNone, e.assertionClaims("inline"))
	noneSigned, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	for name, assertion := range map[string]string{
		"replayed jti":   replayed,
		"expired":        rs.sign(t, expired),
		"exp too far":    rs.sign(t, tooLong),
		"wrong audience": rs.sign(t, wrongAud),
		"wrong issuer":   rs.sign(t, wrongIss),
		"no jti":         rs.sign(t, noJTI),
		"unknown key":    other.sign(t, e.assertionClaims("inline")),
		"RS256":          rs256.sign(t, e.assertionClaims("inline")),
		"HS256":          hsSigned,
		"alg none":       noneSigned,
		"not a JWT":      "nonsense",
		"secret client":  rs.sign(t, e.assertionClaims("nobody")),
	} {
		r := e.assertionToken(assertion, "")
		if r.status != 401 || r.str("error") != "invalid_client" {
			t.Errorf("%s: %d %s, want 401 invalid_client", name, r.status, r.body)
		}
	}
}

func TestIntrospectionAndRevocation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.confidential("a", "system/*.rs")
	b := e.confidential("b", "system/*.rs")
	admin := e.confidential("admin", "system/*.rs introspect")
	tok := e.clientCredentials("a", a, "").str("access_token")

	introspect := func(id, secret, token string) result {
		return e.post("/oauth/introspect", url.Values{"token": {token}}, "Authorization", basic(id, secret))
	}
	r := introspect("a", a, tok)
	wantStatus(t, r, 200)
	if r.json["active"] != true || r.str("client_id") != "a" || r.str("scope") != "system/*.rs" || r.str("sub") != "a" || r.json["exp"] == nil {
		t.Fatalf("introspection %s", r.body)
	}
	if r := introspect("b", b, tok); r.json["active"] != false {
		t.Fatalf("another client sees a's token: %s", r.body)
	}
	if r := introspect("admin", admin, tok); r.json["active"] != true {
		t.Fatalf("introspect scope: %s", r.body)
	}
	if r := introspect("a", "wrong", tok); r.status != 401 {
		t.Fatalf("unauthenticated introspection: %d %s", r.status, r.body)
	}
	if r := e.post("/oauth/introspect", url.Values{"token": {tok}}); r.status != 401 {
		t.Fatalf("introspection without client: %d %s", r.status, r.body)
	}
	if r := introspect("a", a, "garbage"); r.json["active"] != false {
		t.Fatalf("garbage is active: %s", r.body)
	}

	// Another client cannot revoke it.
	r = e.post("/oauth/revoke", url.Values{"token": {tok}}, "Authorization", basic("b", b))
	wantStatus(t, r, 200)
	if _, err := e.p.Verifier().Verify(ctx, tok); err != nil {
		t.Fatalf("b revoked a's token: %v", err)
	}
	r = e.post("/oauth/revoke", url.Values{"token": {tok}, "token_type_hint": {"access_token"}}, "Authorization", basic("a", a))
	wantStatus(t, r, 200)
	if _, err := e.p.Verifier().Verify(ctx, tok); !errors.Is(err, oauth.ErrInvalidToken) {
		t.Fatalf("revoked token verifies: %v", err)
	}
	if r := introspect("a", a, tok); r.json["active"] != false {
		t.Fatalf("revoked token is active: %s", r.body)
	}
	if r := e.post("/oauth/revoke", url.Values{"token": {tok}}, "Authorization", basic("a", "wrong")); r.status != 401 {
		t.Fatalf("revocation without client auth: %d", r.status)
	}
	// A second provider on the same database (another server) learns of
	// the revocation from the revocation list.
	p2, err := oauth.New(oauth.Config{BaseURL: e.base}, e.st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p2.Verifier().Verify(ctx, tok); !errors.Is(err, oauth.ErrInvalidToken) {
		t.Fatalf("other server accepts a revoked token: %v", err)
	}
}

func TestVerifier(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	secret := e.confidential("c", "system/*.rs")
	tok := e.clientCredentials("c", secret, "").str("access_token")
	v := e.p.Verifier()
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	h, claims := jwtParts(t, tok)
	parts := strings.Split(tok, ".")

	// Re-signed or altered tokens.
	forge := func(alg jwt.SigningMethod, key any, header map[string]any, mod func(jwt.MapClaims)) string {
		c := jwt.MapClaims{}
		for k, v := range claims {
			c[k] = v
		}
		if mod != nil {
			mod(c)
		}
		t2 := jwt.NewWithClaims(alg, c)
		for k, v := range header {
			t2.Header[k] = v
		}
		s, err := t2.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cases := map[string]string{
		"alg none":      forge(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, map[string]any{"typ": "at+jwt", "kid": h["kid"]}, nil),
		"HS256":         forge(jwt.SigningMethodHS256, []byte("secret"), map[string]any{"typ": "at+jwt", "kid": h["kid"]}, nil),
		"foreign key":   forge(jwt.SigningMethodES256, stranger, map[string]any{"typ": "at+jwt", "kid": h["kid"]}, nil),
		"tampered":      parts[0] + "." + strings.TrimRight(parts[1], "=") + "x." + parts[2],
		"empty":         "",
		"not a jwt":     "abc",
		"wrong aud":     oauth.ForgeForTest(e.p, map[string]any{"aud": "https://other/fhir"}, nil),
		"aud array":     oauth.ForgeForTest(e.p, map[string]any{"aud": []string{e.base + "/fhir"}}, nil),
		"wrong iss":     oauth.ForgeForTest(e.p, map[string]any{"iss": "https://other"}, nil),
		"expired":       oauth.ForgeForTest(e.p, map[string]any{"exp": time.Now().Add(-2 * time.Minute).Unix()}, nil),
		"future nbf":    oauth.ForgeForTest(e.p, map[string]any{"nbf": time.Now().Add(2 * time.Minute).Unix()}, nil),
		"future iat":    oauth.ForgeForTest(e.p, map[string]any{"iat": time.Now().Add(2 * time.Minute).Unix()}, nil),
		"typ JWT":       oauth.ForgeForTest(e.p, nil, map[string]any{"typ": "JWT"}),
		"no exp":        oauth.ForgeForTest(e.p, map[string]any{"exp": nil}, nil),
		"no jti":        oauth.ForgeForTest(e.p, map[string]any{"jti": nil}, nil),
		"unknown kid":   oauth.ForgeForTest(e.p, nil, map[string]any{"kid": "nope"}),
		"id_token (RS)": oauth.ForgeForTest(e.p, nil, map[string]any{"typ": "JWT", "alg": "RS256"}),
	}
	for name, raw := range cases {
		if _, err := v.Verify(ctx, raw); !errors.Is(err, oauth.ErrInvalidToken) {
			t.Errorf("%s: got %v, want ErrInvalidToken", name, err)
		}
	}
	// Within the 60 s leeway.
	for name, raw := range map[string]string{
		"just expired": oauth.ForgeForTest(e.p, map[string]any{"exp": time.Now().Add(-30 * time.Second).Unix()}, nil),
		"nbf soon":     oauth.ForgeForTest(e.p, map[string]any{"nbf": time.Now().Add(30 * time.Second).Unix()}, nil),
	} {
		if _, err := v.Verify(ctx, raw); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Later, past exp plus leeway, the real token fails.
	e.advance(time.Hour + 2*time.Minute)
	if _, err := v.Verify(ctx, tok); !errors.Is(err, oauth.ErrInvalidToken) {
		t.Fatalf("expired token verifies: %v", err)
	}
}

func TestKeyRotation(t *testing.T) {
	e := newEnv(t, func(c *oauth.Config) { c.KeyReload = 50 * time.Millisecond })
	ctx := context.Background()
	secret := e.confidential("c", "system/*.rs")
	old := e.clientCredentials("c", secret, "").str("access_token")
	oldHeader, _ := jwtParts(t, old)
	kids, err := oauth.RotateKeys(ctx, e.st, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	fresh := e.clientCredentials("c", secret, "").str("access_token")
	freshHeader, _ := jwtParts(t, fresh)
	if freshHeader["kid"] == oldHeader["kid"] || freshHeader["kid"] != kids[0] {
		t.Fatalf("after rotation signed with %v, want the new key %s (old %v)", freshHeader["kid"], kids[0], oldHeader["kid"])
	}
	for _, tok := range []string{old, fresh} {
		if _, err := e.p.Verifier().Verify(ctx, tok); err != nil {
			t.Fatalf("verify after rotation: %v", err)
		}
	}
	var set jose.JSONWebKeySet
	_ = json.Unmarshal(e.get("/oauth/jwks").body, &set)
	if len(set.Keys) != 4 || len(set.Key(oldHeader["kid"].(string))) != 1 {
		t.Fatalf("JWKS after rotation has %d keys, want old and new of both uses", len(set.Keys))
	}
	// Once the old key's tokens have expired it is no longer published.
	e.advance(3 * time.Hour)
	time.Sleep(100 * time.Millisecond)
	_ = json.Unmarshal(e.get("/oauth/jwks").body, &set)
	set2 := jose.JSONWebKeySet{}
	_ = json.Unmarshal(e.get("/oauth/jwks").body, &set2)
	if len(set2.Keys) != 2 || len(set2.Key(oldHeader["kid"].(string))) != 0 {
		t.Fatalf("JWKS long after rotation: %d keys", len(set2.Keys))
	}
}
