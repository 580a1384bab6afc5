package sqlstore

import (
	"context"
	"fmt"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/store"
)

const (
	sqlInsertUser = `INSERT INTO oauth_users (tenant, username, password_hash, fhir_user, scope, created_at)
VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`
	sqlUserColumns = `tenant, username, password_hash, fhir_user, scope, created_at`
	sqlGetUser     = `SELECT ` + sqlUserColumns + ` FROM oauth_users WHERE tenant = $1 AND username = $2`
	sqlListUsers   = `SELECT ` + sqlUserColumns + ` FROM oauth_users WHERE tenant = $1 ORDER BY username`
	sqlDeleteUser  = `DELETE FROM oauth_users WHERE tenant = $1 AND username = $2`
)

// CreateUser adds a user; an existing username is KindConflict.
func (s *Store) CreateUser(ctx context.Context, u store.OAuthUser) error {
	if u.CreatedAt.IsZero() {
		u.CreatedAt = s.now()
	}
	n, err := s.Driver.Exec(ctx, sqlInsertUser, u.Tenant, u.Username, u.PasswordHash, u.FHIRUser, u.Scope, micros(u.CreatedAt))
	if err != nil {
		return fmt.Errorf("adding user: %w", err)
	}
	if n == 0 {
		return fhir.Errorf(fhir.KindConflict, "user %q already exists", u.Username)
	}
	return nil
}

// GetUser returns a user or KindNotFound.
func (s *Store) GetUser(ctx context.Context, tenant, username string) (*store.OAuthUser, error) {
	u, err := scanUser(s.Driver.QueryRow(ctx, sqlGetUser, tenant, username))
	if s.Driver.IsNoRows(err) {
		return nil, fhir.Errorf(fhir.KindNotFound, "no such user")
	}
	if err != nil {
		return nil, fmt.Errorf("reading a user: %w", err)
	}
	return u, nil
}

// ListUsers returns the users of a tenant by username.
func (s *Store) ListUsers(ctx context.Context, tenant string) ([]store.OAuthUser, error) {
	rows, err := s.Driver.Query(ctx, sqlListUsers, tenant)
	if err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
	}
	defer rows.Close()
	var out []store.OAuthUser
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("listing users: %w", err)
		}
		out = append(out, *u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
	}
	return out, nil
}

// DeleteUser removes a user; a missing one is KindNotFound.
func (s *Store) DeleteUser(ctx context.Context, tenant, username string) error {
	n, err := s.Driver.Exec(ctx, sqlDeleteUser, tenant, username)
	if err != nil {
		return fmt.Errorf("deleting a user: %w", err)
	}
	if n == 0 {
		return fhir.Errorf(fhir.KindNotFound, "no such user")
	}
	return nil
}

func scanUser(r Row) (*store.OAuthUser, error) {
	var u store.OAuthUser
	var created int64
	if err := r.Scan(&u.Tenant, &u.Username, &u.PasswordHash, &u.FHIRUser, &u.Scope, &created); err != nil {
		return nil, err
	}
	u.CreatedAt = fromMicros(created)
	return &u, nil
}
