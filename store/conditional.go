package store

import (
	"context"
	"errors"
	"net/url"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/search"
)

// Conditional interactions (conditional create, update, delete and patch,
// and conditional references in a transaction) find their target with a
// search inside the transaction that then writes, so that what they decide
// on cannot change before they commit:
//
//   - Match first locks the criteria (Tx.Lock on Criteria.Key), then
//     searches. Two transactions with the same criteria therefore decide one
//     after the other, and the second sees what the first wrote: two
//     concurrent conditional creates of the same criteria store one
//     resource, and the other gets it as its match.
//   - On SQLite write transactions are serialised anyway; on PostgreSQL the
//     lock is an advisory transaction lock and each statement of the (read
//     committed) transaction sees what committed before it started.
//   - Not covered: a conditional interaction and a concurrent write that
//     does not lock the same criteria (a plain create, or criteria written
//     with other parameters that happen to select the same resources).

// Criteria is the search of a conditional interaction: the resources of
// Type that Query selects. The caller parses Query (search.Parse with Types
// set to Type). Its result parameters (_count, _sort, _include,
// _revinclude, _summary, _elements, _total, the cursor) are ignored.
//
// Access, when set, is what the caller may search: the criteria match only
// the resources it admits (in SQL, through the transaction's
// FilteredSearcher), so that a resource hidden from the caller is neither
// matched nor counted. nil matches among every resource.
type Criteria struct {
	Type   string
	Query  *search.Query
	Access *Filter
}

// Key names the criteria for Tx.Lock: the type and the parameters as
// search.Query.Params re-encodes them, sorted and normalised, so that the
// same criteria written differently lock the same key.
func (c Criteria) Key() string {
	q := &search.Query{}
	if c.Query != nil {
		q.Clauses = c.Query.Clauses
	}
	return c.Type + "?" + q.String()
}

// readable is the key for messages, without the URL escapes.
func (c Criteria) readable() string {
	k := c.Key()
	if u, err := url.QueryUnescape(k); err == nil {
		return u
	}
	return k
}

// matchQuery is the query without its result parameters, pages of n.
func (c Criteria) matchQuery(n int) *search.Query {
	q := &search.Query{Types: []string{c.Type}, Count: n, Total: search.TotalNone}
	if c.Query != nil {
		q.Compartment = c.Query.Compartment
		q.Clauses = c.Query.Clauses
	}
	return q
}

// matchPage is the page size of Match.
const matchPage = 500

// Match locks the criteria (see Criteria.Key) and returns the current
// resources that match them: all of them up to limit+1, so that the caller
// can tell "more than limit" apart.
func Match(ctx context.Context, tx Tx, c Criteria, limit int) ([]fhir.Resource, error) {
	if err := tx.Lock(ctx, c.Key()); err != nil {
		return nil, err
	}
	return Find(ctx, tx, c, limit)
}

// Find is Match without the lock, for a search whose result decides no
// write of its own: a conditional reference, whose target Tx.Missing then
// keeps from being deleted.
func Find(ctx context.Context, tx Tx, c Criteria, limit int) ([]fhir.Resource, error) {
	find := tx.Search
	if c.Access != nil && !c.Access.IsAllowAll() {
		fs, ok := tx.(FilteredSearcher)
		if !ok {
			return nil, errors.New("store: the transaction cannot apply an access filter to conditional criteria")
		}
		f := *c.Access
		find = func(ctx context.Context, q *search.Query) (*SearchPage, error) {
			// A transaction searches its own tenant; the argument is ignored.
			return fs.SearchAccess(ctx, "", q, f)
		}
	}
	var out []fhir.Resource
	q := c.matchQuery(min(limit+1, matchPage))
	for {
		page, err := find(ctx, q)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Matches...)
		if len(out) > limit || page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	if len(out) > limit+1 {
		out = out[:limit+1]
	}
	return out, nil
}

// MatchOne is Match for interactions that need at most one resource: it
// returns nil when nothing matches, and fails with KindPreconditionFailed
// when several resources do (the criteria are not selective enough).
func MatchOne(ctx context.Context, tx Tx, c Criteria) (*fhir.Resource, error) {
	found, err := Match(ctx, tx, c, 1)
	if err != nil {
		return nil, err
	}
	switch len(found) {
	case 0:
		return nil, nil
	case 1:
		return &found[0], nil
	}
	return nil, fhir.Errorf(fhir.KindPreconditionFailed,
		"the criteria %s match more than one resource; make them more selective", c.readable())
}
