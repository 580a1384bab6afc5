package sqlstore

import (
	"context"
	"sort"
	"strings"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/search"
)

// includes returns the resources that _include and _revinclude add to a
// page of matches: each once, none that is a match. The first round applies
// every include to the matches; each further round applies the :iterate
// ones to what the previous round added, up to maxIncludeRounds. Each
// include is one statement that joins the reference index to resources
// rows under the same base condition (tenant, not deleted, access) as the
// matches.
func (s *Store) includes(ctx context.Context, tenant string, access Access, q *search.Query, matches []resourceRow) ([]fhir.Resource, error) {
	seen := make(map[resourceKey]bool, len(matches))
	frontier := make([]resourceKey, 0, len(matches))
	for _, m := range matches {
		seen[m.key] = true
		frontier = append(frontier, m.key)
	}
	var out []fhir.Resource
	for round := 0; round < maxIncludeRounds && len(frontier) > 0; round++ {
		var next []resourceKey
		add := func(rows []resourceRow) error {
			for _, r := range rows {
				if seen[r.key] {
					continue
				}
				if len(out) >= MaxIncluded {
					return fhir.Errorf(fhir.KindTooCostly, "_include and _revinclude would add more than %d resources to this page; ask for fewer results per page (_count)", MaxIncluded)
				}
				seen[r.key] = true
				out = append(out, r.res)
				next = append(next, r.key)
			}
			return nil
		}
		for _, rev := range []bool{false, true} {
			incs := q.Includes
			if rev {
				incs = q.RevIncludes
			}
			for _, inc := range incs {
				if round > 0 && !inc.Iterate {
					continue
				}
				var only []string
				if !rev {
					only = q.IncludeTypes
				}
				rows, err := s.include(ctx, tenant, access, inc, rev, only, frontier, MaxIncluded-len(out))
				if err != nil {
					return nil, err
				}
				if len(rows) > MaxIncluded-len(out) {
					return nil, fhir.Errorf(fhir.KindTooCostly, "_include and _revinclude would add more than %d resources to this page; ask for fewer results per page (_count)", MaxIncluded)
				}
				if err := add(rows); err != nil {
					return nil, err
				}
			}
		}
		frontier = next
	}
	return out, nil
}

// include runs one _include (rev false: what sources of inc.Source in from
// refer to) or _revinclude (rev true: resources of inc.Source that refer
// to those in from), reading at most limit+1 rows; only, when set, narrows
// the resources read to those types.
func (s *Store) include(ctx context.Context, tenant string, access Access, inc search.Include, rev bool, only []string, from []resourceKey, limit int) ([]resourceRow, error) {
	if inc.Source == "*" {
		inc.Source = "" // any type
	}
	if inc.Source != "" && !fhir.IsResourceType(inc.Source) {
		return nil, invalid("%q is not a resource type (in _include or _revinclude)", inc.Source)
	}
	c := s.newCompiler(ctx, tenant, access)
	// from, grouped by type: (x.type = $t AND x.id IN (...)) OR ...
	byType := map[string][]string{}
	for _, k := range from {
		byType[k.typ] = append(byType[k.typ], k.id)
	}
	typeCol, idCol := "x.type", "x.id"
	if rev {
		typeCol, idCol = "x.target_type", "x.target_id"
	} else if inc.Source != "" {
		// Only the sources of the named type take part.
		byType = map[string][]string{inc.Source: byType[inc.Source]}
	}
	types := make([]string, 0, len(byType))
	for t, ids := range byType {
		if len(ids) > 0 {
			types = append(types, t)
		}
	}
	if len(types) == 0 {
		return nil, nil
	}
	sort.Strings(types)
	var ors []string
	for _, t := range types {
		ors = append(ors, "("+typeCol+" = "+c.bind(t)+" AND "+c.in(idCol, byType[t])+")")
	}
	conds := []string{"x.tenant = " + c.tenant, orJoin(ors), "x.url = ''"}
	if inc.Param != "" && inc.Param != "*" {
		conds = append(conds, "x.param = "+c.bind(inc.Param))
	}
	join := "r.tenant = x.tenant AND r.type = x.target_type AND r.id = x.target_id"
	if rev {
		join = owns("x", "r")
		if inc.Source != "" {
			conds = append(conds, "x.type = "+c.bind(inc.Source))
		}
	}
	if inc.TargetType != "" {
		conds = append(conds, "x.target_type = "+c.bind(inc.TargetType))
	}
	if len(only) > 0 {
		conds = append(conds, c.in("r.type", only))
	}
	stmt := "SELECT r.type, r.id, r.version, r.last_updated, r.body FROM idx_reference x JOIN resources r ON " + join +
		" WHERE " + strings.Join(conds, " AND ") + " AND " + c.base("r") + " LIMIT " + c.bind(int64(limit+1))
	rows, _, err := s.fetch(ctx, c, stmt, 0, 0)
	return rows, err
}
