package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strings"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/search"
	"github.com/fhirserver/fhirserver/store"
)

// Locker is implemented by a driver whose write transactions run
// concurrently (PostgreSQL). AdvisoryLock is a statement that takes an
// exclusive lock on the int64 key bound to $1, held until the transaction
// ends. A driver without it serialises write transactions itself (SQLite's
// one writer), where Tx.Lock has nothing to do.
type Locker interface {
	AdvisoryLock() string
}

// Transact implements store.Transactor.
func (s *Store) Transact(ctx context.Context, tenant string, fn func(tx store.Tx) error) error {
	var last *tx
	err := s.inTx(ctx, func(q Querier) error {
		last = &tx{s: s, q: q, tenant: tenant}
		return fn(last)
	})
	if err == nil {
		s.noteWrites(last.writes)
	}
	return wrap(err, "running a transaction")
}

// tx implements store.Tx on one database transaction.
type tx struct {
	s      *Store
	q      Querier
	tenant string
	view   *Store // the store's search, on this transaction (made on first use)
	writes int64  // resources written, for the statistics (noteWrites)
}

// Create implements store.Tx.
func (t *tx) Create(ctx context.Context, w store.Write) (*fhir.Resource, error) {
	given := w.ID != ""
	if !given {
		w.ID = t.s.NewID()
	}
	p, err := prepare(w)
	if err != nil {
		return nil, err
	}
	res, _, _, err := t.s.putOver(ctx, t.q, t.tenant, w.Type, w.ID, p, 0, true)
	if err == nil {
		t.writes++
	}
	if given && errors.Is(err, errRetry) {
		return nil, fhir.Errorf(fhir.KindConflict, "%s/%s already exists (or existed): a new resource needs a new id", w.Type, w.ID)
	}
	return res, wrap(err, "creating a resource")
}

// Update implements store.Tx.
func (t *tx) Update(ctx context.Context, w store.Write) (*fhir.Resource, bool, error) {
	p, err := prepare(w)
	if err != nil {
		return nil, false, err
	}
	res, created, _, err := t.s.put(ctx, t.q, t.tenant, w.Type, w.ID, p, w.IfMatch)
	if err == nil {
		t.writes++
	}
	return res, created, wrap(err, "updating a resource")
}

// Delete implements store.Tx.
func (t *tx) Delete(ctx context.Context, d store.Delete) (*fhir.Resource, error) {
	d.Tenant = t.tenant
	res, err := t.s.deleteIn(ctx, t.q, d)
	if err == nil && res != nil {
		t.writes++
	}
	return res, wrap(err, "deleting a resource")
}

// Read implements store.Tx: the current version, locked.
func (t *tx) Read(ctx context.Context, typ, id string) (*fhir.Resource, error) {
	res, err := t.s.readFrom(ctx, t.q, sqlRead+t.s.Driver.ForUpdate(), t.tenant, typ, id)
	return res, wrap(err, "reading a resource")
}

// VRead implements store.Tx.
func (t *tx) VRead(ctx context.Context, typ, id string, version int64) (*fhir.Resource, error) {
	return t.s.vreadIn(ctx, t.q, t.tenant, typ, id, version)
}

// Search implements store.Tx: the store's search, run on the transaction.
func (t *tx) Search(ctx context.Context, q *search.Query) (*store.SearchPage, error) {
	return t.SearchAccess(ctx, t.tenant, q, AllowAll())
}

// SearchAccess implements store.FilteredSearcher on the transaction (what
// it has written included), so that the checks around a write (authz.Visible)
// run inside it; the transaction's tenant applies, tenant is ignored.
func (t *tx) SearchAccess(ctx context.Context, tenant string, q *search.Query, a Access) (*store.SearchPage, error) {
	if t.view == nil {
		t.view = &Store{
			Driver:         txDriver{Driver: t.s.Driver, tx: t.q},
			Now:            t.s.Now,
			NewID:          t.s.NewID,
			Extract:        t.s.Extract,
			SlowQuery:      t.s.SlowQuery,
			SlowQueryAfter: t.s.SlowQueryAfter,
			FullText:       t.s.FullText,
		}
	}
	return t.view.SearchAccess(ctx, t.tenant, q, a)
}

var _ store.FilteredSearcher = (*tx)(nil)

// Lock implements store.Tx.
func (t *tx) Lock(ctx context.Context, key string) error {
	l, ok := t.s.Driver.(Locker)
	if !ok {
		return nil
	}
	h := fnv.New64a()
	h.Write([]byte(t.tenant))
	h.Write([]byte{0})
	h.Write([]byte(key))
	if _, err := t.q.Exec(ctx, l.AdvisoryLock(), int64(h.Sum64())); err != nil {
		return wrap(fmt.Errorf("locking %q: %w", key, err), "locking")
	}
	return nil
}

// forShare is the locking suffix of Missing: a shared row lock where the
// database has row locks (it conflicts with the FOR UPDATE of a delete).
func (s *Store) forShare() string {
	if s.Driver.ForUpdate() == "" {
		return ""
	}
	return " FOR SHARE"
}

// Missing implements store.Tx: one query per type and chunk, in a fixed
// order (types, then ids, sorted) so that concurrent transactions take
// their shared locks in the same order.
func (t *tx) Missing(ctx context.Context, refs []store.Ref) ([]store.Ref, error) {
	byType := map[string][]string{}
	for _, r := range refs {
		byType[r.Type] = append(byType[r.Type], r.ID)
	}
	types := make([]string, 0, len(byType))
	for typ, ids := range byType {
		types = append(types, typ)
		sort.Strings(ids)
		byType[typ] = compactStrings(ids)
	}
	sort.Strings(types)
	present := map[store.Ref]bool{}
	for _, typ := range types {
		ids := byType[typ]
		for start := 0; start < len(ids); start += importChunk {
			chunk := ids[start:min(start+importChunk, len(ids))]
			var a args
			ph := make([]string, len(chunk))
			q := `SELECT id FROM resources WHERE tenant = ` + a.add(t.tenant) + ` AND type = ` + a.add(typ)
			for i, id := range chunk {
				ph[i] = a.add(id)
			}
			q += ` AND id IN (` + strings.Join(ph, ", ") + `) AND NOT deleted ORDER BY id` + t.s.forShare()
			rows, err := t.q.Query(ctx, q, a...)
			if err != nil {
				return nil, wrap(fmt.Errorf("checking references: %w", err), "checking references")
			}
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return nil, wrap(fmt.Errorf("checking references: %w", err), "checking references")
				}
				present[store.Ref{Type: typ, ID: id}] = true
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return nil, wrap(fmt.Errorf("checking references: %w", err), "checking references")
			}
		}
	}
	var missing []store.Ref
	for _, r := range refs {
		if !present[r] {
			missing = append(missing, r)
		}
	}
	return missing, nil
}

func compactStrings(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// sqlReferencedBy finds local references to a resource in the reference
// index (idx_reference_target serves it).
const sqlReferencedBy = `SELECT DISTINCT type, id FROM idx_reference WHERE tenant = $1 AND target_id = $2 AND target_type = $3 AND url = '' AND NOT (type = $3 AND id = $2) ORDER BY type, id LIMIT $4`

// ReferencedBy implements store.Tx.
func (t *tx) ReferencedBy(ctx context.Context, typ, id string, limit int) ([]store.Ref, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := t.q.Query(ctx, sqlReferencedBy, t.tenant, id, typ, int64(limit))
	if err != nil {
		return nil, wrap(fmt.Errorf("finding references to %s/%s: %w", typ, id, err), "finding references")
	}
	defer rows.Close()
	var out []store.Ref
	for rows.Next() {
		var r store.Ref
		if err := rows.Scan(&r.Type, &r.ID); err != nil {
			return nil, wrap(fmt.Errorf("finding references to %s/%s: %w", typ, id, err), "finding references")
		}
		out = append(out, r)
	}
	return out, wrap(rows.Err(), "finding references")
}

// txDriver is the store's driver with its statements sent to one
// transaction, so that code written against s.Driver (search) runs inside
// it and sees its writes.
type txDriver struct {
	Driver
	tx Querier
}

func (d txDriver) Exec(ctx context.Context, sql string, args ...any) (int64, error) {
	return d.tx.Exec(ctx, sql, args...)
}

func (d txDriver) QueryRow(ctx context.Context, sql string, args ...any) Row {
	return d.tx.QueryRow(ctx, sql, args...)
}

func (d txDriver) Query(ctx context.Context, sql string, args ...any) (Rows, error) {
	return d.tx.Query(ctx, sql, args...)
}

// InTx runs fn in the transaction already open.
func (d txDriver) InTx(ctx context.Context, fn func(tx Querier) error) error { return fn(d.tx) }
