// Package sqlstore is what the SQL backends share: the statements and the
// versioning logic of store.Store, written once against a small driver
// interface. store/postgres and store/sqlite adapt their drivers to it.
package sqlstore

import (
	"context"
	"time"
)

// Row is a single-row result.
type Row interface {
	Scan(dest ...any) error
}

// Rows is a multi-row result; Close must be called.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Querier runs statements; both a transaction and the read pool are one.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (rowsAffected int64, err error)
	QueryRow(ctx context.Context, sql string, args ...any) Row
	Query(ctx context.Context, sql string, args ...any) (Rows, error)
}

// Driver is what a backend provides. SQL is written with $n placeholders;
// a driver rewrites them if its database wants another style.
type Driver interface {
	Querier // reads outside a transaction
	// InTx runs fn in a write transaction, committing when fn returns nil.
	InTx(ctx context.Context, fn func(tx Querier) error) error
	// IsNoRows reports whether err means a QueryRow found nothing.
	IsNoRows(err error) bool
	// IsRetryable reports whether a transaction failed only because of a
	// concurrent one (key clash, deadlock, serialisation failure), so that
	// running it again may succeed.
	IsRetryable(err error) bool
	// ForUpdate is the row-locking suffix for a SELECT inside InTx ("" where
	// the transaction already serialises writers).
	ForUpdate() string
	Ping(ctx context.Context) error
	Close() error
	Dialect
}

// Dialect is what differs between the databases in the SQL that sqlstore
// writes: the index writer and the search compiler are written once, and
// ask the dialect only for these few pieces.
type Dialect interface {
	// Arrays reports whether the database binds a Go slice as an array
	// ($1::text[], unnest) and runs several data-modifying statements as
	// parts of one WITH statement (PostgreSQL). Without it, index rows are
	// written with multi-row VALUES and IN lists, one statement each
	// (SQLite, where a statement costs no round trip).
	Arrays() bool
	// NumericParam turns a placeholder bound to a decimal string into an
	// expression comparable with the numeric index columns.
	NumericParam(placeholder string) string
	// NumericText renders a numeric expression as text that NumericParam
	// reads back to the same value (for paging cursors).
	NumericText(expr string) string
	// AnyOf renders "expr equals one of vals", with vals bound as one
	// value through bind (which returns its placeholder): an array on
	// PostgreSQL, a JSON array read by json_each on SQLite. Both use an
	// index on expr as they would for an IN list.
	AnyOf(expr string, bind func(any) string, vals []string) string
	// Analyze is the statement that refreshes the planner's statistics
	// ("" for none). Bulk imports run it as the tables grow, so that
	// searches right after a large import do not run on plans made for
	// empty tables.
	Analyze() string
	// FullTextMatch is the condition that the content column of the
	// idx_text row x matches the full-text query bound at placeholder, a
	// value made by FullTextQuery. Every word of the query must occur
	// (stemmed, case- and accent-insensitive).
	FullTextMatch(x, placeholder string) string
	// FullTextQuery turns words (letters and digits only, at least one)
	// into the value FullTextMatch binds.
	FullTextQuery(words []string) string
	// Fence ends a subquery that the planner must run as written, once
	// per outer row, instead of flattening it into a join (" OFFSET 0" on
	// PostgreSQL; "" where subqueries are not flattened).
	Fence() string
}

// micros converts a time to the stored representation.
func micros(t time.Time) int64 { return t.UnixMicro() }

// fromMicros converts a stored time back.
func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }
