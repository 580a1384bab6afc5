package sqlstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/store"
)

const (
	sqlInsertClient = `INSERT INTO oauth_clients (tenant, id, secret_hash, public, jwks, jwks_url, redirect_uris, scope, grant_types, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING`
	sqlClientColumns = `tenant, id, secret_hash, public, jwks, jwks_url, redirect_uris, scope, grant_types, created_at`
	sqlGetClient     = `SELECT ` + sqlClientColumns + ` FROM oauth_clients WHERE tenant = $1 AND id = $2`
	sqlListClients   = `SELECT ` + sqlClientColumns + ` FROM oauth_clients WHERE tenant = $1 ORDER BY id`
	sqlDeleteClient  = `DELETE FROM oauth_clients WHERE tenant = $1 AND id = $2`
	sqlSetSecret     = `UPDATE oauth_clients SET secret_hash = $3 WHERE tenant = $1 AND id = $2 AND NOT public`
)

var _ store.OAuthStore = (*Store)(nil)

// CreateClient registers a client; an existing id is KindConflict.
func (s *Store) CreateClient(ctx context.Context, c store.OAuthClient) error {
	if c.CreatedAt.IsZero() {
		c.CreatedAt = s.now()
	}
	n, err := s.Driver.Exec(ctx, sqlInsertClient, c.Tenant, c.ID, c.SecretHash, c.Public, c.JWKS, c.JWKSURL,
		strings.Join(c.RedirectURIs, " "), c.Scope, strings.Join(c.GrantTypes, " "), micros(c.CreatedAt))
	if err != nil {
		return fmt.Errorf("registering client %s: %w", c.ID, err)
	}
	if n == 0 {
		return fhir.Errorf(fhir.KindConflict, "client %q already exists", c.ID)
	}
	return nil
}

// GetClient returns a client or KindNotFound.
func (s *Store) GetClient(ctx context.Context, tenant, id string) (*store.OAuthClient, error) {
	c, err := scanClient(s.Driver.QueryRow(ctx, sqlGetClient, tenant, id))
	if s.Driver.IsNoRows(err) {
		return nil, fhir.Errorf(fhir.KindNotFound, "no client %q", id)
	}
	if err != nil {
		return nil, fmt.Errorf("reading client %s: %w", id, err)
	}
	return c, nil
}

// ListClients returns the clients of a tenant by id.
func (s *Store) ListClients(ctx context.Context, tenant string) ([]store.OAuthClient, error) {
	rows, err := s.Driver.Query(ctx, sqlListClients, tenant)
	if err != nil {
		return nil, fmt.Errorf("listing clients: %w", err)
	}
	defer rows.Close()
	var out []store.OAuthClient
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, fmt.Errorf("listing clients: %w", err)
		}
		out = append(out, *c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing clients: %w", err)
	}
	return out, nil
}

// DeleteClient removes a client; a missing one is KindNotFound.
func (s *Store) DeleteClient(ctx context.Context, tenant, id string) error {
	n, err := s.Driver.Exec(ctx, sqlDeleteClient, tenant, id)
	if err != nil {
		return fmt.Errorf("deleting client %s: %w", id, err)
	}
	if n == 0 {
		return fhir.Errorf(fhir.KindNotFound, "no client %q", id)
	}
	return nil
}

// SetClientSecret replaces the secret hash of a confidential client.
func (s *Store) SetClientSecret(ctx context.Context, tenant, id string, hash []byte) error {
	n, err := s.Driver.Exec(ctx, sqlSetSecret, tenant, id, hash)
	if err != nil {
		return fmt.Errorf("setting the secret of client %s: %w", id, err)
	}
	if n == 0 {
		return fhir.Errorf(fhir.KindNotFound, "no confidential client %q", id)
	}
	return nil
}

func scanClient(r Row) (*store.OAuthClient, error) {
	var c store.OAuthClient
	var redirects, grants string
	var created int64
	if err := r.Scan(&c.Tenant, &c.ID, &c.SecretHash, &c.Public, &c.JWKS, &c.JWKSURL, &redirects, &c.Scope, &grants, &created); err != nil {
		return nil, err
	}
	c.RedirectURIs = fields(redirects)
	c.GrantTypes = fields(grants)
	c.CreatedAt = fromMicros(created)
	return &c, nil
}

// fields splits a space-separated list; nil when empty.
func fields(s string) []string {
	if f := strings.Fields(s); len(f) > 0 {
		return f
	}
	return nil
}

// expired reports whether a stored expiry (microseconds) is before now.
func expired(expiresAt int64, now time.Time) bool { return expiresAt <= micros(now) }
