package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5/middleware"

	"github.com/fhirserver/fhirserver/authz"
	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/store"
)

// The audit of writes. Every request that may write (POST, PUT, PATCH,
// DELETE, except searches by POST) is audited after it has been answered:
// one "audit" log line per write, allowed or denied, and with
// Deps.AuditEvents an AuditEvent resource per write in the store. A batch
// or transaction Bundle is audited per write entry, from the request's
// entries and the response's entry[].response (or the one error of a
// failed transaction). The audit is a middleware, not part of the
// handlers: it sees what the client got, and no handler can forget it.
//
// The rule of a denial comes from the decisions made for the request
// (authz.Caller.Observed) and from the checks around writes (visibleIn
// notes a resource outside the caller's filter).
//
// Storing an AuditEvent happens after the response is flushed; a failure
// is logged and does not change the answer. Writes of AuditEvent resources
// are logged but get no AuditEvent (no audit of the audit).

// auditRecord collects, while a write request runs, what the audit needs
// to know about its access decisions.
type auditRecord struct {
	mu        sync.Mutex
	denials   []auditDenial
	lastAllow []string          // rules of the last allowing decision
	outside   map[string]string // Type/id (or Type) found outside the filter -> its rules
	// written is the resource a plain write answered with (writeWritten):
	// a conditional one's id is in no URL, and a 200 has no Location.
	written *fhir.Resource
}

// noteWritten records the resource a write answers with.
func noteWritten(ctx context.Context, res *fhir.Resource) {
	if a := auditFrom(ctx); a != nil && res != nil {
		a.mu.Lock()
		a.written = res
		a.mu.Unlock()
	}
}

type auditDenial struct {
	typ  string
	rule string
}

type auditKey struct{}

func auditFrom(ctx context.Context) *auditRecord {
	rec, _ := ctx.Value(auditKey{}).(*auditRecord)
	return rec
}

func (a *auditRecord) observe(req authz.Request, d authz.Decision) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if d.Allow {
		a.lastAllow = d.Rules
		return
	}
	a.denials = append(a.denials, auditDenial{typ: req.Type, rule: d.Rule})
}

// noteOutside records that typ/id is outside the caller's filter f (a
// write refused as not found or forbidden by the checks around it). An
// empty f is a denied decision (update-as-create without create): its rule
// is the denial's.
func noteOutside(ctx context.Context, typ, id string, f store.Filter) {
	a := auditFrom(ctx)
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.outside == nil {
		a.outside = map[string]string{}
	}
	rule := "outside what the caller may write"
	switch {
	case len(f.Grants) == 0 && len(a.denials) > 0:
		rule = a.denials[len(a.denials)-1].rule
	case len(a.lastAllow) > 0:
		rule += " (" + strings.Join(a.lastAllow, ", ") + ")"
	}
	a.outside[typ+"/"+id] = rule
	a.outside[typ] = rule
}

// ruleFor is the rule that denied a write wr, "" when it was not denied
// by access control: the last denying decision on its type, else the
// check that found it outside the caller's filter, else the message of the
// 403 (the access check in front of the handlers refuses restricted tokens
// some interactions without a denying decision).
func (a *auditRecord) ruleFor(wr auditWrite) (denied bool, rule string) {
	status, typ, id := wr.status, wr.typ, wr.id
	a.mu.Lock()
	defer a.mu.Unlock()
	if status != http.StatusForbidden && status != http.StatusNotFound && status != http.StatusUnauthorized {
		return false, ""
	}
	if status == http.StatusUnauthorized {
		return true, "no valid access token"
	}
	if r, ok := a.outside[typ+"/"+id]; ok && id != "" {
		return true, r
	}
	if status == http.StatusForbidden {
		for i := len(a.denials) - 1; i >= 0; i-- {
			if a.denials[i].typ == typ || a.denials[i].typ == "" {
				return true, a.denials[i].rule
			}
		}
		if r, ok := a.outside[typ]; ok {
			return true, r
		}
		if wr.diagnostics != "" {
			return true, "server: " + wr.diagnostics
		}
		return true, "forbidden"
	}
	return false, ""
}

// auditWrite is one audited write.
type auditWrite struct {
	interaction string // create, update, conditional-update, ..., operation, batch, transaction
	operation   string // $name of an operation
	entry       int    // index in a Bundle, -1 for a plain request
	typ, id     string
	version     string
	status      int
	diagnostics string // of a failed answer's OperationOutcome
}

// audits reports whether a request may write and is audited.
func audits(method string, seg []string) bool {
	switch method {
	case http.MethodPost:
		return len(seg) == 0 || seg[len(seg)-1] != "_search"
	case http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// audit is the middleware; it sits behind the bearer middleware (so the
// caller is known) and in front of the access check (so that its denials
// are audited too).
func (h *Handler) audit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			next.ServeHTTP(w, r) // reads cost nothing here
			return
		}
		seg := fhirPath(r)
		if !audits(r.Method, seg) {
			next.ServeHTTP(w, r)
			return
		}
		rec := &auditRecord{}
		ctx := context.WithValue(r.Context(), auditKey{}, rec)
		caller, hasCaller := CallerFrom(ctx)
		if hasCaller {
			ctx = withCaller(ctx, caller.Observed(rec.observe))
		}
		isBundle := r.Method == http.MethodPost && len(seg) == 0
		var reqBody, respBody bytes.Buffer
		if isBundle && r.Body != nil {
			r.Body = teeBody{Reader: io.TeeReader(r.Body, &reqBody), Closer: r.Body}
		}
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		if isBundle {
			ww.Tee(&respBody)
		} else {
			// The start of the answer: a 403's OperationOutcome says why
			// when no decision does (the access check in front of the
			// handlers refuses restricted tokens some interactions).
			ww.Tee(&capped{buf: &respBody, max: 4096})
		}
		next.ServeHTTP(ww, r.WithContext(ctx))
		if isBundle && r.Body != nil {
			// A Bundle refused before it was read (the access check in
			// front of the handler) is read now, through the tee, so that
			// its entries are audited too.
			_, _ = io.Copy(io.Discard, r.Body)
		}
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK
		}
		var writes []auditWrite
		if isBundle {
			writes = h.bundleWrites(r, reqBody.Bytes(), respBody.Bytes(), status)
		} else {
			wr := h.requestWrite(r, seg, ww.Header(), status)
			if res := rec.written; res != nil && status < 300 {
				wr.typ, wr.id, wr.version = res.Type, res.ID, strconv.FormatInt(res.Version, 10)
			}
			writes = []auditWrite{wr}
		}
		if !hasCaller {
			caller = nil
		}
		if status == http.StatusForbidden {
			diag := diagnosticsOf(respBody.Bytes())
			for i := range writes {
				if writes[i].diagnostics == "" {
					writes[i].diagnostics = diag
				}
			}
		}
		for _, wr := range writes {
			h.logAudit(ctx, caller, rec, wr)
		}
		if h.auditEvents {
			// The client has its answer before the AuditEvents are written.
			if f, ok := ww.(http.Flusher); ok {
				f.Flush()
			}
			h.storeAuditEvents(ctx, caller, rec, writes)
		}
	})
}

// capped keeps the first max bytes written to it.
type capped struct {
	buf *bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// diagnosticsOf is the message of an OperationOutcome, "" for anything
// else.
func diagnosticsOf(body []byte) string {
	var oo outcome
	if json.Unmarshal(body, &oo) != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
		return ""
	}
	return oo.Issue[0].Diagnostics
}

type teeBody struct {
	io.Reader
	io.Closer
}

// requestWrite describes a plain (not Bundle) write from its request and
// response; a Bundle entry's too (a conditional one has a one-segment
// path: Type?criteria).
func (h *Handler) requestWrite(r *http.Request, seg []string, hdr http.Header, status int) auditWrite {
	wr := auditWrite{entry: -1, status: status}
	last := ""
	if len(seg) > 0 {
		last = seg[len(seg)-1]
	}
	switch {
	case strings.HasPrefix(last, "$"):
		wr.interaction, wr.operation = "operation", last
		if len(seg) > 1 {
			wr.typ = seg[0]
		}
		if len(seg) > 2 {
			wr.id = seg[1]
		}
	case len(seg) == 1 || len(seg) == 2:
		wr.typ = seg[0]
		cond := len(seg) == 1
		switch r.Method {
		case http.MethodPost:
			wr.interaction, cond = "create", r.Header.Get("If-None-Exist") != ""
		case http.MethodPut:
			wr.interaction = "update"
		case http.MethodPatch:
			wr.interaction = "patch"
		case http.MethodDelete:
			wr.interaction = "delete"
		}
		if cond {
			wr.interaction = "conditional-" + wr.interaction
		}
		if len(seg) == 2 {
			wr.id = seg[1]
		}
	default:
		wr.interaction = strings.ToLower(r.Method)
		if len(seg) > 0 {
			wr.typ = seg[0]
		}
	}
	h.fromLocation(r.Context(), &wr, hdr.Get("Location"), hdr.Get("ETag"))
	return wr
}

// fromLocation fills in the id and version of a write from its Location
// (B/fhir/Type/id/_history/v) and ETag (W/"v").
func (h *Handler) fromLocation(ctx context.Context, wr *auditWrite, loc, etag string) {
	if loc != "" {
		rel := strings.TrimPrefix(loc, h.tenantFrom(ctx).base+"/")
		parts := strings.Split(strings.Trim(rel, "/"), "/")
		if len(parts) >= 2 && fhir.IsResourceType(parts[0]) {
			wr.typ, wr.id = parts[0], parts[1]
		}
		if len(parts) == 4 && parts[2] == "_history" {
			wr.version = parts[3]
		}
	}
	if wr.version == "" && etag != "" {
		wr.version = strings.Trim(strings.TrimPrefix(etag, "W/"), `"`)
	}
}

// bundleWrites describes the write entries of a batch or transaction
// Bundle: each with its own response when the answer is a response Bundle
// with one entry per request entry, each with the Bundle's status when it
// failed as a whole. A Bundle whose entries cannot be read is one write.
func (h *Handler) bundleWrites(r *http.Request, reqBody, respBody []byte, status int) []auditWrite {
	var in struct {
		Type  string `json:"type"`
		Entry []struct {
			Request *struct {
				Method      string `json:"method"`
				URL         string `json:"url"`
				IfNoneExist string `json:"ifNoneExist"`
			} `json:"request"`
		} `json:"entry"`
	}
	whole := auditWrite{interaction: "batch-or-transaction", entry: -1, status: status}
	if json.Unmarshal(reqBody, &in) != nil || (in.Type != "batch" && in.Type != "transaction") {
		return []auditWrite{whole}
	}
	whole.interaction = in.Type
	var out struct {
		ResourceType string `json:"resourceType"`
		Entry        []struct {
			Response struct {
				Status   string          `json:"status"`
				Location string          `json:"location"`
				Etag     string          `json:"etag"`
				Outcome  json.RawMessage `json:"outcome"`
			} `json:"response"`
		} `json:"entry"`
	}
	perEntry := status < 300 && json.Unmarshal(respBody, &out) == nil && out.ResourceType == "Bundle" && len(out.Entry) == len(in.Entry)
	writes := []auditWrite{whole}
	base := h.tenantFrom(r.Context()).base + "/"
	for i, e := range in.Entry {
		if e.Request == nil {
			continue
		}
		method := strings.ToUpper(e.Request.Method)
		if method != http.MethodPost && method != http.MethodPut && method != http.MethodPatch && method != http.MethodDelete {
			continue
		}
		u, err := url.Parse(strings.TrimPrefix(e.Request.URL, base))
		if err != nil {
			u = &url.URL{}
		}
		var seg []string
		if p := strings.Trim(u.Path, "/"); p != "" {
			seg = strings.Split(p, "/")
		}
		if method == http.MethodPost && len(seg) > 0 && seg[len(seg)-1] == "_search" {
			continue
		}
		hdr := http.Header{}
		if e.Request.IfNoneExist != "" {
			hdr.Set("If-None-Exist", e.Request.IfNoneExist)
		}
		er := (&http.Request{Method: method, Header: hdr}).WithContext(r.Context())
		var loc, etag, diag string
		st := status
		if perEntry {
			resp := out.Entry[i].Response
			st, _ = strconv.Atoi(strings.SplitN(strings.TrimSpace(resp.Status), " ", 2)[0])
			loc, etag, diag = resp.Location, resp.Etag, diagnosticsOf(resp.Outcome)
		}
		wr := h.requestWrite(er, seg, http.Header{"Location": {loc}, "Etag": {etag}}, st)
		wr.entry, wr.diagnostics = i, diag
		writes = append(writes, wr)
	}
	return writes
}

// logAudit writes the audit line of one write.
func (h *Handler) logAudit(ctx context.Context, c *authz.Caller, rec *auditRecord, wr auditWrite) {
	denied, rule := rec.ruleFor(wr)
	outcome := "success"
	switch {
	case denied:
		outcome = "denied"
	case wr.status >= 400:
		outcome = "failed"
	}
	attrs := []slog.Attr{
		slog.String("request_id", requestIDFrom(ctx)),
		slog.String("tenant", h.tenantFrom(ctx).name),
	}
	if c != nil {
		attrs = append(attrs, slog.String("sub", c.Subject), slog.String("client_id", c.ClientID), slog.String("fhir_user", c.FHIRUser()))
	}
	attrs = append(attrs, slog.String("interaction", wr.interaction))
	if wr.operation != "" {
		attrs = append(attrs, slog.String("operation", wr.operation))
	}
	if wr.entry >= 0 {
		attrs = append(attrs, slog.Int("entry", wr.entry))
	}
	attrs = append(attrs,
		slog.String("type", wr.typ), slog.String("id", wr.id), slog.String("version", wr.version),
		slog.Int("status", wr.status), slog.String("outcome", outcome))
	if denied {
		attrs = append(attrs, slog.String("rule", rule))
	}
	h.auditLog.LogAttrs(ctx, slog.LevelInfo, "audit", attrs...)
}

// storeAuditEvents stores one AuditEvent per write (not for the Bundle
// itself when its entries are audited, and not for writes of AuditEvents).
// A failure is logged: the write it describes has been answered already.
func (h *Handler) storeAuditEvents(ctx context.Context, c *authz.Caller, rec *auditRecord, writes []auditWrite) {
	var events []store.Write
	tenant := h.tenantFrom(ctx).name
	for i, wr := range writes {
		if wr.typ == "AuditEvent" || (wr.entry < 0 && i == 0 && len(writes) > 1) {
			continue
		}
		events = append(events, store.Write{Tenant: tenant, Type: "AuditEvent", Body: h.auditEvent(c, rec, wr)})
	}
	if len(events) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var err error
	if len(events) == 1 {
		_, err = h.store.Create(ctx, events[0])
	} else {
		err = h.store.Transact(ctx, tenant, func(tx store.Tx) error {
			for _, e := range events {
				if _, err := tx.Create(ctx, e); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		h.log.ErrorContext(ctx, "audit events not stored", "request_id", requestIDFrom(ctx), "events", len(events), "error", err)
	}
}

// auditEvent is the R4 AuditEvent of one write.
func (h *Handler) auditEvent(c *authz.Caller, rec *auditRecord, wr auditWrite) []byte {
	type coding struct {
		System  string `json:"system,omitempty"`
		Code    string `json:"code"`
		Display string `json:"display,omitempty"`
	}
	type reference struct {
		Reference  string `json:"reference,omitempty"`
		Identifier *struct {
			System string `json:"system"`
			Value  string `json:"value"`
		} `json:"identifier,omitempty"`
		Display string `json:"display,omitempty"`
	}
	type agent struct {
		Type *struct {
			Coding []coding `json:"coding"`
		} `json:"type,omitempty"`
		Who       reference `json:"who"`
		AltID     string    `json:"altId,omitempty"`
		Requestor bool      `json:"requestor"`
	}
	type entity struct {
		What *reference `json:"what,omitempty"`
		Type *coding    `json:"type,omitempty"`
	}
	denied, rule := rec.ruleFor(wr)
	subtype := strings.TrimPrefix(wr.interaction, "conditional-")
	action := "E"
	switch subtype {
	case "create":
		action = "C"
	case "update", "patch":
		action = "U"
		if wr.status == http.StatusCreated {
			action = "C"
		}
	case "delete":
		action = "D"
	}
	switch subtype {
	case "create", "update", "patch", "delete", "operation", "batch", "transaction":
	default:
		subtype = "operation"
	}
	outcome := "0"
	switch {
	case wr.status >= 500:
		outcome = "8"
	case wr.status >= 400:
		outcome = "4"
	}
	desc := strconv.Itoa(wr.status) + " " + http.StatusText(wr.status) + " (" + wr.interaction + ")"
	if denied {
		desc += "; denied by " + rule
	}
	ev := struct {
		ResourceType string   `json:"resourceType"`
		Type         coding   `json:"type"`
		Subtype      []coding `json:"subtype"`
		Action       string   `json:"action"`
		Recorded     string   `json:"recorded"`
		Outcome      string   `json:"outcome"`
		OutcomeDesc  string   `json:"outcomeDesc"`
		Agent        []agent  `json:"agent"`
		Source       struct {
			Site     string    `json:"site"`
			Observer reference `json:"observer"`
			Type     []coding  `json:"type"`
		} `json:"source"`
		Entity []entity `json:"entity,omitempty"`
	}{
		ResourceType: "AuditEvent",
		Type:         coding{System: "http://terminology.hl7.org/CodeSystem/audit-event-type", Code: "rest", Display: "RESTful Operation"},
		Subtype:      []coding{{System: "http://hl7.org/fhir/restful-interaction", Code: subtype, Display: subtype}},
		Action:       action,
		Recorded:     time.Now().UTC().Format(time.RFC3339Nano),
		Outcome:      outcome,
		OutcomeDesc:  desc,
	}
	ev.Source.Site = h.base
	ev.Source.Observer = reference{Display: "fhirserver at " + h.base}
	ev.Source.Type = []coding{{System: "http://terminology.hl7.org/CodeSystem/security-source-type", Code: "4", Display: "Application Server"}}
	client := func(id string, requestor bool) agent {
		a := agent{Who: reference{Display: "OAuth client " + id}, Requestor: requestor}
		a.Who.Identifier = &struct {
			System string `json:"system"`
			Value  string `json:"value"`
		}{System: h.base + "/oauth", Value: id}
		a.Type = &struct {
			Coding []coding `json:"coding"`
		}{Coding: []coding{{System: "http://dicom.nema.org/resources/ontology/DCM", Code: "110150", Display: "Application"}}}
		return a
	}
	switch {
	case c == nil:
		ev.Agent = []agent{{Who: reference{Display: "anonymous (authentication is off)"}, Requestor: true}}
	case c.FHIRUser() != "":
		ev.Agent = []agent{{Who: reference{Reference: c.FHIRUser()}, AltID: c.Subject, Requestor: true}}
		if c.ClientID != "" {
			ev.Agent = append(ev.Agent, client(c.ClientID, false))
		}
	case c.ClientID != "":
		ev.Agent = []agent{client(c.ClientID, true)}
		ev.Agent[0].AltID = c.Subject
	default:
		ev.Agent = []agent{{Who: reference{Display: "subject " + c.Subject}, Requestor: true}}
	}
	if wr.typ != "" && fhir.IsResourceType(wr.typ) {
		e := entity{Type: &coding{System: "http://hl7.org/fhir/resource-types", Code: wr.typ}}
		if wr.id != "" {
			ref := wr.typ + "/" + wr.id
			if wr.version != "" {
				ref += "/_history/" + wr.version
			}
			e.What = &reference{Reference: ref}
		}
		ev.Entity = []entity{e}
	}
	b, _ := json.Marshal(ev)
	return b
}
