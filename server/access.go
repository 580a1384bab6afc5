package server

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

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
	f, _, err := h.decide(r.Context(), i, typ)
	return f, err
}

// decide is access for the caller in ctx; for a conditional interaction
// it also returns m, what its criteria may match (Decision.Match: the
// caller's search access of typ). Both are AllowAll when they admit every
// resource of typ, so that callers can skip the checks.
func (h *Handler) decide(ctx context.Context, i authz.Interaction, typ string) (f, m store.Filter, err error) {
	caller, ok := CallerFrom(ctx)
	if !ok {
		if h.auth == AuthSmart {
			return store.Filter{}, store.Filter{}, fhir.Errorf(fhir.KindUnauthorized, "this request needs an access token (Authorization: Bearer)")
		}
		return store.AllowAll(), store.AllowAll(), nil
	}
	d := caller.Decide(authz.Request{Interaction: i, Type: typ})
	if !d.Allow {
		return store.Filter{}, store.Filter{}, denied(d, i, typ)
	}
	f, m = d.Filter, store.AllowAll()
	if i != authz.Search && typ != "" && wholeType(f, typ) {
		// Everything of typ: no condition to apply. (Not for a search,
		// whose filter also confines its includes of other types.)
		f = store.AllowAll()
	}
	switch i {
	case authz.CondCreate, authz.CondUpdate, authz.CondPatch, authz.CondDelete:
		if !wholeType(d.Match, typ) {
			// (Criteria search typ only: no includes to confine.)
			m = d.Match
		}
	}
	return f, m, nil
}

// seesAll reports whether the caller in ctx may read every resource of
// every type (or there is no authentication): only then may an answer name
// resources the request did not (a delete refused for its referrers).
func (h *Handler) seesAll(ctx context.Context) bool {
	f, _, err := h.decide(ctx, authz.Read, "")
	return err == nil && f.IsAllowAll()
}

// denied is the 403 of a decision that does not allow interaction i on
// typ ("" for every type). It says whether the token's scopes or the
// server's access policy refused, not which rule: rule names are the
// administrator's (the audit log and $explain-access show them).
func denied(d authz.Decision, i authz.Interaction, typ string) error {
	who := "the access token's scopes do not"
	if strings.HasPrefix(d.Rule, "policy:") {
		who = "the server's access policy does not"
	} else if strings.HasPrefix(d.Rule, "scopes and policy:") {
		who = "the access token's scopes and the server's access policy together do not"
	}
	if typ == "" {
		return fhir.Errorf(fhir.KindForbidden, "%s allow %s", who, i)
	}
	return fhir.Errorf(fhir.KindForbidden, "%s allow %s of %s", who, i, typ)
}

// wholeType reports whether f admits every resource of typ.
func wholeType(f store.Filter, typ string) bool {
	for _, g := range f.Grants {
		if g.Compartment == nil && len(g.AlsoIn) == 0 && len(g.Where) == 0 && (len(g.Types) == 0 || slices.Contains(g.Types, typ)) {
			return true
		}
	}
	return false
}

// searchUnder runs q in the tenant under f: the store's plain search when f
// admits everything, its filtered search (in SQL) otherwise.
func (h *Handler) searchUnder(ctx context.Context, tenant string, q *search.Query, f store.Filter) (*store.SearchPage, error) {
	if f.IsAllowAll() {
		return h.store.Search(ctx, tenant, q)
	}
	return h.store.SearchAccess(ctx, tenant, q, f)
}

// readUnder returns the current version of typ/id when f admits it (see
// readIn), from the store outside a transaction.
func (h *Handler) readUnder(ctx context.Context, tenant, typ, id string, f store.Filter) (*fhir.Resource, error) {
	return readIn(ctx, storeReader{h.store, tenant}, typ, id, f)
}

// readIn returns the current version of typ/id from rd when f admits it,
// with one search on _id under f (the same SQL condition as every search,
// and one statement, so the resource cannot change between the check and
// the read). A resource outside f, like a deleted one, is answered with the
// store's "not known": its existence is not revealed. (A restricted caller
// therefore gets 404, not 410, for a deleted resource: a deletion has no
// compartment to decide on.)
func readIn(ctx context.Context, rd reader, typ, id string, f store.Filter) (*fhir.Resource, error) {
	if f.IsAllowAll() {
		return rd.Read(ctx, typ, id)
	}
	q, err := search.Parse(url.Values{"_id": {id}}, search.Options{Types: []string{typ}, Strict: true})
	if err != nil {
		return nil, err
	}
	page, err := rd.SearchAccess(ctx, q, f)
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

// visibleIn reports whether the current version of typ/id, as the
// transaction tx sees it (its own writes included), is inside f. A
// resource outside is noted for the audit of the write.
func visibleIn(ctx context.Context, tx store.Tx, tenant, typ, id string, f store.Filter) (ok bool, err error) {
	fs, ok := tx.(store.FilteredSearcher)
	if !ok {
		return false, errors.New("server: the store's transactions cannot apply an access filter")
	}
	ok, err = authz.Visible(ctx, fs, tenant, typ, id, f)
	if err == nil && !ok {
		noteOutside(ctx, typ, id, f)
	}
	return ok, err
}

// errOutside answers a write whose result would be outside what the
// caller may write; the transaction is rolled back.
func errOutside(typ string) error {
	return fhir.Errorf(fhir.KindForbidden,
		"the access token's scopes do not allow writing this %s: the resource would be outside them (another patient's compartment, a type or a category the token is not granted)", typ)
}

// insideBefore is the check before a write that changes or removes typ/id
// (update, patch, delete) for a caller confined to f: the current
// resource, as tx sees it and locked (Tx.Read), must be inside f, else it is
// not known (404), exactly like a missing one. exists reports whether there
// is a current resource; a missing or deleted one has nothing to check (a
// deletion has no compartment to decide on), and what that means is the
// write's to say.
func insideBefore(ctx context.Context, tx store.Tx, tenant, typ, id string, f store.Filter) (exists bool, err error) {
	if _, err := tx.Read(ctx, typ, id); err != nil {
		if k := fhir.KindOf(err); k == fhir.KindNotFound || k == fhir.KindGone {
			return false, nil
		}
		return false, err
	}
	if f.IsAllowAll() {
		return true, nil
	}
	ok, err := visibleIn(ctx, tx, tenant, typ, id, f)
	if err == nil && !ok {
		err = notKnown(typ, id)
	}
	return true, err
}

// insideAfter is the check after a write (create, update, patch) for a
// caller confined to f: what tx now holds of typ/id must be inside f, else
// 403 and the transaction is rolled back, so that a write can neither
// create into nor move a resource out of what the caller may write.
func insideAfter(ctx context.Context, tx store.Tx, tenant, typ, id string, f store.Filter) error {
	if f.IsAllowAll() {
		return nil
	}
	ok, err := visibleIn(ctx, tx, tenant, typ, id, f)
	if err == nil && !ok {
		err = errOutside(typ)
	}
	return err
}

// createUnder creates w for a restricted caller: the new resource must be
// inside f once written, checked in the same transaction, which is rolled
// back (403) when it is not.
func (h *Handler) createUnder(ctx context.Context, tenant string, w store.Write, f store.Filter) (*fhir.Resource, error) {
	var res *fhir.Resource
	err := h.store.Transact(ctx, tenant, func(tx store.Tx) error {
		var err error
		if res, err = tx.Create(ctx, w); err != nil {
			return err
		}
		return insideAfter(ctx, tx, tenant, w.Type, res.ID, f)
	})
	return res, err
}

// updateUnder updates w for a restricted caller, in one transaction: the
// current resource (locked) must be inside fu before (else it is not known,
// 404, like a missing one), and the new version inside fu after, or inside
// fc when the update creates the resource (else 403, rolled back). A
// missing or deleted resource has nothing to check before.
func (h *Handler) updateUnder(ctx context.Context, tenant string, w store.Write, fu, fc store.Filter) (res *fhir.Resource, created bool, err error) {
	err = h.store.Transact(ctx, tenant, func(tx store.Tx) error {
		if _, err := insideBefore(ctx, tx, tenant, w.Type, w.ID, fu); err != nil {
			return err
		}
		var err error
		if res, created, err = tx.Update(ctx, w); err != nil {
			return err
		}
		after := fu
		if created {
			after = fc
		}
		return insideAfter(ctx, tx, tenant, w.Type, w.ID, after)
	})
	return res, created, err
}

// deleteUnder deletes d for a restricted caller, in one transaction: the
// current resource (locked) must be inside f (else it is not known, 404).
// Deleting a missing or deleted resource succeeds, as for anyone. With
// refuseReferenced, a resource that others refer to is not deleted (409);
// the answer does not name them, since they may be outside f.
func (h *Handler) deleteUnder(ctx context.Context, tenant string, d store.Delete, f store.Filter, refuseReferenced bool) (*fhir.Resource, error) {
	var res *fhir.Resource
	err := h.store.Transact(ctx, tenant, func(tx store.Tx) error {
		if _, err := insideBefore(ctx, tx, tenant, d.Type, d.ID, f); err != nil {
			return err
		}
		var err error
		if res, err = tx.Delete(ctx, d); err != nil || res == nil || !refuseReferenced {
			return err
		}
		by, err := tx.ReferencedBy(ctx, d.Type, d.ID, 1)
		if err == nil && len(by) > 0 {
			err = errReferenced(d.Type, d.ID)
		}
		return err
	})
	return res, err
}

// errReferenced refuses to delete typ/id that other resources refer to,
// for a restricted caller: without naming them, since they may be outside
// what it may see.
func errReferenced(typ, id string) error {
	return fhir.Errorf(fhir.KindConflict, "%s/%s cannot be deleted: other resources refer to it (this server refuses to delete referenced resources)", typ, id)
}
