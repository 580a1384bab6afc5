package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/fhirserver/fhirserver/authz"
	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/store"
)

// resourceType returns the {type} of the URL when this server serves it.
func (h *Handler) resourceType(r *http.Request) (string, error) {
	t := chi.URLParam(r, "type")
	if !h.types[t] {
		return "", fhir.Errorf(fhir.KindNotFound, "unknown resource type %q", t)
	}
	return t, nil
}

// resourceID returns the {id} of the URL when it is a legal FHIR id.
func resourceID(r *http.Request) (string, error) {
	id := chi.URLParam(r, "id")
	if !fhir.ValidID(id) {
		return "", fhir.Errorf(fhir.KindInvalid,
			"%q is not a valid resource id (1-64 characters of A-Z, a-z, 0-9, '-' and '.')", id)
	}
	return id, nil
}

// instance returns the {type} and {id} of an instance URL.
func (h *Handler) instance(r *http.Request) (typ, id string, err error) {
	if typ, err = h.resourceType(r); err != nil {
		return "", "", err
	}
	if id, err = resourceID(r); err != nil {
		return "", "", err
	}
	return typ, id, nil
}

// readResource reads a create or update body and returns it compact, after
// the checks every body needs: media type, size, UTF-8 JSON, a resourceType
// that matches the URL. It returns the id the body carries ("" if none).
func (h *Handler) readResource(r *http.Request, typ string) (body []byte, id string, err error) {
	if err := checkContentType(r); err != nil {
		return nil, "", err
	}
	raw, err := readBody(r)
	if err != nil {
		return nil, "", err
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, "", fhir.Errorf(fhir.KindInvalid, "the request body is empty; send a %s resource", typ)
	}
	if !utf8.Valid(raw) {
		return nil, "", fhir.Errorf(fhir.KindInvalid, "the request body is not valid UTF-8")
	}
	return compactResource(raw, typ, "the request body", "the URL")
}

// compactResource compacts the JSON resource raw (named what in errors)
// and checks that its resourceType is typ, the type named by url.
func compactResource(raw []byte, typ, what, url string) (body []byte, id string, err error) {
	var buf bytes.Buffer
	buf.Grow(len(raw))
	if err := json.Compact(&buf, raw); err != nil {
		return nil, "", fhir.Errorf(fhir.KindInvalid, "%s is not valid JSON: %v", what, err)
	}
	body = buf.Bytes()
	rt, id, err := fhir.Envelope(body)
	if err != nil {
		return nil, "", err
	}
	if rt != typ {
		return nil, "", &fhir.Error{Kind: fhir.KindInvalid, Expression: []string{"resourceType"},
			Message: fmt.Sprintf("resourceType %q does not match the type %q of %s", rt, typ, url)}
	}
	return body, id, nil
}

// validate runs the configured validator; without one, the structure checks
// of readResource are all there is.
func (h *Handler) validate(typ string, body []byte) error {
	if h.validator == nil {
		return nil
	}
	return h.validator.Validate(typ, body)
}

// create: POST B/fhir/{type}. An id in the body is ignored, as the spec
// says; the store assigns one. With If-None-Exist it is a conditional
// create (conditional.go).
func (h *Handler) create(w http.ResponseWriter, r *http.Request) {
	typ, err := h.resourceType(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	body, _, err := h.readResource(r, typ)
	if err == nil {
		err = h.validate(typ, body)
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if r.Header.Get("If-None-Exist") != "" {
		// The runner decides it (conditional create).
		h.conditionalCreate(w, r, typ, body)
		return
	}
	f, err := h.access(r, authz.Create, typ)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	t := h.tenantFrom(r.Context())
	wr := store.Write{Tenant: t.name, Type: typ, Body: body}
	var res *fhir.Resource
	if f.IsAllowAll() {
		res, err = h.store.Create(r.Context(), wr)
	} else {
		res, err = h.createUnder(r.Context(), t.name, wr, f)
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeWritten(w, r, http.StatusCreated, res, "created")
}

// update: PUT B/fhir/{type}/{id}, creating the resource with the client's
// id when it does not exist (update-as-create).
func (h *Handler) update(w http.ResponseWriter, r *http.Request) {
	typ, id, err := h.instance(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	ifMatch, err := parseIfMatch(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	body, bodyID, err := h.readResource(r, typ)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if bodyID == "" {
		h.writeError(w, r, &fhir.Error{Kind: fhir.KindInvalid, Expression: []string{typ + ".id"},
			Message: fmt.Sprintf("the resource has no id; an update must carry the id %q of the URL", id)})
		return
	}
	if bodyID != id {
		h.writeError(w, r, &fhir.Error{Kind: fhir.KindInvalid, Expression: []string{typ + ".id"},
			Message: fmt.Sprintf("the resource id %q does not match the id %q of the URL", bodyID, id)})
		return
	}
	if err := h.validate(typ, body); err != nil {
		h.writeError(w, r, err)
		return
	}
	fu, err := h.access(r, authz.Update, typ)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	// An update that creates needs create as well; without it the
	// creation is refused after the fact (nothing admitted).
	fc, cerr := h.access(r, authz.Create, typ)
	if cerr != nil {
		fc = store.Filter{}
	}
	t := h.tenantFrom(r.Context())
	wr := store.Write{Tenant: t.name, Type: typ, ID: id, Body: body, IfMatch: ifMatch}
	var res *fhir.Resource
	var created bool
	if fu.IsAllowAll() && fc.IsAllowAll() {
		res, created, err = h.store.Update(r.Context(), wr)
	} else {
		res, created, err = h.updateUnder(r.Context(), t.name, wr, fu, fc)
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if created {
		h.writeWritten(w, r, http.StatusCreated, res, "created")
		return
	}
	h.writeWritten(w, r, http.StatusOK, res, "updated")
}

// delete: DELETE B/fhir/{type}/{id}. Deleting what is missing or already
// deleted succeeds too, as the spec allows. With Deps.DeleteReferenced set
// to refuse, a resource that others refer to is not deleted (409).
func (h *Handler) delete(w http.ResponseWriter, r *http.Request) {
	typ, id, err := h.instance(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	ifMatch, err := parseIfMatch(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	f, err := h.access(r, authz.Delete, typ)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if h.deleteReferenced == DeleteRefuse && f.IsAllowAll() {
		// The reference check and the delete in one transaction.
		h.runOne(w, r, &entry{index: -1, method: "DELETE", typ: typ, id: id, ifMatch: ifMatch})
		return
	}
	t := h.tenantFrom(r.Context())
	d := store.Delete{Tenant: t.name, Type: typ, ID: id, IfMatch: ifMatch}
	var res *fhir.Resource
	if f.IsAllowAll() {
		res, err = h.store.Delete(r.Context(), d)
	} else {
		res, err = h.deleteUnder(r.Context(), t.name, d, f, h.deleteReferenced == DeleteRefuse)
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if res != nil {
		w.Header().Set("ETag", res.ETag())
	}
	if preferReturn(r) == "OperationOutcome" {
		msg := fmt.Sprintf("deleted %s/%s", typ, id)
		if res == nil {
			msg = fmt.Sprintf("%s/%s did not exist or was already deleted", typ, id)
		}
		h.writeBody(w, r, formatFrom(r.Context()), http.StatusOK, outcomeJSON("information", "informational", msg, nil))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// read: GET B/fhir/{type}/{id}.
func (h *Handler) read(w http.ResponseWriter, r *http.Request) {
	typ, id, err := h.instance(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	f, err := h.access(r, authz.Read, typ)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	t := h.tenantFrom(r.Context())
	res, err := h.readUnder(r.Context(), t.name, typ, id, f)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeRead(w, r, res)
}

// vread: GET B/fhir/{type}/{id}/_history/{vid}.
func (h *Handler) vread(w http.ResponseWriter, r *http.Request) {
	typ, id, err := h.instance(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	vid, err := fhir.ParseVersion(chi.URLParam(r, "vid"))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	f, err := h.access(r, authz.VRead, typ)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	t := h.tenantFrom(r.Context())
	if !f.IsAllowAll() {
		// A restricted caller may read the versions of a resource whose
		// current version it may see; the decision is on the current
		// version, as the compartment index holds only that one. Any
		// other resource (another patient's, a deleted one) is not known.
		if _, err := h.readUnder(r.Context(), t.name, typ, id, f); err != nil {
			h.writeError(w, r, err)
			return
		}
	}
	res, err := h.store.VRead(r.Context(), t.name, typ, id, vid)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeRead(w, r, res)
}

// setVersionHeaders sets ETag and Last-Modified of a stored version.
func setVersionHeaders(w http.ResponseWriter, res *fhir.Resource) {
	w.Header().Set("ETag", res.ETag())
	w.Header().Set("Last-Modified", res.LastUpdated.UTC().Format(http.TimeFormat))
}

// writeRead answers read and vread: 304 when the client's copy is current,
// otherwise the stored bytes.
func (h *Handler) writeRead(w http.ResponseWriter, r *http.Request, res *fhir.Resource) {
	setVersionHeaders(w, res)
	notModified, err := notModified(r, res)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if notModified {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.writeBody(w, r, formatFrom(r.Context()), http.StatusOK, res.Body)
}

// writeWritten answers create and update with the stored version, shaped by
// Prefer: return=minimal (no body), return=OperationOutcome, or the resource.
func (h *Handler) writeWritten(w http.ResponseWriter, r *http.Request, status int, res *fhir.Resource, did string) {
	noteWritten(r.Context(), res)
	setVersionHeaders(w, res)
	if status == http.StatusCreated {
		t := h.tenantFrom(r.Context())
		w.Header().Set("Location", fmt.Sprintf("%s/%s/%s/_history/%d", t.base, res.Type, res.ID, res.Version))
	}
	switch preferReturn(r) {
	case "minimal":
		w.WriteHeader(status)
	case "OperationOutcome":
		msg := fmt.Sprintf("%s %s/%s, version %d", did, res.Type, res.ID, res.Version)
		h.writeBody(w, r, formatFrom(r.Context()), status, outcomeJSON("information", "informational", msg, nil))
	default:
		h.writeBody(w, r, formatFrom(r.Context()), status, res.Body)
	}
}

// preferReturn returns the value of the return preference of the Prefer
// header ("" when there is none). Other preferences are ignored, as RFC 7240
// allows.
func preferReturn(r *http.Request) string {
	for _, v := range r.Header.Values("Prefer") {
		for _, pref := range strings.Split(v, ",") {
			pref, _, _ = strings.Cut(pref, ";")
			k, val, ok := strings.Cut(strings.TrimSpace(pref), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "return") {
				return strings.Trim(strings.TrimSpace(val), `"`)
			}
		}
	}
	return ""
}

// parseIfMatch reads If-Match as the version an update or delete expects
// (0 when absent). FHIR uses a single weak ETag, W/"n"; lists and "*" have
// no meaning for a version-aware update and are refused.
func parseIfMatch(r *http.Request) (int64, error) {
	v := strings.TrimSpace(r.Header.Get("If-Match"))
	if v == "" {
		return 0, nil
	}
	n, err := fhir.ParseETag(v)
	if err != nil {
		return 0, &fhir.Error{Kind: fhir.KindInvalid, Message: "If-Match: " + fhir.MessageOf(err)}
	}
	return n, nil
}

// notModified evaluates If-None-Match and, only when that is absent,
// If-Modified-Since (RFC 9110 §13.2.2). A malformed If-Modified-Since is
// ignored as the RFC requires; a malformed If-None-Match is the client's
// mistake and answered with 400, like If-Match.
func notModified(r *http.Request, res *fhir.Resource) (bool, error) {
	if vals := r.Header.Values("If-None-Match"); len(vals) > 0 {
		for _, v := range vals {
			for _, tag := range strings.Split(v, ",") {
				tag = strings.TrimSpace(tag)
				if tag == "" {
					continue
				}
				if tag == "*" {
					return true, nil
				}
				n, err := fhir.ParseETag(tag)
				if err != nil {
					return false, &fhir.Error{Kind: fhir.KindInvalid, Message: "If-None-Match: " + fhir.MessageOf(err)}
				}
				if n == res.Version {
					return true, nil
				}
			}
		}
		return false, nil
	}
	if v := r.Header.Get("If-Modified-Since"); v != "" {
		since, err := http.ParseTime(v)
		if err != nil {
			return false, nil
		}
		// HTTP dates have whole seconds; lastUpdated has microseconds.
		return !res.LastUpdated.Truncate(time.Second).After(since), nil
	}
	return false, nil
}
