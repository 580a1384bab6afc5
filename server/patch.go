package server

import (
	"bytes"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/patch"
)

// PATCH B/fhir/{type}/{id} and B/fhir/{type}?criteria
// (http://hl7.org/fhir/R4/http.html#patch), with a JSON Patch
// (application/json-patch+json) or a FHIRPath Patch (a Parameters resource,
// application/fhir+json). The resource is read and locked, patched,
// checked (same type and id), validated and stored in one transaction, so
// no concurrent update is lost; If-Match makes the patch apply only to that
// version. A patch that does not apply, or whose result is not a valid
// resource, is 422; a malformed patch document is 400.

// patch: PATCH B/fhir/{type}/{id}.
func (h *Handler) patch(w http.ResponseWriter, r *http.Request) {
	typ, id, err := h.instance(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.patchWhere(w, r, typ, id)
}

// conditionalPatch: PATCH B/fhir/{type}?criteria.
func (h *Handler) conditionalPatch(w http.ResponseWriter, r *http.Request) {
	typ, err := h.resourceType(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.patchWhere(w, r, typ, "")
}

// patchWhere patches typ/id, or the match of the URL's criteria when id is
// "".
func (h *Handler) patchWhere(w http.ResponseWriter, r *http.Request, typ, id string) {
	e := &entry{index: -1, method: "PATCH", typ: typ, id: id}
	var err error
	if id == "" {
		e.criteria, err = criteriaOf(r)
	}
	if err == nil {
		e.ifMatch, err = parseIfMatch(r)
	}
	if err == nil {
		e.patch, err = readPatch(r)
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	// The runner decides the entry (patch, or conditional patch whose
	// criteria match among what the caller may search) and checks it in
	// the transaction that reads, patches and writes: a restricted caller's
	// target must be inside its filter before (else, like a missing or
	// deleted one, it is not known: 404) and the patched version after
	// (else 403, rolled back).
	h.runOne(w, r, e)
}

// readPatch reads a patch document by its media type.
func readPatch(r *http.Request) (patch.Patch, error) {
	v := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(v)
	if err != nil {
		return nil, fhir.Errorf(fhir.KindUnsupportedMediaType,
			"Content-Type %q: send %s (JSON Patch) or application/fhir+json (a FHIRPath Patch Parameters resource)", v, patch.MediaTypeJSONPatch)
	}
	if cs, has := params["charset"]; has && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		return nil, fhir.Errorf(fhir.KindUnsupportedMediaType, "charset %q is not supported; send utf-8", cs)
	}
	raw, err := readBody(r)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, fhir.Errorf(fhir.KindInvalid, "the request body is empty; send a patch")
	}
	if !utf8.Valid(raw) {
		return nil, fhir.Errorf(fhir.KindInvalid, "the request body is not valid UTF-8")
	}
	switch mt {
	case patch.MediaTypeJSONPatch:
		return patch.ParseJSONPatch(raw)
	case "application/fhir+json", "application/json+fhir", "application/json":
		return patch.ParseFHIRPathPatch(raw)
	}
	return nil, fhir.Errorf(fhir.KindUnsupportedMediaType,
		"Content-Type %q is not a patch format: send %s (JSON Patch) or application/fhir+json (a FHIRPath Patch Parameters resource)", mt, patch.MediaTypeJSONPatch)
}
