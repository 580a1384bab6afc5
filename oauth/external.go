package oauth

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/fhirserver/fhirserver/fhir"
)

// TrustedIssuer is an external authorization server whose access tokens
// the resource server accepts: tokens whose iss is Issuer (compared
// exactly) are verified against the keys published at JWKSURL.
type TrustedIssuer struct {
	Issuer  string
	JWKSURL string
}

// ExternalConfig configures an ExternalVerifier. Audience and Issuers are
// required; zero durations take the defaults shown.
type ExternalConfig struct {
	// Audience is B/fhir: a token must name it in aud.
	Audience string
	Issuers  []TrustedIssuer
	Leeway   time.Duration // 60s clock leeway in every time check
	// Refresh is how often each issuer's JWKS is read again (15 minutes), so
	// that a key the issuer withdrew stops working.
	Refresh time.Duration
	// UnknownKID is the least time between two extra reads of the JWKS for
	// tokens whose kid is not known yet (1 minute): a rotated-in key is
	// picked up at once, and tokens with made-up kids cannot make this
	// server hammer the issuer.
	UnknownKID time.Duration
	// HTTPClient fetches the JWKS (a 5 s timeout by default). Whatever the
	// client, a JWKS larger than 1 MiB is refused.
	HTTPClient *http.Client
	// Logger receives failed JWKS reads; nil discards.
	Logger *slog.Logger
	// Now is the clock (time.Now).
	Now func() time.Time
}

// externalAlgs are the signature algorithms accepted from external
// issuers: asymmetric only. none and HS* are never accepted: an HMAC
// "verified" with a public key proves nothing, since anyone has the key.
var externalAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}

// maxJWKS bounds a JWKS document; real ones are a few KiB.
const maxJWKS = 1 << 20

// ExternalVerifier checks access tokens of trusted external issuers by the
// rules of our own (Verifier): signature by a key of the issuer's JWKS
// with an asymmetric alg (the JWK's own alg, when it names one, must match),
// aud = B/fhir, exp required, exp/nbf/iat with the leeway. Scopes come from
// scope (a space-separated string or an array) or scp; patient and
// fhirUser are read as in our tokens. There is no revocation list for
// external tokens: their issuer's token lifetime bounds them.
//
// Each issuer's keys are cached and read again every Refresh; a token
// signed with a kid not in the cache makes one read, rate-limited per
// issuer. Build it with NewExternalVerifier; it is safe for concurrent use.
type ExternalVerifier struct {
	issuers map[string]*externalIssuer
	now     func() time.Time
	leeway  time.Duration
	cache   verifiedCache[externalVerified]
	checks  atomic.Int64 // tokens verified in full (for tests and metrics)
}

// SignatureChecks is the number of tokens verified in full (not taken from
// the cache) so far.
func (v *ExternalVerifier) SignatureChecks() int64 { return v.checks.Load() }

// externalVerified is a verified external token: its claims, and the key
// that verified it, which must still be the issuer's under that kid for
// the token to be taken from the cache (a key withdrawn from the JWKS ends
// its tokens at the next read of the JWKS, cached or not).
type externalVerified struct {
	claims *Claims
	issuer string
	kid    string
	key    any
}

type externalIssuer struct {
	keys   keyfunc.Keyfunc
	parser *jwt.Parser
}

// NewExternalVerifier reads each issuer's JWKS once (a failure is logged,
// not fatal: the keys are read again when a token needs them) and keeps
// them fresh until ctx ends.
func NewExternalVerifier(ctx context.Context, cfg ExternalConfig) (*ExternalVerifier, error) {
	if cfg.Audience == "" {
		return nil, errors.New("oauth: the audience of external tokens is required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Leeway, 60*time.Second)
	def(&cfg.Refresh, 15*time.Minute)
	def(&cfg.UnknownKID, time.Minute)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	if cfg.HTTPClient != nil {
		c := *cfg.HTTPClient
		hc = &c
	}
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	hc.Transport = limitedBody{base, maxJWKS}
	timeout := hc.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}

	v := &ExternalVerifier{issuers: map[string]*externalIssuer{}, now: cfg.Now, leeway: cfg.Leeway}
	for _, ti := range cfg.Issuers {
		if ti.Issuer == "" {
			return nil, errors.New("oauth: a trusted issuer needs its iss value")
		}
		if _, dup := v.issuers[ti.Issuer]; dup {
			return nil, fmt.Errorf("oauth: trusted issuer %q is given twice", ti.Issuer)
		}
		u, err := url.Parse(ti.JWKSURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("oauth: the JWKS URL of trusted issuer %q must be an absolute http(s) URL, not %q", ti.Issuer, ti.JWKSURL)
		}
		iss, jwksURL := ti.Issuer, ti.JWKSURL
		logFailure := func(ctx context.Context, err error) {
			cfg.Logger.WarnContext(ctx, "reading a trusted issuer's JWKS failed", "issuer", iss, "jwks_url", jwksURL, "error", err)
		}
		remote, err := jwkset.NewStorageFromHTTP(jwksURL, jwkset.HTTPClientStorageOptions{
			Client:                    hc,
			Ctx:                       ctx,
			HTTPTimeout:               timeout,
			NoErrorReturnFirstHTTPReq: true,
			RefreshErrorHandler:       logFailure,
			RefreshInterval:           cfg.Refresh,
		})
		if err != nil {
			return nil, fmt.Errorf("oauth: reading the JWKS of trusted issuer %q: %w", iss, err)
		}
		st, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
			HTTPURLs: map[string]jwkset.Storage{jwksURL: remote},
			// A request waits for the limiter only when its turn comes
			// within this time, which also bounds the read it then makes;
			// otherwise the unknown kid is refused at once.
			RateLimitWaitMax:  timeout,
			RefreshUnknownKID: rate.NewLimiter(rate.Every(cfg.UnknownKID), 1),
		})
		if err != nil {
			return nil, fmt.Errorf("oauth: keys of trusted issuer %q: %w", iss, err)
		}
		kf, err := keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: st, UseWhitelist: []jwkset.USE{jwkset.UseSig, ""}})
		if err != nil {
			return nil, fmt.Errorf("oauth: keys of trusted issuer %q: %w", iss, err)
		}
		v.issuers[iss] = &externalIssuer{keys: kf, parser: jwt.NewParser(
			jwt.WithValidMethods(externalAlgs),
			jwt.WithIssuer(iss), jwt.WithAudience(cfg.Audience),
			jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
			jwt.WithLeeway(cfg.Leeway), jwt.WithTimeFunc(cfg.Now))}
	}
	return v, nil
}

// Trusts reports whether raw claims to come from a trusted issuer (read
// without verification: only to pick the keys that verify it).
func (v *ExternalVerifier) Trusts(raw string) bool {
	if v == nil {
		return false
	}
	_, ok := v.issuers[unverifiedIssuer(raw)]
	return ok
}

// unverifiedIssuer is the iss claim of a JWT, unverified; "" when raw is
// not a JWT.
func unverifiedIssuer(raw string) string {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Issuer string `json:"iss"`
	}
	if json.Unmarshal(payload, &c) != nil {
		return ""
	}
	return c.Issuer
}

// scopeClaim is a scope claim given as one space-separated string or as an
// array of strings.
type scopeClaim []string

func (s *scopeClaim) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = strings.Fields(one)
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("scope must be a string or an array of strings")
	}
	for _, m := range many {
		*s = append(*s, strings.Fields(m)...)
	}
	return nil
}

// externalClaims is what an external access token may carry. The client
// is client_id (RFC 9068), else azp (OpenID), else cid (Okta).
type externalClaims struct {
	jwt.RegisteredClaims
	Scope     *scopeClaim `json:"scope"`
	Scp       *scopeClaim `json:"scp"`
	ClientID  string      `json:"client_id"`
	AZP       string      `json:"azp"`
	CID       string      `json:"cid"`
	FHIRUser  string      `json:"fhirUser"`
	Patient   string      `json:"patient"`
	Encounter string      `json:"encounter"`
}

// Verify returns the claims of a valid token of a trusted issuer, or an
// error wrapping ErrInvalidToken (also for a token of an issuer that is
// not trusted).
func (v *ExternalVerifier) Verify(ctx context.Context, raw string) (*Claims, error) {
	iss := unverifiedIssuer(raw)
	var x *externalIssuer
	if v != nil {
		x = v.issuers[iss]
	}
	if x == nil {
		return nil, fmt.Errorf("%w: issuer %q is not trusted", ErrInvalidToken, iss)
	}
	hash := sha256.Sum256([]byte(raw))
	if c, ok := v.cached(ctx, hash); ok {
		return c, nil
	}
	v.checks.Add(1)
	var c externalClaims
	var kid string
	var key any
	keyOf := x.keys.KeyfuncCtx(ctx)
	if _, err := x.parser.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		k, err := keyOf(t)
		kid, _ = t.Header["kid"].(string)
		key = k
		return k, err
	}); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	for _, id := range []string{c.Patient, c.Encounter} {
		if id != "" && !fhir.ValidID(id) {
			return nil, fmt.Errorf("%w: the launch context id %q is not a FHIR id", ErrInvalidToken, id)
		}
	}
	var scopes []string
	switch {
	case c.Scope != nil:
		scopes = *c.Scope
	case c.Scp != nil:
		scopes = *c.Scp
	}
	client := c.ClientID
	for _, alt := range []string{c.AZP, c.CID} {
		if client == "" {
			client = alt
		}
	}
	out := &Claims{
		Issuer: c.Issuer, Subject: c.Subject, ClientID: client,
		Scope: strings.Join(scopes, " "), Scopes: scopes,
		FHIRUser: c.FHIRUser, Patient: c.Patient, Encounter: c.Encounter, JTI: c.ID,
		ExpiresAt: c.ExpiresAt.Time,
	}
	if len(c.Audience) > 0 {
		out.Audience = c.Audience[0]
	}
	if c.IssuedAt != nil {
		out.IssuedAt = c.IssuedAt.Time
	}
	if c.NotBefore != nil {
		out.NotBefore = c.NotBefore.Time
	}
	if kid != "" {
		cached := *out
		cached.Scopes = slices.Clone(out.Scopes)
		v.cache.put(hash, externalVerified{claims: &cached, issuer: iss, kid: kid, key: key})
	}
	return out, nil
}

// cached returns the claims of an external token verified before, when it
// is within its validity period (with leeway) and its issuer still
// publishes the key that verified it under the same kid.
func (v *ExternalVerifier) cached(ctx context.Context, hash [32]byte) (*Claims, bool) {
	e, hit := v.cache.get(hash)
	if !hit {
		return nil, false
	}
	c := e.claims
	now := v.now()
	if now.After(c.ExpiresAt.Add(v.leeway)) || (!c.NotBefore.IsZero() && now.Before(c.NotBefore.Add(-v.leeway))) {
		v.cache.drop(hash)
		return nil, false
	}
	jwk, err := v.issuers[e.issuer].keys.Storage().KeyRead(ctx, e.kid)
	same, ok := e.key.(interface{ Equal(crypto.PublicKey) bool })
	if err != nil || !ok || !same.Equal(jwk.Key()) {
		v.cache.drop(hash)
		return nil, false
	}
	out := *c
	out.Scopes = slices.Clone(c.Scopes)
	return &out, true
}

// limitedBody is a transport whose response bodies end with an error after
// max bytes, so that a JWKS URL cannot fill the memory.
type limitedBody struct {
	next http.RoundTripper
	max  int64
}

func (l limitedBody) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := l.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &capped{ReadCloser: resp.Body, left: l.max}
	return resp, nil
}

type capped struct {
	io.ReadCloser
	left int64
}

func (c *capped) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, fmt.Errorf("the response is larger than %d bytes", maxJWKS)
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.ReadCloser.Read(p)
	c.left -= int64(n)
	return n, err
}
