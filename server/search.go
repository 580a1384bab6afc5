package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/fhirserver/fhirserver/authz"
	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/search"
	"github.com/fhirserver/fhirserver/store"
)

const (
	// searchCursorParam carries store.SearchPage.Next into a next link (Parse
	// reads it into Query.Cursor). The value is the store's opaque cursor;
	// a store refuses one it did not make.
	searchCursorParam = "_cursor"
	// maxSearchCount caps _count, so that one page stays a bounded amount
	// of memory; larger requests get this many, which the spec allows.
	maxSearchCount = 1000
)

// searchScope is where a search is addressed: the resource types it may
// return, the compartment it is confined to, and the URL path (under the
// tenant's base) that its links repeat.
type searchScope struct {
	// types is the type of a type-level search or the member type of a
	// compartment search; nil at system level and for B/fhir/Patient/1/*
	// (every type, or those _type names).
	types       []string
	compartment *search.Compartment
	path        string // "", "/Observation", "/Patient/1/Observation" or "/Patient/1/*"
}

// searchType: GET B/fhir/{type}?... and POST B/fhir/{type}/_search.
func (h *Handler) searchType(w http.ResponseWriter, r *http.Request) {
	typ, err := h.resourceType(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.search(w, r, searchScope{types: []string{typ}, path: "/" + typ})
}

// searchSystem: GET B/fhir?... and POST B/fhir/_search; _type names the
// types, all served types without it.
func (h *Handler) searchSystem(w http.ResponseWriter, r *http.Request) {
	h.search(w, r, searchScope{})
}

// searchCompartment: GET B/fhir/{Compartment}/{id}/{type} (type "*" for
// every type of the compartment) and POST .../_search.
func (h *Handler) searchCompartment(w http.ResponseWriter, r *http.Request) {
	comp := chi.URLParam(r, "type")
	members := fhir.CompartmentMembers(comp)
	if len(members) == 0 {
		h.writeError(w, r, fhir.Errorf(fhir.KindNotFound,
			"%q is not a compartment (compartments are %s)", comp, strings.Join(fhir.CompartmentTypes(), ", ")))
		return
	}
	id, err := resourceID(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	target := chi.URLParam(r, "target")
	var types []string // nil for "*": every member type
	if target != "*" {
		if !h.types[target] {
			h.writeError(w, r, fhir.Errorf(fhir.KindNotFound, "unknown resource type %q", target))
			return
		}
		if len(fhir.CompartmentParams(comp, target)) == 0 {
			h.writeError(w, r, fhir.Errorf(fhir.KindNotFound, "%s is not in the %s compartment", target, comp))
			return
		}
		types = []string{target}
	}
	h.search(w, r, searchScope{
		types:       types,
		compartment: &search.Compartment{Type: comp, ID: id},
		path:        "/" + comp + "/" + id + "/" + target,
	})
}

// search runs a search at any level and answers with a searchset Bundle.
func (h *Handler) search(w http.ResponseWriter, r *http.Request, scope searchScope) {
	params, err := h.searchParams(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if r.Method == http.MethodPost {
		// _format and _pretty in the form count as in the query string, so
		// that POST answers exactly as GET.
		if r, err = formatFromForm(r, params); err != nil {
			h.writeError(w, r, err)
			return
		}
	}
	// The caller's filter for a search of the one type of a type-level or
	// compartment search, or of every type; the store applies it in SQL to
	// everything the search touches (a search naming another patient finds
	// nothing).
	typ := ""
	if len(scope.types) == 1 {
		typ = scope.types[0]
	}
	f, err := h.access(r, authz.Search, typ)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	t := h.tenantFrom(r.Context())
	body, err := h.searchset(t, params, scope, preferHandling(r) == "strict",
		func(q *search.Query) (*store.SearchPage, error) { return h.searchUnder(r.Context(), t.name, q, f) })
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeBody(w, r, formatFrom(r.Context()), http.StatusOK, body)
}

// searchset runs a search with find (the store's search, or a
// transaction's) and returns the searchset Bundle. params are the search's
// parameters (_format and _pretty only go into its links).
func (h *Handler) searchset(t tenant, params url.Values, scope searchScope, strict bool,
	find func(*search.Query) (*store.SearchPage, error)) ([]byte, error) {
	q, err := search.Parse(params, search.Options{
		Types:       scope.types,
		Compartment: scope.compartment,
		Strict:      strict,
		MaxCount:    maxSearchCount,
		Base:        t.base,
		FullText:    h.fullText(),
	})
	if err != nil {
		return nil, err
	}

	// The links repeat the search as Parse understood it (ignored
	// parameters left out), with the format of this response. The type of
	// a type-level or compartment search is in the path, not in _type.
	query := q.Params()
	if len(scope.types) > 0 {
		query.Del("_type")
	}
	for _, k := range []string{"_format", "_pretty"} {
		if v, ok := params[k]; ok {
			query[k] = v
		}
	}
	path := t.base + scope.path
	self := link(path, query)
	query.Del(searchCursorParam)
	first := link(path, query)

	if err := h.servedTypes(q, scope); err != nil {
		return nil, err
	}
	countOnly := q.Summary == search.SummaryCount
	if countOnly && q.Total == search.TotalDefault {
		q.Total = search.TotalAccurate
	}
	page, err := find(q)
	if err != nil {
		return nil, err
	}
	next := ""
	if page.Next != "" && !countOnly {
		next = link(path, with(query, searchCursorParam, page.Next))
	}
	return h.writeSearchset(t, q, page, countOnly, self, first, next)
}

// writeSearchset writes the searchset Bundle of a page of q's results with
// its links (next "" on the last page): an outcome entry for the
// parameters q ignored, then the matches and the includes (none when
// countOnly), each with _summary and _elements applied.
func (h *Handler) writeSearchset(t tenant, q *search.Query, page *store.SearchPage, countOnly bool, self, first, next string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"resourceType":"Bundle","type":"searchset"`)
	if page.Total >= 0 {
		fmt.Fprintf(&b, `,"total":%d`, page.Total)
	}
	b.WriteString(`,"link":[`)
	writeLink(&b, "self", self)
	b.WriteByte(',')
	writeLink(&b, "first", first)
	if next != "" {
		b.WriteByte(',')
		writeLink(&b, "next", next)
	}
	b.WriteByte(']')
	entries := 0
	entry := func() {
		if entries == 0 {
			b.WriteString(`,"entry":[`)
		} else {
			b.WriteByte(',')
		}
		entries++
	}
	if len(q.Unknown) > 0 {
		entry()
		b.WriteString(`{"resource":`)
		b.Write(ignoredOutcome(q.Unknown))
		b.WriteString(`,"search":{"mode":"outcome"}}`)
	}
	if !countOnly {
		sub := newSubsetter(q)
		for _, list := range []struct {
			resources []fhir.Resource
			mode      string
		}{{page.Matches, "match"}, {page.Included, "include"}} {
			for i := range list.resources {
				res := &list.resources[i]
				body, err := h.elements.apply(sub, res.Body, list.mode == "match")
				if err != nil {
					return nil, err
				}
				entry()
				b.WriteString(`{"fullUrl":`)
				writeJSONString(&b, t.base+"/"+res.Type+"/"+res.ID)
				b.WriteString(`,"resource":`)
				b.Write(body)
				b.WriteString(`,"search":{"mode":"`)
				b.WriteString(list.mode)
				b.WriteString(`"}}`)
			}
		}
	}
	if entries > 0 {
		b.WriteByte(']')
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// servedTypes confines a search to the types this server serves: a _type
// naming another is 404 like its URL would be, and a search over all types
// becomes one over the served ones when Deps.ResourceTypes narrowed them.
func (h *Handler) servedTypes(q *search.Query, scope searchScope) error {
	for _, typ := range q.Types {
		if !h.types[typ] {
			return fhir.Errorf(fhir.KindNotFound, "unknown resource type %q", typ)
		}
	}
	if len(q.Types) > 0 || len(h.typeList) == len(fhir.ResourceTypes()) {
		return nil
	}
	all := h.typeList
	if scope.compartment != nil {
		all = fhir.CompartmentMembers(scope.compartment.Type)
	}
	for _, typ := range all {
		if h.types[typ] {
			q.Types = append(q.Types, typ)
		}
	}
	if len(q.Types) == 0 {
		return fhir.Errorf(fhir.KindNotFound, "this server serves none of the types searched")
	}
	return nil
}

// searchParams returns the parameters of a search: the query string, and
// for POST .../_search also the form body, merged (a parameter given in
// both keeps all its values, which means AND as for a repeated one).
func (h *Handler) searchParams(r *http.Request) (url.Values, error) {
	params, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, fhir.Errorf(fhir.KindInvalid, "the query string is malformed: %v", err)
	}
	if r.Method != http.MethodPost {
		return params, nil
	}
	if v := r.Header.Get("Content-Type"); v != "" {
		mt, ps, err := mime.ParseMediaType(v)
		if err != nil {
			return nil, fhir.Errorf(fhir.KindUnsupportedMediaType, "Content-Type %q cannot be parsed", v)
		}
		if mt != "application/x-www-form-urlencoded" {
			return nil, fhir.Errorf(fhir.KindUnsupportedMediaType,
				"Content-Type %q is not supported for _search; send application/x-www-form-urlencoded", mt)
		}
		if cs, has := ps["charset"]; has && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
			return nil, fhir.Errorf(fhir.KindUnsupportedMediaType, "charset %q is not supported; send utf-8", cs)
		}
	}
	raw, err := readBody(r)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(raw)) > 0 && r.Header.Get("Content-Type") == "" {
		return nil, fhir.Errorf(fhir.KindUnsupportedMediaType,
			"Content-Type is missing; send the parameters as application/x-www-form-urlencoded")
	}
	form, err := url.ParseQuery(string(bytes.TrimSpace(raw)))
	if err != nil {
		return nil, fhir.Errorf(fhir.KindInvalid, "the form body is malformed: %v", err)
	}
	for k, vs := range form {
		params[k] = append(params[k], vs...)
	}
	return params, nil
}

// formatFromForm applies _format and _pretty of a POST _search form, as
// negotiate applied those of the query string (which come first in params,
// so that they win).
func formatFromForm(r *http.Request, params url.Values) (*http.Request, error) {
	f := formatFrom(r.Context())
	if params.Get("_pretty") == "true" {
		f.pretty = true
	}
	r = r.WithContext(withFormat(r.Context(), f))
	if v := params.Get("_format"); v != "" {
		ct, ok := formatParam(v)
		if !ok {
			return r, fhir.Errorf(fhir.KindNotAcceptable,
				"_format %q is not supported; this server writes json (application/fhir+json or application/json)", v)
		}
		f.contentType = ct
	}
	return r.WithContext(withFormat(r.Context(), f)), nil
}

// preferHandling returns the handling preference of the Prefer header
// (strict or lenient; "" when absent).
func preferHandling(r *http.Request) string {
	for _, v := range r.Header.Values("Prefer") {
		for _, pref := range strings.Split(v, ",") {
			pref, _, _ = strings.Cut(pref, ";")
			k, val, ok := strings.Cut(strings.TrimSpace(pref), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "handling") {
				return strings.ToLower(strings.Trim(strings.TrimSpace(val), `"`))
			}
		}
	}
	return ""
}

// link is path with query (sorted by key, as url.Values.Encode does).
func link(path string, query url.Values) string {
	if len(query) == 0 {
		return path
	}
	return path + "?" + query.Encode()
}

// with returns a copy of query with k set to v.
func with(query url.Values, k, v string) url.Values {
	c := make(url.Values, len(query)+1)
	for key, vs := range query {
		c[key] = vs
	}
	c.Set(k, v)
	return c
}

func writeLink(b *bytes.Buffer, rel, u string) {
	b.WriteString(`{"relation":`)
	writeJSONString(b, rel)
	b.WriteString(`,"url":`)
	writeJSONString(b, u)
	b.WriteByte('}')
}

// ignoredOutcome is the OperationOutcome of a search entry with
// search.mode outcome: one warning per parameter the search ignored.
func ignoredOutcome(issues []search.Issue) []byte {
	sorted := append([]search.Issue(nil), issues...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Param < sorted[j].Param })
	oo := outcome{ResourceType: "OperationOutcome"}
	for _, is := range sorted {
		oo.Issue = append(oo.Issue, outcomeIssue{
			Severity:    "warning",
			Code:        "not-supported",
			Diagnostics: fmt.Sprintf("ignored %s: %s", is.Param, is.Message),
		})
	}
	b, _ := json.Marshal(oo) // strings only: cannot fail
	return b
}

// fullTextStore is a store that may implement _text and _content.
type fullTextStore interface{ SearchesFullText() bool }

// fullText reports whether the store searches _text and _content; without
// it they are unknown parameters (ignored and reported, or 400 strict).
func (h *Handler) fullText() bool {
	ft, ok := h.store.(fullTextStore)
	return ok && ft.SearchesFullText()
}
