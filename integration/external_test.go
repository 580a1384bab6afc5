package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestTrustedIssuer runs `serve --auth smart --trusted-issuer ISS=JWKS_URL`
// with a JWKS served by the test: the external issuer's tokens are served
// within their scopes and patient, and a token whose kid the JWKS does not
// have, or of an issuer that is not trusted, gets 401.
func TestTrustedIssuer(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := key.PublicKey.ECDH()
		b := raw.Bytes()
		enc := base64.RawURLEncoding.EncodeToString
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []any{map[string]string{
			"kty": "EC", "crv": "P-256", "kid": "idp-1", "alg": "ES256", "use": "sig", "x": enc(b[1:33]), "y": enc(b[33:])}}})
	}))
	defer jwks.Close()
	const iss = "https://idp.test/realms/fhir"

	db := "sqlite:" + filepath.Join(t.TempDir(), "fhir.db")
	imp := exec.Command(binary, "import", "--database-url", db, filepath.Join("..", "testdata", "synthea"))
	if out, err := imp.CombinedOutput(); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	p := start(t, db, "--auth", "smart", "--trusted-issuer", iss+"="+jwks.URL)

	token := func(kid, issuer, scope, patient string) string {
		now := time.Now()
		c := jwt.MapClaims{"iss": issuer, "aud": p.base + "/fhir", "sub": "u1", "azp": "ext-app",
			"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "scope": scope}
		if patient != "" {
			c["patient"] = patient
		}
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	patients := func(tok string) (int, []string) {
		resp, body := do(t, "GET", p.base+"/fhir/Patient", "", nil, "Authorization", "Bearer "+tok)
		var ids []string
		entries, _ := field(t, body, "entry").([]any)
		for _, e := range entries {
			id, _ := e.(map[string]any)["resource"].(map[string]any)["id"].(string)
			ids = append(ids, id)
		}
		return resp.StatusCode, ids
	}

	st, all := patients(token("idp-1", iss, "system/*.rs", ""))
	if st != 200 || len(all) != 2 {
		t.Fatalf("system/*.rs token of the trusted issuer: %d %v", st, all)
	}
	st, mine := patients(token("idp-1", iss, "launch/patient patient/*.rs", all[0]))
	if st != 200 || len(mine) != 1 || mine[0] != all[0] {
		t.Fatalf("patient/*.rs token for %s: %d %v", all[0], st, mine)
	}
	for name, tok := range map[string]string{
		"kid not in the JWKS": token("idp-2", iss, "system/*.rs", ""),
		"issuer not trusted":  token("idp-1", "https://evil.test", "system/*.rs", ""),
	} {
		resp, body := do(t, "GET", p.base+"/fhir/Patient", "", nil, "Authorization", "Bearer "+tok)
		if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Bearer realm="fhir", error="invalid_token"` {
			t.Errorf("%s: %d %q %s", name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
		}
	}
}
