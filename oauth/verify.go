package oauth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/fhirserver/fhirserver/store"
)

// ErrInvalidToken is wrapped by every Verify error that means the token is
// bad (malformed, wrong signature, expired, revoked, wrong audience): the
// resource server answers 401 with error="invalid_token". Any other error
// is internal (the database did not answer).
var ErrInvalidToken = errors.New("invalid token")

// Claims are the verified claims of an access token.
type Claims struct {
	Issuer   string
	Subject  string
	Audience string
	ClientID string
	// Scope is the granted scope string; Scopes the same, split.
	Scope     string
	Scopes    []string
	FHIRUser  string // absolute URL of the user's resource, or ""
	Patient   string // launch context patient id, or ""
	Encounter string // launch context encounter id, or ""
	JTI       string
	IssuedAt  time.Time
	NotBefore time.Time
	ExpiresAt time.Time
}

// accessClaims is the JSON of an access token.
type accessClaims struct {
	Issuer    string           `json:"iss"`
	Subject   string           `json:"sub"`
	Audience  string           `json:"aud"`
	ExpiresAt *jwt.NumericDate `json:"exp"`
	IssuedAt  *jwt.NumericDate `json:"iat"`
	NotBefore *jwt.NumericDate `json:"nbf,omitempty"`
	JTI       string           `json:"jti"`
	Scope     string           `json:"scope"`
	ClientID  string           `json:"client_id"`
	FHIRUser  string           `json:"fhirUser,omitempty"`
	Patient   string           `json:"patient,omitempty"`
	Encounter string           `json:"encounter,omitempty"`
}

func (c *accessClaims) GetExpirationTime() (*jwt.NumericDate, error) { return c.ExpiresAt, nil }
func (c *accessClaims) GetIssuedAt() (*jwt.NumericDate, error)       { return c.IssuedAt, nil }
func (c *accessClaims) GetNotBefore() (*jwt.NumericDate, error)      { return c.NotBefore, nil }
func (c *accessClaims) GetIssuer() (string, error)                   { return c.Issuer, nil }
func (c *accessClaims) GetSubject() (string, error)                  { return c.Subject, nil }
func (c *accessClaims) GetAudience() (jwt.ClaimStrings, error) {
	return jwt.ClaimStrings{c.Audience}, nil
}

// RevocationStore lists revoked access tokens (package store implements it).
type RevocationStore interface {
	RevokedSince(ctx context.Context, since, now time.Time) ([]store.Revocation, error)
}

// Verifier checks access tokens for the resource server: signature by one
// of our keys (ES256 or RS256 only), typ at+jwt, iss = B, aud = B/fhir,
// exp/nbf/iat with the leeway, and the revocation list (polled from the
// database every RevocationPoll, so a revocation made by another process
// takes effect within that time; one made by this process at once).
type Verifier struct {
	keys   *keyring
	revs   *revocations
	parser *jwt.Parser
	now    func() time.Time
	leeway time.Duration
	cache  verifiedCache[*Claims]
}

// maxVerified bounds the verified-token cache; when full it starts over.
const maxVerified = 10000

// verifiedCache remembers tokens whose signature and claims were checked,
// keyed by the SHA-256 of the token, so that a client's repeated requests
// cost a hash and a map lookup instead of an ECDSA verification (which
// took a third of read throughput). Expiry and revocation (our tokens) or
// the signing key (external ones) are checked on every use.
type verifiedCache[V any] struct {
	mu sync.RWMutex
	m  map[[32]byte]V
}

func (c *verifiedCache[V]) get(k [32]byte) (V, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	v, ok := c.m[k]
	return v, ok
}

func (c *verifiedCache[V]) put(k [32]byte, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxVerified {
		c.m = make(map[[32]byte]V)
	}
	c.m[k] = v
}

func (c *verifiedCache[V]) drop(k [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, k)
}

// cached returns the claims of a token verified before, when it is still
// within its validity period (with leeway) and not revoked. ok is false
// when the token must be verified in full.
func (v *Verifier) cached(ctx context.Context, k [32]byte) (cl *Claims, ok bool, err error) {
	c, hit := v.cache.get(k)
	if !hit {
		return nil, false, nil
	}
	now := v.now()
	if now.After(c.ExpiresAt.Add(v.leeway)) || (!c.NotBefore.IsZero() && now.Before(c.NotBefore.Add(-v.leeway))) {
		v.cache.drop(k)
		return nil, false, nil
	}
	revoked, err := v.revs.revoked(ctx, c.JTI)
	if err != nil {
		return nil, false, err
	}
	if revoked {
		return nil, false, fmt.Errorf("%w: the token was revoked", ErrInvalidToken)
	}
	out := *c
	out.Scopes = append([]string(nil), c.Scopes...)
	return &out, true, nil
}

// Verify returns the claims of a valid token, or an error wrapping
// ErrInvalidToken.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Claims, error) {
	key := sha256.Sum256([]byte(raw))
	if c, ok, err := v.cached(ctx, key); ok || err != nil {
		return c, err
	}
	var c accessClaims
	var keyErr error
	_, err := v.parser.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); !strings.EqualFold(typ, "at+jwt") {
			return nil, errors.New("not an access token (typ is not at+jwt)")
		}
		kid, _ := t.Header["kid"].(string)
		k, err := v.keys.lookup(ctx, kid)
		if err != nil {
			if !errors.Is(err, errUnknownKey) {
				keyErr = err
			}
			return nil, err
		}
		if k.alg != t.Method.Alg() {
			return nil, fmt.Errorf("key %s is for %s, not %s", kid, k.alg, t.Method.Alg())
		}
		return k.key, nil
	})
	if keyErr != nil {
		return nil, keyErr // the key table could not be read
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if c.JTI == "" || c.ClientID == "" || c.IssuedAt == nil {
		return nil, fmt.Errorf("%w: jti, client_id and iat are required", ErrInvalidToken)
	}
	revoked, err := v.revs.revoked(ctx, c.JTI)
	if err != nil {
		return nil, err
	}
	if revoked {
		return nil, fmt.Errorf("%w: the token was revoked", ErrInvalidToken)
	}
	out := &Claims{
		Issuer: c.Issuer, Subject: c.Subject, Audience: c.Audience, ClientID: c.ClientID,
		Scope: c.Scope, Scopes: strings.Fields(c.Scope), FHIRUser: c.FHIRUser,
		Patient: c.Patient, Encounter: c.Encounter, JTI: c.JTI,
		IssuedAt: c.IssuedAt.Time, ExpiresAt: c.ExpiresAt.Time,
	}
	if c.NotBefore != nil {
		out.NotBefore = c.NotBefore.Time
	}
	cached := *out
	cached.Scopes = append([]string(nil), out.Scopes...)
	v.cache.put(key, &cached)
	return out, nil
}

// revocations is the in-memory copy of the revocation list.
type revocations struct {
	store RevocationStore
	now   func() time.Time
	poll  time.Duration

	mu       sync.Mutex
	jtis     map[string]time.Time // jti → expiry
	polled   time.Time            // when the list was last read
	since    time.Time            // revocations at or after this are read next
	loaded   bool
	stale    bool // a revocation was made here whose jtis are not known yet
	inflight bool
}

// overlap re-reads recent revocations: a transaction that started earlier
// may commit a revocation time before the last poll.
const revocationOverlap = 10 * time.Second

// revoked reports whether jti is on the list, reading new revocations first
// when the copy is older than the poll interval.
func (r *revocations) revoked(ctx context.Context, jti string) (bool, error) {
	r.mu.Lock()
	now := r.now()
	needPoll := !r.loaded || r.stale || now.Sub(r.polled) >= r.poll
	// Only one request polls; the others use the copy they have unless it
	// was never loaded or is known to lack a revocation.
	if needPoll && (!r.inflight || !r.loaded || r.stale) {
		since := r.since
		r.inflight = true
		r.stale = false
		r.mu.Unlock()
		list, err := r.store.RevokedSince(ctx, since, now)
		r.mu.Lock()
		r.inflight = false
		if err != nil {
			r.mu.Unlock()
			return false, fmt.Errorf("reading the revocation list: %w", err)
		}
		if r.jtis == nil {
			r.jtis = map[string]time.Time{}
		}
		for _, rv := range list {
			r.jtis[rv.JTI] = rv.ExpiresAt
		}
		for k, exp := range r.jtis {
			if !exp.After(now) {
				delete(r.jtis, k)
			}
		}
		r.loaded, r.polled, r.since = true, now, now.Add(-revocationOverlap)
	}
	_, ok := r.jtis[jti]
	r.mu.Unlock()
	return ok, nil
}

// add records revocations made by this process.
func (r *revocations) add(list []store.Revocation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.jtis == nil {
		r.jtis = map[string]time.Time{}
	}
	for _, rv := range list {
		r.jtis[rv.JTI] = rv.ExpiresAt
	}
}

// invalidate makes the next check read the list (a family was revoked and
// only the database knows its tokens).
func (r *revocations) invalidate() {
	r.mu.Lock()
	r.stale = true
	r.mu.Unlock()
}
