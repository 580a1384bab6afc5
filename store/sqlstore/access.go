package sqlstore

import (
	"strings"

	"github.com/fhirserver/fhirserver/fhir/search"
)

// Access is what a caller may see, as the store applies it to every
// resource a search touches: its matches, _include and _revinclude
// results, the count behind _total, and the resources that chains and _has
// look through. It is the seam for package authz: a decision becomes an
// Access, and the one base condition of the search compiler (compiler.base)
// ANDs it into every resource row of the SQL; nothing is filtered in Go.
//
// The zero Access sees nothing; AllowAll sees everything.
type Access struct {
	// Grants are ORed: a resource is visible when one grant admits it.
	Grants []Grant
}

// Grant admits the resources of Types (every type when empty) that are in
// Compartment (any resource when nil). Patient-level access to Patient/123
// is, for example, {Compartment: Patient/123} plus {Types: [Practitioner,
// Organization, ...]} for the types that belong to no patient compartment.
type Grant struct {
	Types       []string
	Compartment *search.Compartment
}

// AllowAll is the explicit "no restriction" Access.
func AllowAll() Access { return Access{Grants: []Grant{{}}} }

// accessCond renders a as a condition on the resources row alias r, or ""
// when it admits everything.
func (c *compiler) accessCond(r string, a Access) string {
	if len(a.Grants) == 0 {
		return "FALSE"
	}
	var ors []string
	for _, g := range a.Grants {
		var ands []string
		if len(g.Types) > 0 {
			ands = append(ands, c.in(r+".type", g.Types))
		}
		if g.Compartment != nil {
			ands = append(ands, "EXISTS (SELECT 1 FROM idx_compartment ac WHERE ac.tenant = "+r+".tenant AND ac.type = "+r+".type AND ac.id = "+r+".id AND ac.comp_type = "+
				c.bind(g.Compartment.Type)+" AND ac.comp_id = "+c.bind(g.Compartment.ID)+")")
		}
		if len(ands) == 0 {
			return "" // this grant admits everything
		}
		ors = append(ors, strings.Join(ands, " AND "))
	}
	if len(ors) == 1 {
		return ors[0]
	}
	return "(" + strings.Join(ors, " OR ") + ")"
}
