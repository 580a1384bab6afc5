package oauth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/ory/fosite"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/store"
)

// LoginClientID is the built-in public client that B/fhir/login issues
// tokens to; its refresh tokens are redeemed with client_id=login.
const LoginClientID = "login"

// client is a registered client as fosite sees it.
type client struct {
	c        store.OAuthClient
	scopes   fosite.Arguments
	audience fosite.Arguments
}

func (p *Provider) newClient(c store.OAuthClient) *client {
	scopes := fosite.Arguments(strings.Fields(c.Scope))
	if slices.Contains(c.GrantTypes, "authorization_code") {
		for _, s := range contextScopes {
			scopes = fosite.Arguments(appendOnce(scopes, s))
		}
	}
	if slices.Contains(c.GrantTypes, "refresh_token") {
		scopes = fosite.Arguments(appendOnce(scopes, "offline_access"))
		scopes = fosite.Arguments(appendOnce(scopes, "online_access"))
	}
	return &client{c: c, scopes: scopes, audience: fosite.Arguments{p.fhirBase}}
}

func (c *client) GetID() string                      { return c.c.ID }
func (c *client) GetHashedSecret() []byte            { return c.c.SecretHash }
func (c *client) GetRedirectURIs() []string          { return c.c.RedirectURIs }
func (c *client) GetGrantTypes() fosite.Arguments    { return c.c.GrantTypes }
func (c *client) GetResponseTypes() fosite.Arguments { return fosite.Arguments{"code"} }
func (c *client) GetScopes() fosite.Arguments        { return c.scopes }
func (c *client) IsPublic() bool                     { return c.c.Public }
func (c *client) GetAudience() fosite.Arguments      { return c.audience }

// asymmetric reports whether the client authenticates with a key.
func (c *client) asymmetric() bool { return c.c.JWKS != "" || c.c.JWKSURL != "" }

// loginClient is the built-in client of B/fhir/login: public, refresh only,
// any user scope (each user's cap limits what is granted).
func (p *Provider) loginClient() *client {
	return p.newClient(store.OAuthClient{
		Tenant: p.cfg.Tenant, ID: LoginClientID, Public: true,
		Scope:      "patient/*.cruds user/*.cruds openid fhirUser offline_access online_access launch/patient",
		GrantTypes: []string{"refresh_token"},
	})
}

// client looks a client up (fosite.ErrNotFound when unknown).
func (p *Provider) client(ctx context.Context, id string) (*client, error) {
	if id == LoginClientID {
		return p.loginClient(), nil
	}
	if !storable(id) {
		return nil, fosite.ErrNotFound
	}
	c, err := p.store.GetClient(ctx, p.cfg.Tenant, id)
	if fhir.KindOf(err) == fhir.KindNotFound {
		return nil, fosite.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return p.newClient(*c), nil
}

// NewClientSecret returns a machine-generated client secret (32 random
// bytes, base64url).
func NewClientSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// hashSecret is the keyed hash a client secret is stored as: HMAC-SHA256
// under the server's pepper. Secrets are long random strings, so a fast
// keyed hash is enough; the pepper lives in the database's key table.
func hashSecret(pepper []byte, secret string) []byte {
	m := hmac.New(sha256.New, pepper)
	m.Write([]byte("client-secret\x00"))
	m.Write([]byte(secret))
	return m.Sum(nil)
}

// secretHasher is fosite's view of hashSecret.
type secretHasher struct{ p *Provider }

func (h secretHasher) Compare(ctx context.Context, hash, data []byte) error {
	if len(hash) == 0 || !hmac.Equal(hash, hashSecret(h.p.keys.pepper(), string(data))) {
		return errors.New("client secret mismatch")
	}
	return nil
}

func (h secretHasher) Hash(ctx context.Context, data []byte) ([]byte, error) {
	return hashSecret(h.p.keys.pepper(), string(data)), nil
}

const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// authenticateClient is fosite's client authentication strategy:
// client_secret_basic and client_secret_post for clients with a secret,
// private_key_jwt (RS384 or ES384) for clients with keys, client_id alone
// for public clients.
func (p *Provider) authenticateClient(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error) {
	if t := form.Get("client_assertion_type"); t != "" {
		if t != assertionType {
			return nil, fosite.ErrInvalidRequest.WithHintf("Unknown client_assertion_type %q.", t)
		}
		return p.authenticateAssertion(ctx, form)
	}
	id, secret, basic := r.BasicAuth()
	if basic {
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return nil, fosite.ErrInvalidClient.WithHint("The client credentials in the Authorization header are not form-encoded.")
		}
		if fid := form.Get("client_id"); fid != "" && fid != id {
			return nil, fosite.ErrInvalidClient.WithHint("client_id differs from the Authorization header.")
		}
	} else {
		id, secret = form.Get("client_id"), form.Get("client_secret")
	}
	if id == "" {
		return nil, fosite.ErrInvalidClient.WithHint("Client authentication is required.")
	}
	c, err := p.client(ctx, id)
	if errors.Is(err, fosite.ErrNotFound) {
		return nil, fosite.ErrInvalidClient.WithHint("Client authentication failed.")
	}
	if err != nil {
		return nil, fosite.ErrServerError.WithWrap(err)
	}
	switch {
	case c.IsPublic():
		if secret != "" {
			return nil, fosite.ErrInvalidClient.WithHint("Client authentication failed.")
		}
		return c, nil
	case c.asymmetric():
		return nil, fosite.ErrInvalidClient.WithHint("This client authenticates with private_key_jwt.")
	case secret == "" || len(c.c.SecretHash) == 0 || !hmac.Equal(c.c.SecretHash, hashSecret(p.keys.pepper(), secret)):
		return nil, fosite.ErrInvalidClient.WithHint("Client authentication failed.")
	}
	return c, nil
}

// assertionClaims are the claims of a private_key_jwt client assertion.
type assertionClaims struct {
	jwt.RegisteredClaims
}

// maxAssertionLife is how far in the future an assertion may expire
// (SMART Backend Services: no more than five minutes).
const maxAssertionLife = 5 * time.Minute

// authenticateAssertion checks a private_key_jwt client assertion: signed
// with RS384 or ES384 by a key of the client's JWKS, iss = sub = client_id,
// aud = the token endpoint, exp at most five minutes ahead, jti never seen.
func (p *Provider) authenticateAssertion(ctx context.Context, form url.Values) (fosite.Client, error) {
	raw := form.Get("client_assertion")
	if raw == "" {
		return nil, fosite.ErrInvalidRequest.WithHint("client_assertion is missing.")
	}
	var unverified assertionClaims
	if _, _, err := jwt.NewParser().ParseUnverified(raw, &unverified); err != nil {
		return nil, fosite.ErrInvalidClient.WithHint("The client assertion is not a JWT.")
	}
	id := unverified.Subject
	if fid := form.Get("client_id"); fid != "" && fid != id {
		return nil, fosite.ErrInvalidClient.WithHint("client_id differs from the assertion's subject.")
	}
	c, err := p.client(ctx, id)
	if errors.Is(err, fosite.ErrNotFound) {
		return nil, fosite.ErrInvalidClient.WithHint("Client authentication failed.")
	}
	if err != nil {
		return nil, fosite.ErrServerError.WithWrap(err)
	}
	if !c.asymmetric() {
		return nil, fosite.ErrInvalidClient.WithHint("This client has no registered keys.")
	}
	var claims assertionClaims
	_, err = jwt.ParseWithClaims(raw, &claims, func(t *jwt.Token) (any, error) { return p.clientKey(ctx, c, t) },
		jwt.WithValidMethods([]string{"RS384", "ES384"}),
		jwt.WithIssuer(id), jwt.WithSubject(id), jwt.WithAudience(p.tokenURL),
		jwt.WithExpirationRequired(), jwt.WithLeeway(p.cfg.Leeway), jwt.WithTimeFunc(p.now))
	if err != nil {
		return nil, fosite.ErrInvalidClient.WithHintf("The client assertion is invalid: %v.", err)
	}
	exp := claims.ExpiresAt.Time
	if exp.After(p.now().Add(maxAssertionLife + p.cfg.Leeway)) {
		return nil, fosite.ErrInvalidClient.WithHint("The client assertion expires more than five minutes from now.")
	}
	if claims.ID == "" {
		return nil, fosite.ErrInvalidClient.WithHint("The client assertion has no jti.")
	}
	sum := sha256.Sum256([]byte(id + "\x00" + claims.ID))
	if err := p.store.UseAssertion(ctx, "assertion:"+base64.RawURLEncoding.EncodeToString(sum[:]), exp.Add(p.cfg.Leeway)); err != nil {
		if fhir.KindOf(err) == fhir.KindConflict {
			return nil, fosite.ErrInvalidClient.WithHint("The client assertion's jti was already used.")
		}
		return nil, fosite.ErrServerError.WithWrap(err)
	}
	return c, nil
}

// clientKey finds the public key of an assertion in the client's JWKS:
// inline, or fetched from its URL (cached; fetched again once when the kid
// is unknown, for clients that rotated their keys).
func (p *Provider) clientKey(ctx context.Context, c *client, t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	alg, _ := t.Header["alg"].(string)
	var set *jose.JSONWebKeySet
	if c.c.JWKS != "" {
		set = new(jose.JSONWebKeySet)
		if err := json.Unmarshal([]byte(c.c.JWKS), set); err != nil {
			return nil, fmt.Errorf("the client's registered JWKS does not parse: %w", err)
		}
		return findKey(set, kid, alg)
	}
	set, err := p.jwks.Resolve(ctx, c.c.JWKSURL, false)
	if err == nil {
		if k, err := findKey(set, kid, alg); err == nil {
			return k, nil
		}
	}
	set, err = p.jwks.Resolve(ctx, c.c.JWKSURL, true)
	if err != nil {
		return nil, fmt.Errorf("fetching the client's JWKS: %w", err)
	}
	return findKey(set, kid, alg)
}

// findKey picks the verification key for alg (and kid, when given).
func findKey(set *jose.JSONWebKeySet, kid, alg string) (any, error) {
	keys := set.Keys
	if kid != "" {
		keys = set.Key(kid)
	}
	for _, k := range keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if k.Algorithm != "" && k.Algorithm != alg {
			continue
		}
		if !k.IsPublic() {
			continue
		}
		return k.Key, nil
	}
	return nil, fmt.Errorf("no key with kid %q for %s in the client's JWKS", kid, alg)
}

// ValidateJWKS checks that s is a JSON Web Key Set of public keys usable
// for private_key_jwt (RS384 or ES384).
func ValidateJWKS(s string) error {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(s), &set); err != nil {
		return fhir.Errorf(fhir.KindInvalid, "not a JSON Web Key Set: %v", err)
	}
	if len(set.Keys) == 0 {
		return fhir.Errorf(fhir.KindInvalid, "the key set has no keys")
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			return fhir.Errorf(fhir.KindInvalid, "key %q is a private key; register public keys only", k.KeyID)
		}
	}
	return nil
}

// jwksFetcher wraps fosite's cached JWKS fetcher so that an assertion with
// an unknown kid refetches a client's key set at most every ten seconds.
type jwksFetcher struct {
	f   fosite.JWKSFetcherStrategy
	now func() time.Time

	mu     sync.Mutex
	forced map[string]time.Time
}

func (j *jwksFetcher) Resolve(ctx context.Context, location string, force bool) (*jose.JSONWebKeySet, error) {
	if force {
		j.mu.Lock()
		if last, ok := j.forced[location]; ok && j.now().Sub(last) < 10*time.Second {
			force = false
		} else {
			j.forced[location] = j.now()
		}
		j.mu.Unlock()
	}
	return j.f.Resolve(ctx, location, force)
}
