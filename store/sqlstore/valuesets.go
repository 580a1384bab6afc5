package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/search"
	"github.com/fhirserver/fhirserver/fhir/terminology"
)

// The value sets of token :in and :not-in are expanded when a statement is
// compiled: from the ValueSet (and CodeSystem) resources stored in the
// tenant, else from the specification (terminology.Table.Expand). The
// expansion is bound into the statement like any code list. Nothing is
// cached across statements, so a ValueSet written a moment ago is what the
// next search uses; one statement expands each value set it names once.
//
// The lookups read the tenant's ValueSet and CodeSystem resources without
// the caller's access filter: terminology is not patient data, and a
// caller allowed to search Observations by a value set needs its codes
// whether or not it may read ValueSet resources. The search only ever uses
// the codes; no content of the value set reaches the caller (beyond what
// its matches reveal, and the name of a value set or code system in an
// error).

// maxCanonicalMatches bounds the stored resources that share one url.
const maxCanonicalMatches = 100

// valueSetCodes returns the codes of the value set an :in or :not-in value
// names.
func (c *compiler) valueSetCodes(v *search.Value) ([]terminology.CodeSet, error) {
	canonical := v.URL
	if canonical == "" {
		canonical = v.Raw
	}
	if canonical == "" {
		return nil, invalid("a value set is needed (:in and :not-in take a value set's url, url|version or ValueSet/id)")
	}
	if sets, ok := c.expanded[canonical]; ok {
		return sets, nil
	}
	sets, err := terminology.R4().Expand(c.ctx, canonical, storedTerminology{s: c.s, tenant: c.tenantID})
	if err != nil {
		return nil, err
	}
	if c.expanded == nil {
		c.expanded = map[string][]terminology.CodeSet{}
	}
	c.expanded[canonical] = sets
	return sets, nil
}

// storedTerminology is the terminology.Source of a tenant.
type storedTerminology struct {
	s      *Store
	tenant string
}

// ValueSet implements terminology.Source.
func (st storedTerminology) ValueSet(ctx context.Context, canonical string) ([]byte, error) {
	if id, ok := strings.CutPrefix(canonical, "ValueSet/"); ok {
		if !fhir.ValidID(id) {
			return nil, invalid("value set %s: %q is not a resource id", canonical, id)
		}
		res, err := st.s.readIn(ctx, st.s.Driver, st.tenant, "ValueSet", id)
		switch fhir.KindOf(err) {
		case fhir.KindNotFound, fhir.KindGone:
			return nil, invalid("value set %s is not known here (no ValueSet with that id is stored on this server)", canonical)
		}
		if err != nil {
			return nil, err
		}
		return res.Body, nil
	}
	url, version, _ := strings.Cut(canonical, "|")
	return st.s.canonicalResource(ctx, st.tenant, "ValueSet", url, version)
}

// CodeSystem implements terminology.Source.
func (st storedTerminology) CodeSystem(ctx context.Context, url, version string) ([]byte, error) {
	return st.s.canonicalResource(ctx, st.tenant, "CodeSystem", url, version)
}

// canonicalResource returns the body of the current resource of type typ
// in the tenant whose url is url (found through the index of the url
// search parameter), or nil when there is none. With a version, only
// resources of that version count. Of several, the one with the highest
// version wins (compareVersions: numbers compared as numbers, 1.10 after
// 1.9, and after text; a resource without a version comes before any with
// one), then the
// one updated last, then the greatest id, so that the choice is the same
// on every call.
func (s *Store) canonicalResource(ctx context.Context, tenant, typ, url, version string) ([]byte, error) {
	stmt := `SELECT r.id, r.last_updated, r.body FROM resources r WHERE r.tenant = $1 AND r.type = $2 AND NOT r.deleted` +
		` AND r.id IN (SELECT x.id FROM idx_uri x WHERE x.tenant = $1 AND x.type = $2 AND x.param = 'url' AND x.value = $3)` +
		` LIMIT ` + strconv.Itoa(maxCanonicalMatches+1)
	var best *candidate
	n := 0
	err := s.query(ctx, stmt, args{tenant, typ, url}, func(rows Rows) error {
		for rows.Next() {
			var c candidate
			if err := rows.Scan(&c.id, &c.lastUpdated, &c.body); err != nil {
				return fmt.Errorf("reading a %s: %w", typ, err)
			}
			n++
			var head struct {
				URL     string `json:"url"`
				Version string `json:"version"`
			}
			if json.Unmarshal(c.body, &head) != nil || head.URL != url || (version != "" && head.Version != version) {
				continue
			}
			c.version = head.Version
			if best == nil || better(&c, best) {
				best = &c
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if n > maxCanonicalMatches {
		return nil, notSupported("more than %d %s resources have the url %s; name the version (url|version)", maxCanonicalMatches, typ, url)
	}
	if best == nil {
		return nil, nil
	}
	return best.body, nil
}

// candidate is a resource canonicalResource may return.
type candidate struct {
	id, version string
	lastUpdated int64
	body        []byte
}

// better orders the candidates of canonicalResource.
func better(a, b *candidate) bool {
	if c := compareVersions(a.version, b.version); c != 0 {
		return c > 0
	}
	if a.lastUpdated != b.lastUpdated {
		return a.lastUpdated > b.lastUpdated
	}
	return a.id > b.id
}

// compareVersions compares two business versions: runs of digits as
// numbers, the rest as text, piece by piece ("1.10" after "1.9", "2" after
// "1.5.3"); of two versions that agree as far as the shorter goes, the
// longer comes after ("1.0.1" after "1.0"); "" (no version) comes first.
func compareVersions(a, b string) int {
	for a != "" && b != "" {
		pa, ra := versionPiece(a)
		pb, rb := versionPiece(b)
		da, db := isDigit(pa[0]), isDigit(pb[0])
		var c int
		switch {
		case da && db:
			na, nb := strings.TrimLeft(pa, "0"), strings.TrimLeft(pb, "0")
			if c = len(na) - len(nb); c == 0 {
				c = strings.Compare(na, nb)
			}
		case da != db:
			c = 1 // a number after text
			if db {
				c = -1
			}
		default:
			c = strings.Compare(pa, pb)
		}
		if c != 0 {
			if c < 0 {
				return -1
			}
			return 1
		}
		a, b = ra, rb
	}
	return strings.Compare(a, b) // the longer one is greater; "" first
}

// versionPiece splits the first run of digits, or of other bytes, off s.
func versionPiece(s string) (string, string) {
	d := isDigit(s[0])
	i := 1
	for i < len(s) && isDigit(s[i]) == d {
		i++
	}
	return s[:i], s[i:]
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }
