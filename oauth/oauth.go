// Package oauth is the authorization server: OAuth 2.0 and SMART App Launch
// 2.x on ory/fosite (the only package that imports it). It serves SMART and
// OpenID discovery, authorize (with login, patient picker and consent
// pages), token, introspection, revocation and JWKS endpoints, and the
// basic-auth B/fhir/login. It issues access tokens as ES256 JWTs with keys
// kept in the database, and gives the resource server a Verifier.
//
// Only our grants are composed: authorization_code with PKCE (S256 only,
// required for public clients), refresh_token (rotating; a reused refresh
// token revokes its family in one transaction) and client_credentials
// (client_secret_basic/post or private_key_jwt with RS384/ES384). SMART
// launch context and scope narrowing are handlers added around fosite's.
package oauth

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"crypto/sha512"

	"github.com/go-jose/go-jose/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/hashicorp/go-retryablehttp"
	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	fositejwt "github.com/ory/fosite/token/jwt"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/store"
	"github.com/fhirserver/fhirserver/web"
)

// ClientStore reads registered clients and records client-assertion ids.
type ClientStore interface {
	GetClient(ctx context.Context, tenant, id string) (*store.OAuthClient, error)
	UseAssertion(ctx context.Context, id string, expiresAt time.Time) error
}

// UserStore reads users.
type UserStore interface {
	GetUser(ctx context.Context, tenant, username string) (*store.OAuthUser, error)
}

// TokenStore keeps grants and tokens and the revocation list.
type TokenStore interface {
	GetToken(ctx context.Context, kind store.OAuthTokenKind, signature string) (*store.OAuthToken, error)
	ApplyTokenChanges(ctx context.Context, ch store.OAuthTokenChanges) error
	RevocationStore
}

// SessionStore keeps login sessions and pending authorizations, and reads
// EHR launch contexts.
type SessionStore interface {
	PutSession(ctx context.Context, s store.OAuthSession) error
	GetSession(ctx context.Context, id string) (*store.OAuthSession, error)
	DeleteSession(ctx context.Context, id string) error
	GetLaunch(ctx context.Context, tenant, id string) (*store.LaunchContext, error)
}

// ThrottleStore counts failed logins.
type ThrottleStore interface {
	RecordLoginFailure(ctx context.Context, keys []string, at time.Time) error
	LoginFailures(ctx context.Context, key string, since time.Time) (int, time.Time, error)
}

// Store is everything the provider reads and writes; store.OAuthStore (the
// SQL backends) implements it.
type Store interface {
	ClientStore
	UserStore
	TokenStore
	KeyStore
	SessionStore
	ThrottleStore
}

// purger is implemented by stores that can delete expired rows.
type purger interface {
	PurgeOAuth(ctx context.Context, now time.Time) error
}

// PatientDirectory finds patients for the standalone-launch patient picker.
// Optional: without one the picker asks for a patient id.
type PatientDirectory interface {
	// SearchPatients returns up to limit patients whose name matches text
	// (all patients when text is empty).
	SearchPatients(ctx context.Context, tenant, text string, limit int) ([]PatientChoice, error)
}

// PatientChoice is one patient in the picker.
type PatientChoice struct {
	ID    string
	Label string // name and birth date, as shown
}

// ResourceReader reads a resource (store.Store implements it). Optional:
// with it, a picked patient id is checked to exist and a RelatedPerson
// user's patient is found.
type ResourceReader interface {
	Read(ctx context.Context, tenant, typ, id string) (*fhir.Resource, error)
}

// Config configures a Provider. BaseURL is required; zero durations take
// the defaults shown.
type Config struct {
	// BaseURL is B: the issuer. The FHIR API is B/fhir, the audience of
	// every access token.
	BaseURL string
	// Tenant is the store tenant whose clients and users this provider
	// serves (store.DefaultTenant).
	Tenant string

	AccessTokenTTL   time.Duration // 1h
	RefreshTokenTTL  time.Duration // 30 days
	IDTokenTTL       time.Duration // 1h
	AuthorizeCodeTTL time.Duration // 2 minutes
	LoginSessionTTL  time.Duration // 8h: browser login, and online_access grants
	Leeway           time.Duration // 60s clock leeway in every time check
	KeyReload        time.Duration // 30s: how often keys are read again
	RevocationPoll   time.Duration // 2s: how often the revocation list is read

	// MaxLoginFailures within LoginFailureWindow, per user or per address,
	// throttle logins (5 in 15 minutes).
	MaxLoginFailures   int
	LoginFailureWindow time.Duration

	// SmartStyleURL, when set, is returned as smart_style_url.
	SmartStyleURL string
	// Patients and Reader serve the patient picker (both optional).
	Patients PatientDirectory
	Reader   ResourceReader
	// HTTPClient fetches client JWKS by URL (a 5 s timeout by default).
	HTTPClient *http.Client
	// Logger receives internal errors; nil discards.
	Logger *slog.Logger
	// Now is the clock (time.Now).
	Now func() time.Time
}

func (c *Config) defaults() error {
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("oauth: BaseURL %q must be an absolute http(s) URL without query", c.BaseURL)
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.AccessTokenTTL, time.Hour)
	def(&c.RefreshTokenTTL, 30*24*time.Hour)
	def(&c.IDTokenTTL, time.Hour)
	def(&c.AuthorizeCodeTTL, 2*time.Minute)
	def(&c.LoginSessionTTL, 8*time.Hour)
	def(&c.Leeway, 60*time.Second)
	def(&c.KeyReload, 30*time.Second)
	def(&c.RevocationPoll, 2*time.Second)
	def(&c.LoginFailureWindow, 15*time.Minute)
	if c.MaxLoginFailures <= 0 {
		c.MaxLoginFailures = 5
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Provider is the authorization server. Build it with New; it is safe for
// concurrent use.
type Provider struct {
	cfg      Config
	store    Store
	base     string // B
	fhirBase string // B/fhir: the audience
	tokenURL string
	secure   bool // B is https: cookies are Secure

	keys     *keyring
	revs     *revocations
	verifier *Verifier
	jwks     *jwksFetcher

	fosite   *fosite.Fosite
	fconf    *fosite.Config
	fstore   *fositeStore
	hmac     *oauth2.HMACSHAStrategyUnPrefixed
	strategy *tokenStrategy

	pages     *template.Template
	passwords *passwords

	lastPurge atomic.Int64 // unix seconds
}

// New checks cfg, makes sure the signing keys exist (creating them on the
// first start) and composes the fosite handlers.
func New(cfg Config, st Store) (*Provider, error) {
	if st == nil {
		return nil, errors.New("oauth: a store is required")
	}
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	p := &Provider{
		cfg: cfg, store: st,
		base: cfg.BaseURL, fhirBase: cfg.BaseURL + "/fhir", tokenURL: cfg.BaseURL + "/oauth/token",
		secure: strings.HasPrefix(cfg.BaseURL, "https://"),
	}
	horizon := max(cfg.AccessTokenTTL, cfg.IDTokenTTL) + cfg.Leeway
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ensureKeys(ctx, st, p.now(), horizon+cfg.KeyReload); err != nil {
		return nil, fmt.Errorf("oauth: preparing signing keys: %w", err)
	}
	p.keys = &keyring{store: st, now: p.now, reload: cfg.KeyReload, horizon: horizon}
	snap, err := p.keys.snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("oauth: %w", err)
	}
	p.revs = &revocations{store: st, now: p.now, poll: cfg.RevocationPoll}
	p.verifier = &Verifier{keys: p.keys, revs: p.revs, now: p.now, leeway: cfg.Leeway, parser: jwt.NewParser(
		jwt.WithValidMethods([]string{"ES256", "RS256"}),
		jwt.WithIssuer(p.base), jwt.WithAudience(p.fhirBase),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway), jwt.WithTimeFunc(p.now))}

	hc := retryablehttp.NewClient()
	hc.RetryMax = 1
	hc.Logger = nil
	if cfg.HTTPClient != nil {
		hc.HTTPClient = cfg.HTTPClient
	} else {
		hc.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	p.jwks = &jwksFetcher{f: fosite.NewDefaultJWKSFetcherStrategy(fosite.JWKSFetcherWithHTTPClient(hc), fosite.JKWKSFetcherWithDefaultTTL(10*time.Minute)),
		now: p.now, forced: map[string]time.Time{}}

	p.fconf = &fosite.Config{
		AccessTokenLifespan:            cfg.AccessTokenTTL,
		RefreshTokenLifespan:           cfg.RefreshTokenTTL,
		IDTokenLifespan:                cfg.IDTokenTTL,
		AuthorizeCodeLifespan:          cfg.AuthorizeCodeTTL,
		IDTokenIssuer:                  p.base,
		AccessTokenIssuer:              p.base,
		TokenURL:                       p.tokenURL,
		GlobalSecret:                   snap.hmac,
		HMACHasher:                     sha512.New512_256,
		ScopeStrategy:                  scopeCovered,
		AudienceMatchingStrategy:       p.audienceMatches,
		EnforcePKCEForPublicClients:    true,
		EnablePKCEPlainChallengeMethod: false,
		RefreshTokenScopes:             []string{"offline_access", "online_access"},
		ClientAuthenticationStrategy:   p.authenticateClient,
		ClientSecretsHasher:            secretHasher{p},
		JWKSFetcherStrategy:            p.jwks.f,
		MinParameterEntropy:            fosite.MinParameterEntropy,
		RedirectSecureChecker:          fosite.IsRedirectURISecure,
		TokenEntropy:                   32,
		JWTScopeClaimKey:               fositejwt.JWTScopeFieldString,
	}
	p.fstore = &fositeStore{p: p}
	p.hmac = compose.NewOAuth2HMACStrategy(p.fconf).HMACSHAStrategyUnPrefixed
	p.strategy = &tokenStrategy{p: p, HMACSHAStrategyUnPrefixed: p.hmac}
	idSigner := &fositejwt.DefaultSigner{GetPrivateKey: p.idTokenKey}
	common := &compose.CommonStrategy{
		CoreStrategy:               p.strategy,
		OpenIDConnectTokenStrategy: &openid.DefaultStrategy{Signer: idSigner, Config: p.fconf},
		Signer:                     idSigner,
	}
	p.fosite = compose.Compose(p.fconf, p.fstore, common,
		// SMART: default and v2 scopes, before the grants see them.
		func(fosite.Configurator, any, any) any { return &smartScopes{p: p} },
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2ClientCredentialsGrantFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OAuth2PKCEFactory,
		compose.OpenIDConnectExplicitFactory,
		compose.OpenIDConnectRefreshFactory,
		// SMART: scope narrowing on refresh, launch context in the response.
		func(fosite.Configurator, any, any) any { return &smartContext{p: p} },
		func(fosite.Configurator, any, any) any { return &revoker{p: p} },
	).(*fosite.Fosite)
	if p.pages, err = web.Templates(); err != nil {
		return nil, fmt.Errorf("oauth: parsing page templates: %w", err)
	}
	if p.passwords, err = newPasswords(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Provider) now() time.Time { return p.cfg.Now() }

// audienceMatches allows only B/fhir as a requested audience.
func (p *Provider) audienceMatches(_ []string, requested []string) error {
	for _, a := range requested {
		if a != p.fhirBase {
			return fosite.ErrInvalidRequest.WithHintf("The audience must be %s.", p.fhirBase)
		}
	}
	return nil
}

// idTokenKey returns the current id_token key for fosite's signer.
func (p *Provider) idTokenKey(ctx context.Context) (any, error) {
	snap, err := p.keys.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	return &jose.JSONWebKey{Key: snap.id, KeyID: snap.idKID, Algorithm: "RS256", Use: "sig"}, nil
}

// Verifier returns the access-token verifier of this provider (sharing its
// key and revocation caches).
func (p *Provider) Verifier() *Verifier { return p.verifier }

// Endpoints are the absolute URLs of the OAuth endpoints, for the
// CapabilityStatement's SMART oauth-uris extension.
type Endpoints struct {
	Authorize, Token, Introspect, Revoke, JWKS, SMARTConfiguration, OpenIDConfiguration, Login, Logout string
}

// Endpoints returns where this provider's endpoints are.
func (p *Provider) Endpoints() Endpoints {
	return Endpoints{
		Authorize: p.base + "/oauth/authorize", Token: p.tokenURL, Introspect: p.base + "/oauth/introspect",
		Revoke: p.base + "/oauth/revoke", JWKS: p.base + "/oauth/jwks",
		SMARTConfiguration: p.fhirBase + "/.well-known/smart-configuration", OpenIDConfiguration: p.base + "/.well-known/openid-configuration",
		Login: p.fhirBase + "/login", Logout: p.fhirBase + "/logout",
	}
}

// Routes returns the handler of every path the provider serves. Paths are
// matched on the request path as received (the server-relative path of B
// plus these), so the server routes these to it unchanged:
//
//	GET       /fhir/.well-known/smart-configuration
//	GET       /.well-known/openid-configuration
//	GET, POST /oauth/authorize
//	POST      /oauth/token
//	POST      /oauth/introspect
//	POST      /oauth/revoke
//	GET       /oauth/jwks
//	GET, POST /oauth/login, /oauth/consent, /oauth/patient (pages)
//	GET       /oauth/static/ (page style sheet)
//	GET, POST /fhir/login   (HTTP Basic → token response)
//	GET, POST /fhir/logout  (revokes)
//
// The simplest mount is every path under /oauth/ plus the four named paths.
func (p *Provider) Routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /fhir/.well-known/smart-configuration", p.smartConfiguration)
	mux.HandleFunc("GET /.well-known/openid-configuration", p.openIDConfiguration)
	mux.HandleFunc("GET /oauth/jwks", p.jwksDocument)
	mux.HandleFunc("/oauth/token", p.token)
	mux.HandleFunc("/oauth/introspect", p.introspect)
	mux.HandleFunc("/oauth/revoke", p.revoke)
	mux.HandleFunc("/oauth/authorize", p.authorize)
	mux.HandleFunc("/oauth/login", p.loginPage)
	mux.HandleFunc("/oauth/consent", p.consentPage)
	mux.HandleFunc("/oauth/patient", p.patientPage)
	mux.Handle("GET /oauth/static/", http.StripPrefix("/oauth/static/", staticFiles()))
	mux.HandleFunc("/fhir/login", p.basicLogin)
	mux.HandleFunc("/fhir/logout", p.logout)
	return mux
}

// maybePurge deletes expired rows every ten minutes, in the background.
func (p *Provider) maybePurge() {
	pg, ok := p.store.(purger)
	if !ok {
		return
	}
	now := p.now()
	last := p.lastPurge.Load()
	if now.Unix()-last < 600 || !p.lastPurge.CompareAndSwap(last, now.Unix()) {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := pg.PurgeOAuth(ctx, now); err != nil {
			p.cfg.Logger.Warn("purging expired OAuth rows failed", "error", err)
		}
	}()
}

// noteRevocations keeps the local revocation list in step with what this
// process just revoked.
func (p *Provider) noteRevocations(ch store.OAuthTokenChanges) {
	if len(ch.Revoke) > 0 {
		p.revs.add(ch.Revoke)
	}
	if len(ch.RevokeFamilies) > 0 {
		p.revs.invalidate()
	}
}
