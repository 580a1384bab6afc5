package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fhirserver/fhirserver/authz"
	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/search"
	"github.com/fhirserver/fhirserver/store"
)

// operationNeeds are the permissions of the operations this server serves,
// by the last path segment that names them; requireUnrestricted and the
// handlers decide with them (authz.Request.Needs).
//
// $everything is a search of the patient's compartment that also reads
// what it references: it needs both, and runs under the read filter.
var operationNeeds = map[string]authz.Perms{
	"$everything": authz.PermRead | authz.PermSearch,
}

// everythingParams are the parameters of Patient $everything (R4
// OperationDefinition Patient-everything) that this server applies, with
// _cursor for its own paging links.
var everythingParams = []string{"_since", "_type", "_count", searchCursorParam}

// operationAccess returns the filter an operation runs under: the caller
// must be allowed to invoke it on typ (a policy may name operations), and
// to use the data permissions it needs (operationNeeds) on some type; the
// filter is what those permissions let it see, of every type. Without
// authentication (AuthNone) everything is visible.
func (h *Handler) operationAccess(r *http.Request, name, typ string) (store.Filter, error) {
	caller, ok := CallerFrom(r.Context())
	if !ok {
		if h.auth == AuthSmart {
			return store.Filter{}, fhir.Errorf(fhir.KindUnauthorized, "this request needs an access token (Authorization: Bearer)")
		}
		return store.AllowAll(), nil
	}
	if d := caller.Decide(authz.Request{Interaction: authz.Operation, Operation: name, Type: typ}); !d.Allow {
		return store.Filter{}, denied(d, authz.Interaction(name), typ)
	}
	d := caller.Decide(authz.Request{Interaction: authz.Operation, Needs: operationNeeds[name]})
	if !d.Allow {
		return store.Filter{}, denied(d, authz.Interaction(name), "")
	}
	return d.Filter, nil
}

// everythingInstance: GET|POST B/fhir/Patient/{id}/$everything.
func (h *Handler) everythingInstance(w http.ResponseWriter, r *http.Request) {
	id, err := resourceID(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.everything(w, r, id)
}

// everythingType: GET|POST B/fhir/Patient/$everything, every patient the
// caller may see.
func (h *Handler) everythingType(w http.ResponseWriter, r *http.Request) {
	h.everything(w, r, "")
}

// everything answers Patient $everything with a searchset Bundle: the
// resources in the patient's compartment (in any patient's compartment at
// type level), the Patient included, as matches, and the resources of
// other types that they refer to as includes, all under the caller's access filter in SQL (like
// a search: nothing outside it is fetched, included or counted). A patient
// the caller may not see is not found (404), as if it did not exist.
//
// _type narrows the types: compartment types are matched, other types
// (Practitioner, Organization, Medication...) come in only as resources the
// matches refer to. _since keeps the resources updated at or after the
// instant. _count sets the page size; next links page with a stable cursor.
// start and end (care dates) are not supported: ignored with a warning,
// or 400 with Prefer: handling=strict, as for unknown search parameters.
func (h *Handler) everything(w http.ResponseWriter, r *http.Request, id string) {
	if !h.types["Patient"] {
		h.writeError(w, r, fhir.Errorf(fhir.KindNotFound, "unknown resource type %q", "Patient"))
		return
	}
	params, err := h.operationParams(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	f, err := h.operationAccess(r, "$everything", "Patient")
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	ctx := r.Context()
	t := h.tenantFrom(ctx)
	if id != "" {
		// The Patient must be readable as by GET Patient/id: 403 when the
		// token may not read Patients at all, 404 when this one is outside
		// what it may see (410 when deleted, for an unrestricted caller),
		// never an empty Bundle that would tell the patient exists.
		pf, err := h.access(r, authz.Read, "Patient")
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		if _, err := h.readUnder(ctx, t.name, "Patient", id, pf); err != nil {
			h.writeError(w, r, err)
			return
		}
	}
	q, linkQuery, err := h.everythingQuery(t, params, id, preferHandling(r) == "strict")
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	path := t.base + "/Patient/$everything"
	if id != "" {
		path = t.base + "/Patient/" + id + "/$everything"
	}
	self := link(path, linkQuery)
	linkQuery.Del(searchCursorParam)
	first := link(path, linkQuery)
	page, err := h.searchUnder(ctx, t.name, q, f)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	countOnly := q.Summary == search.SummaryCount
	next := ""
	if page.Next != "" && !countOnly {
		next = link(path, with(linkQuery, searchCursorParam, page.Next))
	}
	body, err := h.writeSearchset(t, q, page, countOnly, self, first, next)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeBody(w, r, formatFrom(ctx), http.StatusOK, body)
}

// everythingQuery turns the operation's parameters into the search it
// runs, and returns the query string its links repeat (_format and _pretty
// included).
func (h *Handler) everythingQuery(t tenant, params url.Values, id string, strict bool) (*search.Query, url.Values, error) {
	var ignored []search.Issue
	for k := range params {
		if slices.Contains(everythingParams, k) || k == "_format" || k == "_pretty" {
			continue
		}
		msg := "not a parameter of Patient $everything"
		if k == "start" || k == "end" {
			msg = "care-date ranges (start, end) are not supported by this server"
		}
		if strict {
			return nil, nil, fhir.Errorf(fhir.KindInvalid, "$everything parameter %s: %s", k, msg)
		}
		ignored = append(ignored, search.Issue{Param: k, Message: msg})
	}
	links := url.Values{}
	for _, k := range append(everythingParams, "_format", "_pretty") {
		if v := params[k]; len(v) > 0 {
			links[k] = v
		}
	}
	once := func(k string) (string, error) {
		v := params[k]
		if len(v) > 1 {
			return "", fhir.Errorf(fhir.KindInvalid, "$everything parameter %s: give it once", k)
		}
		if len(v) == 0 {
			return "", nil
		}
		return strings.TrimSpace(v[0]), nil
	}

	// Matched types: the Patient compartment's, as served, narrowed by
	// _type; _type's other types are what the matches may refer to.
	var types, referenced []string
	for _, typ := range fhir.CompartmentMembers("Patient") {
		if h.types[typ] {
			types = append(types, typ)
		}
	}
	if vs := params["_type"]; len(vs) > 0 {
		var named []string
		for _, v := range vs {
			for _, typ := range strings.Split(v, ",") {
				typ = strings.TrimSpace(typ)
				switch {
				case typ == "":
				case !fhir.IsResourceType(typ):
					return nil, nil, fhir.Errorf(fhir.KindInvalid, "$everything parameter _type: %q is not a resource type", typ)
				case !h.types[typ]:
					return nil, nil, fhir.Errorf(fhir.KindNotFound, "unknown resource type %q", typ)
				case slices.Contains(types, typ):
					named = append(named, typ)
				default:
					referenced = append(referenced, typ)
				}
			}
		}
		if len(named) == 0 && len(referenced) == 0 {
			return nil, nil, fhir.Errorf(fhir.KindInvalid, "$everything parameter _type names no type")
		}
		if len(named) == 0 {
			return nil, nil, fhir.Errorf(fhir.KindInvalid,
				"$everything parameter _type names no type of the Patient compartment (%s come only as resources that those refer to): add one, e.g. Encounter",
				strings.Join(referenced, ", "))
		}
		types = named
	}

	sq := url.Values{}
	since, err := once("_since")
	if err != nil {
		return nil, nil, err
	}
	if since != "" {
		at, err := time.Parse(time.RFC3339Nano, since)
		if err != nil {
			return nil, nil, fhir.Errorf(fhir.KindInvalid,
				"$everything parameter _since: %q is not an instant (e.g. 2024-05-01T10:00:00Z; seconds and a time zone are required)", since)
		}
		sq.Set("_lastUpdated", "ge"+at.UTC().Format(time.RFC3339Nano))
	}
	for _, k := range []string{"_count", searchCursorParam} {
		v, err := once(k)
		if err != nil {
			return nil, nil, err
		}
		if v != "" {
			sq.Set(k, v)
		}
	}
	q, err := search.Parse(sq, search.Options{Types: types, Strict: true, MaxCount: maxSearchCount, Base: t.base})
	if err != nil {
		return nil, nil, err
	}
	q.Compartment = &search.Compartment{Type: "Patient", ID: id}
	// The total is always stated: the client learns how much there is
	// (within what it may see) without paging to the end.
	q.Total = search.TotalAccurate
	// The includes are the referenced resources of the types not matched
	// (Practitioner, Organization, Medication...): a resource of a matched
	// type is a match, on its own page, when it is in the compartment.
	if len(params["_type"]) == 0 {
		for typ := range h.types {
			if !slices.Contains(types, typ) {
				referenced = append(referenced, typ)
			}
		}
		slices.Sort(referenced)
	}
	if len(referenced) > 0 {
		q.Includes = []search.Include{{Source: "*", Param: "*"}}
		q.IncludeTypes = referenced
	}
	q.Unknown = ignored
	return q, links, nil
}

// operationParams returns the parameters of an operation: the query
// string, and for POST also the body: a Parameters resource (its
// parameters with primitive values) or a form.
func (h *Handler) operationParams(r *http.Request) (url.Values, error) {
	if r.Method != http.MethodPost {
		return h.searchParams(r)
	}
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err == nil && mt == "application/x-www-form-urlencoded" {
		return h.searchParams(r)
	}
	params, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, fhir.Errorf(fhir.KindInvalid, "the query string is malformed: %v", err)
	}
	raw, err := readBody(r)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return params, nil
	}
	if err := checkContentType(r); err != nil {
		return nil, err
	}
	var body struct {
		ResourceType string `json:"resourceType"`
		Parameter    []map[string]json.RawMessage
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return nil, fhir.Errorf(fhir.KindInvalid, "the body is not a JSON Parameters resource: %v", err)
	}
	if body.ResourceType != "Parameters" {
		return nil, fhir.Errorf(fhir.KindInvalid, "the body must be a Parameters resource, not %q", body.ResourceType)
	}
	for i, p := range body.Parameter {
		var name string
		if err := json.Unmarshal(p["name"], &name); err != nil || name == "" {
			return nil, fhir.Errorf(fhir.KindInvalid, "Parameters.parameter[%d] has no name", i)
		}
		v, err := primitiveValue(p)
		if err != nil {
			return nil, fhir.Errorf(fhir.KindInvalid, "Parameters.parameter[%d] (%s): %v", i, name, err)
		}
		params[name] = append(params[name], v)
	}
	return params, nil
}

// primitiveValue is the value[x] of a Parameters parameter as it would be
// written in a query string; only primitive types are accepted.
func primitiveValue(p map[string]json.RawMessage) (string, error) {
	var out string
	found := false
	for k, raw := range p {
		if !strings.HasPrefix(k, "value") {
			if k == "resource" || k == "part" {
				return "", errors.New("a primitive value[x] is expected, not " + k)
			}
			continue
		}
		if found {
			return "", errors.New("more than one value[x]")
		}
		found = true
		var s string
		if err := json.Unmarshal(raw, &s); err == nil {
			out = s
			continue
		}
		var n json.Number
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		if err := d.Decode(&n); err == nil {
			out = n.String()
			continue
		}
		var b bool
		if err := json.Unmarshal(raw, &b); err == nil {
			out = strconv.FormatBool(b)
			continue
		}
		return "", errors.New(k + " is not a primitive value")
	}
	if !found {
		return "", errors.New("no value[x]")
	}
	return out, nil
}
