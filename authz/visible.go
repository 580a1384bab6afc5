package authz

import (
	"context"
	"net/url"

	"github.com/fhirserver/fhirserver/fhir/search"
	"github.com/fhirserver/fhirserver/store"
)

// Visible reports whether the current version of typ/id is admitted by f,
// asking s (a store, or a transaction's view when it implements
// store.FilteredSearcher) with a search on _id under f, so the check is the
// same SQL condition as every search. Handlers use it for the checks
// around writes: update, patch and delete need the current resource to be
// Visible before, create, update and patch need the new version Visible
// after (inside the same transaction, so that a failed check rolls the
// write back). A resource that is not Visible must be answered as not
// found, never as forbidden, so that its existence is not revealed.
func Visible(ctx context.Context, s store.FilteredSearcher, tenant, typ, id string, f store.Filter) (bool, error) {
	if len(f.Grants) == 0 {
		return false, nil
	}
	q, err := search.Parse(url.Values{"_id": {id}, "_summary": {"count"}}, search.Options{Types: []string{typ}, Strict: true})
	if err != nil {
		return false, err
	}
	page, err := s.SearchAccess(ctx, tenant, q, f)
	if err != nil {
		return false, err
	}
	return page.Total > 0, nil
}
