package sqlstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/fhirserver/fhirserver/store"
)

// MaxPageSize caps _count so that one page stays cheap.
const MaxPageSize = 1000

// args collects bind values and hands out their $n placeholders.
type args []any

func (a *args) add(v any) string {
	*a = append(*a, v)
	return "$" + strconv.Itoa(len(*a))
}

// History implements store.Store.
func (s *Store) History(ctx context.Context, q store.HistoryQuery) (*store.HistoryPage, error) {
	page, err := s.history(ctx, q)
	return page, wrap(err, "reading history")
}

func (s *Store) history(ctx context.Context, q store.HistoryQuery) (*store.HistoryPage, error) {
	if q.Count <= 0 || q.Count > MaxPageSize {
		q.Count = MaxPageSize
	}
	// The compiler renders the access filter; its bind values are the
	// statement's.
	c := s.newCompiler(ctx, q.Tenant, AllowAll())
	where := []string{"h.tenant = " + c.tenant}
	if q.Type != "" {
		where = append(where, "h.type = "+c.bind(q.Type))
	}
	if q.ID != "" {
		where = append(where, "h.id = "+c.bind(q.ID))
	}
	if !q.Since.IsZero() {
		where = append(where, "h.last_updated >= "+c.bind(micros(q.Since)))
	}
	if !q.At.IsZero() {
		// The version current at At: written at or before At and not
		// superseded by another version written at or before At.
		at := c.bind(micros(q.At))
		where = append(where, "h.last_updated <= "+at,
			"NOT EXISTS (SELECT 1 FROM resource_history n WHERE n.tenant = h.tenant AND n.type = h.type AND n.id = h.id AND n.version > h.version AND n.last_updated <= "+at+")")
	}
	if q.Filter != nil {
		// The versions of resources whose current version the filter
		// admits, with the search's own access condition.
		if ac := c.accessCond("r", *q.Filter); ac != "" {
			where = append(where, "EXISTS (SELECT 1 FROM resources r WHERE r.tenant = h.tenant AND r.type = h.type AND r.id = h.id AND NOT r.deleted AND "+ac+")")
		}
	}
	a := c.a
	cond := strings.Join(where, " AND ")

	page := &store.HistoryPage{}
	if err := s.Driver.QueryRow(ctx, "SELECT count(*) FROM resource_history h WHERE "+cond, a...).Scan(&page.Total); err != nil {
		return nil, fmt.Errorf("counting history: %w", err)
	}
	if q.Cursor > 0 {
		cond += " AND h.seq < " + a.add(q.Cursor)
	}
	limit := a.add(int64(q.Count + 1))
	rows, err := s.Driver.Query(ctx, "SELECT h.seq, h.type, h.id, h.version, h.last_updated, h.op, h.body FROM resource_history h WHERE "+cond+" ORDER BY h.seq DESC LIMIT "+limit, a...)
	if err != nil {
		return nil, fmt.Errorf("listing history: %w", err)
	}
	defer rows.Close()
	var lastSeq int64
	for rows.Next() {
		var v store.Version
		var seq, lu int64
		var op string
		if err := rows.Scan(&seq, &v.Type, &v.ID, &v.Version, &lu, &op, &v.Body); err != nil {
			return nil, fmt.Errorf("reading history row: %w", err)
		}
		if len(page.Versions) == q.Count {
			page.Next = lastSeq
			break
		}
		v.LastUpdated = fromMicros(lu)
		v.Op = store.Op(op)
		v.Deleted = v.Op == store.OpDelete
		page.Versions = append(page.Versions, v)
		lastSeq = seq
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing history: %w", err)
	}
	return page, nil
}
