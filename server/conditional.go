package server

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/store"
)

// Conditional interactions (http://hl7.org/fhir/R4/http.html#cond-update):
//
//   - create, POST B/fhir/Type with If-None-Exist: no match creates, one
//     match answers 200 with it (nothing stored), more answer 412;
//   - update, PUT B/fhir/Type?criteria: no match creates (with the id of the
//     body when it has one, update-as-create), one match is updated (400 if
//     the body names another id), more answer 412;
//   - delete, DELETE B/fhir/Type?criteria: no match is a success that
//     deletes nothing, one match is deleted, more answer 412 unless
//     Deps.ConditionalDelete is multiple (then all, up to 1,000);
//   - patch, PATCH B/fhir/Type?criteria: no match is 404, one is patched,
//     more answer 412.
//
// Each runs as a one-entry transaction (runEntries): the criteria are
// locked and searched inside the store transaction that then writes, so two
// conditional interactions with the same criteria cannot both see no match
// (see store.Match). If-Match applies to the matched resource.

// runOne runs a single interaction in a store transaction and answers it.
func (h *Handler) runOne(w http.ResponseWriter, r *http.Request, e *entry) {
	ctx := r.Context()
	t := h.tenantFrom(ctx)
	err := h.store.Transact(ctx, t.name, func(tx store.Tx) error {
		return h.runEntries(ctx, tx, t, modeSingle, []*entry{e}, nil)
	})
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	res := &e.result
	switch e.method {
	case "DELETE":
		if res.res != nil {
			w.Header().Set("ETag", res.res.ETag())
		}
		if preferReturn(r) == "OperationOutcome" {
			h.writeBody(w, r, formatFrom(ctx), http.StatusOK, outcomeJSON("information", "informational", res.msg, nil))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		did := map[string]string{"POST": "created", "PUT": "updated", "PATCH": "patched"}[e.method]
		switch {
		case res.status == http.StatusCreated:
			did = "created"
		case e.matched != nil:
			did = "found (nothing created)"
		}
		h.writeWritten(w, r, res.status, res.res, did)
	}
}

// criteriaOf returns the search criteria in the query of a conditional
// request (without _format and _pretty, which shape the answer).
func criteriaOf(r *http.Request) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, fhir.Errorf(fhir.KindInvalid, "the query string is malformed: %v", err)
	}
	q.Del("_format")
	q.Del("_pretty")
	if len(q) == 0 {
		return nil, fhir.Errorf(fhir.KindInvalid, "a conditional %s needs search criteria in the URL (%s B/fhir/Type?identifier=...)", r.Method, r.Method)
	}
	return q, nil
}

// conditionalCreate: POST B/fhir/{type} with If-None-Exist; the body has
// been read and validated.
func (h *Handler) conditionalCreate(w http.ResponseWriter, r *http.Request, typ string, body []byte) {
	criteria, err := criteriaHeader(typ, r.Header.Get("If-None-Exist"))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.runOne(w, r, &entry{index: -1, method: "POST", typ: typ, id: newID(), criteria: criteria, body: body})
}

// conditionalTarget reads what a conditional update or delete names: the
// {type} of the URL, its search criteria and If-Match.
func (h *Handler) conditionalTarget(r *http.Request) (typ string, criteria url.Values, ifMatch int64, err error) {
	if typ, err = h.resourceType(r); err != nil {
		return "", nil, 0, err
	}
	if criteria, err = criteriaOf(r); err != nil {
		return "", nil, 0, err
	}
	if ifMatch, err = parseIfMatch(r); err != nil {
		return "", nil, 0, err
	}
	return typ, criteria, ifMatch, nil
}

// conditionalUpdate: PUT B/fhir/{type}?criteria.
func (h *Handler) conditionalUpdate(w http.ResponseWriter, r *http.Request) {
	typ, criteria, ifMatch, err := h.conditionalTarget(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	body, bodyID, err := h.readResource(r, typ)
	if err == nil && bodyID != "" && !fhir.ValidID(bodyID) {
		err = &fhir.Error{Kind: fhir.KindInvalid, Expression: []string{typ + ".id"}, Message: fmt.Sprintf("%q is not a valid resource id", bodyID)}
	}
	if err == nil {
		err = h.validate(typ, body)
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.runOne(w, r, &entry{index: -1, method: "PUT", typ: typ, criteria: criteria, ifMatch: ifMatch,
		body: body, bodyID: bodyID, newID: newID()})
}

// conditionalDelete: DELETE B/fhir/{type}?criteria.
func (h *Handler) conditionalDelete(w http.ResponseWriter, r *http.Request) {
	typ, criteria, ifMatch, err := h.conditionalTarget(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.runOne(w, r, &entry{index: -1, method: "DELETE", typ: typ, criteria: criteria, ifMatch: ifMatch})
}
