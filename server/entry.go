package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/fhirserver/fhirserver/authz"
	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/patch"
	"github.com/fhirserver/fhirserver/fhir/search"
	"github.com/fhirserver/fhirserver/store"
)

// An entry is one interaction of a batch or transaction Bundle, or the one
// interaction of a conditional, patch or checked-delete request, which runs
// the same way: parsed and validated before the store transaction, resolved
// and carried out inside it (store.Transact), in as many attempts as the
// store needs. Everything an attempt sets is reset at its start.
type entry struct {
	index   int    // position in Bundle.entry; -1 for a plain request
	fullURL string // Bundle.entry.fullUrl
	method  string // GET, HEAD, POST, PUT, PATCH or DELETE
	url     string // request.url as given, for messages

	typ      string
	id       string     // Type/id of the URL; for POST the id the new resource gets
	vid      int64      // GET Type/id/_history/vid
	criteria url.Values // PUT/PATCH/DELETE Type?criteria, POST ifNoneExist
	scope    *searchScope
	hist     bool       // GET history of typ/id (either may be ""; batch only)
	params   url.Values // GET search and history parameters
	ifMatch  int64
	cond     http.Header // GET: If-None-Match, If-Modified-Since
	body     []byte      // POST and PUT: compact, validated
	bodyID   string      // PUT: the id in the body ("" if none)
	newID    string      // conditional PUT without match or id: the id to create
	patch    patch.Patch
	acc      entryAccess // what the caller may do with it (authorize)

	// Set by each attempt.
	targets []string       // ids the entry acts on (conditional: its matches)
	byMatch bool           // targets are what the criteria matched
	matched *fhir.Resource // POST with ifNoneExist: the resource that matched
	out     []byte         // POST and PUT: body with every reference resolved
	result  entryResult
}

// entryResult is what an entry did, for its response.
type entryResult struct {
	status  int
	res     *fhir.Resource // the version written, read or matched (nil: none)
	body    []byte         // GET: the resource or searchset Bundle to return
	deleted []*fhir.Resource
	msg     string // what happened, for return=OperationOutcome
}

// conditional reports whether the entry finds its target by a search.
func (e *entry) conditional() bool { return e.criteria != nil }

// entryAccess is what the caller may do with one entry: its own decision,
// for its interaction and type, taken before anything runs (authorize).
// Every filter is AllowAll when it admits every resource of the type (and
// always without authentication), so that the checks can be skipped.
type entryAccess struct {
	// f is the interaction's filter: a GET reads under it (read, vread and
	// search exactly as the plain interactions); a write's target must be
	// inside it before (update, patch, delete; else 404, like a missing
	// one) and what it wrote after (create, update, patch; else 403, and
	// the transaction is rolled back). A PUT that creates is decided for
	// create once it has (checkAfter).
	f store.Filter
	// match is what conditional criteria match among: the caller's search
	// access of the type (Decision.Match). What it hides is neither matched
	// nor counted, so a hidden resource cannot make a conditional
	// interaction fail (412) or change what it does.
	match store.Filter
}

// interaction is what the entry does, as authz tells interactions apart.
func (e *entry) interaction() authz.Interaction {
	cond := e.conditional()
	switch e.method {
	case "POST":
		if cond {
			return authz.CondCreate
		}
		return authz.Create
	case "PUT":
		if cond {
			return authz.CondUpdate
		}
		return authz.Update
	case "PATCH":
		if cond {
			return authz.CondPatch
		}
		return authz.Patch
	case "DELETE":
		if cond {
			return authz.CondDelete
		}
		return authz.Delete
	}
	switch {
	case e.hist:
		return authz.History
	case e.scope != nil:
		return authz.Search
	case e.vid != 0:
		return authz.VRead
	}
	return authz.Read
}

// authorize decides the entry for the caller in ctx (e.acc). A caller
// whose scopes do not allow the entry's interaction on its type at all is
// refused (403), which says nothing about any resource.
func (h *Handler) authorize(ctx context.Context, e *entry) error {
	i, typ := e.interaction(), e.typ
	if e.scope != nil {
		// As the plain search: the one type of a type-level or
		// compartment search, else every type.
		typ = ""
		if len(e.scope.types) == 1 {
			typ = e.scope.types[0]
		}
	}
	f, m, err := h.decide(ctx, i, typ)
	if err != nil {
		return err
	}
	e.acc = entryAccess{f: f, match: m}
	return nil
}

// where names the entry in messages.
func (e *entry) where() string {
	if e.index < 0 {
		return ""
	}
	return fmt.Sprintf("Bundle.entry[%d] (%s %s): ", e.index, e.method, e.url)
}

// fail attributes err to the entry: its kind and cause stay, the message
// says which entry it is.
func (e *entry) fail(err error) error {
	if err == nil || e.index < 0 {
		return err
	}
	var fe *fhir.Error
	if !errors.As(err, &fe) || fe.Kind == fhir.KindInternal {
		return err
	}
	expr := fe.Expression
	if len(expr) == 0 {
		expr = []string{fmt.Sprintf("Bundle.entry[%d]", e.index)}
	}
	return &fhir.Error{Kind: fe.Kind, Message: e.where() + fe.Message, Expression: expr, Err: err}
}

// newID returns a random UUID (version 4), the form of id the store gives
// new resources.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const hex = "0123456789abcdef"
	out := make([]byte, 0, 36)
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hex[c>>4], hex[c&0x0f])
	}
	return string(out)
}

// mode is how entries run.
type mode int

const (
	// modeSingle: one interaction of a plain request.
	modeSingle mode = iota
	// modeBatch: one entry of a batch, on its own.
	modeBatch
	// modeTransaction: all entries of a transaction, all or nothing.
	modeTransaction
)

// runner carries out entries inside one attempt of a store transaction.
type runner struct {
	h       *Handler
	ctx     context.Context
	tx      store.Tx
	t       tenant
	mode    mode
	entries []*entry
	rw      *rewriter
	present map[store.Ref]bool // written or deleted by this attempt: whether it exists now
}

// runEntries carries out entries in tx: conditional targets and references
// first, then, as the specification orders a transaction, every DELETE,
// POST, PUT and PATCH, GET and HEAD; then the reference checks. It returns
// the first error (attributed to its entry); the entries' results are set
// when it returns nil.
func (h *Handler) runEntries(ctx context.Context, tx store.Tx, t tenant, m mode, entries []*entry, rw *rewriter) error {
	r := &runner{h: h, ctx: ctx, tx: tx, t: t, mode: m, entries: entries, rw: rw.clone(), present: map[store.Ref]bool{}}
	// Every entry is decided before any runs: a transaction with one
	// entry the caller may not perform at all fails whole, having done
	// nothing.
	for _, e := range entries {
		if err := h.authorize(ctx, e); err != nil {
			return e.fail(err)
		}
	}
	for _, e := range entries {
		e.targets, e.byMatch, e.matched, e.out, e.result = nil, false, nil, e.body, entryResult{}
	}
	if err := r.resolve(); err != nil {
		return err
	}
	for _, group := range [][]string{{"DELETE"}, {"POST"}, {"PUT", "PATCH"}} {
		if group[0] == "POST" {
			if err := r.createAll(); err != nil {
				return err
			}
			continue
		}
		for _, e := range entries {
			if !slicesContains(group, e.method) {
				continue
			}
			if err := r.write(e); err != nil {
				return e.fail(err)
			}
		}
	}
	if err := r.checkAfter(); err != nil {
		return err
	}
	if err := r.checkReferences(); err != nil {
		return err
	}
	if err := r.checkDeletes(); err != nil {
		return err
	}
	for _, e := range entries {
		if e.method == "GET" || e.method == "HEAD" {
			if err := r.read(e); err != nil {
				return e.fail(err)
			}
		}
	}
	return nil
}

func slicesContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// criteriaOf parses the criteria of a conditional interaction on typ, to
// match among what access admits.
func (r *runner) criteriaOf(typ string, criteria url.Values, access store.Filter) (store.Criteria, error) {
	c, err := parseCriteria(r.t, typ, r.rw.criteria(criteria))
	if err == nil && !access.IsAllowAll() {
		c.Access = &access
	}
	return c, err
}

// parseCriteria parses conditional criteria: a strict search of typ (an
// unknown parameter is an error, not a criterion silently left out).
func parseCriteria(t tenant, typ string, criteria url.Values) (store.Criteria, error) {
	q, err := search.Parse(criteria, search.Options{Types: []string{typ}, Strict: true, Base: t.base})
	if err != nil {
		return store.Criteria{}, err
	}
	if len(q.Clauses) == 0 {
		return store.Criteria{}, fhir.Errorf(fhir.KindInvalid, "the conditional criteria %q select nothing: give search parameters", criteria.Encode())
	}
	return store.Criteria{Type: typ, Query: q}, nil
}

// resolve finds the targets of conditional entries and of conditional
// references, rewrites the bodies with what it found, and refuses a
// transaction that touches one resource twice.
func (r *runner) resolve() error {
	dynamic := false
	for _, e := range r.entries {
		if e.method == "GET" || e.method == "HEAD" {
			continue
		}
		if !e.conditional() {
			if e.method != "POST" || e.id != "" {
				e.targets = []string{e.id}
			}
			continue
		}
		c, err := r.criteriaOf(e.typ, e.criteria, e.acc.match)
		if err != nil {
			return e.fail(err)
		}
		switch e.method {
		case "POST":
			found, err := store.MatchOne(r.ctx, r.tx, c)
			if err != nil {
				return e.fail(err)
			}
			e.matched = found
			if found != nil {
				e.targets, e.byMatch = []string{found.ID}, true
			} else {
				e.targets = []string{e.id}
			}
		case "PUT":
			found, err := store.MatchOne(r.ctx, r.tx, c)
			if err != nil {
				return e.fail(err)
			}
			switch {
			case found != nil && e.bodyID != "" && e.bodyID != found.ID:
				return e.fail(fhir.Errorf(fhir.KindInvalid, "the resource id %q is not the id %q of the resource the criteria match", e.bodyID, found.ID))
			case found != nil:
				e.targets, e.byMatch = []string{found.ID}, true
			case e.bodyID != "":
				e.targets = []string{e.bodyID}
			default:
				e.targets = []string{e.newID}
			}
		case "PATCH":
			found, err := store.MatchOne(r.ctx, r.tx, c)
			if err != nil {
				return e.fail(err)
			}
			if found == nil {
				return e.fail(fhir.Errorf(fhir.KindNotFound, "no %s matches the criteria %s", e.typ, readableQuery(e.criteria)))
			}
			e.targets, e.byMatch = []string{found.ID}, true
		case "DELETE":
			limit := 1
			if r.h.deleteMode == ConditionalDeleteMultiple {
				limit = maxConditionalDeletes
			}
			found, err := store.Match(r.ctx, r.tx, c, limit)
			if err != nil {
				return e.fail(err)
			}
			if len(found) > limit {
				if limit == 1 {
					return e.fail(fhir.Errorf(fhir.KindPreconditionFailed, "the criteria %s match more than one %s; this server deletes one resource per conditional delete", readableQuery(e.criteria), e.typ))
				}
				return e.fail(fhir.Errorf(fhir.KindPreconditionFailed, "the criteria %s match more than %d resources; make them more selective", readableQuery(e.criteria), limit))
			}
			for _, f := range found {
				e.targets = append(e.targets, f.ID)
			}
			e.byMatch = true
		}
		if e.fullURL != "" && len(e.targets) == 1 {
			r.rw.add(e.fullURL, e.typ, e.targets[0])
			dynamic = true
		}
	}
	if r.mode == modeTransaction {
		seen := map[store.Ref]*entry{}
		for _, e := range r.entries {
			for _, id := range e.targets {
				ref := store.Ref{Type: e.typ, ID: id}
				if other, dup := seen[ref]; dup {
					return e.fail(fhir.Errorf(fhir.KindInvalid, "%s is also the subject of Bundle.entry[%d]; a transaction may act on each resource once", ref, other.index))
				}
				seen[ref] = e
			}
		}
	}
	// Conditional references (Patient?identifier=...): one match each.
	conds, err := r.conditionalReferences()
	if err != nil {
		return err
	}
	if conds || dynamic {
		for _, e := range r.entries {
			if e.body == nil {
				continue
			}
			out := r.rw.rewrite(e.body, e.fullURL)
			if !bytes.Equal(out, e.body) {
				// A reference changed, which validation has not seen.
				if err := r.h.validate(e.typ, out); err != nil {
					return e.fail(err)
				}
			}
			e.out = out
		}
	}
	return nil
}

// conditionalReferences resolves the conditional references in the bodies
// of the entries, reporting whether there were any. They are searched
// without a lock: Tx.Missing, in the reference check, keeps the target from
// going away.
func (r *runner) conditionalReferences() (bool, error) {
	seen := false
	for _, e := range r.entries {
		if e.body == nil {
			continue
		}
		var err error
		forEachReference(e.body, func(ref string) bool {
			typ, query, ok := conditionalReference(ref)
			if !ok {
				return true
			}
			seen = true
			if _, done := r.rw.conds[ref]; done {
				return true
			}
			// Resolved only among what the caller may search of typ.
			access, _, perr := r.h.decide(r.ctx, authz.Search, typ)
			if perr != nil {
				err = e.fail(&fhir.Error{Kind: fhir.KindOf(perr), Message: "conditional reference " + ref + ": " + fhir.MessageOf(perr), Err: perr})
				return false
			}
			if wholeType(access, typ) {
				access = store.AllowAll()
			}
			c, perr := r.criteriaOf(typ, query, access)
			if perr != nil {
				err = e.fail(&fhir.Error{Kind: fhir.KindInvalid, Message: "conditional reference " + ref + ": " + fhir.MessageOf(perr), Err: perr})
				return false
			}
			found, ferr := store.Find(r.ctx, r.tx, c, 1)
			switch {
			case ferr != nil:
				err = e.fail(ferr)
			case len(found) == 0:
				err = e.fail(fhir.Errorf(fhir.KindInvalid, "the conditional reference %s matches no resource", ref))
			case len(found) > 1:
				err = e.fail(fhir.Errorf(fhir.KindPreconditionFailed, "the conditional reference %s matches more than one resource", ref))
			default:
				r.rw.conds[ref] = typ + "/" + found[0].ID
			}
			return err == nil
		})
		if err != nil {
			return seen, err
		}
	}
	return seen, nil
}

// createAll carries out the POST entries: those whose ifNoneExist found a
// resource answer with it, the others are created together
// (Tx.CreateAll: one statement on PostgreSQL).
func (r *runner) createAll() error {
	var creates []*entry
	var ws []store.Write
	for _, e := range r.entries {
		if e.method != "POST" {
			continue
		}
		if e.matched != nil {
			e.result = entryResult{status: http.StatusOK, res: e.matched,
				msg: fmt.Sprintf("%s/%s matches the criteria; nothing was created", e.typ, e.matched.ID)}
			r.present[store.Ref{Type: e.typ, ID: e.matched.ID}] = true
			continue
		}
		creates = append(creates, e)
		ws = append(ws, store.Write{Type: e.typ, ID: e.id, Body: e.out})
	}
	if len(ws) == 0 {
		return nil
	}
	created, err := r.tx.CreateAll(r.ctx, ws)
	if err != nil {
		// Blame the entry the message names, if any.
		msg := fhir.MessageOf(err)
		for _, e := range creates {
			if strings.Contains(msg, e.typ+"/"+e.id) {
				return e.fail(err)
			}
		}
		if len(creates) == 1 {
			return creates[0].fail(err)
		}
		return err
	}
	for i, e := range creates {
		res := created[i]
		r.present[store.Ref{Type: e.typ, ID: res.ID}] = true
		e.result = entryResult{status: http.StatusCreated, res: res, msg: fmt.Sprintf("created %s/%s", e.typ, res.ID)}
	}
	return nil
}

// write carries out a DELETE, PUT or PATCH.
func (r *runner) write(e *entry) error {
	ctx, tx := r.ctx, r.tx
	switch e.method {
	case "DELETE":
		e.result.status = http.StatusNoContent
		for _, id := range e.targets {
			if _, err := r.before(e, id); err != nil {
				return err
			}
			res, err := tx.Delete(ctx, store.Delete{Type: e.typ, ID: id, IfMatch: e.ifMatch})
			if err != nil {
				return err
			}
			r.present[store.Ref{Type: e.typ, ID: id}] = false
			if res != nil {
				e.result.deleted = append(e.result.deleted, res)
			}
		}
		switch n := len(e.result.deleted); {
		case n == 1:
			e.result.res = e.result.deleted[0]
			e.result.msg = fmt.Sprintf("deleted %s/%s", e.typ, e.result.res.ID)
		case n > 1:
			e.result.msg = fmt.Sprintf("deleted %d %s resources", n, e.typ)
		case e.conditional():
			e.result.msg = fmt.Sprintf("no %s matched the criteria; nothing was deleted", e.typ)
		default:
			e.result.msg = fmt.Sprintf("%s/%s did not exist or was already deleted", e.typ, e.id)
		}
		return nil
	case "PUT":
		id := e.targets[0]
		if _, err := r.before(e, id); err != nil {
			return err
		}
		res, created, err := tx.Update(ctx, store.Write{Type: e.typ, ID: id, Body: e.out, IfMatch: e.ifMatch})
		if err != nil {
			return err
		}
		r.present[store.Ref{Type: e.typ, ID: id}] = true
		e.result = entryResult{status: http.StatusOK, res: res, msg: fmt.Sprintf("updated %s/%s, version %d", e.typ, id, res.Version)}
		if created {
			e.result.status, e.result.msg = http.StatusCreated, fmt.Sprintf("created %s/%s", e.typ, id)
		}
		return nil
	case "PATCH":
		id := e.targets[0]
		exists, err := r.before(e, id)
		if err != nil {
			return err
		}
		if !exists && !e.acc.f.IsAllowAll() {
			// Missing or deleted: not known to a restricted caller.
			return notKnown(e.typ, id)
		}
		res, err := r.h.applyPatch(ctx, tx, e.typ, id, e.ifMatch, e.patch)
		if err != nil {
			return err
		}
		r.present[store.Ref{Type: e.typ, ID: id}] = true
		e.out = res.Body
		e.result = entryResult{status: http.StatusOK, res: res, msg: fmt.Sprintf("patched %s/%s, version %d", e.typ, id, res.Version)}
		return nil
	}
	return fhir.Errorf(fhir.KindNotSupported, "method %s is not supported here", e.method)
}

// before is the check before a write entry changes or deletes typ/id
// (insideBefore under e.acc.f): outside the filter it is not known (404),
// like a missing one; exists reports whether it is a current resource. A
// target the caller's criteria matched is one it may see, so that one is
// refused with 403 instead.
func (r *runner) before(e *entry, id string) (exists bool, err error) {
	if e.acc.f.IsAllowAll() {
		return true, nil // the write reports a missing resource itself
	}
	exists, err = insideBefore(r.ctx, r.tx, r.t.name, e.typ, id, e.acc.f)
	if fhir.KindOf(err) == fhir.KindNotFound && e.byMatch {
		return exists, fhir.Errorf(fhir.KindForbidden, "the access token's scopes do not allow %s of %s/%s, which the criteria match", e.interaction(), e.typ, id)
	}
	return exists, err
}

// checkAfter is the check after every write of the attempt: what a POST,
// PUT or PATCH wrote must be inside its entry's filter (a PUT that created
// needs create too, and must be inside its filter), else 403 and everything
// is rolled back. It runs once every entry has written, on what the
// transaction then holds.
func (r *runner) checkAfter() error {
	for _, e := range r.entries {
		f := e.acc.f
		switch {
		case e.method != "POST" && e.method != "PUT" && e.method != "PATCH", e.matched != nil, e.result.res == nil:
			continue
		case e.method == "PUT" && e.result.status == http.StatusCreated:
			var err error
			if f, _, err = r.h.decide(r.ctx, authz.Create, e.typ); err != nil {
				return e.fail(err)
			}
		}
		if err := insideAfter(r.ctx, r.tx, r.t.name, e.typ, e.result.res.ID, f); err != nil {
			return e.fail(err)
		}
	}
	return nil
}

// applyPatch reads typ/id (locked, so that no update can come between),
// applies p, checks and validates the result, and stores it.
func (h *Handler) applyPatch(ctx context.Context, tx store.Tx, typ, id string, ifMatch int64, p patch.Patch) (*fhir.Resource, error) {
	cur, err := tx.Read(ctx, typ, id)
	if err != nil {
		return nil, err
	}
	if ifMatch != 0 && cur.Version != ifMatch {
		return nil, fhir.Errorf(fhir.KindPreconditionFailed, "version conflict: If-Match W/\"%d\" but the current version of %s/%s is %d", ifMatch, typ, id, cur.Version)
	}
	out, err := p.Apply(cur.Body)
	if err != nil {
		return nil, err
	}
	rt, newID, err := fhir.Envelope(out)
	if err != nil {
		return nil, &fhir.Error{Kind: fhir.KindUnprocessable, Message: "the patched resource: " + fhir.MessageOf(err), Err: err}
	}
	if rt != typ {
		return nil, &fhir.Error{Kind: fhir.KindUnprocessable, Expression: []string{"resourceType"},
			Message: fmt.Sprintf("a patch cannot change the resource type (%s to %q)", typ, rt)}
	}
	if newID != id {
		return nil, &fhir.Error{Kind: fhir.KindUnprocessable, Expression: []string{typ + ".id"},
			Message: fmt.Sprintf("a patch cannot change or remove the id (%q to %q)", id, newID)}
	}
	if err := h.validate(typ, out); err != nil {
		var fe *fhir.Error
		if errors.As(err, &fe) && fe.Kind == fhir.KindInvalid {
			return nil, &fhir.Error{Kind: fhir.KindUnprocessable, Expression: fe.Expression,
				Message: "the patched resource is not valid: " + fe.Message, Err: err}
		}
		return nil, err
	}
	res, _, err := tx.Update(ctx, store.Write{Type: typ, ID: id, Body: out, IfMatch: cur.Version})
	return res, err
}

// reader is what GET entries read from: the transaction in a transaction,
// the store (no transaction needed) in a batch. SearchAccess is Search as a
// restricted caller sees it (store.FilteredSearcher).
type reader interface {
	Read(ctx context.Context, typ, id string) (*fhir.Resource, error)
	VRead(ctx context.Context, typ, id string, version int64) (*fhir.Resource, error)
	Search(ctx context.Context, q *search.Query) (*store.SearchPage, error)
	SearchAccess(ctx context.Context, q *search.Query, f store.Filter) (*store.SearchPage, error)
}

// storeReader reads a tenant of the store outside a transaction.
type storeReader struct {
	s      Store
	tenant string
}

func (s storeReader) Read(ctx context.Context, typ, id string) (*fhir.Resource, error) {
	return s.s.Read(ctx, s.tenant, typ, id)
}

func (s storeReader) VRead(ctx context.Context, typ, id string, version int64) (*fhir.Resource, error) {
	return s.s.VRead(ctx, s.tenant, typ, id, version)
}

func (s storeReader) Search(ctx context.Context, q *search.Query) (*store.SearchPage, error) {
	return s.s.Search(ctx, s.tenant, q)
}

func (s storeReader) SearchAccess(ctx context.Context, q *search.Query, f store.Filter) (*store.SearchPage, error) {
	return s.s.SearchAccess(ctx, s.tenant, q, f)
}

// txReader reads inside a transaction, its own writes included.
type txReader struct {
	store.Tx
	tenant string
}

func (t txReader) SearchAccess(ctx context.Context, q *search.Query, f store.Filter) (*store.SearchPage, error) {
	fs, ok := t.Tx.(store.FilteredSearcher)
	if !ok {
		return nil, errors.New("server: the store's transactions cannot apply an access filter")
	}
	return fs.SearchAccess(ctx, t.tenant, q, f)
}

func (r *runner) read(e *entry) error { return r.h.readEntry(r.ctx, txReader{r.tx, r.t.name}, r.t, e) }

// readEntry carries out a GET or HEAD (read, vread, search or history)
// under the entry's filter (authorize), exactly as the plain interactions:
// a search only matches, includes and counts what the filter admits, a
// history only holds the versions of what it admits; a resource outside it
// is not known (404), and so are the versions of one.
func (h *Handler) readEntry(ctx context.Context, rd reader, t tenant, e *entry) error {
	f := e.acc.f
	if e.hist {
		body, err := h.historyBody(ctx, t, e.typ, e.id, e.params, e.params.Encode(), f)
		if err != nil {
			return err
		}
		e.result = entryResult{status: http.StatusOK, body: body}
		return nil
	}
	if e.scope != nil {
		body, err := h.searchset(t, e.params, *e.scope, false, func(q *search.Query) (*store.SearchPage, error) {
			if f.IsAllowAll() {
				return rd.Search(ctx, q)
			}
			return rd.SearchAccess(ctx, q, f)
		})
		if err != nil {
			return err
		}
		e.result = entryResult{status: http.StatusOK, body: body}
		return nil
	}
	var res *fhir.Resource
	var err error
	if e.vid != 0 {
		if !f.IsAllowAll() {
			// As vread: the versions of a resource whose current version
			// the caller may see.
			if _, err := readIn(ctx, rd, e.typ, e.id, f); err != nil {
				return err
			}
		}
		res, err = rd.VRead(ctx, e.typ, e.id, e.vid)
	} else {
		res, err = readIn(ctx, rd, e.typ, e.id, f)
	}
	if err != nil {
		return err
	}
	e.result = entryResult{status: http.StatusOK, res: res, body: res.Body}
	if len(e.cond) > 0 {
		nm, err := notModified(&http.Request{Header: e.cond}, res)
		if err != nil {
			return err
		}
		if nm {
			e.result = entryResult{status: http.StatusNotModified, res: res}
		}
	}
	return nil
}

// readableQuery is a query for messages, without URL escapes.
func readableQuery(v url.Values) string {
	s := v.Encode()
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

// checkDeletes refuses, when the server is set to, a transaction that
// leaves a deleted resource referenced.
func (r *runner) checkDeletes() error {
	if r.h.deleteReferenced != DeleteRefuse {
		return nil
	}
	for _, e := range r.entries {
		for _, del := range e.result.deleted {
			by, err := r.tx.ReferencedBy(r.ctx, del.Type, del.ID, 3)
			if err != nil {
				return err
			}
			if len(by) > 0 && !r.h.seesAll(r.ctx) {
				return e.fail(errReferenced(del.Type, del.ID))
			}
			if len(by) > 0 {
				names := make([]string, len(by))
				for i, b := range by {
					names[i] = b.String()
				}
				return e.fail(fhir.Errorf(fhir.KindConflict, "%s/%s cannot be deleted: %s refer to it (this server refuses to delete referenced resources)",
					del.Type, del.ID, strings.Join(names, ", ")+moreSuffix(len(by), 3)))
			}
		}
	}
	return nil
}

func moreSuffix(n, limit int) string {
	if n >= limit {
		return " and maybe more"
	}
	return ""
}

// maxConditionalDeletes caps how many resources one conditional delete
// removes in multiple mode.
const maxConditionalDeletes = 1000

// entryStatus is the text of Bundle.entry.response.status.
func entryStatus(code int) string { return strconv.Itoa(code) + " " + http.StatusText(code) }
