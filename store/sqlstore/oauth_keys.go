package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/store"
)

const (
	sqlKeyColumns = `kid, use, alg, private_key, created_at, COALESCE(retired_at, 0), not_after`
	sqlInsertKey  = `INSERT INTO oauth_keys (kid, use, alg, private_key, created_at, retired_at, not_after)
VALUES ($1, $2, $3, $4, $5, NULL, $6) ON CONFLICT DO NOTHING`
	sqlCurrentKey = `SELECT ` + sqlKeyColumns + ` FROM oauth_keys WHERE use = $1 AND retired_at IS NULL`
	sqlRetireKeys = `UPDATE oauth_keys SET retired_at = $2 WHERE use = $1 AND retired_at IS NULL`
	sqlExtendKey  = `UPDATE oauth_keys SET not_after = $2 WHERE kid = $1 AND not_after < $2`
	sqlListKeys   = `SELECT ` + sqlKeyColumns + ` FROM oauth_keys WHERE retired_at IS NULL OR not_after > $1 ORDER BY use, created_at DESC, kid`
)

// InitKey stores k unless a current key of k.Use exists, and returns the
// current key. Two servers starting at once agree on one key: the unique
// index on current keys turns the second insert into a no-op.
func (s *Store) InitKey(ctx context.Context, k store.SigningKey) (*store.SigningKey, error) {
	if k.CreatedAt.IsZero() {
		k.CreatedAt = s.now()
	}
	var cur *store.SigningKey
	err := s.Driver.InTx(ctx, func(tx Querier) error {
		c, err := scanKey(tx.QueryRow(ctx, sqlCurrentKey, k.Use))
		if err == nil {
			cur = c
			return nil
		}
		if !s.Driver.IsNoRows(err) {
			return err
		}
		if _, err := tx.Exec(ctx, sqlInsertKey, k.ID, k.Use, k.Alg, k.Private, micros(k.CreatedAt), micros(k.NotAfter)); err != nil {
			return err
		}
		cur, err = scanKey(tx.QueryRow(ctx, sqlCurrentKey, k.Use))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("initialising the %s key: %w", k.Use, err)
	}
	return cur, nil
}

// RotateKey retires the current key of k.Use and makes k current, in one
// transaction.
func (s *Store) RotateKey(ctx context.Context, k store.SigningKey) error {
	if k.CreatedAt.IsZero() {
		k.CreatedAt = s.now()
	}
	err := s.Driver.InTx(ctx, func(tx Querier) error {
		if _, err := tx.Exec(ctx, sqlRetireKeys, k.Use, micros(k.CreatedAt)); err != nil {
			return err
		}
		n, err := tx.Exec(ctx, sqlInsertKey, k.ID, k.Use, k.Alg, k.Private, micros(k.CreatedAt), micros(k.NotAfter))
		if err != nil {
			return err
		}
		if n == 0 {
			return fhir.Errorf(fhir.KindConflict, "key %q already exists", k.ID)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("rotating the %s key: %w", k.Use, err)
	}
	return nil
}

// ExtendKey raises the NotAfter of a key (never lowers it).
func (s *Store) ExtendKey(ctx context.Context, kid string, notAfter time.Time) error {
	if _, err := s.Driver.Exec(ctx, sqlExtendKey, kid, micros(notAfter)); err != nil {
		return fmt.Errorf("extending key %s: %w", kid, err)
	}
	return nil
}

// ListKeys returns the current keys and the retired keys still needed to
// verify tokens at now, newest first within each use.
func (s *Store) ListKeys(ctx context.Context, now time.Time) ([]store.SigningKey, error) {
	rows, err := s.Driver.Query(ctx, sqlListKeys, micros(now))
	if err != nil {
		return nil, fmt.Errorf("listing keys: %w", err)
	}
	defer rows.Close()
	var out []store.SigningKey
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("listing keys: %w", err)
		}
		out = append(out, *k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing keys: %w", err)
	}
	return out, nil
}

func scanKey(r Row) (*store.SigningKey, error) {
	var k store.SigningKey
	var created, retired, notAfter int64
	if err := r.Scan(&k.ID, &k.Use, &k.Alg, &k.Private, &created, &retired, &notAfter); err != nil {
		return nil, err
	}
	k.CreatedAt = fromMicros(created)
	if retired != 0 {
		k.RetiredAt = fromMicros(retired)
	}
	k.NotAfter = fromMicros(notAfter)
	return &k, nil
}
