package sqlstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/index"
	"github.com/fhirserver/fhirserver/store"
	"github.com/google/uuid"
)

// Store implements store.Store on a Driver.
type Store struct {
	Driver Driver
	// Now is the clock; tests replace it. Times are truncated to
	// microseconds, the precision both databases keep.
	Now func() time.Time
	// NewID assigns ids on create.
	NewID func() string
	// Extract extracts the search index rows of a resource body when it is
	// written (index.Extract when nil).
	Extract func(resourceType string, body []byte) (*index.Entries, error)
	// SlowQuery, when set, is called after each search statement with its
	// SQL text, its bind values and how long it took (when that is at least
	// SlowQueryAfter), so that the server can log slow queries and EXPLAIN
	// them. The store itself logs nothing.
	SlowQuery      func(sql string, args []any, d time.Duration)
	SlowQueryAfter time.Duration
	// FullText turns on full-text search: writes (and Reindex) store the
	// text of each resource for _text and _content, and searches accept
	// them. Resources written while it was off have no text until
	// Reindex runs with it on.
	FullText bool

	analyze analyzeState
}

// New returns a Store on d with the real clock, random UUID ids and the
// registry's search parameters.
func New(d Driver) *Store {
	return &Store{Driver: d, Now: time.Now, NewID: uuid.NewString, Extract: index.Extract}
}

var _ store.Store = (*Store)(nil)

func (s *Store) now() time.Time { return s.Now().UTC().Truncate(time.Microsecond) }

const (
	sqlSelectCurrentForWrite = `SELECT version, deleted, content_hash FROM resources WHERE tenant = $1 AND type = $2 AND id = $3`
	sqlInsertResource        = `INSERT INTO resources (tenant, type, id, version, last_updated, deleted, content_hash, body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tenant, type, id) DO NOTHING`
	sqlUpdateResource        = `UPDATE resources SET version = $4, last_updated = $5, deleted = $6, content_hash = $7, body = $8 WHERE tenant = $1 AND type = $2 AND id = $3`
	sqlInsertHistory         = `INSERT INTO resource_history (tenant, type, id, version, last_updated, op, body) VALUES ($1, $2, $3, $4, $5, $6, $7)`
	sqlRead                  = `SELECT version, last_updated, deleted, body FROM resources WHERE tenant = $1 AND type = $2 AND id = $3`
	sqlVRead                 = `SELECT last_updated, op, body FROM resource_history WHERE tenant = $1 AND type = $2 AND id = $3 AND version = $4`
)

// current is the locked state of a resource inside a write transaction.
type current struct {
	exists  bool
	version int64
	deleted bool
	hash    []byte
}

func (s *Store) lockCurrent(ctx context.Context, tx Querier, tenant, typ, id string) (current, error) {
	var c current
	err := tx.QueryRow(ctx, sqlSelectCurrentForWrite+s.Driver.ForUpdate(), tenant, typ, id).Scan(&c.version, &c.deleted, &c.hash)
	if s.Driver.IsNoRows(err) {
		return current{}, nil
	}
	if err != nil {
		return current{}, fmt.Errorf("locking %s/%s: %w", typ, id, err)
	}
	c.exists = true
	return c, nil
}

// errRetry means a concurrent writer created the same id first.
var errRetry = errors.New("concurrent create, retry")

// put writes a new version of typ/id inside tx. It returns the stored
// resource, whether it counts as created, and whether anything changed.
func (s *Store) put(ctx context.Context, tx Querier, tenant, typ, id string, p *fhir.Prepared, ifMatch int64) (*fhir.Resource, bool, bool, error) {
	return s.putOver(ctx, tx, tenant, typ, id, p, ifMatch, false)
}

// putOver is put; fresh says the id was just generated, so there is no
// current version to lock (the insert still guards against a clash).
func (s *Store) putOver(ctx context.Context, tx Querier, tenant, typ, id string, p *fhir.Prepared, ifMatch int64, fresh bool) (*fhir.Resource, bool, bool, error) {
	var cur current
	if !fresh {
		var err error
		if cur, err = s.lockCurrent(ctx, tx, tenant, typ, id); err != nil {
			return nil, false, false, err
		}
	}
	if ifMatch != 0 && (!cur.exists || cur.version != ifMatch) {
		return nil, false, false, preconditionFailed(typ, id, ifMatch, cur)
	}
	now := s.now()
	if !cur.exists {
		body := p.Stamp(id, 1, now)
		entries, err := s.extract(typ, body)
		if err != nil {
			return nil, false, false, err
		}
		n, err := tx.Exec(ctx, sqlInsertResource, tenant, typ, id, int64(1), micros(now), false, p.Hash, body)
		if err != nil {
			return nil, false, false, fmt.Errorf("inserting %s/%s: %w", typ, id, err)
		}
		if n == 0 {
			return nil, false, false, errRetry
		}
		// Only a POST is a create in history; update-as-create is a PUT.
		op := store.OpUpdate
		if fresh {
			op = store.OpCreate
		}
		if _, err := tx.Exec(ctx, sqlInsertHistory, tenant, typ, id, int64(1), micros(now), string(op), body); err != nil {
			return nil, false, false, fmt.Errorf("recording history of %s/%s: %w", typ, id, err)
		}
		b := newIndexBatch(tenant)
		b.addEntries(typ, id, entries)
		if err := s.writeIndex(ctx, tx, tenant, nil, b); err != nil {
			return nil, false, false, err
		}
		return &fhir.Resource{Type: typ, ID: id, Version: 1, LastUpdated: now, Body: body}, true, true, nil
	}
	if !cur.deleted && bytes.Equal(cur.hash, p.Hash) {
		res, err := s.readIn(ctx, tx, tenant, typ, id)
		return res, false, false, err
	}
	version := cur.version + 1
	body := p.Stamp(id, version, now)
	entries, err := s.extract(typ, body)
	if err != nil {
		return nil, false, false, err
	}
	if _, err := tx.Exec(ctx, sqlUpdateResource, tenant, typ, id, version, micros(now), false, p.Hash, body); err != nil {
		return nil, false, false, fmt.Errorf("updating %s/%s: %w", typ, id, err)
	}
	if _, err := tx.Exec(ctx, sqlInsertHistory, tenant, typ, id, version, micros(now), string(store.OpUpdate), body); err != nil {
		return nil, false, false, fmt.Errorf("recording history of %s/%s: %w", typ, id, err)
	}
	b := newIndexBatch(tenant)
	b.addEntries(typ, id, entries)
	if err := s.writeIndex(ctx, tx, tenant, []resourceKey{{typ, id}}, b); err != nil {
		return nil, false, false, err
	}
	return &fhir.Resource{Type: typ, ID: id, Version: version, LastUpdated: now, Body: body}, cur.deleted, true, nil
}

func preconditionFailed(typ, id string, want int64, cur current) error {
	if !cur.exists {
		return fhir.Errorf(fhir.KindPreconditionFailed, "If-Match W/\"%d\" given but %s/%s does not exist", want, typ, id)
	}
	return fhir.Errorf(fhir.KindPreconditionFailed, "version conflict: If-Match W/\"%d\" but the current version of %s/%s is %d", want, typ, id, cur.version)
}

// inTx runs fn in a write transaction, retrying when a concurrent create of
// the same id got there first.
func (s *Store) inTx(ctx context.Context, fn func(tx Querier) error) error {
	for attempt := 0; ; attempt++ {
		err := s.Driver.InTx(ctx, fn)
		if (errors.Is(err, errRetry) || s.Driver.IsRetryable(err)) && attempt < 5 {
			continue
		}
		return err
	}
}

func prepare(w store.Write) (*fhir.Prepared, error) {
	if !fhir.ValidID(w.ID) {
		return nil, fhir.Errorf(fhir.KindInvalid, "%q is not a valid resource id", w.ID)
	}
	return fhir.Prepare(w.Body)
}

// Create implements store.Store.
func (s *Store) Create(ctx context.Context, w store.Write) (*fhir.Resource, error) {
	w.ID = s.NewID()
	p, err := prepare(w)
	if err != nil {
		return nil, err
	}
	if s.Driver.Arrays() {
		res, err := s.createAlone(ctx, w, p)
		if err == nil {
			s.noteWrites(1)
		}
		return res, wrap(err, "creating a resource")
	}
	var res *fhir.Resource
	first := true
	err = s.inTx(ctx, func(tx Querier) error {
		if !first {
			// The generated id existed (errRetry): another one.
			w.ID = s.NewID()
		}
		first = false
		var err error
		res, _, _, err = s.putOver(ctx, tx, w.Tenant, w.Type, w.ID, p, 0, true)
		return err
	})
	if err == nil {
		s.noteWrites(1)
	}
	return res, wrap(err, "creating a resource")
}

// createAlone writes a new resource, its history and its index rows with
// one statement outside any transaction (PostgreSQL runs a statement
// atomically): one round trip instead of five (BEGIN, three statements,
// COMMIT). An id that exists already (a generated id never should) inserts
// nothing and is retried with a new one.
func (s *Store) createAlone(ctx context.Context, w store.Write, p *fhir.Prepared) (*fhir.Resource, error) {
	for attempt := 0; ; attempt++ {
		now := s.now()
		body := p.Stamp(w.ID, 1, now)
		entries, err := s.extract(w.Type, body)
		if err != nil {
			return nil, err
		}
		idx := newIndexBatch(w.Tenant)
		idx.addEntries(w.Type, w.ID, entries)
		row := pendingRow{key: resourceKey{w.Type, w.ID}, version: 1, op: store.OpCreate, hash: p.Hash, body: body}
		n, err := s.createAllArrays(ctx, s.Driver, w.Tenant, now, []pendingRow{row}, idx, true)
		if err != nil {
			return nil, err
		}
		if n == 1 {
			return &fhir.Resource{Type: w.Type, ID: w.ID, Version: 1, LastUpdated: now, Body: body}, nil
		}
		if attempt == 4 {
			return nil, fmt.Errorf("creating %s: every generated id existed", w.Type)
		}
		w.ID = s.NewID()
	}
}

// Update implements store.Store.
func (s *Store) Update(ctx context.Context, w store.Write) (*fhir.Resource, bool, error) {
	p, err := prepare(w)
	if err != nil {
		return nil, false, err
	}
	var res *fhir.Resource
	var created bool
	err = s.inTx(ctx, func(tx Querier) error {
		var err error
		res, created, _, err = s.put(ctx, tx, w.Tenant, w.Type, w.ID, p, w.IfMatch)
		return err
	})
	if err == nil {
		s.noteWrites(1)
	}
	return res, created, wrap(err, "updating a resource")
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, d store.Delete) (*fhir.Resource, error) {
	var res *fhir.Resource
	err := s.inTx(ctx, func(tx Querier) error {
		var err error
		res, err = s.deleteIn(ctx, tx, d)
		return err
	})
	return res, wrap(err, "deleting a resource")
}

// deleteIn records a deleted version of d inside tx; nil when there was
// nothing to delete.
func (s *Store) deleteIn(ctx context.Context, tx Querier, d store.Delete) (*fhir.Resource, error) {
	cur, err := s.lockCurrent(ctx, tx, d.Tenant, d.Type, d.ID)
	if err != nil {
		return nil, err
	}
	if d.IfMatch != 0 && (!cur.exists || cur.version != d.IfMatch) {
		return nil, preconditionFailed(d.Type, d.ID, d.IfMatch, cur)
	}
	if !cur.exists || cur.deleted {
		return nil, nil
	}
	now := s.now()
	version := cur.version + 1
	if _, err := tx.Exec(ctx, sqlUpdateResource, d.Tenant, d.Type, d.ID, version, micros(now), true, nil, nil); err != nil {
		return nil, fmt.Errorf("deleting %s/%s: %w", d.Type, d.ID, err)
	}
	if _, err := tx.Exec(ctx, sqlInsertHistory, d.Tenant, d.Type, d.ID, version, micros(now), string(store.OpDelete), nil); err != nil {
		return nil, fmt.Errorf("recording history of %s/%s: %w", d.Type, d.ID, err)
	}
	if err := s.writeIndex(ctx, tx, d.Tenant, []resourceKey{{d.Type, d.ID}}, newIndexBatch(d.Tenant)); err != nil {
		return nil, err
	}
	return &fhir.Resource{Type: d.Type, ID: d.ID, Version: version, LastUpdated: now, Deleted: true}, nil
}

// SearchesFullText reports whether searches accept _text and _content.
func (s *Store) SearchesFullText() bool { return s.FullText }

// LogSlowQueries sets the SlowQuery hook: f is called for every search
// statement that takes at least after.
func (s *Store) LogSlowQueries(after time.Duration, f func(sql string, args []any, d time.Duration)) {
	s.SlowQuery, s.SlowQueryAfter = f, after
}

// Read implements store.Store.
func (s *Store) Read(ctx context.Context, tenant, typ, id string) (*fhir.Resource, error) {
	res, err := s.readIn(ctx, s.Driver, tenant, typ, id)
	return res, wrap(err, "reading a resource")
}

func (s *Store) readIn(ctx context.Context, q Querier, tenant, typ, id string) (*fhir.Resource, error) {
	return s.readFrom(ctx, q, sqlRead, tenant, typ, id)
}

// readFrom is readIn with the statement given (sqlRead, possibly locking).
func (s *Store) readFrom(ctx context.Context, q Querier, stmt, tenant, typ, id string) (*fhir.Resource, error) {
	res := &fhir.Resource{Type: typ, ID: id}
	var lu int64
	err := q.QueryRow(ctx, stmt, tenant, typ, id).Scan(&res.Version, &lu, &res.Deleted, &res.Body)
	if s.Driver.IsNoRows(err) {
		return nil, fhir.Errorf(fhir.KindNotFound, "%s/%s is not known", typ, id)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s/%s: %w", typ, id, err)
	}
	res.LastUpdated = fromMicros(lu)
	if res.Deleted {
		return nil, &fhir.Error{Kind: fhir.KindGone, Message: fmt.Sprintf("%s/%s was deleted", typ, id), Err: &store.GoneError{Resource: *res}}
	}
	return res, nil
}

// VRead implements store.Store.
func (s *Store) VRead(ctx context.Context, tenant, typ, id string, version int64) (*fhir.Resource, error) {
	return s.vreadIn(ctx, s.Driver, tenant, typ, id, version)
}

func (s *Store) vreadIn(ctx context.Context, q Querier, tenant, typ, id string, version int64) (*fhir.Resource, error) {
	res := &fhir.Resource{Type: typ, ID: id, Version: version}
	var lu int64
	var op string
	err := q.QueryRow(ctx, sqlVRead, tenant, typ, id, version).Scan(&lu, &op, &res.Body)
	if s.Driver.IsNoRows(err) {
		return nil, fhir.Errorf(fhir.KindNotFound, "%s/%s has no version %d", typ, id, version)
	}
	if err != nil {
		return nil, wrap(fmt.Errorf("reading %s/%s version %d: %w", typ, id, version, err), "reading a version")
	}
	res.LastUpdated = fromMicros(lu)
	if store.Op(op) == store.OpDelete {
		res.Deleted = true
		return nil, &fhir.Error{Kind: fhir.KindGone, Message: fmt.Sprintf("version %d of %s/%s is a deletion", version, typ, id), Err: &store.GoneError{Resource: *res}}
	}
	return res, nil
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error { return s.Driver.Ping(ctx) }

// Close implements store.Store.
func (s *Store) Close() error { return s.Driver.Close() }

// wrap passes *fhir.Error through and turns anything else into an internal
// error whose cause is logged but never shown.
func wrap(err error, doing string) error {
	if err == nil {
		return nil
	}
	var fe *fhir.Error
	if errors.As(err, &fe) {
		return err
	}
	return fhir.Internal(doing, err)
}
