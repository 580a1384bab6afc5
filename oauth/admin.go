package oauth

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	"github.com/ory/fosite"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/store"
)

// AdminStore is what the administration commands change: clients, users
// and launch contexts, besides the provider's own tables.
type AdminStore interface {
	KeyStore
	CreateClient(ctx context.Context, c store.OAuthClient) error
	GetClient(ctx context.Context, tenant, id string) (*store.OAuthClient, error)
	ListClients(ctx context.Context, tenant string) ([]store.OAuthClient, error)
	DeleteClient(ctx context.Context, tenant, id string) error
	SetClientSecret(ctx context.Context, tenant, id string, hash []byte) error
	CreateUser(ctx context.Context, u store.OAuthUser) error
	CreateLaunch(ctx context.Context, l store.LaunchContext) error
}

// ClientSpec describes a client to register. Exactly one of Secret (or
// GenerateSecret), Public, JWKS and JWKSURL says how it authenticates.
type ClientSpec struct {
	Tenant         string
	ID             string
	Secret         string
	GenerateSecret bool
	Public         bool
	JWKS           string // an inline JSON Web Key Set of public keys
	JWKSURL        string
	RedirectURIs   []string
	Scope          string   // space-separated; a default by kind when empty
	GrantTypes     []string // a default by kind when empty
}

var knownGrants = []string{"authorization_code", "refresh_token", "client_credentials"}

// knownScopes are the non-clinical scopes a client may be registered for
// ("introspect" lets a client introspect any token of its tenant).
var knownScopes = []string{"openid", "fhirUser", "profile", "launch", "launch/patient", "launch/encounter", "offline_access", "online_access", "introspect"}

// ValidateScope checks that every scope of a space-separated list is a
// SMART clinical scope (v1 or v2) or a known context scope.
func ValidateScope(s string) error {
	for _, sc := range strings.Fields(s) {
		if _, ok := parseScope(sc); !ok && !slices.Contains(knownScopes, sc) {
			return fhir.Errorf(fhir.KindInvalid, "unknown scope %q", sc)
		}
	}
	return nil
}

func validClientID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-._~", c)) {
			return false
		}
	}
	return true
}

// RegisterClient checks and stores a client. It returns the secret when
// one was generated.
func RegisterClient(ctx context.Context, st AdminStore, spec ClientSpec) (string, error) {
	if !validClientID(spec.ID) {
		return "", fhir.Errorf(fhir.KindInvalid, "the client id must be 1 to 128 of A-Z a-z 0-9 - . _ ~")
	}
	if spec.ID == LoginClientID {
		return "", fhir.Errorf(fhir.KindInvalid, "the client id %q is reserved for B/fhir/login", LoginClientID)
	}
	kinds := 0
	for _, b := range []bool{spec.Secret != "" || spec.GenerateSecret, spec.Public, spec.JWKS != "", spec.JWKSURL != ""} {
		if b {
			kinds++
		}
	}
	if kinds != 1 {
		return "", fhir.Errorf(fhir.KindInvalid, "give exactly one of a secret, public, a JWKS or a JWKS URL")
	}
	asymmetric := spec.JWKS != "" || spec.JWKSURL != ""
	grants := spec.GrantTypes
	if len(grants) == 0 {
		if asymmetric {
			grants = []string{"client_credentials"}
		} else {
			grants = []string{"authorization_code", "refresh_token"}
		}
	}
	for _, g := range grants {
		if !slices.Contains(knownGrants, g) {
			return "", fhir.Errorf(fhir.KindInvalid, "unknown grant type %q (use %s)", g, strings.Join(knownGrants, ", "))
		}
	}
	if spec.Public && slices.Contains(grants, "client_credentials") {
		return "", fhir.Errorf(fhir.KindInvalid, "a public client cannot use client_credentials")
	}
	if slices.Contains(grants, "authorization_code") && len(spec.RedirectURIs) == 0 {
		return "", fhir.Errorf(fhir.KindInvalid, "the authorization_code grant needs at least one redirect URI")
	}
	for _, u := range spec.RedirectURIs {
		pu, err := url.Parse(u)
		if err != nil || !pu.IsAbs() || pu.Fragment != "" {
			return "", fhir.Errorf(fhir.KindInvalid, "redirect URI %q must be an absolute URL without a fragment", u)
		}
	}
	scope := spec.Scope
	if scope == "" {
		if slices.Contains(grants, "authorization_code") {
			scope = "openid fhirUser launch launch/patient launch/encounter offline_access online_access patient/*.rs user/*.rs"
		} else {
			scope = "system/*.rs"
		}
	}
	if err := ValidateScope(scope); err != nil {
		return "", err
	}
	if spec.JWKS != "" {
		if err := ValidateJWKS(spec.JWKS); err != nil {
			return "", err
		}
	}
	if spec.JWKSURL != "" {
		if u, err := url.Parse(spec.JWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return "", fhir.Errorf(fhir.KindInvalid, "the JWKS URL %q must be an absolute http(s) URL", spec.JWKSURL)
		}
	}
	c := store.OAuthClient{
		Tenant: spec.Tenant, ID: spec.ID, Public: spec.Public, JWKS: spec.JWKS, JWKSURL: spec.JWKSURL,
		RedirectURIs: spec.RedirectURIs, Scope: strings.Join(strings.Fields(scope), " "), GrantTypes: grants,
	}
	secret := spec.Secret
	if spec.GenerateSecret {
		var err error
		if secret, err = NewClientSecret(); err != nil {
			return "", err
		}
	}
	if secret != "" {
		pepper, err := loadPepper(ctx, st)
		if err != nil {
			return "", err
		}
		c.SecretHash = hashSecret(pepper, secret)
	}
	if err := st.CreateClient(ctx, c); err != nil {
		return "", err
	}
	if spec.GenerateSecret {
		return secret, nil
	}
	return "", nil
}

// RotateClientSecret gives a confidential client a new generated secret
// and returns it; the old one stops working at once.
func RotateClientSecret(ctx context.Context, st AdminStore, tenant, id string) (string, error) {
	c, err := st.GetClient(ctx, tenant, id)
	if err != nil {
		return "", err
	}
	if c.Public || c.JWKS != "" || c.JWKSURL != "" {
		return "", fhir.Errorf(fhir.KindInvalid, "client %q has no secret (it is public or uses keys)", id)
	}
	secret, err := NewClientSecret()
	if err != nil {
		return "", err
	}
	pepper, err := loadPepper(ctx, st)
	if err != nil {
		return "", err
	}
	return secret, st.SetClientSecret(ctx, tenant, id, hashSecret(pepper, secret))
}

// loadPepper returns the current pepper, creating the keys on a fresh
// database.
func loadPepper(ctx context.Context, ks KeyStore) ([]byte, error) {
	now := time.Now()
	if err := ensureKeys(ctx, ks, now, 2*time.Hour); err != nil {
		return nil, err
	}
	keys, err := ks.ListKeys(ctx, now)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if k.Use == usePepper && k.RetiredAt.IsZero() {
			return k.Private, nil
		}
	}
	return nil, errors.New("no current pepper key")
}

// UserSpec describes a user to add.
type UserSpec struct {
	Tenant   string
	Username string
	Password string
	FHIRUser string // Patient/ID, Practitioner/ID, RelatedPerson/ID or ""
	Scope    string // caps what the user may be granted ("" for the default)
	Cost     int    // bcrypt cost (DefaultBcryptCost when 0)
}

// RegisterUser checks and stores a user with a bcrypt password hash.
func RegisterUser(ctx context.Context, st AdminStore, spec UserSpec) error {
	if strings.TrimSpace(spec.Username) == "" || len(spec.Username) > 128 || strings.ContainsAny(spec.Username, ":\x00") || !utf8.ValidString(spec.Username) {
		return fhir.Errorf(fhir.KindInvalid, "the username must be 1 to 128 characters without ':'")
	}
	if spec.Password == "" {
		return fhir.Errorf(fhir.KindInvalid, "the password must not be empty")
	}
	if spec.FHIRUser != "" {
		typ, id, ok := strings.Cut(spec.FHIRUser, "/")
		if !ok || !slices.Contains([]string{"Patient", "Practitioner", "PractitionerRole", "RelatedPerson", "Person"}, typ) || !fhir.ValidID(id) {
			return fhir.Errorf(fhir.KindInvalid, "--fhir-user %q must be Patient/ID, Practitioner/ID, PractitionerRole/ID, RelatedPerson/ID or Person/ID", spec.FHIRUser)
		}
	}
	if err := ValidateScope(spec.Scope); err != nil {
		return err
	}
	hash, err := HashPassword(spec.Password, spec.Cost)
	if err != nil {
		return err
	}
	return st.CreateUser(ctx, store.OAuthUser{
		Tenant: spec.Tenant, Username: spec.Username, PasswordHash: hash,
		FHIRUser: spec.FHIRUser, Scope: strings.Join(strings.Fields(spec.Scope), " "),
	})
}

// LaunchSpec describes an EHR launch context.
type LaunchSpec struct {
	Tenant    string
	Patient   string
	Encounter string
	Username  string        // the user the launch is for ("" for anyone)
	TTL       time.Duration // one hour when 0
}

// CreateLaunch stores an EHR launch context and returns the opaque launch
// value an authorization request carries (only its hash is stored).
func CreateLaunch(ctx context.Context, st AdminStore, spec LaunchSpec) (string, error) {
	if !fhir.ValidID(spec.Patient) {
		return "", fhir.Errorf(fhir.KindInvalid, "patient id %q is not a valid id", spec.Patient)
	}
	if spec.Encounter != "" && !fhir.ValidID(spec.Encounter) {
		return "", fhir.Errorf(fhir.KindInvalid, "encounter id %q is not a valid id", spec.Encounter)
	}
	ttl := spec.TTL
	if ttl <= 0 {
		ttl = time.Hour
	}
	v := randomValue()
	now := time.Now()
	err := st.CreateLaunch(ctx, store.LaunchContext{
		Tenant: spec.Tenant, ID: LaunchID(v), Patient: spec.Patient, Encounter: spec.Encounter,
		Username: spec.Username, CreatedAt: now, ExpiresAt: now.Add(ttl),
	})
	return v, err
}

// MintRequest asks for an access token outside any grant (operators and
// scripts: fhirserver token create).
type MintRequest struct {
	ClientID  string
	Scope     string
	Patient   string
	TTL       time.Duration // the provider's access-token lifetime when 0
	NotBefore time.Time
}

// MintToken signs an access token for a registered client, as the token
// endpoint would (client_credentials-like: sub is the client), with scopes
// within the client's registration.
func (p *Provider) MintToken(ctx context.Context, m MintRequest) (string, *Claims, error) {
	c, err := p.client(ctx, m.ClientID)
	if err != nil {
		if errors.Is(err, fosite.ErrNotFound) {
			return "", nil, fhir.Errorf(fhir.KindNotFound, "no client %q", m.ClientID)
		}
		return "", nil, err
	}
	scopes := normalizeScopes(strings.Fields(m.Scope))
	if len(scopes) == 0 {
		return "", nil, fhir.Errorf(fhir.KindInvalid, "a scope is required")
	}
	for _, s := range scopes {
		if !scopeCovered(c.scopes, s) {
			return "", nil, fhir.Errorf(fhir.KindInvalid, "scope %q is not within client %s's registered scopes (%s)", s, c.GetID(), c.c.Scope)
		}
	}
	if m.Patient != "" && !fhir.ValidID(m.Patient) {
		return "", nil, fhir.Errorf(fhir.KindInvalid, "patient id %q is not a valid id", m.Patient)
	}
	ttl := m.TTL
	if ttl <= 0 {
		ttl = p.cfg.AccessTokenTTL
	}
	now := p.now()
	start := now
	if m.NotBefore.After(now) {
		start = m.NotBefore
	}
	claims := accessClaims{
		Issuer: p.base, Subject: c.GetID(), Audience: p.fhirBase, JTI: newJTI(),
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(start.Add(ttl)),
		Scope: strings.Join(scopes, " "), ClientID: c.GetID(), Patient: m.Patient,
	}
	if !m.NotBefore.IsZero() {
		claims.NotBefore = jwt.NewNumericDate(m.NotBefore)
	}
	snap, err := p.keys.snapshot(ctx)
	if err != nil {
		return "", nil, err
	}
	// Keep the key published for as long as this token lives.
	if err := p.store.ExtendKey(ctx, snap.accessKID, claims.ExpiresAt.Time.Add(p.cfg.Leeway)); err != nil {
		return "", nil, err
	}
	token, err := p.signAccess(ctx, &claims)
	if err != nil {
		return "", nil, err
	}
	out := &Claims{Issuer: claims.Issuer, Subject: claims.Subject, Audience: claims.Audience, ClientID: claims.ClientID,
		Scope: claims.Scope, Scopes: scopes, Patient: claims.Patient, JTI: claims.JTI,
		IssuedAt: claims.IssuedAt.Time, ExpiresAt: claims.ExpiresAt.Time}
	if claims.NotBefore != nil {
		out.NotBefore = claims.NotBefore.Time
	}
	return token, out, nil
}
