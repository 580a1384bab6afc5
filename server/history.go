package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/fhirserver/fhirserver/authz"
	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/store"
)

const (
	// defaultHistoryCount is the page size without _count.
	defaultHistoryCount = 50
	// maxHistoryCount caps _count so that one page stays a bounded amount
	// of memory; larger requests get this many, which the spec allows.
	maxHistoryCount = 1000
	// cursorParam carries store.HistoryPage.Next into the next page's URL.
	cursorParam = "_cursor"
)

// historySystem: GET B/fhir/_history.
func (h *Handler) historySystem(w http.ResponseWriter, r *http.Request) {
	h.history(w, r, "", "")
}

// historyType: GET B/fhir/{type}/_history.
func (h *Handler) historyType(w http.ResponseWriter, r *http.Request) {
	typ, err := h.resourceType(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.history(w, r, typ, "")
}

// historyInstance: GET B/fhir/{type}/{id}/_history.
func (h *Handler) historyInstance(w http.ResponseWriter, r *http.Request) {
	typ, id, err := h.instance(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.history(w, r, typ, id)
}

// historyParams reads _since, _at, _count and _cursor. countOnly reports
// _count=0, which asks for the total without entries.
func historyParams(q url.Values) (hq store.HistoryQuery, countOnly bool, err error) {
	hq.Count = defaultHistoryCount
	if v := q.Get("_count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return hq, false, fhir.Errorf(fhir.KindInvalid, "_count %q is not a non-negative integer", v)
		}
		switch {
		case n == 0:
			countOnly = true
			hq.Count = 1
		case n > maxHistoryCount:
			hq.Count = maxHistoryCount
		default:
			hq.Count = n
		}
	}
	if hq.Since, err = instantParam(q, "_since"); err != nil {
		return hq, false, err
	}
	if hq.At, err = instantParam(q, "_at"); err != nil {
		return hq, false, err
	}
	if v := q.Get(cursorParam); v != "" {
		c, err := strconv.ParseInt(v, 10, 64)
		if err != nil || c < 1 {
			return hq, false, fhir.Errorf(fhir.KindInvalid, "%s %q is not a cursor this server issued", cursorParam, v)
		}
		hq.Cursor = c
	}
	return hq, countOnly, nil
}

// instantParam reads a FHIR instant (date, time and zone) from the query.
func instantParam(q url.Values, name string) (time.Time, error) {
	v := q.Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	// An unencoded "+01:00" in a query string arrives as " 01:00".
	t, err := time.Parse(time.RFC3339Nano, strings.ReplaceAll(v, " ", "+"))
	if err != nil {
		return time.Time{}, fhir.Errorf(fhir.KindInvalid,
			"%s %q is not an instant such as 2024-01-02T03:04:05Z", name, v)
	}
	return t, nil
}

// history answers the three history levels with a Bundle of type history,
// newest first, paged by the store's cursor.
func (h *Handler) history(w http.ResponseWriter, r *http.Request, typ, id string) {
	q := r.URL.Query() // negotiate has already refused malformed queries
	if _, _, err := historyParams(q); err != nil {
		h.writeError(w, r, err)
		return
	}
	// A restricted caller sees the versions of the resources whose current
	// version its filter admits (store.HistoryQuery.Filter, in SQL).
	f, err := h.access(r, authz.History, typ)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	body, err := h.historyBody(r.Context(), h.tenantFrom(r.Context()), typ, id, q, r.URL.RawQuery, f)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeBody(w, r, formatFrom(r.Context()), http.StatusOK, body)
}

// historyBody runs the history of typ/id (either may be "") with the
// parameters q under the caller's filter f, and returns the history Bundle;
// rawQuery is the query its self link repeats. It reads the store, not a
// transaction. Plain requests and batch entries share it.
func (h *Handler) historyBody(ctx context.Context, t tenant, typ, id string, q url.Values, rawQuery string, f store.Filter) ([]byte, error) {
	hq, countOnly, err := historyParams(q)
	if err != nil {
		return nil, err
	}
	hq.Tenant, hq.Type, hq.ID = t.name, typ, id
	if !f.IsAllowAll() {
		hq.Filter = &f
	}
	page, err := h.store.History(ctx, hq)
	if err != nil {
		return nil, err
	}
	if id != "" && page.Total == 0 && hq.Filter != nil {
		// Empty for a restricted caller: a resource it may not see (or a
		// deleted one, which has no compartment to decide on) is not
		// known, exactly like one that never existed.
		if _, err := h.readUnder(ctx, t.name, typ, id, f); err != nil {
			return nil, err
		}
	}
	if id != "" && page.Total == 0 && hq.Filter == nil {
		// An empty history may just be filtered by _since or _at; only a
		// resource that never existed is 404 (a deleted one has history).
		if _, err := h.store.Read(ctx, t.name, typ, id); err != nil && fhir.KindOf(err) != fhir.KindGone {
			return nil, err
		}
	}

	path := t.base + "/_history"
	switch {
	case id != "":
		path = t.base + "/" + typ + "/" + id + "/_history"
	case typ != "":
		path = t.base + "/" + typ + "/_history"
	}
	self := path
	if rawQuery != "" {
		self += "?" + rawQuery
	}
	next := ""
	if page.Next != 0 && !countOnly {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("_count", strconv.Itoa(hq.Count))
		nq.Set(cursorParam, strconv.FormatInt(page.Next, 10))
		next = path + "?" + nq.Encode()
	}
	versions := page.Versions
	if countOnly {
		versions = nil
	}
	return historyBundle(t.base, page.Total, self, next, versions), nil
}

// historyBundle writes the Bundle byte by byte: each resource goes in as the
// stored bytes, never decoded and re-encoded.
func historyBundle(base string, total int64, self, next string, versions []store.Version) []byte {
	var b bytes.Buffer
	b.WriteString(`{"resourceType":"Bundle","type":"history","total":`)
	b.WriteString(strconv.FormatInt(total, 10))
	b.WriteString(`,"link":[{"relation":"self","url":`)
	writeJSONString(&b, self)
	b.WriteByte('}')
	if next != "" {
		b.WriteString(`,{"relation":"next","url":`)
		writeJSONString(&b, next)
		b.WriteByte('}')
	}
	b.WriteByte(']')
	if len(versions) > 0 {
		b.WriteString(`,"entry":[`)
		for i := range versions {
			if i > 0 {
				b.WriteByte(',')
			}
			writeHistoryEntry(&b, base, &versions[i])
		}
		b.WriteByte(']')
	}
	b.WriteByte('}')
	return b.Bytes()
}

func writeHistoryEntry(b *bytes.Buffer, base string, v *store.Version) {
	method, reqURL, status := "PUT", v.Type+"/"+v.ID, "200 OK"
	switch {
	case v.Deleted || v.Op == store.OpDelete:
		method, status = "DELETE", "204 No Content"
	case v.Op == store.OpCreate:
		method, reqURL, status = "POST", v.Type, "201 Created"
	case v.Version == 1:
		status = "201 Created" // update-as-create
	}
	b.WriteString(`{"fullUrl":`)
	writeJSONString(b, base+"/"+v.Type+"/"+v.ID)
	if !v.Deleted && len(v.Body) > 0 {
		b.WriteString(`,"resource":`)
		b.Write(v.Body)
	}
	b.WriteString(`,"request":{"method":`)
	writeJSONString(b, method)
	b.WriteString(`,"url":`)
	writeJSONString(b, reqURL)
	b.WriteString(`},"response":{"status":`)
	writeJSONString(b, status)
	b.WriteString(`,"etag":`)
	writeJSONString(b, v.ETag())
	b.WriteString(`,"lastModified":`)
	writeJSONString(b, fhir.FormatInstant(v.LastUpdated))
	b.WriteString(`}}`)
}

// writeJSONString writes s as a JSON string. HTML escaping is off so that
// links read as URLs ("&", not "\u0026").
func writeJSONString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)       // a string always encodes
	b.Truncate(b.Len() - 1) // Encode ends with a newline
}
