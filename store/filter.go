package store

import (
	"context"

	"github.com/fhirserver/fhirserver/fhir/search"
)

// Filter is what a caller may see, as a store applies it to every resource
// a search touches: its matches, _include and _revinclude results, the
// count behind _total, and the resources that chains and _has look
// through. Package authz turns an access decision into a Filter; a store
// compiles it into the base condition of its queries, so that nothing is
// filtered after fetching and counts and pages stay right.
//
// The zero Filter admits nothing; AllowAll admits everything.
type Filter struct {
	// Grants are ORed: a resource is visible when one grant admits it.
	Grants []Grant
}

// Grant admits the resources of Types (every type when empty) that are in
// Compartment (any resource when nil) and in each of AlsoIn, and that match
// every clause of Where (no constraint when empty). Patient-level access to Patient/123 is, for
// example, {Compartment: Patient/123} plus {Types: [Practitioner,
// Organization, ...]} for the types that belong to no patient compartment.
//
// Where holds the search constraint of a granular SMART v2 scope
// (patient/Observation.rs?category=...|laboratory) or of an instance rule
// (_id=...). Its clauses are parsed for Types, so a Grant with Where names
// exactly one type. Clauses with a chain or _has are not allowed there: a
// store treats a grant that has one as admitting nothing.
//
// AlsoIn holds further compartments a resource must be in as well: the
// intersection of two grants confined to different compartments (a
// RelatedPerson's token narrowed by a policy to one patient) needs both.
type Grant struct {
	Types       []string
	Compartment *search.Compartment
	AlsoIn      []search.Compartment
	Where       []search.Clause
}

// AllowAll is the explicit "no restriction" Filter.
func AllowAll() Filter { return Filter{Grants: []Grant{{}}} }

// IsAllowAll reports whether f admits everything (one of its grants has no
// condition).
func (f Filter) IsAllowAll() bool {
	for _, g := range f.Grants {
		if len(g.Types) == 0 && g.Compartment == nil && len(g.AlsoIn) == 0 && len(g.Where) == 0 {
			return true
		}
	}
	return false
}

// FilteredSearcher runs searches as seen by a caller: matches, _include
// and _revinclude results, totals, and what chains and _has look through
// only ever contain resources that f admits. Both SQL backends implement
// it (sqlstore.Store.SearchAccess).
type FilteredSearcher interface {
	SearchAccess(ctx context.Context, tenant string, q *search.Query, f Filter) (*SearchPage, error)
}
