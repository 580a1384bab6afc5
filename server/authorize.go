package server

import (
	"net/http"
	"slices"
	"strings"

	"github.com/fhirserver/fhirserver/authz"
	"github.com/fhirserver/fhirserver/fhir"
)

// enforced are the interactions whose handlers apply the caller's store
// filter themselves, in SQL (access.go, entry.go): for them
// requireUnrestricted only checks that the caller may perform the
// interaction at all, and the handler confines it to Decision.Filter.
//
//   - search (system, type and compartment level): the filter is passed to
//     the store (store.FilteredSearcher), which applies it to the matches,
//     _include/_revinclude, chains, _has, the total and _summary=count.
//   - read and vread: a resource outside the filter is not found (404).
//   - history (instance, type, system): the filter is passed to the store
//     (store.HistoryQuery.Filter): the versions of the resources whose
//     current version it admits; an instance outside it is not found.
//   - create, update (update-as-create needs create too) and delete: in one
//     store transaction, the current resource must be inside the filter
//     before (else 404, like a missing one) and the written one after (else
//     403, and the transaction is rolled back), so that a write can neither
//     reach into nor move a resource out of what the caller may write.
//   - patch (instance level): as update, in the transaction that reads,
//     patches and writes.
//   - conditional create (If-None-Exist), update, patch and delete: the
//     criteria match only among what the caller may search of the type
//     (Decision.Match, in SQL: a hidden resource is neither matched nor
//     counted), and the target is checked before and after as for the
//     plain write (the entry runner, entry.go).
//   - operations of operationNeeds (Patient $everything): the handler
//     decides the operation and the data permissions it needs, and runs it
//     under their filter in SQL, as a search.
//
// Batch and transaction Bundles pass: each entry is decided on its own, for
// its interaction and type, and confined as the plain interaction is
// (authorize, in the entry runner); a transaction with an entry the caller
// may not perform fails whole. Every other request (other operations) still
// needs a permission that is unrestricted on every type.
var enforced = map[authz.Interaction]bool{
	authz.Search:     true,
	authz.Read:       true,
	authz.VRead:      true,
	authz.History:    true,
	authz.Create:     true,
	authz.Update:     true,
	authz.Delete:     true,
	authz.Patch:      true,
	authz.CondCreate: true, // POST with If-None-Exist is checked as create here
	authz.CondUpdate: true,
	authz.CondPatch:  true,
	authz.CondDelete: true,
	// Operations in operationNeeds ($everything): the handler decides the
	// operation and its data permissions and runs under the read filter.
	authz.Operation: true,
}

// requireUnrestricted is the access check of AuthSmart in front of the
// handlers. For an enforced interaction the caller needs the permission on
// some type (the handler decides again for the request's type and applies
// the filter). A Bundle needs nothing here: its entries are decided one by
// one. For every other request the caller needs each permission it may use
// unrestricted on every resource type (system/*.rs, a Practitioner user's
// user/*.cruds, ...): a token that is confined to a compartment, to some
// types or to a query gets 403 rather than a partially enforced answer, so
// nothing outside its scopes can be seen, counted, included or changed.
func (h *Handler) requireUnrestricted(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		caller, ok := CallerFrom(r.Context())
		if !ok {
			h.writeError(w, r, fhir.Errorf(fhir.KindUnauthorized, "this request needs an access token (Authorization: Bearer)"))
			return
		}
		seg := fhirPath(r)
		if len(seg) == 0 && r.Method == http.MethodPost {
			// A batch or transaction Bundle: each entry is decided on its
			// own, for its interaction and type (authorize, entry.go).
			next.ServeHTTP(w, r)
			return
		}
		is := interactionsOf(r.Method, seg)
		// A request not recognised (an operation) may perform every
		// interaction, none of them confined by its handler: it needs each
		// permission unrestricted, enforced or not.
		unknown := slices.Equal(is, everything)
		for _, i := range is {
			req := authz.Request{Interaction: i}
			if i == authz.Operation {
				req.Needs = operationNeeds[operationOf(seg)]
			}
			d := caller.Decide(req)
			if !d.Allow {
				h.writeError(w, r, denied(d, i, ""))
				return
			}
			if enforced[i] && !unknown {
				continue
			}
			if !d.Filter.IsAllowAll() {
				h.writeError(w, r, fhir.Errorf(fhir.KindForbidden,
					"the access token's scopes allow %s only on part of the data, and this server serves %s only to tokens with unrestricted scopes (e.g. system/*.rs or a practitioner's user/*.cruds)", i, i))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// fhirPath returns the request path below the FHIR base, split.
func fhirPath(r *http.Request) []string {
	p := strings.TrimPrefix(r.URL.Path, "/fhir")
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// everything is every interaction a request may perform.
var everything = []authz.Interaction{authz.Read, authz.Search, authz.History, authz.Create, authz.Update, authz.Patch, authz.Delete}

// interactionsOf names the interactions a FHIR request performs, from its
// method and path; anything it does not recognise needs every permission.
// A Bundle (POST to the base) may perform any of them.
func interactionsOf(method string, seg []string) []authz.Interaction {
	one := func(i authz.Interaction) []authz.Interaction { return []authz.Interaction{i} }
	last := ""
	if len(seg) > 0 {
		last = seg[len(seg)-1]
	}
	switch {
	case operationNeeds[operationOf(seg)] != 0 && (method == http.MethodGet || method == http.MethodHead || method == http.MethodPost):
		return one(authz.Operation)
	case len(seg) == 0 && (method == http.MethodGet || method == http.MethodHead):
		return one(authz.Search)
	case len(seg) == 1 && seg[0] == "_search" && method == http.MethodPost:
		return one(authz.Search)
	case last == "_history" && (method == http.MethodGet || method == http.MethodHead):
		return one(authz.History)
	case len(seg) == 4 && seg[2] == "_history" && (method == http.MethodGet || method == http.MethodHead):
		return one(authz.VRead)
	case len(seg) == 1:
		switch method {
		case http.MethodGet, http.MethodHead:
			return one(authz.Search)
		case http.MethodPost:
			return one(authz.Create)
		case http.MethodPut: // may create
			return []authz.Interaction{authz.CondUpdate, authz.Create}
		case http.MethodPatch:
			return one(authz.CondPatch)
		case http.MethodDelete:
			return one(authz.CondDelete)
		}
	case len(seg) == 2 && seg[1] == "_search" && method == http.MethodPost:
		return one(authz.Search)
	case len(seg) == 2:
		switch method {
		case http.MethodGet, http.MethodHead:
			return one(authz.Read)
		case http.MethodPut: // update-as-create
			return []authz.Interaction{authz.Update, authz.Create}
		case http.MethodPatch:
			return one(authz.Patch)
		case http.MethodDelete:
			return one(authz.Delete)
		}
	case len(seg) == 3 && (method == http.MethodGet || method == http.MethodHead):
		return one(authz.Search) // compartment search
	}
	return everything
}

// operationOf is the operation a FHIR path invokes ("$everything"), or "".
func operationOf(seg []string) string {
	if len(seg) > 0 && strings.HasPrefix(seg[len(seg)-1], "$") {
		return seg[len(seg)-1]
	}
	return ""
}
