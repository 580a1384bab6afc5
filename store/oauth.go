package store

import (
	"context"
	"time"
)

// This file declares what the authorization server (package oauth) keeps in
// the database: registered clients, users who can log in, signing keys,
// grants and tokens, login sessions, EHR launch contexts and the records
// that throttle password guessing. Package oauth declares the small
// interfaces it calls; OAuthStore is their union, which the SQL backends
// implement and storetest.RunOAuth checks.

// OAuthClient is a registered OAuth client of a tenant.
type OAuthClient struct {
	Tenant string
	ID     string
	// SecretHash is the keyed hash of a confidential client's secret (nil
	// for public clients and clients that authenticate with a key).
	SecretHash []byte
	// Public clients identify themselves with client_id only.
	Public bool
	// JWKS (an inline JSON Web Key Set) or JWKSURL holds the public keys of
	// a client that authenticates with private_key_jwt.
	JWKS    string
	JWKSURL string
	// RedirectURIs are the exact redirect URIs of the authorization flow.
	RedirectURIs []string
	// Scope is the space-separated set of scopes the client may be granted.
	Scope      string
	GrantTypes []string
	CreatedAt  time.Time
}

// OAuthUser is someone who can log in with a password.
type OAuthUser struct {
	Tenant       string
	Username     string
	PasswordHash string
	// FHIRUser is the user's resource: "Patient/ID", "Practitioner/ID",
	// "RelatedPerson/ID" (relative to the tenant's FHIR base), or "".
	FHIRUser string
	// Scope caps what the user may be granted ("" means the defaults for
	// the kind of FHIRUser).
	Scope     string
	CreatedAt time.Time
}

// SigningKey is a key of the authorization server. Use says what it is for:
// "access" (signs access tokens), "id" (signs id_tokens), "hmac" (keys the
// HMAC of refresh tokens and codes) or "pepper" (keys client-secret hashes
// and CSRF tokens). At most one key per use is current (RetiredAt zero).
type SigningKey struct {
	ID      string // kid
	Use     string
	Alg     string // ES256, RS256, HS256
	Private []byte // PKCS #8 DER for asymmetric keys, the raw secret otherwise
	// CreatedAt orders keys of one use.
	CreatedAt time.Time
	// RetiredAt is when a newer key replaced it (zero while current).
	RetiredAt time.Time
	// NotAfter is when the last token it signed expires: a retired key is
	// published until then.
	NotAfter time.Time
}

// OAuthTokenKind says which table entry a token row is.
type OAuthTokenKind string

const (
	TokenCode    OAuthTokenKind = "code"    // authorization code
	TokenPKCE    OAuthTokenKind = "pkce"    // PKCE challenge of a code
	TokenOIDC    OAuthTokenKind = "oidc"    // OpenID Connect request of a code
	TokenRefresh OAuthTokenKind = "refresh" // refresh token
	TokenAccess  OAuthTokenKind = "access"  // access token (signature = jti)
)

// OAuthToken is one stored grant artefact. Signature is a keyed hash or the
// JWT id, never the token itself. Tokens of one grant share RequestID, the
// family that a reused refresh token or code revokes.
type OAuthToken struct {
	Kind      OAuthTokenKind
	Signature string
	Tenant    string
	RequestID string
	ClientID  string
	Subject   string
	// SessionID is the login session an online_access grant ends with.
	SessionID string
	// AccessSignature is the jti of the access token issued with a refresh
	// token.
	AccessSignature string
	Active          bool
	CreatedAt       time.Time
	ExpiresAt       time.Time
	// Data is the serialized request (scopes, session, form) that package
	// oauth reads back.
	Data []byte
}

// OAuthTokenChanges is applied in one transaction by ApplyTokenChanges.
type OAuthTokenChanges struct {
	// Use deactivates tokens that must still be active (a code being
	// redeemed, a refresh token being rotated). If any of them is already
	// inactive or missing, nothing is applied and the error has
	// KindConflict.
	Use []OAuthTokenKey
	// Delete removes tokens (missing ones are ignored).
	Delete []OAuthTokenKey
	// Create inserts tokens.
	Create []OAuthToken
	// RevokeFamilies deactivates every code and refresh token of each
	// request id and puts its unexpired access tokens on the revocation
	// list.
	RevokeFamilies []string
	// Revoke puts single access tokens on the revocation list.
	Revoke []Revocation
}

// OAuthTokenKey names one token row.
type OAuthTokenKey struct {
	Kind      OAuthTokenKind
	Signature string
}

// Revocation is an access token (by jti) that must be refused until it
// expires.
type Revocation struct {
	JTI       string
	ExpiresAt time.Time
	RevokedAt time.Time
}

// LaunchContext is an EHR launch: the opaque launch value resolves to it.
type LaunchContext struct {
	Tenant    string
	ID        string // a hash of the launch value
	Patient   string
	Encounter string
	Username  string // the user the launch is for ("" for anyone)
	CreatedAt time.Time
	ExpiresAt time.Time
}

// OAuthSession is a browser login session or a pending authorization
// request (Kind says which).
type OAuthSession struct {
	ID        string // a hash of the cookie or request value
	Tenant    string
	Kind      string
	Username  string
	Data      []byte
	CreatedAt time.Time
	ExpiresAt time.Time
}

// OAuthStore is everything the authorization server keeps. Not-found
// answers are *fhir.Error of KindNotFound, clashes KindConflict.
type OAuthStore interface {
	// Clients.
	CreateClient(ctx context.Context, c OAuthClient) error
	GetClient(ctx context.Context, tenant, id string) (*OAuthClient, error)
	ListClients(ctx context.Context, tenant string) ([]OAuthClient, error)
	DeleteClient(ctx context.Context, tenant, id string) error
	SetClientSecret(ctx context.Context, tenant, id string, hash []byte) error

	// Users.
	CreateUser(ctx context.Context, u OAuthUser) error
	GetUser(ctx context.Context, tenant, username string) (*OAuthUser, error)
	ListUsers(ctx context.Context, tenant string) ([]OAuthUser, error)
	DeleteUser(ctx context.Context, tenant, username string) error

	// Keys. InitKey stores k unless a current key of k.Use exists, and
	// returns the current one. RotateKey retires the current key of k.Use
	// and stores k. ExtendKey raises a key's NotAfter. ListKeys returns
	// the current keys and the retired ones whose NotAfter is after now.
	InitKey(ctx context.Context, k SigningKey) (*SigningKey, error)
	RotateKey(ctx context.Context, k SigningKey) error
	ExtendKey(ctx context.Context, kid string, notAfter time.Time) error
	ListKeys(ctx context.Context, now time.Time) ([]SigningKey, error)

	// Tokens.
	GetToken(ctx context.Context, kind OAuthTokenKind, signature string) (*OAuthToken, error)
	ApplyTokenChanges(ctx context.Context, ch OAuthTokenChanges) error
	// RevokedSince lists revocations made at or after since, unexpired at now.
	RevokedSince(ctx context.Context, since, now time.Time) ([]Revocation, error)
	// UseAssertion records a client assertion id until it expires; a
	// second use is KindConflict.
	UseAssertion(ctx context.Context, id string, expiresAt time.Time) error

	// Launch contexts.
	CreateLaunch(ctx context.Context, l LaunchContext) error
	GetLaunch(ctx context.Context, tenant, id string) (*LaunchContext, error)

	// Sessions. PutSession inserts or replaces.
	PutSession(ctx context.Context, s OAuthSession) error
	GetSession(ctx context.Context, id string) (*OAuthSession, error)
	DeleteSession(ctx context.Context, id string) error

	// Login throttling: failures are recorded under keys (a user, an
	// address); LoginFailures counts those at or after since and returns
	// the oldest of them.
	RecordLoginFailure(ctx context.Context, keys []string, at time.Time) error
	LoginFailures(ctx context.Context, key string, since time.Time) (n int, oldest time.Time, err error)

	// PurgeOAuth deletes whatever expired before now.
	PurgeOAuth(ctx context.Context, now time.Time) error
}
