package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/store"
)

const (
	sqlInsertLaunch = `INSERT INTO oauth_launches (id, tenant, patient, encounter, username, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`
	sqlGetLaunch = `SELECT id, tenant, patient, encounter, username, created_at, expires_at FROM oauth_launches WHERE tenant = $1 AND id = $2`

	sqlDeleteSession = `DELETE FROM oauth_sessions WHERE id = $1`
	sqlInsertSession = `INSERT INTO oauth_sessions (id, tenant, kind, username, data, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`
	sqlGetSession    = `SELECT id, tenant, kind, username, data, created_at, expires_at FROM oauth_sessions WHERE id = $1`

	sqlInsertFailure = `INSERT INTO oauth_login_failures (key, at) VALUES ($1, $2)`
	sqlCountFailures = `SELECT COUNT(*), COALESCE(MIN(at), 0) FROM oauth_login_failures WHERE key = $1 AND at >= $2`
)

// Rows older than this are purged from the login-failure table; throttling
// never looks back further.
const loginFailureRetention = 24 * time.Hour

var sqlPurge = []string{
	`DELETE FROM oauth_tokens WHERE expires_at <= $1`,
	`DELETE FROM oauth_revocations WHERE expires_at <= $1`,
	`DELETE FROM oauth_assertions WHERE expires_at <= $1`,
	`DELETE FROM oauth_launches WHERE expires_at <= $1`,
	`DELETE FROM oauth_sessions WHERE expires_at <= $1`,
}

const sqlPurgeFailures = `DELETE FROM oauth_login_failures WHERE at < $1`

// CreateLaunch stores an EHR launch context; a clashing id is KindConflict.
func (s *Store) CreateLaunch(ctx context.Context, l store.LaunchContext) error {
	if l.CreatedAt.IsZero() {
		l.CreatedAt = s.now()
	}
	n, err := s.Driver.Exec(ctx, sqlInsertLaunch, l.ID, l.Tenant, l.Patient, l.Encounter, l.Username, micros(l.CreatedAt), micros(l.ExpiresAt))
	if err != nil {
		return fmt.Errorf("storing a launch context: %w", err)
	}
	if n == 0 {
		return fhir.Errorf(fhir.KindConflict, "launch context exists")
	}
	return nil
}

// GetLaunch returns a launch context that has not expired, or KindNotFound.
func (s *Store) GetLaunch(ctx context.Context, tenant, id string) (*store.LaunchContext, error) {
	var l store.LaunchContext
	var created, expires int64
	err := s.Driver.QueryRow(ctx, sqlGetLaunch, tenant, id).Scan(&l.ID, &l.Tenant, &l.Patient, &l.Encounter, &l.Username, &created, &expires)
	if s.Driver.IsNoRows(err) || (err == nil && expired(expires, s.now())) {
		return nil, fhir.Errorf(fhir.KindNotFound, "no such launch context")
	}
	if err != nil {
		return nil, fmt.Errorf("reading a launch context: %w", err)
	}
	l.CreatedAt, l.ExpiresAt = fromMicros(created), fromMicros(expires)
	return &l, nil
}

// PutSession inserts or replaces a session.
func (s *Store) PutSession(ctx context.Context, o store.OAuthSession) error {
	if o.CreatedAt.IsZero() {
		o.CreatedAt = s.now()
	}
	data := o.Data
	if data == nil {
		data = []byte{}
	}
	err := s.Driver.InTx(ctx, func(tx Querier) error {
		if _, err := tx.Exec(ctx, sqlDeleteSession, o.ID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, sqlInsertSession, o.ID, o.Tenant, o.Kind, o.Username, data, micros(o.CreatedAt), micros(o.ExpiresAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("storing a session: %w", err)
	}
	return nil
}

// GetSession returns a session that has not expired, or KindNotFound.
func (s *Store) GetSession(ctx context.Context, id string) (*store.OAuthSession, error) {
	var o store.OAuthSession
	var created, expires int64
	err := s.Driver.QueryRow(ctx, sqlGetSession, id).Scan(&o.ID, &o.Tenant, &o.Kind, &o.Username, &o.Data, &created, &expires)
	if s.Driver.IsNoRows(err) || (err == nil && expired(expires, s.now())) {
		return nil, fhir.Errorf(fhir.KindNotFound, "no such session")
	}
	if err != nil {
		return nil, fmt.Errorf("reading a session: %w", err)
	}
	o.CreatedAt, o.ExpiresAt = fromMicros(created), fromMicros(expires)
	return &o, nil
}

// DeleteSession ends a session; a missing one is not an error.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	if _, err := s.Driver.Exec(ctx, sqlDeleteSession, id); err != nil {
		return fmt.Errorf("deleting a session: %w", err)
	}
	return nil
}

// RecordLoginFailure records one failed login under each key, in one
// transaction.
func (s *Store) RecordLoginFailure(ctx context.Context, keys []string, at time.Time) error {
	err := s.Driver.InTx(ctx, func(tx Querier) error {
		for _, k := range keys {
			if _, err := tx.Exec(ctx, sqlInsertFailure, k, micros(at)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recording a login failure: %w", err)
	}
	return nil
}

// LoginFailures counts the failures recorded under key at or after since,
// and returns the oldest of them (zero when there is none).
func (s *Store) LoginFailures(ctx context.Context, key string, since time.Time) (int, time.Time, error) {
	var n, oldest int64
	if err := s.Driver.QueryRow(ctx, sqlCountFailures, key, micros(since)).Scan(&n, &oldest); err != nil {
		return 0, time.Time{}, fmt.Errorf("counting login failures: %w", err)
	}
	if n == 0 {
		return 0, time.Time{}, nil
	}
	return int(n), fromMicros(oldest), nil
}

// PurgeOAuth deletes expired tokens, revocations, assertion ids, launch
// contexts and sessions, and old login failures.
func (s *Store) PurgeOAuth(ctx context.Context, now time.Time) error {
	for _, q := range sqlPurge {
		if _, err := s.Driver.Exec(ctx, q, micros(now)); err != nil {
			return fmt.Errorf("purging expired OAuth rows: %w", err)
		}
	}
	if _, err := s.Driver.Exec(ctx, sqlPurgeFailures, micros(now.Add(-loginFailureRetention))); err != nil {
		return fmt.Errorf("purging login failures: %w", err)
	}
	return nil
}
