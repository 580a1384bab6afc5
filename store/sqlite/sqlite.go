// Package sqlite is the embedded default backend: modernc.org/sqlite (pure
// Go, no cgo) in WAL mode, one writer connection and a pool of readers.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/fhirserver/fhirserver/migrations"
	"github.com/fhirserver/fhirserver/store/sqlstore"
)

// Store is store.Store on an SQLite file.
type Store struct {
	*sqlstore.Store
	db *driver
}

// Open opens (creating if needed) the database file at path and applies
// pending migrations.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || strings.HasPrefix(path, ":memory:") {
		return nil, errors.New("sqlite: a file path is required (an in-memory database cannot be shared by the connection pool)")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("creating the database folder %s: %w", dir, err)
		}
	}
	// synchronous(FULL): a commit that returned is on disk even after a
	// power loss; WAL keeps readers off the writer's back.
	pragmas := "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)"
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + pragmas
	writer, err := sql.Open("sqlite", dsn+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	reader, err := sql.Open("sqlite", dsn+"&mode=ro")
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	n := runtime.GOMAXPROCS(0) * 2
	reader.SetMaxOpenConns(n)
	reader.SetMaxIdleConns(n)
	if err := migrate(ctx, writer); err != nil {
		writer.Close()
		reader.Close()
		return nil, err
	}
	d := &driver{writer: writer, reader: reader}
	return &Store{Store: sqlstore.New(d), db: d}, nil
}

// Migrate applies pending migrations to the database at path.
func Migrate(ctx context.Context, path string) error {
	s, err := Open(ctx, path)
	if err != nil {
		return err
	}
	return s.Close()
}

func migrate(ctx context.Context, db *sql.DB) error {
	p, err := goose.NewProvider(goose.DialectSQLite3, db, migrations.SQLite())
	if err != nil {
		return fmt.Errorf("preparing migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("applying migrations: %w", err)
	}
	return nil
}

// driver adapts database/sql to sqlstore.Driver.
type driver struct {
	writer *sql.DB
	reader *sql.DB
}

// rewrite turns $n placeholders into SQLite's ?n.
func rewrite(q string) string { return strings.ReplaceAll(q, "$", "?") }

type querier struct {
	q interface {
		ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
		QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
		QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	}
}

func (q querier) Exec(ctx context.Context, s string, args ...any) (int64, error) {
	res, err := q.q.ExecContext(ctx, rewrite(s), args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (q querier) QueryRow(ctx context.Context, s string, args ...any) sqlstore.Row {
	return q.q.QueryRowContext(ctx, rewrite(s), args...)
}

func (q querier) Query(ctx context.Context, s string, args ...any) (sqlstore.Rows, error) {
	rows, err := q.q.QueryContext(ctx, rewrite(s), args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { _ = r.Rows.Close() }

func (d *driver) Exec(ctx context.Context, s string, args ...any) (int64, error) {
	return querier{d.writer}.Exec(ctx, s, args...)
}

func (d *driver) QueryRow(ctx context.Context, s string, args ...any) sqlstore.Row {
	return querier{d.reader}.QueryRow(ctx, s, args...)
}

func (d *driver) Query(ctx context.Context, s string, args ...any) (sqlstore.Rows, error) {
	return querier{d.reader}.Query(ctx, s, args...)
}

func (d *driver) InTx(ctx context.Context, fn func(tx sqlstore.Querier) error) error {
	tx, err := d.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning a transaction: %w", err)
	}
	if err := fn(querier{tx}); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	return nil
}

func (d *driver) IsNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

func (d *driver) IsRetryable(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
	}
	return false
}

func (d *driver) ForUpdate() string { return "" }

func (d *driver) Ping(ctx context.Context) error { return d.reader.PingContext(ctx) }

func (d *driver) Close() error { return errors.Join(d.reader.Close(), d.writer.Close()) }

func (d *driver) Arrays() bool { return false }

func (d *driver) NumericParam(ph string) string { return "CAST(" + ph + " AS REAL)" }

// NumericText prints 17 significant digits, enough to read the same double
// back.
func (d *driver) NumericText(expr string) string { return "printf('%.17g', " + expr + ")" }

// Fence: SQLite runs a correlated EXISTS as a per-row subquery anyway.
func (d *driver) Fence() string { return "" }

// FullTextMatch looks the query up in the FTS5 table over idx_text.
func (d *driver) FullTextMatch(x, ph string) string {
	return x + ".rowid IN (SELECT rowid FROM idx_text_fts WHERE idx_text_fts MATCH " + ph + ")"
}

// FullTextQuery quotes every word, so that FTS5 reads none of them as an
// operator; words side by side must all occur.
func (d *driver) FullTextQuery(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = `"` + w + `"`
	}
	return strings.Join(q, " ")
}

// AnyOf binds the list as a JSON array; SQLite probes an index on expr for
// each element of json_each as it does for an IN list.
func (d *driver) AnyOf(expr string, bind func(any) string, vals []string) string {
	list, _ := json.Marshal(vals) // a []string always marshals
	return expr + " IN (SELECT value FROM json_each(" + bind(string(list)) + "))"
}

// Analyze lets SQLite gather the statistics it finds useful, bounded in
// time by analysis_limit.
func (d *driver) Analyze() string { return "PRAGMA analysis_limit=1000; PRAGMA optimize=0x10002" }
