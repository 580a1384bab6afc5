package server

import (
	"bytes"
	"fmt"
	"maps"
	"net/url"
	"strings"

	"github.com/fhirserver/fhirserver/authz"
	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/store"
)

// rewriter resolves the references between the entries of a Bundle, as
// the transaction rules ask (http://hl7.org/fhir/R4/http.html#trules):
// every string value of a resource that is the fullUrl of an entry
// (urn:uuid:, urn:oid: or an absolute URL) becomes that entry's Type/id,
// wherever it is (references, extensions, uri elements); so do the href and
// src attributes of the narrative, relative references that resolve against
// an absolute fullUrl's base to another entry, and conditional references
// (Patient?identifier=...) once searched. It works on the bytes
// (fhir.RewriteStrings): nothing else in a body changes.
type rewriter struct {
	refs  map[string]string // fullUrl -> Type/id
	conds map[string]string // conditional reference -> Type/id
}

func newRewriter() *rewriter {
	return &rewriter{refs: map[string]string{}, conds: map[string]string{}}
}

// clone copies rw, so that what one attempt of a transaction adds does not
// leak into the next.
func (rw *rewriter) clone() *rewriter {
	if rw == nil {
		return newRewriter()
	}
	return &rewriter{refs: maps.Clone(rw.refs), conds: maps.Clone(rw.conds)}
}

// add records that the entry with fullUrl is typ/id.
func (rw *rewriter) add(fullURL, typ, id string) {
	if fullURL != "" {
		rw.refs[fullURL] = typ + "/" + id
	}
}

// rewrite returns body with its references resolved; body itself when
// nothing changed. fullURL is the fullUrl of the entry body belongs to.
func (rw *rewriter) rewrite(body []byte, fullURL string) []byte {
	if len(rw.refs) == 0 && len(rw.conds) == 0 {
		return body
	}
	base := fullURLBase(fullURL)
	return fhir.RewriteStrings(body, func(member, value []byte) (string, bool) {
		if string(member) == "div" {
			return rw.narrative(value)
		}
		if to, ok := rw.refs[string(value)]; ok {
			return to, true
		}
		if string(member) != "reference" {
			return "", false
		}
		if to, ok := rw.conds[string(value)]; ok {
			return to, true
		}
		if base != "" && len(value) > 0 && !bytes.Contains(value, []byte(":")) {
			if to, ok := rw.refs[base+string(value)]; ok {
				return to, true
			}
		}
		return "", false
	})
}

// narrative rewrites href="..." and src="..." attributes of XHTML.
func (rw *rewriter) narrative(div []byte) (string, bool) {
	if len(rw.refs) == 0 {
		return "", false
	}
	var out []byte
	last := 0
	for i := 0; i < len(div); {
		j := bytes.Index(div[i:], []byte(`="`))
		if j < 0 {
			break
		}
		start := i + j + 2
		end := bytes.IndexByte(div[start:], '"')
		if end < 0 {
			break
		}
		end += start
		attr := div[:i+j]
		if bytes.HasSuffix(attr, []byte("href")) || bytes.HasSuffix(attr, []byte("src")) {
			if to, ok := rw.refs[string(div[start:end])]; ok {
				out = append(out, div[last:start]...)
				out = append(out, to...)
				last = end
			}
		}
		i = end + 1
	}
	if out == nil {
		return "", false
	}
	return string(append(out, div[last:]...)), true
}

// criteria returns the values of conditional criteria with every value that
// is the fullUrl of an entry replaced by its Type/id
// (Observation?subject=urn:uuid:...).
func (rw *rewriter) criteria(v url.Values) url.Values {
	if rw == nil || len(rw.refs) == 0 {
		return v
	}
	out := make(url.Values, len(v))
	for k, vals := range v {
		nv := make([]string, len(vals))
		for i, s := range vals {
			if to, ok := rw.refs[s]; ok {
				s = to
			}
			nv[i] = s
		}
		out[k] = nv
	}
	return out
}

// fullURLBase is the base of an absolute fullUrl ending in Type/id (with a
// trailing slash), against which the entry's relative references resolve;
// "" for urn: fullUrls.
func fullURLBase(fullURL string) string {
	if !strings.HasPrefix(fullURL, "http://") && !strings.HasPrefix(fullURL, "https://") {
		return ""
	}
	s := fullURL
	if i := strings.Index(s, "/_history/"); i >= 0 {
		s = s[:i]
	}
	idSlash := strings.LastIndexByte(s, '/')
	if idSlash <= 0 {
		return ""
	}
	typeSlash := strings.LastIndexByte(s[:idSlash], '/')
	if typeSlash <= 0 || !fhir.IsResourceType(s[typeSlash+1:idSlash]) {
		return ""
	}
	return s[:typeSlash+1]
}

// forEachReference calls fn with the value of every "reference" member of
// a compact body, at any depth, until fn returns false.
func forEachReference(body []byte, fn func(ref string) bool) {
	more := true
	fhir.RewriteStrings(body, func(member, value []byte) (string, bool) {
		if more && string(member) == "reference" {
			more = fn(string(value))
		}
		return "", false
	})
}

// conditionalReference recognises Type?query.
func conditionalReference(ref string) (typ string, query url.Values, ok bool) {
	typ, raw, found := strings.Cut(ref, "?")
	if !found || !fhir.IsResourceType(typ) {
		return "", nil, false
	}
	query, err := url.ParseQuery(raw)
	if err != nil {
		return typ, nil, true
	}
	return typ, query, true
}

// localRef reads a reference as one to a resource of this server: Type/id
// (a version is ignored: the resource must exist), or an absolute URL under
// base. unresolved reports a urn: reference that no entry resolved.
// References to other servers, to contained resources and anything
// unreadable give ok false (validation has judged their form).
func localRef(ref, base string) (r store.Ref, ok, unresolved bool) {
	switch {
	case strings.HasPrefix(ref, "#"):
		return r, false, false
	case strings.HasPrefix(ref, "urn:"):
		return r, false, true
	case strings.HasPrefix(ref, "http://") || strings.HasPrefix(ref, "https://"):
		if !strings.HasPrefix(ref, base+"/") {
			return r, false, false
		}
		ref = ref[len(base)+1:]
	}
	parts := strings.Split(ref, "/")
	if (len(parts) != 2 && !(len(parts) == 4 && parts[2] == "_history")) ||
		!fhir.IsResourceType(parts[0]) || !fhir.ValidID(parts[1]) {
		return r, false, false
	}
	return store.Ref{Type: parts[0], ID: parts[1]}, true, false
}

// checkReferences refuses a transaction that stores a reference to a local
// resource that does not exist when it commits (unless the server is
// lenient): Tx.Missing checks, and keeps what it found from being deleted
// until the commit.
func (r *runner) checkReferences() error {
	if r.mode != modeTransaction || r.h.references == ReferencesLenient {
		return nil
	}
	users := map[store.Ref]*entry{}
	var unknown []store.Ref
	for _, e := range r.entries {
		if e.method != "POST" && e.method != "PUT" && e.method != "PATCH" || e.matched != nil {
			continue
		}
		var err error
		forEachReference(e.out, func(ref string) bool {
			local, ok, unresolved := localRef(ref, r.t.base)
			if unresolved {
				err = e.fail(fhir.Errorf(fhir.KindInvalid, "the reference %s names no entry of this Bundle", ref))
				return false
			}
			if !ok {
				return true
			}
			if present, known := r.present[local]; known {
				if !present {
					err = e.fail(fhir.Errorf(fhir.KindInvalid, "the reference %s names a resource that this transaction deletes", ref))
				}
				return present
			}
			if _, seen := users[local]; !seen {
				users[local] = e
				unknown = append(unknown, local)
			}
			return true
		})
		if err != nil {
			return err
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	unknown, read, err := r.readable(unknown)
	if err != nil || len(unknown) == 0 {
		return err
	}
	missing, err := r.tx.Missing(r.ctx, unknown)
	if err != nil {
		return err
	}
	if len(read) > 0 {
		// What the caller may not see is missing to it.
		gone := map[store.Ref]bool{}
		for _, m := range missing {
			gone[m] = true
		}
		missing = missing[:0]
		for _, ref := range unknown {
			f, restricted := read[ref.Type]
			if !gone[ref] && restricted {
				ok, err := visibleIn(r.ctx, r.tx, r.t.name, ref.Type, ref.ID, f)
				if err != nil {
					return err
				}
				gone[ref] = !ok
			}
			if gone[ref] {
				missing = append(missing, ref)
			}
		}
	}
	if len(missing) > 0 {
		e := users[missing[0]]
		names := make([]string, 0, 3)
		for _, m := range missing[:min(3, len(missing))] {
			names = append(names, m.String())
		}
		return e.fail(fhir.Errorf(fhir.KindInvalid, "the transaction refers to %s, which does not exist%s (this server refuses references to missing resources in a transaction)",
			strings.Join(names, ", "), moreCount(len(missing), 3)))
	}
	return nil
}

func moreCount(n, shown int) string {
	if n <= shown {
		return ""
	}
	return fmt.Sprintf(" (and %d more)", n-shown)
}

// readable confines the reference check to what the caller may read, so
// that its answer never depends on a resource the caller may not see: of
// refs it keeps those whose type the caller may read, and returns, by type,
// the read filter of the types it may read only in part (a reference to a
// resource outside it is answered as one to a missing resource). A
// reference to a type the caller may not read at all is not checked: any
// answer would tell whether it exists.
func (r *runner) readable(refs []store.Ref) (keep []store.Ref, read map[string]store.Filter, err error) {
	if r.h.seesAll(r.ctx) {
		return refs, nil, nil
	}
	read = map[string]store.Filter{}
	denied := map[string]bool{}
	for _, ref := range refs {
		if _, done := read[ref.Type]; !done && !denied[ref.Type] {
			f, _, err := r.h.decide(r.ctx, authz.Read, ref.Type)
			switch {
			case err == nil:
				read[ref.Type] = f
			case fhir.KindOf(err) == fhir.KindForbidden:
				denied[ref.Type] = true
			default:
				return nil, nil, err
			}
		}
		if !denied[ref.Type] {
			keep = append(keep, ref)
		}
	}
	for typ, f := range read {
		if f.IsAllowAll() {
			delete(read, typ)
		}
	}
	return keep, read, nil
}
