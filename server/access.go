package server

import (
	"context"
	"net/http"
	"net/url"

	"github.com/fhirserver/fhirserver/authz"
	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/search"
	"github.com/fhirserver/fhirserver/store"
)

// access returns the filter that an enforced interaction (see enforced)
// applies for the request's caller: what the caller's policy lets it see
// for interaction i on typ ("" for system-level search). Without
// authentication (AuthNone) there is no caller and everything is visible.
// A caller whose scopes do not allow i on typ at all gets 403: that says
// nothing about any resource, only about the token.
func (h *Handler) access(r *http.Request, i authz.Interaction, typ string) (store.Filter, error) {
	caller, ok := CallerFrom(r.Context())
	if !ok {
		if h.auth == AuthSmart {
			return store.Filter{}, fhir.Errorf(fhir.KindUnauthorized, "this request needs an access token (Authorization: Bearer)")
		}
		return store.AllowAll(), nil
	}
	d := caller.Decide(authz.Request{Interaction: i, Type: typ})
	if !d.Allow {
		if typ == "" {
			return store.Filter{}, fhir.Errorf(fhir.KindForbidden, "the access token's scopes do not allow %s", i)
		}
		return store.Filter{}, fhir.Errorf(fhir.KindForbidden, "the access token's scopes do not allow %s of %s", i, typ)
	}
	return d.Filter, nil
}

// searchUnder runs q in the tenant under f: the store's plain search when f
// admits everything, its filtered search (in SQL) otherwise.
func (h *Handler) searchUnder(ctx context.Context, tenant string, q *search.Query, f store.Filter) (*store.SearchPage, error) {
	if f.IsAllowAll() {
		return h.store.Search(ctx, tenant, q)
	}
	return h.store.SearchAccess(ctx, tenant, q, f)
}

// readUnder returns the current version of typ/id when f admits it, with
// one search on _id under f (the same SQL condition as every search, and
// one statement, so the resource cannot change between the check and the
// read). A resource outside f, like a deleted one, is answered with the
// store's "not known": its existence is not revealed. (A restricted caller
// therefore gets 404, not 410, for a deleted resource: a deletion has no
// compartment to decide on.)
func (h *Handler) readUnder(ctx context.Context, tenant, typ, id string, f store.Filter) (*fhir.Resource, error) {
	if f.IsAllowAll() {
		return h.store.Read(ctx, tenant, typ, id)
	}
	q, err := search.Parse(url.Values{"_id": {id}}, search.Options{Types: []string{typ}, Strict: true})
	if err != nil {
		return nil, err
	}
	page, err := h.store.SearchAccess(ctx, tenant, q, f)
	if err != nil {
		return nil, err
	}
	if len(page.Matches) == 0 {
		return nil, notKnown(typ, id)
	}
	res := page.Matches[0]
	return &res, nil
}

// notKnown is the store's answer for a resource that never existed.
func notKnown(typ, id string) error {
	return fhir.Errorf(fhir.KindNotFound, "%s/%s is not known", typ, id)
}
