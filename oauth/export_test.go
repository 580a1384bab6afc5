package oauth

import (
	"context"

	"github.com/golang-jwt/jwt/v5"
)

// NewJTIForTest exposes newJTI to the external tests.
func NewJTIForTest() string { return newJTI() }

// ForgeForTest signs a token like an access token of p, with claims and
// header members replaced (nil deletes a claim). It uses p's own keys, so
// only the changed members can make it fail.
func ForgeForTest(p *Provider, claims map[string]any, header map[string]any) string {
	ctx := context.Background()
	snap, err := p.keys.snapshot(ctx)
	if err != nil {
		panic(err)
	}
	now := p.now()
	c := jwt.MapClaims{
		"iss": p.base, "sub": "c", "aud": p.fhirBase, "exp": now.Add(p.cfg.AccessTokenTTL).Unix(), "iat": now.Unix(),
		"jti": newJTI(), "scope": "system/*.rs", "client_id": "c",
	}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	method := jwt.SigningMethod(jwt.SigningMethodES256)
	var key any = snap.access
	kid := snap.accessKID
	if header["alg"] == "RS256" {
		method, key, kid = jwt.SigningMethodRS256, snap.id, snap.idKID
	}
	t := jwt.NewWithClaims(method, c)
	t.Header["typ"] = "at+jwt"
	t.Header["kid"] = kid
	for k, v := range header {
		if k != "alg" {
			t.Header[k] = v
		}
	}
	s, err := t.SignedString(key)
	if err != nil {
		panic(err)
	}
	return s
}

// UserThrottleKey is the key failed logins of a user are counted under.
func UserThrottleKey(tenant, username string) string { return userThrottleKey(tenant, username) }

// DisableCredentialCache makes every login check its password with bcrypt.
func DisableCredentialCache(p *Provider) { p.passwords.ttl = 0 }
