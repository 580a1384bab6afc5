package authz

import (
	"fmt"
	"sort"
	"strings"

	"github.com/fhirserver/fhirserver/fhir/search"
	"github.com/fhirserver/fhirserver/store"
)

// DescribeFilter renders f for people, one line per grant (the grants are
// ORed): "nothing" for a filter admitting nothing, "everything" for one
// admitting everything.
func DescribeFilter(f store.Filter) []string {
	if len(f.Grants) == 0 {
		return []string{"nothing"}
	}
	if f.IsAllowAll() {
		return []string{"everything"}
	}
	out := make([]string, len(f.Grants))
	for i, g := range f.Grants {
		out[i] = DescribeGrant(g)
	}
	return out
}

// DescribeGrant renders one grant: its types (the first few of a long
// list), the compartments a resource must be in, and its search
// condition, e.g. "Observation in compartment Patient/a where
// category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory".
func DescribeGrant(g store.Grant) string {
	var b strings.Builder
	const show = 6
	switch n := len(g.Types); {
	case n == 0:
		b.WriteString("every type")
	case n <= show:
		b.WriteString(strings.Join(g.Types, ", "))
	default:
		fmt.Fprintf(&b, "%s and %d more types", strings.Join(g.Types[:show], ", "), n-show)
	}
	var comps []string
	if g.Compartment != nil {
		comps = append(comps, g.Compartment.Type+"/"+g.Compartment.ID)
	}
	for _, c := range g.AlsoIn {
		comps = append(comps, c.Type+"/"+c.ID)
	}
	switch len(comps) {
	case 0:
	case 1:
		b.WriteString(" in compartment " + comps[0])
	default:
		b.WriteString(" in each of the compartments " + strings.Join(comps, ", "))
	}
	if w := DescribeWhere(g.Where); w != "" {
		b.WriteString(" where " + w)
	}
	return b.String()
}

// DescribeWhere renders search clauses as a query string, not URL-encoded
// ("category=...|laboratory&status=final"), "" when there are none.
func DescribeWhere(where []search.Clause) string {
	if len(where) == 0 {
		return ""
	}
	params := (&search.Query{Clauses: where}).Params()
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		for _, v := range params[k] {
			parts = append(parts, k+"="+v)
		}
	}
	return strings.Join(parts, "&")
}
