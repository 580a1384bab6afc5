// Package postgres is the production backend: a pgx v5 pool, resources as
// JSONB plus index tables. It is the only importer of pgx.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/fhirserver/fhirserver/migrations"
	"github.com/fhirserver/fhirserver/store/sqlstore"
)

// Store is store.Store on PostgreSQL.
type Store struct {
	*sqlstore.Store
	pool *pgxpool.Pool
}

// Open connects to url, applies pending migrations and returns the store.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parsing the database URL: %w", redact(err))
	}
	if cfg.MaxConns < int32(runtime.GOMAXPROCS(0)*8) && !hasParam(url, "pool_max_conns") {
		// Enough connections that request goroutines rarely queue for one
		// while others wait on the network.
		cfg.MaxConns = int32(runtime.GOMAXPROCS(0) * 8)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	st := sqlstore.New(&driver{pool: pool})
	// reltuples is -1 before the first ANALYZE (a new database).
	var rows float64
	if err := pool.QueryRow(ctx, `SELECT reltuples FROM pg_class WHERE oid = 'resources'::regclass`).Scan(&rows); err == nil && rows > 0 {
		st.AnalyzedRows(int64(rows))
	}
	return &Store{Store: st, pool: pool}, nil
}

// Migrate applies pending migrations to the database at url.
func Migrate(ctx context.Context, url string) error {
	s, err := Open(ctx, url)
	if err != nil {
		return err
	}
	return s.Close()
}

func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	// Several servers may start at once against one database; goose takes
	// an advisory lock through the session locker so only one migrates.
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return fmt.Errorf("preparing the migration lock: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.Postgres(), goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("preparing migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("applying migrations: %w", err)
	}
	return nil
}

func hasParam(url, name string) bool {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return false
	}
	_, ok := cfg.RuntimeParams[name]
	return ok
}

// redact drops the URL from a parse error, which may carry a password.
func redact(err error) error {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		return errors.New(pe.Error())
	}
	return err
}

// driver adapts pgx to sqlstore.Driver.
type driver struct{ pool *pgxpool.Pool }

var _ sqlstore.Locker = (*driver)(nil)

type querier struct {
	q interface {
		Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
		Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
		QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	}
}

func (q querier) Exec(ctx context.Context, s string, args ...any) (int64, error) {
	tag, err := q.q.Exec(ctx, s, args...)
	return tag.RowsAffected(), err
}

func (q querier) QueryRow(ctx context.Context, s string, args ...any) sqlstore.Row {
	return q.q.QueryRow(ctx, s, args...)
}

func (q querier) Query(ctx context.Context, s string, args ...any) (sqlstore.Rows, error) {
	return q.q.Query(ctx, s, args...)
}

func (d *driver) Exec(ctx context.Context, s string, args ...any) (int64, error) {
	return querier{d.pool}.Exec(ctx, s, args...)
}

func (d *driver) QueryRow(ctx context.Context, s string, args ...any) sqlstore.Row {
	return querier{d.pool}.QueryRow(ctx, s, args...)
}

func (d *driver) Query(ctx context.Context, s string, args ...any) (sqlstore.Rows, error) {
	return querier{d.pool}.Query(ctx, s, args...)
}

func (d *driver) InTx(ctx context.Context, fn func(tx sqlstore.Querier) error) error {
	return pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error { return fn(querier{tx}) })
}

func (d *driver) IsNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }

func (d *driver) IsRetryable(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "23505", "40P01", "40001": // unique_violation, deadlock_detected, serialization_failure
		return true
	}
	return false
}

func (d *driver) ForUpdate() string { return " FOR UPDATE" }

// AdvisoryLock implements sqlstore.Locker: conditional interactions lock
// their criteria with a transaction-level advisory lock.
func (d *driver) AdvisoryLock() string { return "SELECT pg_advisory_xact_lock($1)" }

func (d *driver) Ping(ctx context.Context) error { return d.pool.Ping(ctx) }

func (d *driver) Close() error { d.pool.Close(); return nil }

func (d *driver) Arrays() bool { return true }

func (d *driver) NumericParam(ph string) string { return ph + "::numeric" }

func (d *driver) NumericText(expr string) string { return "(" + expr + ")::text" }

// Fence: PostgreSQL does not pull up a subquery with an OFFSET.
func (d *driver) Fence() string { return " OFFSET 0" }

// FullTextMatch uses the expression of the idx_text_fts GIN index.
func (d *driver) FullTextMatch(x, ph string) string {
	return "to_tsvector('english', " + x + ".content) @@ plainto_tsquery('english', " + ph + ")"
}

func (d *driver) FullTextQuery(words []string) string { return strings.Join(words, " ") }

func (d *driver) AnyOf(expr string, bind func(any) string, vals []string) string {
	return expr + " = ANY(" + bind(vals) + "::text[])"
}

// Analyze covers the tables whose statistics decide the shape of common
// search plans (the others are left to autovacuum).
func (d *driver) Analyze() string {
	return "ANALYZE resources, idx_string, idx_token, idx_reference, idx_date, idx_compartment"
}
