package server

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/patch"
	"github.com/fhirserver/fhirserver/fhir/search"
	"github.com/fhirserver/fhirserver/store"
)

// Batch and transaction Bundles, POST B/fhir
// (http://hl7.org/fhir/R4/http.html#transaction):
//
//   - transaction: all entries in one store transaction, all or nothing.
//     Conditional entries (ifNoneExist, PUT/PATCH/DELETE Type?criteria) and
//     conditional references are resolved first, with the criteria locked
//     (store.Match), then references between entries are rewritten, then
//     the entries run in the order the specification gives (DELETE, POST,
//     PUT and PATCH, GET and HEAD). The first entry that fails fails the
//     transaction with its own status, and its message names the entry.
//     References to local resources that do not exist are refused
//     (Deps.References); the response is a transaction-response Bundle.
//   - batch: each entry on its own (writes each in their own transaction,
//     reads from the store), in Bundle order, each with its own status and,
//     on failure, an OperationOutcome in response.outcome. Entries of a
//     batch do not refer to each other: fullUrls are not rewritten.
//
// The response entries carry status, location, etag and lastModified; the
// resource (the stored bytes) only with Prefer: return=representation, an
// OperationOutcome saying what happened with return=OperationOutcome. GET
// and HEAD entries always carry what they read.

// bundleIn is what the server reads of a request Bundle.
type bundleIn struct {
	ResourceType string          `json:"resourceType"`
	Type         string          `json:"type"`
	Entry        []bundleEntryIn `json:"entry"`
}

type bundleEntryIn struct {
	FullURL  string          `json:"fullUrl"`
	Resource json.RawMessage `json:"resource"`
	Request  *struct {
		Method          string `json:"method"`
		URL             string `json:"url"`
		IfNoneMatch     string `json:"ifNoneMatch"`
		IfModifiedSince string `json:"ifModifiedSince"`
		IfMatch         string `json:"ifMatch"`
		IfNoneExist     string `json:"ifNoneExist"`
	} `json:"request"`
}

// bundle: POST B/fhir.
func (h *Handler) bundle(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	t := h.tenantFrom(ctx)
	body, _, err := h.readResource(r, "Bundle")
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	var in bundleIn
	if err := json.Unmarshal(body, &in); err != nil {
		h.writeError(w, r, fhir.Errorf(fhir.KindInvalid, "the Bundle cannot be read: %v", err))
		return
	}
	if in.Type != "transaction" && in.Type != "batch" {
		h.writeError(w, r, &fhir.Error{Kind: fhir.KindInvalid, Expression: []string{"Bundle.type"},
			Message: fmt.Sprintf("POST %s takes a Bundle of type transaction or batch, not %q", t.base, in.Type)})
		return
	}
	if len(in.Entry) > h.maxEntries {
		h.writeError(w, r, fhir.Errorf(fhir.KindTooLarge, "the Bundle has %d entries; this server takes at most %d in one %s", len(in.Entry), h.maxEntries, in.Type))
		return
	}
	transaction := in.Type == "transaction"
	entries := make([]*entry, len(in.Entry))
	failed := make([]error, len(in.Entry)) // batch: entries that cannot run
	for i := range in.Entry {
		e, err := h.parseEntry(t, i, &in.Entry[i])
		in.Entry[i].Resource = nil // the compact copy is all that is kept
		if err != nil {
			if transaction {
				h.writeError(w, r, (&entry{index: i, method: methodOf(&in.Entry[i]), url: urlOf(&in.Entry[i])}).fail(err))
				return
			}
			failed[i] = err
			continue
		}
		entries[i] = e
	}

	var rw *rewriter
	if transaction {
		seen := map[string]int{}
		for i, e := range entries {
			if e.hist {
				// History reads the store, not the transaction.
				h.writeError(w, r, e.fail(fhir.Errorf(fhir.KindNotSupported, "history is served in a batch, not in a transaction (it would not see the transaction's own writes)")))
				return
			}
			if e.fullURL == "" {
				continue
			}
			if first, dup := seen[e.fullURL]; dup {
				h.writeError(w, r, e.fail(fhir.Errorf(fhir.KindInvalid, "fullUrl %q is also the fullUrl of Bundle.entry[%d]", e.fullURL, first)))
				return
			}
			seen[e.fullURL] = i
		}
		rw = h.staticReferences(entries)
	}
	for i, err := range h.validateEntries(entries) {
		if err == nil {
			continue
		}
		if transaction {
			h.writeError(w, r, entries[i].fail(err))
			return
		}
		failed[i], entries[i] = entries[i].fail(err), nil
	}

	if transaction {
		err := h.store.Transact(ctx, t.name, func(tx store.Tx) error {
			return h.runEntries(ctx, tx, t, modeTransaction, entries, rw)
		})
		if err != nil {
			h.writeError(w, r, err)
			return
		}
	} else {
		for i, e := range entries {
			if e == nil {
				continue
			}
			if e.method == "GET" || e.method == "HEAD" {
				err := h.authorize(ctx, e)
				if err == nil {
					err = h.readEntry(ctx, storeReader{h.store, t.name}, t, e)
				}
				failed[i] = e.fail(err)
				continue
			}
			failed[i] = h.store.Transact(ctx, t.name, func(tx store.Tx) error {
				return h.runEntries(ctx, tx, t, modeBatch, []*entry{e}, nil)
			})
		}
	}
	h.writeBody(w, r, formatFrom(ctx), http.StatusOK, h.bundleResponse(r, t, in.Type+"-response", entries, failed))
}

func methodOf(e *bundleEntryIn) string {
	if e.Request == nil {
		return ""
	}
	return e.Request.Method
}

func urlOf(e *bundleEntryIn) string {
	if e.Request == nil {
		return ""
	}
	return e.Request.URL
}

// parseEntry reads one entry of a Bundle.
func (h *Handler) parseEntry(t tenant, i int, in *bundleEntryIn) (*entry, error) {
	if in.Request == nil {
		return nil, fhir.Errorf(fhir.KindInvalid, "Bundle.entry[%d] has no request", i)
	}
	req := in.Request
	e := &entry{index: i, fullURL: in.FullURL, method: req.Method, url: req.URL}
	if f := in.FullURL; f != "" {
		// bdl-8 and the fullUrl rules: absolute (a URL or a urn:), never a
		// version-specific reference.
		if !strings.HasPrefix(f, "urn:uuid:") && !strings.HasPrefix(f, "urn:oid:") &&
			!strings.HasPrefix(f, "http://") && !strings.HasPrefix(f, "https://") {
			return nil, &fhir.Error{Kind: fhir.KindInvalid, Expression: []string{fmt.Sprintf("Bundle.entry[%d].fullUrl", i)},
				Message: fmt.Sprintf("fullUrl %q is not absolute (an http(s) URL, urn:uuid: or urn:oid:)", f)}
		}
		if strings.Contains(f, "/_history/") {
			return nil, &fhir.Error{Kind: fhir.KindInvalid, Expression: []string{fmt.Sprintf("Bundle.entry[%d].fullUrl", i)},
				Message: fmt.Sprintf("fullUrl %q names a version; it must name the resource", f)}
		}
	}
	switch e.method {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE":
	default:
		return nil, fhir.Errorf(fhir.KindInvalid, "request.method %q is not GET, HEAD, POST, PUT, PATCH or DELETE", req.Method)
	}
	if req.IfMatch != "" {
		v, err := fhir.ParseETag(req.IfMatch)
		if err != nil {
			return nil, fhir.Errorf(fhir.KindInvalid, "request.ifMatch: %s", fhir.MessageOf(err))
		}
		e.ifMatch = v
	}
	path, query, err := h.entryURL(t, req.URL)
	if err != nil {
		return nil, err
	}
	segs := []string{}
	if path != "" {
		segs = strings.Split(path, "/")
	}
	if len(segs) > 0 && !h.types[segs[0]] && !(e.method == "GET" || e.method == "HEAD") {
		return nil, fhir.Errorf(fhir.KindNotFound, "unknown resource type %q", segs[0])
	}
	if len(segs) >= 1 {
		e.typ = segs[0]
	}
	if len(segs) >= 2 && !(len(segs) == 2 && segs[1] == "_history") {
		if !fhir.ValidID(segs[1]) {
			return nil, fhir.Errorf(fhir.KindInvalid, "%q is not a valid resource id", segs[1])
		}
		e.id = segs[1]
	}
	conditional := len(segs) == 1 && len(query) > 0
	targeted := len(segs) == 2 && len(query) == 0
	switch e.method {
	case "POST":
		if len(segs) != 1 || len(query) > 0 {
			return nil, fhir.Errorf(fhir.KindInvalid, "a POST entry's request.url is the resource type (Patient), not %q", req.URL)
		}
		if req.IfNoneExist != "" {
			if e.criteria, err = criteriaHeader(e.typ, req.IfNoneExist); err != nil {
				return nil, err
			}
		}
		e.id = newID()
		if e.body, e.bodyID, err = entryResource(in, e.typ); err != nil {
			return nil, err
		}
	case "PUT":
		if !conditional && !targeted {
			return nil, fhir.Errorf(fhir.KindInvalid, "a PUT entry's request.url is Type/id or Type?criteria, not %q", req.URL)
		}
		if e.body, e.bodyID, err = entryResource(in, e.typ); err != nil {
			return nil, err
		}
		if targeted && e.bodyID != "" && e.bodyID != e.id {
			return nil, &fhir.Error{Kind: fhir.KindInvalid, Expression: []string{e.typ + ".id"},
				Message: fmt.Sprintf("the resource id %q does not match the id %q of request.url", e.bodyID, e.id)}
		}
		if conditional {
			e.criteria, e.newID = query, newID()
		}
	case "DELETE", "PATCH":
		if !conditional && !targeted {
			return nil, fhir.Errorf(fhir.KindInvalid, "a %s entry's request.url is Type/id or Type?criteria, not %q", e.method, req.URL)
		}
		if conditional {
			e.criteria = query
		}
		if e.method == "PATCH" {
			if e.patch, err = entryPatch(in); err != nil {
				return nil, err
			}
		}
	case "GET", "HEAD":
		if err := h.entrySearchOrRead(e, segs, query); err != nil {
			return nil, err
		}
		e.cond = http.Header{}
		if req.IfNoneMatch != "" {
			e.cond.Set("If-None-Match", req.IfNoneMatch)
		}
		if req.IfModifiedSince != "" {
			e.cond.Set("If-Modified-Since", req.IfModifiedSince)
		}
	}
	if e.criteria != nil && len(e.criteria) == 0 {
		return nil, fhir.Errorf(fhir.KindInvalid, "the conditional criteria are empty")
	}
	return e, nil
}

// entryURL reads request.url: relative to the base, or absolute under it.
func (h *Handler) entryURL(t tenant, raw string) (path string, query url.Values, err error) {
	if raw == "" {
		return "", nil, fhir.Errorf(fhir.KindInvalid, "request.url is missing")
	}
	s := raw
	if strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") {
		if s != t.base && !strings.HasPrefix(s, t.base+"/") && !strings.HasPrefix(s, t.base+"?") {
			return "", nil, fhir.Errorf(fhir.KindInvalid, "request.url %q is not on this server (%s)", raw, t.base)
		}
		s = s[len(t.base):]
	}
	s = strings.TrimPrefix(s, "/")
	path, rawQuery, _ := strings.Cut(s, "?")
	if query, err = url.ParseQuery(rawQuery); err != nil {
		return "", nil, fhir.Errorf(fhir.KindInvalid, "the query of request.url %q is malformed: %v", raw, err)
	}
	for _, k := range []string{"_format", "_pretty"} {
		query.Del(k)
	}
	return strings.TrimSuffix(path, "/"), query, nil
}

// entrySearchOrRead reads the URL of a GET or HEAD entry: read, vread, or a
// search at system, type or compartment level.
func (h *Handler) entrySearchOrRead(e *entry, segs []string, query url.Values) error {
	served := func(typ string) error {
		if !h.types[typ] {
			return fhir.Errorf(fhir.KindNotFound, "unknown resource type %q", typ)
		}
		return nil
	}
	switch {
	case len(segs) == 1 && segs[0] == "_history":
		e.hist, e.typ, e.params = true, "", query
		return nil
	case len(segs) == 2 && segs[1] == "_history", len(segs) == 3 && segs[2] == "_history":
		e.hist, e.params = true, query
		return served(segs[0])
	case len(segs) == 0:
		e.scope, e.params = &searchScope{}, query
	case len(segs) == 1:
		if segs[0] == "_search" || strings.HasPrefix(segs[0], "$") || segs[0] == "_history" || segs[0] == "metadata" {
			break
		}
		if err := served(segs[0]); err != nil {
			return err
		}
		e.scope, e.params = &searchScope{types: []string{segs[0]}, path: "/" + segs[0]}, query
	case len(segs) == 2 && len(query) == 0:
		return served(segs[0])
	case len(segs) == 4 && segs[2] == "_history" && len(query) == 0:
		v, err := fhir.ParseVersion(segs[3])
		if err != nil {
			return err
		}
		e.vid = v
		return served(segs[0])
	case len(segs) == 3 && len(fhir.CompartmentMembers(segs[0])) > 0 && segs[2] != "_history":
		target := segs[2]
		var types []string
		if target != "*" {
			if err := served(target); err != nil {
				return err
			}
			if len(fhir.CompartmentParams(segs[0], target)) == 0 {
				return fhir.Errorf(fhir.KindNotFound, "%s is not in the %s compartment", target, segs[0])
			}
			types = []string{target}
		}
		e.scope, e.params = &searchScope{types: types, compartment: &search.Compartment{Type: segs[0], ID: segs[1]},
			path: "/" + strings.Join(segs, "/")}, query
		e.typ, e.id = "", ""
	}
	if e.scope == nil && e.id == "" {
		return fhir.Errorf(fhir.KindNotSupported, "%s %s is not supported in a Bundle (read, vread, search and history are)", e.method, e.url)
	}
	return nil
}

// criteriaHeader reads If-None-Exist (or request.ifNoneExist): the query
// part of a search URL, with or without "?" or "Type?" before it.
func criteriaHeader(typ, v string) (url.Values, error) {
	v = strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(v), typ), "?")
	q, err := url.ParseQuery(v)
	if err != nil {
		return nil, fhir.Errorf(fhir.KindInvalid, "If-None-Exist %q is not a search query: %v", v, err)
	}
	if len(q) == 0 {
		return nil, fhir.Errorf(fhir.KindInvalid, "If-None-Exist is empty; give search parameters (identifier=...)")
	}
	return q, nil
}

// entryResource returns an entry's resource, compact, checking its type.
func entryResource(in *bundleEntryIn, typ string) (body []byte, id string, err error) {
	if len(in.Resource) == 0 || string(in.Resource) == "null" {
		return nil, "", fhir.Errorf(fhir.KindInvalid, "the entry has no resource")
	}
	return compactResource(in.Resource, typ, "the entry's resource", "request.url")
}

// entryPatch reads the patch of a PATCH entry: a Binary holding a JSON Patch,
// or a Parameters resource (FHIRPath Patch).
func entryPatch(in *bundleEntryIn) (patch.Patch, error) {
	var head struct {
		ResourceType string `json:"resourceType"`
		ContentType  string `json:"contentType"`
		Data         string `json:"data"`
	}
	if len(in.Resource) == 0 || json.Unmarshal(in.Resource, &head) != nil {
		return nil, fhir.Errorf(fhir.KindInvalid, "a PATCH entry's resource is a Binary (JSON Patch) or a Parameters resource (FHIRPath Patch)")
	}
	switch head.ResourceType {
	case "Parameters":
		return patch.ParseFHIRPathPatch(in.Resource)
	case "Binary":
		if ct, _, _ := strings.Cut(head.ContentType, ";"); strings.TrimSpace(ct) != patch.MediaTypeJSONPatch {
			return nil, fhir.Errorf(fhir.KindUnsupportedMediaType, "a PATCH entry's Binary must have contentType %s, not %q", patch.MediaTypeJSONPatch, head.ContentType)
		}
		doc, err := base64.StdEncoding.DecodeString(head.Data)
		if err != nil {
			return nil, fhir.Errorf(fhir.KindInvalid, "the Binary's data is not base64: %v", err)
		}
		return patch.ParseJSONPatch(doc)
	}
	return nil, fhir.Errorf(fhir.KindInvalid, "a PATCH entry's resource is a Binary (JSON Patch) or a Parameters resource (FHIRPath Patch), not %q", head.ResourceType)
}

// staticReferences resolves what is known before the transaction: the
// fullUrls of entries whose id does not depend on a search, and rewrites
// the bodies with them (before validation).
func (h *Handler) staticReferences(entries []*entry) *rewriter {
	rw := newRewriter()
	for _, e := range entries {
		if e.fullURL == "" || e.conditional() || e.method == "GET" || e.method == "HEAD" {
			continue
		}
		rw.add(e.fullURL, e.typ, e.id)
	}
	for _, e := range entries {
		if e.body != nil {
			e.body = rw.rewrite(e.body, e.fullURL)
		}
	}
	return rw
}

// validateEntries validates the resources of POST and PUT entries, several
// at a time, and returns their errors by entry.
func (h *Handler) validateEntries(entries []*entry) []error {
	errs := make([]error, len(entries))
	if h.validator == nil {
		return errs
	}
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(entries)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				errs[i] = h.validate(entries[i].typ, entries[i].body)
			}
		}()
	}
	for i, e := range entries {
		if e != nil && e.body != nil {
			work <- i
		}
	}
	close(work)
	wg.Wait()
	return errs
}

// bundleResponse writes the batch-response or transaction-response Bundle,
// byte by byte like history: resources go in as the stored bytes.
func (h *Handler) bundleResponse(r *http.Request, t tenant, typ string, entries []*entry, failed []error) []byte {
	ret := preferReturn(r)
	var b bytes.Buffer
	b.WriteString(`{"resourceType":"Bundle","type":`)
	writeJSONString(&b, typ)
	if len(entries) == 0 {
		// FHIR JSON has no empty arrays.
		b.WriteByte('}')
		return b.Bytes()
	}
	b.WriteString(`,"entry":[`)
	for i, e := range entries {
		if i > 0 {
			b.WriteByte(',')
		}
		if failed[i] != nil || e == nil {
			status, _, outcome := h.errorOutcome(r, failed[i])
			b.WriteString(`{"response":{"status":`)
			writeJSONString(&b, entryStatus(status))
			b.WriteString(`,"outcome":`)
			b.Write(outcome)
			b.WriteString(`}}`)
			continue
		}
		h.writeEntryResponse(&b, t, e, ret)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

func (h *Handler) writeEntryResponse(b *bytes.Buffer, t tenant, e *entry, ret string) {
	res := &e.result
	b.WriteByte('{')
	var resource []byte
	switch {
	case e.method == "GET":
		resource = res.body
	case e.method == "HEAD":
	case ret == "representation" && res.res != nil && !res.res.Deleted:
		resource = res.res.Body
	}
	if res.res != nil && !res.res.Deleted && (resource != nil || e.method != "GET" && e.method != "HEAD") {
		b.WriteString(`"fullUrl":`)
		writeJSONString(b, t.base+"/"+res.res.Type+"/"+res.res.ID)
		b.WriteByte(',')
	}
	if resource != nil {
		b.WriteString(`"resource":`)
		b.Write(resource)
		b.WriteByte(',')
	}
	b.WriteString(`"response":{"status":`)
	writeJSONString(b, entryStatus(res.status))
	if v := res.res; v != nil {
		if !v.Deleted && e.method != "GET" && e.method != "HEAD" {
			b.WriteString(`,"location":`)
			writeJSONString(b, fmt.Sprintf("%s/%s/%s/_history/%d", t.base, v.Type, v.ID, v.Version))
		}
		b.WriteString(`,"etag":`)
		writeJSONString(b, v.ETag())
		b.WriteString(`,"lastModified":`)
		writeJSONString(b, fhir.FormatInstant(v.LastUpdated))
	}
	if ret == "OperationOutcome" && res.msg != "" {
		b.WriteString(`,"outcome":`)
		b.Write(outcomeJSON("information", "informational", res.msg, nil))
	}
	b.WriteString(`}}`)
}
