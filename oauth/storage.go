package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ory/fosite"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/store"
)

// fositeStore adapts our TokenStore and ClientStore to the storage
// interfaces of the fosite handlers we compose. Writes inside a fosite
// transaction (BeginTX ... Commit) are collected and applied by Commit in
// one database transaction: a code redemption or a refresh rotation, and a
// reuse that revokes a whole family, are all or nothing.
type fositeStore struct {
	p *Provider
}

type txKey struct{}

// pendingTx collects the writes of one fosite transaction.
type pendingTx struct {
	ch   store.OAuthTokenChanges
	done bool
}

// BeginTX implements fosite's storage.Transactional.
func (s *fositeStore) BeginTX(ctx context.Context) (context.Context, error) {
	return context.WithValue(ctx, txKey{}, &pendingTx{}), nil
}

// Commit applies the collected writes in one transaction.
func (s *fositeStore) Commit(ctx context.Context) error {
	tx, _ := ctx.Value(txKey{}).(*pendingTx)
	if tx == nil || tx.done {
		return nil
	}
	tx.done = true
	err := s.p.store.ApplyTokenChanges(ctx, tx.ch)
	if fhir.KindOf(err) == fhir.KindConflict {
		// A concurrent request used the same code or refresh token.
		return fosite.ErrSerializationFailure.WithWrap(err)
	}
	if err == nil {
		s.p.noteRevocations(tx.ch)
	}
	return err
}

// Rollback drops the collected writes.
func (s *fositeStore) Rollback(ctx context.Context) error {
	if tx, _ := ctx.Value(txKey{}).(*pendingTx); tx != nil {
		tx.done = true
	}
	return nil
}

// apply runs ch now, or adds it to the transaction of ctx.
func (s *fositeStore) apply(ctx context.Context, ch store.OAuthTokenChanges) error {
	if tx, _ := ctx.Value(txKey{}).(*pendingTx); tx != nil && !tx.done {
		tx.ch.Use = append(tx.ch.Use, ch.Use...)
		tx.ch.Delete = append(tx.ch.Delete, ch.Delete...)
		tx.ch.Create = append(tx.ch.Create, ch.Create...)
		tx.ch.RevokeFamilies = append(tx.ch.RevokeFamilies, ch.RevokeFamilies...)
		tx.ch.Revoke = append(tx.ch.Revoke, ch.Revoke...)
		return nil
	}
	err := s.p.store.ApplyTokenChanges(ctx, ch)
	if err == nil {
		s.p.noteRevocations(ch)
	}
	return err
}

// row builds a token row for a request.
func (s *fositeStore) row(kind store.OAuthTokenKind, sig string, r fosite.Requester, expires time.Time) (store.OAuthToken, error) {
	data, err := encodeRequest(r)
	if err != nil {
		return store.OAuthToken{}, fmt.Errorf("encoding the %s request: %w", kind, err)
	}
	sess := sessionOf(r)
	if expires.IsZero() {
		expires = s.p.now().Add(s.p.cfg.AuthorizeCodeTTL)
	}
	return store.OAuthToken{
		Kind: kind, Signature: sig, Tenant: s.p.cfg.Tenant, RequestID: r.GetID(), ClientID: r.GetClient().GetID(),
		Subject: sess.GetSubject(), SessionID: sess.LoginSession, Active: true,
		CreatedAt: s.p.now(), ExpiresAt: expires, Data: data,
	}, nil
}

func (s *fositeStore) create(ctx context.Context, kind store.OAuthTokenKind, sig string, r fosite.Requester, expires time.Time) error {
	t, err := s.row(kind, sig, r, expires)
	if err != nil {
		return err
	}
	return s.apply(ctx, store.OAuthTokenChanges{Create: []store.OAuthToken{t}})
}

// load reads a token row and rebuilds its request. The request comes back
// with fosite.ErrInactiveToken when the row is inactive.
func (s *fositeStore) load(ctx context.Context, kind store.OAuthTokenKind, sig string, sess fosite.Session) (*fosite.Request, *store.OAuthToken, error) {
	if !storable(sig) {
		return nil, nil, fosite.ErrNotFound
	}
	t, err := s.p.store.GetToken(ctx, kind, sig)
	if fhir.KindOf(err) == fhir.KindNotFound {
		return nil, nil, fosite.ErrNotFound
	}
	if err != nil {
		return nil, nil, err
	}
	if t.Tenant != s.p.cfg.Tenant {
		return nil, nil, fosite.ErrNotFound
	}
	var sr storedRequest
	if err := json.Unmarshal(t.Data, &sr); err != nil {
		return nil, nil, fmt.Errorf("decoding a stored %s: %w", kind, err)
	}
	if sess == nil {
		sess = newSession(s.p.cfg.Tenant)
	}
	if err := json.Unmarshal(sr.Session, sess); err != nil {
		return nil, nil, fmt.Errorf("decoding a stored %s session: %w", kind, err)
	}
	client, err := s.GetClient(ctx, sr.ClientID)
	if err != nil {
		return nil, nil, err
	}
	req := &fosite.Request{
		ID: sr.ID, RequestedAt: sr.RequestedAt, Client: client,
		RequestedScope: sr.RequestedScope, GrantedScope: sr.GrantedScope,
		RequestedAudience: sr.RequestedAudience, GrantedAudience: sr.GrantedAudience,
		Form: sr.Form, Session: sess,
	}
	if !t.Active {
		return req, t, fosite.ErrInactiveToken
	}
	return req, t, nil
}

// GetClient implements fosite.ClientManager.
func (s *fositeStore) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	return s.p.client(ctx, id)
}

// ClientAssertionJWTValid implements fosite.ClientManager (our client
// authentication records assertion ids itself, with UseAssertion).
func (s *fositeStore) ClientAssertionJWTValid(ctx context.Context, jti string) error { return nil }

// SetClientAssertionJWT implements fosite.ClientManager.
func (s *fositeStore) SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error {
	if err := s.p.store.UseAssertion(ctx, jti, exp); err != nil {
		return fosite.ErrJTIKnown.WithWrap(err)
	}
	return nil
}

// Authorization codes.

func (s *fositeStore) CreateAuthorizeCodeSession(ctx context.Context, sig string, r fosite.Requester) error {
	return s.create(ctx, store.TokenCode, sig, r, sessionOf(r).GetExpiresAt(fosite.AuthorizeCode))
}

func (s *fositeStore) GetAuthorizeCodeSession(ctx context.Context, sig string, sess fosite.Session) (fosite.Requester, error) {
	req, _, err := s.load(ctx, store.TokenCode, sig, sess)
	if errors.Is(err, fosite.ErrInactiveToken) {
		return req, fosite.ErrInvalidatedAuthorizeCode
	}
	if err != nil {
		return nil, err
	}
	return req, nil
}

func (s *fositeStore) InvalidateAuthorizeCodeSession(ctx context.Context, sig string) error {
	return s.apply(ctx, store.OAuthTokenChanges{Use: []store.OAuthTokenKey{{Kind: store.TokenCode, Signature: sig}}})
}

// PKCE and OpenID Connect requests, keyed by the code.

func (s *fositeStore) CreatePKCERequestSession(ctx context.Context, sig string, r fosite.Requester) error {
	return s.create(ctx, store.TokenPKCE, sig, r, sessionOf(r).GetExpiresAt(fosite.AuthorizeCode))
}

func (s *fositeStore) GetPKCERequestSession(ctx context.Context, sig string, sess fosite.Session) (fosite.Requester, error) {
	req, _, err := s.load(ctx, store.TokenPKCE, sig, sess)
	if err != nil {
		return nil, err
	}
	return req, nil
}

func (s *fositeStore) DeletePKCERequestSession(ctx context.Context, sig string) error {
	return s.apply(ctx, store.OAuthTokenChanges{Delete: []store.OAuthTokenKey{{Kind: store.TokenPKCE, Signature: sig}}})
}

// codeKey keys OpenID Connect rows, which fosite names by the code itself:
// only a hash of it is stored.
func codeKey(code string) string {
	sum := sha256.Sum256([]byte(code))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func (s *fositeStore) CreateOpenIDConnectSession(ctx context.Context, code string, r fosite.Requester) error {
	return s.create(ctx, store.TokenOIDC, codeKey(code), r, sessionOf(r).GetExpiresAt(fosite.AuthorizeCode))
}

func (s *fositeStore) GetOpenIDConnectSession(ctx context.Context, code string, r fosite.Requester) (fosite.Requester, error) {
	req, _, err := s.load(ctx, store.TokenOIDC, codeKey(code), r.GetSession())
	if err != nil {
		return nil, err
	}
	return req, nil
}

func (s *fositeStore) DeleteOpenIDConnectSession(ctx context.Context, code string) error {
	return s.apply(ctx, store.OAuthTokenChanges{Delete: []store.OAuthTokenKey{{Kind: store.TokenOIDC, Signature: codeKey(code)}}})
}

// Access tokens are JWTs; a row (jti, family, expiry) is kept only for
// grants that have a family to revoke: client_credentials tokens are not
// stored at all (they are revoked by jti).

func (s *fositeStore) CreateAccessTokenSession(ctx context.Context, jti string, r fosite.Requester) error {
	// fosite passes a sanitized copy; the access request is in the context.
	if ar, ok := ctx.Value(fosite.AccessRequestContextKey).(fosite.AccessRequester); ok && ar.GetGrantTypes().ExactOne("client_credentials") {
		return nil
	}
	t := store.OAuthToken{
		Kind: store.TokenAccess, Signature: jti, Tenant: s.p.cfg.Tenant, RequestID: r.GetID(), ClientID: r.GetClient().GetID(),
		Subject: sessionOf(r).GetSubject(), Active: true, CreatedAt: s.p.now(),
		ExpiresAt: sessionOf(r).GetExpiresAt(fosite.AccessToken).Add(s.p.cfg.Leeway),
	}
	return s.apply(ctx, store.OAuthTokenChanges{Create: []store.OAuthToken{t}})
}

func (s *fositeStore) GetAccessTokenSession(ctx context.Context, jti string, sess fosite.Session) (fosite.Requester, error) {
	return nil, fosite.ErrNotFound
}

func (s *fositeStore) DeleteAccessTokenSession(ctx context.Context, jti string) error {
	return s.apply(ctx, store.OAuthTokenChanges{Delete: []store.OAuthTokenKey{{Kind: store.TokenAccess, Signature: jti}}})
}

// Refresh tokens.

func (s *fositeStore) CreateRefreshTokenSession(ctx context.Context, sig, accessSig string, r fosite.Requester) error {
	t, err := s.row(store.TokenRefresh, sig, r, sessionOf(r).GetExpiresAt(fosite.RefreshToken))
	if err != nil {
		return err
	}
	t.AccessSignature = accessSig
	return s.apply(ctx, store.OAuthTokenChanges{Create: []store.OAuthToken{t}})
}

func (s *fositeStore) GetRefreshTokenSession(ctx context.Context, sig string, sess fosite.Session) (fosite.Requester, error) {
	req, t, err := s.load(ctx, store.TokenRefresh, sig, sess)
	if errors.Is(err, fosite.ErrInactiveToken) {
		return req, err
	}
	if err != nil {
		return nil, err
	}
	// An online_access grant ends with the login session.
	if t.SessionID != "" {
		if _, err := s.p.store.GetSession(ctx, t.SessionID); fhir.KindOf(err) == fhir.KindNotFound {
			return nil, fosite.ErrNotFound
		} else if err != nil {
			return nil, err
		}
	}
	return req, nil
}

func (s *fositeStore) DeleteRefreshTokenSession(ctx context.Context, sig string) error {
	// Kept (inactive) so that a further reuse is recognised as reuse.
	return nil
}

func (s *fositeStore) RotateRefreshToken(ctx context.Context, requestID, sig string) error {
	return s.apply(ctx, store.OAuthTokenChanges{Use: []store.OAuthTokenKey{{Kind: store.TokenRefresh, Signature: sig}}})
}

// RevokeRefreshToken and RevokeAccessToken revoke the whole family of a
// request: its refresh tokens and codes, and its access tokens by jti.
func (s *fositeStore) RevokeRefreshToken(ctx context.Context, requestID string) error {
	return s.apply(ctx, store.OAuthTokenChanges{RevokeFamilies: []string{requestID}})
}

func (s *fositeStore) RevokeAccessToken(ctx context.Context, requestID string) error {
	return s.apply(ctx, store.OAuthTokenChanges{RevokeFamilies: []string{requestID}})
}

func (s *fositeStore) RevokeRefreshTokenMaybeGracePeriod(ctx context.Context, requestID, sig string) error {
	return s.RevokeRefreshToken(ctx, requestID)
}
