package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/store"
)

const (
	sqlTokenColumns = `kind, signature, tenant, request_id, client_id, subject, session_id, access_signature, active, created_at, expires_at, data`
	sqlGetToken     = `SELECT ` + sqlTokenColumns + ` FROM oauth_tokens WHERE kind = $1 AND signature = $2`
	sqlInsertToken  = `INSERT INTO oauth_tokens (` + sqlTokenColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`
	sqlUseToken     = `UPDATE oauth_tokens SET active = FALSE WHERE kind = $1 AND signature = $2 AND active`
	sqlDeleteToken  = `DELETE FROM oauth_tokens WHERE kind = $1 AND signature = $2`
	// A family's access tokens go on the revocation list: those stored as
	// access rows and those recorded on its refresh tokens.
	sqlRevokeFamilyAccess = `INSERT INTO oauth_revocations (jti, expires_at, revoked_at)
SELECT signature, expires_at, $2 FROM oauth_tokens WHERE request_id = $1 AND kind = 'access' AND expires_at > $2
ON CONFLICT DO NOTHING`
	sqlDeactivateFamily = `UPDATE oauth_tokens SET active = FALSE WHERE request_id = $1 AND kind IN ('code', 'refresh') AND active`
	sqlRevoke           = `INSERT INTO oauth_revocations (jti, expires_at, revoked_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`
	sqlRevokedSince     = `SELECT jti, expires_at, revoked_at FROM oauth_revocations WHERE revoked_at >= $1 AND expires_at > $2`
	sqlUseAssertion     = `INSERT INTO oauth_assertions (id, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING`
	sqlReuseAssertion   = `UPDATE oauth_assertions SET expires_at = $2 WHERE id = $1 AND expires_at <= $3`
)

// errTokenUsed aborts ApplyTokenChanges when a token to use is not active.
var errTokenUsed = errors.New("token already used")

// GetToken returns a token row (active or not) or KindNotFound.
func (s *Store) GetToken(ctx context.Context, kind store.OAuthTokenKind, signature string) (*store.OAuthToken, error) {
	var t store.OAuthToken
	var kindText string
	var created, expires int64
	err := s.Driver.QueryRow(ctx, sqlGetToken, string(kind), signature).Scan(&kindText, &t.Signature, &t.Tenant, &t.RequestID,
		&t.ClientID, &t.Subject, &t.SessionID, &t.AccessSignature, &t.Active, &created, &expires, &t.Data)
	if s.Driver.IsNoRows(err) {
		return nil, fhir.Errorf(fhir.KindNotFound, "no such %s", kind)
	}
	if err != nil {
		return nil, fmt.Errorf("reading a %s: %w", kind, err)
	}
	t.Kind = store.OAuthTokenKind(kindText)
	t.CreatedAt, t.ExpiresAt = fromMicros(created), fromMicros(expires)
	return &t, nil
}

// ApplyTokenChanges applies ch in one transaction: uses first (any token
// not active aborts everything with KindConflict), then deletes, inserts,
// family revocations and single revocations. A transaction that clashed
// with a concurrent one is run again.
func (s *Store) ApplyTokenChanges(ctx context.Context, ch store.OAuthTokenChanges) error {
	now := s.now()
	var err error
	for attempt := 0; ; attempt++ {
		err = s.Driver.InTx(ctx, func(tx Querier) error { return s.applyTokenChanges(ctx, tx, ch, now) })
		if err == nil || errors.Is(err, errTokenUsed) || !s.Driver.IsRetryable(err) || attempt >= 4 {
			break
		}
	}
	if errors.Is(err, errTokenUsed) {
		return fhir.Errorf(fhir.KindConflict, "the token was already used")
	}
	if err != nil {
		return fmt.Errorf("storing tokens: %w", err)
	}
	return nil
}

func (s *Store) applyTokenChanges(ctx context.Context, tx Querier, ch store.OAuthTokenChanges, now time.Time) error {
	for _, k := range ch.Use {
		n, err := tx.Exec(ctx, sqlUseToken, string(k.Kind), k.Signature)
		if err != nil {
			return err
		}
		if n == 0 {
			return errTokenUsed
		}
	}
	for _, k := range ch.Delete {
		if _, err := tx.Exec(ctx, sqlDeleteToken, string(k.Kind), k.Signature); err != nil {
			return err
		}
	}
	for _, t := range ch.Create {
		created := t.CreatedAt
		if created.IsZero() {
			created = now
		}
		data := t.Data
		if data == nil {
			data = []byte{}
		}
		if _, err := tx.Exec(ctx, sqlInsertToken, string(t.Kind), t.Signature, t.Tenant, t.RequestID, t.ClientID, t.Subject,
			t.SessionID, t.AccessSignature, t.Active, micros(created), micros(t.ExpiresAt), data); err != nil {
			return err
		}
	}
	for _, id := range ch.RevokeFamilies {
		if _, err := tx.Exec(ctx, sqlRevokeFamilyAccess, id, micros(now)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, sqlDeactivateFamily, id); err != nil {
			return err
		}
	}
	for _, r := range ch.Revoke {
		at := r.RevokedAt
		if at.IsZero() {
			at = now
		}
		if _, err := tx.Exec(ctx, sqlRevoke, r.JTI, micros(r.ExpiresAt), micros(at)); err != nil {
			return err
		}
	}
	return nil
}

// RevokedSince lists revocations recorded at or after since that have not
// expired at now.
func (s *Store) RevokedSince(ctx context.Context, since, now time.Time) ([]store.Revocation, error) {
	rows, err := s.Driver.Query(ctx, sqlRevokedSince, micros(since), micros(now))
	if err != nil {
		return nil, fmt.Errorf("reading revocations: %w", err)
	}
	defer rows.Close()
	var out []store.Revocation
	for rows.Next() {
		var r store.Revocation
		var exp, at int64
		if err := rows.Scan(&r.JTI, &exp, &at); err != nil {
			return nil, fmt.Errorf("reading revocations: %w", err)
		}
		r.ExpiresAt, r.RevokedAt = fromMicros(exp), fromMicros(at)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading revocations: %w", err)
	}
	return out, nil
}

// UseAssertion records a client assertion id; a second use before it
// expires is KindConflict. An expired record is reused.
func (s *Store) UseAssertion(ctx context.Context, id string, expiresAt time.Time) error {
	n, err := s.Driver.Exec(ctx, sqlUseAssertion, id, micros(expiresAt))
	if err != nil {
		return fmt.Errorf("recording a client assertion: %w", err)
	}
	if n == 1 {
		return nil
	}
	n, err = s.Driver.Exec(ctx, sqlReuseAssertion, id, micros(expiresAt), micros(s.now()))
	if err != nil {
		return fmt.Errorf("recording a client assertion: %w", err)
	}
	if n == 0 {
		return fhir.Errorf(fhir.KindConflict, "the client assertion was already used")
	}
	return nil
}
