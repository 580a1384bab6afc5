package sqlstore

import (
	"strings"

	"github.com/fhirserver/fhirserver/fhir/search"

	"github.com/fhirserver/fhirserver/store"
)

// Access is the store's access filter (store.Filter): the one base
// condition of the search compiler (compiler.base) ANDs it into every
// resource row of the SQL; nothing is filtered in Go.
type Access = store.Filter

// Grant is one grant of an Access (store.Grant).
type Grant = store.Grant

// AllowAll is the explicit "no restriction" Access.
func AllowAll() Access { return store.AllowAll() }

// accessCond renders a as a condition on the resources row alias r, or ""
// when it admits everything.
func (c *compiler) accessCond(r string, a Access) string {
	start := len(c.a)
	var ors []string
	for _, g := range a.Grants {
		mark := len(c.a)
		var ands []string
		if len(g.Types) > 0 {
			ands = append(ands, c.in(r+".type", g.Types))
		}
		if g.Compartment != nil {
			ands = append(ands, c.inCompartment(r, *g.Compartment))
		}
		for _, comp := range g.AlsoIn {
			ands = append(ands, c.inCompartment(r, comp))
		}
		if len(g.Where) > 0 {
			w, ok := c.grantWhere(r, g)
			if !ok {
				// A constraint the compiler refuses admits nothing; its
				// bind values go with it.
				c.a = c.a[:mark]
				continue
			}
			ands = append(ands, w)
		}
		if len(ands) == 0 {
			// This grant admits everything: so does a, and the values
			// bound for the grants before it are not used.
			c.a = c.a[:start]
			return ""
		}
		ors = append(ors, strings.Join(ands, " AND "))
	}
	switch len(ors) {
	case 0:
		return "FALSE"
	case 1:
		return ors[0]
	}
	return "(" + strings.Join(ors, " OR ") + ")"
}

// inCompartment is the condition that the resources row r is in comp
// (the compartment index written with the resource).
func (c *compiler) inCompartment(r string, comp search.Compartment) string {
	fence := ""
	if c.fenceAccess {
		fence = c.d.Fence()
	}
	return "EXISTS (SELECT 1 FROM idx_compartment ac WHERE ac.tenant = " + r + ".tenant AND ac.type = " + r + ".type AND ac.id = " + r + ".id AND ac.comp_type = " +
		c.bind(comp.Type) + " AND ac.comp_id = " + c.bind(comp.ID) + fence + ")"
}

// grantWhere renders the search constraint of g (granular scopes, instance
// rules) on the resources row r. A grant whose clauses name a chain or
// _has, that does not name exactly one type, or whose clauses do not
// compile, is refused (ok false): it then admits nothing, never more.
func (c *compiler) grantWhere(r string, g store.Grant) (sql string, ok bool) {
	if len(g.Types) != 1 {
		return "", false
	}
	mark := len(c.a)
	sc := scope{r: r, types: g.Types}
	var ands []string
	for i := range g.Where {
		cl := &g.Where[i]
		if cl.Chain != nil || cl.Has != nil {
			c.a = c.a[:mark]
			return "", false
		}
		s, err := c.clause(sc, cl)
		if err != nil {
			c.a = c.a[:mark]
			return "", false
		}
		ands = append(ands, s)
	}
	return strings.Join(ands, " AND "), true
}

var _ store.FilteredSearcher = (*Store)(nil)
