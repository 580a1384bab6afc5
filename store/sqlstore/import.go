package sqlstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/index"
	"github.com/fhirserver/fhirserver/store"
)

// importChunk bounds the rows of one multi-row statement, well inside both
// databases' bind-parameter limits.
const importChunk = 500

type resourceKey struct{ typ, id string }

// Import implements store.Store. It reads the current state of all the
// batch's resources in one locking query per type, then writes every new
// version with one multi-row upsert and one multi-row history insert, so a
// batch costs a handful of round trips instead of three per resource.
func (s *Store) Import(ctx context.Context, tenant string, ws []store.Write) (store.ImportResult, error) {
	prepared := make([]*fhir.Prepared, len(ws))
	for i, w := range ws {
		p, err := prepare(w)
		if err != nil {
			return store.ImportResult{}, fmt.Errorf("%s/%s: %w", w.Type, w.ID, err)
		}
		prepared[i] = p
	}
	entries, err := s.extractAll(ws, prepared)
	if err != nil {
		return store.ImportResult{}, wrap(err, "importing resources")
	}
	var result store.ImportResult
	err = s.inTx(ctx, func(tx Querier) error {
		var err error
		result, err = s.importTx(ctx, tx, tenant, ws, prepared, entries)
		return err
	})
	if err == nil {
		err = s.analyzeAfter(ctx, int64(result.Created+result.Updated))
	}
	return result, wrap(err, "importing resources")
}

// extractAll extracts the index rows of every write before the transaction
// starts, on all processors, so that the transaction holds its locks only
// while it writes. The rows do not depend on the version and time that the
// transaction stamps in (_lastUpdated is not stored as rows), so the body is
// stamped with the resource's id and placeholders for those.
func (s *Store) extractAll(ws []store.Write, prepared []*fhir.Prepared) ([]*index.Entries, error) {
	entries := make([]*index.Entries, len(ws))
	errs := make([]error, len(ws))
	workers := min(runtime.GOMAXPROCS(0), (len(ws)+63)/64)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(ws) {
					return
				}
				entries[i], errs[i] = s.extract(ws[i].Type, prepared[i].Stamp(ws[i].ID, 1, time.Time{}))
			}
		})
	}
	wg.Wait()
	return entries, errors.Join(errs...)
}

// analyzeFirst is the number of written resources after which a store
// first refreshes the planner statistics; the next refresh comes when the
// count has grown eightfold, and so on (a handful of ANALYZE runs for any
// load, each bounded by the database's sampling; autovacuum keeps the
// statistics up to date from there, but only after its next round, up to
// a minute later: searches on tables that grew fast meanwhile ran on plans
// made for nearly empty tables, measured up to 1.2 s).
const analyzeFirst = 1000

// analyzeState counts the resources this store has written.
type analyzeState struct {
	mu      sync.Mutex
	written int64
	next    int64
	running bool
}

// due adds n written resources to the count and reports whether the
// statistics are to be refreshed now; the caller then calls done. One
// refresh at a time.
func (a *analyzeState) due(n int64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.written += n
	if a.next == 0 {
		a.next = analyzeFirst
	}
	if a.written < a.next || a.running {
		return false
	}
	a.running = true
	a.next = 8 * a.written
	return true
}

// AnalyzedRows tells the store how many resources the database's
// statistics counted when it was opened: the first refresh then waits
// until as many have been written (statistics of a table that has not
// doubled still give its plans; refreshing a large table early cost
// creates about a tenth of their throughput while it ran).
func (s *Store) AnalyzedRows(n int64) {
	s.analyze.mu.Lock()
	defer s.analyze.mu.Unlock()
	s.analyze.next = max(analyzeFirst, n)
}

func (a *analyzeState) done() {
	a.mu.Lock()
	a.running = false
	a.mu.Unlock()
}

// analyzeAfter adds n imported resources to the count and runs the
// dialect's Analyze when the count reaches the next threshold.
func (s *Store) analyzeAfter(ctx context.Context, n int64) error {
	stmt := s.Driver.Analyze()
	if stmt == "" || n == 0 || !s.analyze.due(n) {
		return nil
	}
	defer s.analyze.done()
	if _, err := s.Driver.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("refreshing planner statistics: %w", err)
	}
	return nil
}

// noteWrites counts n resources written by an interaction (not an import)
// and refreshes the statistics in the background when the count reaches
// the next threshold, so that no request waits for it. The refresh is best
// effort: an error (a closed pool, a timeout) leaves the statistics to
// autovacuum, as before.
func (s *Store) noteWrites(n int64) {
	stmt := s.Driver.Analyze()
	if stmt == "" || n == 0 || !s.analyze.due(n) {
		return
	}
	go func() {
		defer s.analyze.done()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = s.Driver.Exec(ctx, stmt)
	}()
}

type pendingRow struct {
	key     resourceKey
	version int64
	op      store.Op
	hash    []byte
	body    []byte
	entries *index.Entries
}

func (s *Store) importTx(ctx context.Context, tx Querier, tenant string, ws []store.Write, prepared []*fhir.Prepared, entries []*index.Entries) (store.ImportResult, error) {
	state, err := s.lockMany(ctx, tx, tenant, ws)
	if err != nil {
		return store.ImportResult{}, err
	}
	now := s.now()
	var result store.ImportResult
	var rows []pendingRow
	latest := map[resourceKey]int{}   // key -> index in rows of its newest pending version
	existed := map[resourceKey]bool{} // key -> it had a current version before this batch
	for i, w := range ws {
		key := resourceKey{w.Type, w.ID}
		cur := state[key]
		if _, seen := existed[key]; !seen {
			existed[key] = cur.exists
		}
		p := prepared[i]
		if cur.exists && !cur.deleted && bytes.Equal(cur.hash, p.Hash) {
			result.Unchanged++
			continue
		}
		op := store.OpUpdate
		if !cur.exists || cur.deleted {
			op = store.OpCreate
			result.Created++
		} else {
			result.Updated++
		}
		version := cur.version + 1
		row := pendingRow{key: key, version: version, op: op, hash: p.Hash, body: p.Stamp(w.ID, version, now), entries: entries[i]}
		latest[key] = len(rows)
		rows = append(rows, row)
		state[key] = current{exists: true, version: version, hash: p.Hash}
	}
	if len(rows) == 0 {
		return result, nil
	}
	var current []pendingRow
	var replace []resourceKey
	idx := newIndexBatch(tenant)
	for i, r := range rows {
		if latest[r.key] == i {
			current = append(current, r)
			idx.addEntries(r.key.typ, r.key.id, r.entries)
			if existed[r.key] {
				replace = append(replace, r.key)
			}
		}
	}
	if s.Driver.Arrays() {
		// One statement: resources, history and index rows as arrays.
		var m multiStmt
		importParts(&m, tenant, now, current, rows)
		indexParts(&m, tenant, replace, idx)
		if err := m.exec(ctx, tx); err != nil {
			return store.ImportResult{}, fmt.Errorf("writing imported resources: %w", err)
		}
		return result, nil
	}
	for start := 0; start < len(current); start += importChunk {
		chunk := current[start:min(start+importChunk, len(current))]
		var a args
		values := make([]string, len(chunk))
		for i, r := range chunk {
			values[i] = "(" + a.add(tenant) + ", " + a.add(r.key.typ) + ", " + a.add(r.key.id) + ", " + a.add(r.version) + ", " + a.add(micros(now)) + ", " + a.add(false) + ", " + a.add(r.hash) + ", " + a.add(r.body) + ")"
		}
		q := `INSERT INTO resources (tenant, type, id, version, last_updated, deleted, content_hash, body) VALUES ` + strings.Join(values, ", ") +
			` ON CONFLICT (tenant, type, id) DO UPDATE SET version = excluded.version, last_updated = excluded.last_updated, deleted = excluded.deleted, content_hash = excluded.content_hash, body = excluded.body`
		if _, err := tx.Exec(ctx, q, a...); err != nil {
			return store.ImportResult{}, fmt.Errorf("writing imported resources: %w", err)
		}
	}
	for start := 0; start < len(rows); start += importChunk {
		chunk := rows[start:min(start+importChunk, len(rows))]
		var a args
		values := make([]string, len(chunk))
		for i, r := range chunk {
			values[i] = "(" + a.add(tenant) + ", " + a.add(r.key.typ) + ", " + a.add(r.key.id) + ", " + a.add(r.version) + ", " + a.add(micros(now)) + ", " + a.add(string(r.op)) + ", " + a.add(r.body) + ")"
		}
		q := `INSERT INTO resource_history (tenant, type, id, version, last_updated, op, body) VALUES ` + strings.Join(values, ", ")
		if _, err := tx.Exec(ctx, q, a...); err != nil {
			return store.ImportResult{}, fmt.Errorf("recording history of imported resources: %w", err)
		}
	}
	if err := s.writeIndex(ctx, tx, tenant, replace, idx); err != nil {
		return store.ImportResult{}, err
	}
	return result, nil
}

// lockMany reads and locks the current state of every resource in ws, in a
// fixed order so that concurrent imports cannot deadlock each other.
func (s *Store) lockMany(ctx context.Context, tx Querier, tenant string, ws []store.Write) (map[resourceKey]current, error) {
	byType := map[string][]string{}
	for _, w := range ws {
		byType[w.Type] = append(byType[w.Type], w.ID)
	}
	types := make([]string, 0, len(byType))
	for t := range byType {
		types = append(types, t)
	}
	sort.Strings(types)
	state := make(map[resourceKey]current, len(ws))
	for _, typ := range types {
		ids := byType[typ]
		for start := 0; start < len(ids); start += importChunk {
			chunk := ids[start:min(start+importChunk, len(ids))]
			var a args
			tenantArg, typeArg := a.add(tenant), a.add(typ)
			ph := make([]string, len(chunk))
			for i, id := range chunk {
				ph[i] = a.add(id)
			}
			q := `SELECT id, version, deleted, content_hash FROM resources WHERE tenant = ` + tenantArg + ` AND type = ` + typeArg +
				` AND id IN (` + strings.Join(ph, ", ") + `) ORDER BY id` + s.Driver.ForUpdate()
			rows, err := tx.Query(ctx, q, a...)
			if err != nil {
				return nil, fmt.Errorf("locking imported resources: %w", err)
			}
			for rows.Next() {
				var id string
				c := current{exists: true}
				if err := rows.Scan(&id, &c.version, &c.deleted, &c.hash); err != nil {
					rows.Close()
					return nil, fmt.Errorf("reading imported resources: %w", err)
				}
				state[resourceKey{typ, id}] = c
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return nil, fmt.Errorf("locking imported resources: %w", err)
			}
		}
	}
	return state, nil
}

// importParts adds the upsert of the current versions and the insertion of
// every new version into history to m, as unnest over one array per column.
// When every row is a current version (no resource twice in the batch, the
// usual case), history reads the same arrays, so the bodies are sent once.
func importParts(m *multiStmt, tenant string, now time.Time, current, rows []pendingRow) {
	a := &m.a
	tenantArg, nowArg := a.add(tenant)+"::text", a.add(micros(now))+"::bigint"
	columns := func(rs []pendingRow) (types, ids, versions, bodies string) {
		ts, is, vs, bs := make([]string, len(rs)), make([]string, len(rs)), make([]int64, len(rs)), make([]string, len(rs))
		for i, r := range rs {
			ts[i], is[i], vs[i], bs[i] = r.key.typ, r.key.id, r.version, string(r.body)
		}
		return a.add(ts) + "::text[]", a.add(is) + "::text[]", a.add(vs) + "::bigint[]", a.add(bs) + "::text[]"
	}
	hashes := make([][]byte, len(current))
	for i, r := range current {
		hashes[i] = r.hash
	}
	ct, ci, cv, cb := columns(current)
	ops := make([]string, len(rows))
	for i, r := range rows {
		ops[i] = string(r.op)
	}
	upsert := `INSERT INTO resources (tenant, type, id, version, last_updated, deleted, content_hash, body) SELECT ` + tenantArg + `, t, i, v, ` + nowArg + `, false, h, b::jsonb FROM unnest(` +
		ct + `, ` + ci + `, ` + cv + `, ` + a.add(hashes) + `::bytea[], ` + cb + `) AS u(t, i, v, h, b)` +
		` ON CONFLICT (tenant, type, id) DO UPDATE SET version = excluded.version, last_updated = excluded.last_updated, deleted = excluded.deleted, content_hash = excluded.content_hash, body = excluded.body`
	if len(rows) == len(current) {
		// History takes the parsed bodies from the upsert's RETURNING.
		m.parts = append(m.parts, upsert+` RETURNING type, id, version, body`)
		up := "w" + strconv.Itoa(len(m.parts)-1)
		m.parts = append(m.parts, `INSERT INTO resource_history (tenant, type, id, version, last_updated, op, body) SELECT `+tenantArg+`, `+up+`.type, `+up+`.id, `+up+`.version, `+nowArg+`, o.op, `+up+`.body FROM `+up+
			` JOIN unnest(`+ct+`, `+ci+`, `+a.add(ops)+`::text[]) AS o(t, i, op) ON o.t = `+up+`.type AND o.i = `+up+`.id`)
		return
	}
	m.parts = append(m.parts, upsert)
	ht, hi, hv, hb := columns(rows)
	m.parts = append(m.parts, `INSERT INTO resource_history (tenant, type, id, version, last_updated, op, body) SELECT `+tenantArg+`, t, i, v, `+nowArg+`, o, b::jsonb FROM unnest(`+
		ht+`, `+hi+`, `+hv+`, `+a.add(ops)+`::text[], `+hb+`) AS u(t, i, v, o, b)`)
}
