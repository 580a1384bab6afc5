package sqlstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/store"
)

// CreateAll implements store.Tx: new resources with caller-chosen ids,
// written together. On PostgreSQL one statement inserts the resources (ON
// CONFLICT DO NOTHING, so that an id that exists is counted, not an error
// that spoils the transaction), their history from what it returned, and
// their index rows; on SQLite multi-row statements do the same.
func (t *tx) CreateAll(ctx context.Context, ws []store.Write) ([]*fhir.Resource, error) {
	if len(ws) == 0 {
		return nil, nil
	}
	s := t.s
	now := s.now()
	rows := make([]pendingRow, len(ws))
	out := make([]*fhir.Resource, len(ws))
	idx := newIndexBatch(t.tenant)
	seen := make(map[resourceKey]bool, len(ws))
	for i, w := range ws {
		if w.ID == "" {
			w.ID = s.NewID()
		}
		p, err := prepare(w)
		if err != nil {
			return nil, err
		}
		key := resourceKey{w.Type, w.ID}
		if seen[key] {
			return nil, fhir.Errorf(fhir.KindConflict, "%s/%s is created twice", w.Type, w.ID)
		}
		seen[key] = true
		body := p.Stamp(w.ID, 1, now)
		entries, err := s.extract(w.Type, body)
		if err != nil {
			return nil, err
		}
		idx.addEntries(w.Type, w.ID, entries)
		rows[i] = pendingRow{key: key, version: 1, op: store.OpCreate, hash: p.Hash, body: body}
		out[i] = &fhir.Resource{Type: w.Type, ID: w.ID, Version: 1, LastUpdated: now, Body: body}
	}
	var inserted int64
	var err error
	if s.Driver.Arrays() {
		inserted, err = s.createAllArrays(ctx, t.q, t.tenant, now, rows, idx, false)
	} else {
		inserted, err = s.createAllValues(ctx, t.q, t.tenant, now, rows, idx)
	}
	if err != nil {
		return nil, wrap(err, "creating resources")
	}
	if inserted != int64(len(rows)) {
		return nil, t.conflict(ctx, rows, now)
	}
	t.writes += int64(len(out))
	return out, nil
}

// conflict names a resource of rows that existed before CreateAll: its
// row was not written by it (at now). The transaction fails either way.
func (t *tx) conflict(ctx context.Context, rows []pendingRow, now time.Time) error {
	for _, r := range rows {
		var lu int64
		err := t.q.QueryRow(ctx, `SELECT last_updated FROM resources WHERE tenant = $1 AND type = $2 AND id = $3`, t.tenant, r.key.typ, r.key.id).Scan(&lu)
		if err == nil && lu != micros(now) {
			return fhir.Errorf(fhir.KindConflict, "%s/%s already exists (or existed): a new resource needs a new id", r.key.typ, r.key.id)
		}
	}
	return fhir.Errorf(fhir.KindConflict, "one of the %d new resources has an id that exists (or existed)", len(rows))
}

// createAllArrays is CreateAll's one statement on PostgreSQL; it returns
// how many resources were inserted. With guard, the index rows are
// inserted only when the resources were (for a statement that commits on
// its own, outside a transaction that a conflict would roll back).
func (s *Store) createAllArrays(ctx context.Context, q Querier, tenant string, now time.Time, rows []pendingRow, idx *indexBatch, guard bool) (int64, error) {
	var m multiStmt
	if guard {
		m.guard = "w0"
	}
	a := &m.a
	tenantArg := a.add(tenant) + "::text"
	nowArg := a.add(micros(now)) + "::bigint"
	types, ids, hashes, bodies := make([]string, len(rows)), make([]string, len(rows)), make([][]byte, len(rows)), make([]string, len(rows))
	for i, r := range rows {
		types[i], ids[i], hashes[i], bodies[i] = r.key.typ, r.key.id, r.hash, string(r.body)
	}
	m.parts = append(m.parts, `INSERT INTO resources (tenant, type, id, version, last_updated, deleted, content_hash, body) SELECT `+tenantArg+`, t, i, 1, `+nowArg+`, false, h, b::jsonb FROM unnest(`+
		a.add(types)+`::text[], `+a.add(ids)+`::text[], `+a.add(hashes)+`::bytea[], `+a.add(bodies)+`::text[]) AS u(t, i, h, b) ON CONFLICT (tenant, type, id) DO NOTHING RETURNING type, id, body`)
	m.parts = append(m.parts, `INSERT INTO resource_history (tenant, type, id, version, last_updated, op, body) SELECT `+tenantArg+`, w0.type, w0.id, 1, `+nowArg+`, '`+string(store.OpCreate)+`', w0.body FROM w0`)
	indexParts(&m, tenant, nil, idx)
	var sql strings.Builder
	sql.WriteString("WITH ")
	for i, p := range m.parts {
		if i > 0 {
			sql.WriteString(", ")
		}
		fmt.Fprintf(&sql, "w%d AS (%s)", i, p)
	}
	sql.WriteString(" SELECT count(*) FROM w0")
	var n int64
	if err := q.QueryRow(ctx, sql.String(), m.a...).Scan(&n); err != nil {
		return 0, fmt.Errorf("creating resources: %w", err)
	}
	return n, nil
}

// createAllValues is CreateAll with multi-row VALUES (SQLite).
func (s *Store) createAllValues(ctx context.Context, q Querier, tenant string, now time.Time, rows []pendingRow, idx *indexBatch) (int64, error) {
	lu := micros(now)
	var inserted int64
	for start := 0; start < len(rows); start += importChunk {
		chunk := rows[start:min(start+importChunk, len(rows))]
		var a args
		values := make([]string, len(chunk))
		for i, r := range chunk {
			values[i] = "(" + a.add(tenant) + ", " + a.add(r.key.typ) + ", " + a.add(r.key.id) + ", 1, " + a.add(lu) + ", false, " + a.add(r.hash) + ", " + a.add(r.body) + ")"
		}
		n, err := q.Exec(ctx, `INSERT INTO resources (tenant, type, id, version, last_updated, deleted, content_hash, body) VALUES `+strings.Join(values, ", ")+` ON CONFLICT (tenant, type, id) DO NOTHING`, a...)
		if err != nil {
			return 0, fmt.Errorf("creating resources: %w", err)
		}
		inserted += n
	}
	if inserted != int64(len(rows)) {
		return inserted, nil // the caller fails the transaction
	}
	for start := 0; start < len(rows); start += importChunk {
		chunk := rows[start:min(start+importChunk, len(rows))]
		var a args
		values := make([]string, len(chunk))
		for i, r := range chunk {
			values[i] = "(" + a.add(tenant) + ", " + a.add(r.key.typ) + ", " + a.add(r.key.id) + ", 1, " + a.add(lu) + ", '" + string(store.OpCreate) + "', " + a.add(r.body) + ")"
		}
		if _, err := q.Exec(ctx, `INSERT INTO resource_history (tenant, type, id, version, last_updated, op, body) VALUES `+strings.Join(values, ", "), a...); err != nil {
			return 0, fmt.Errorf("recording history of new resources: %w", err)
		}
	}
	if err := s.insertIndexValues(ctx, q, idx); err != nil {
		return 0, err
	}
	return inserted, nil
}
