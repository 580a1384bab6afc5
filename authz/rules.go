package authz

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/search"
	"github.com/fhirserver/fhirserver/store"
)

// Verdict is what a rule says about what it matches.
type Verdict bool

const (
	Deny  Verdict = false
	Allow Verdict = true
)

// Rule is one rule of a Policy, as in HAPI's AuthorizationInterceptor: it
// allows or denies Perms on Types (every type when nil), optionally only
// inside Compartment, only for instances (IDs, with one type), or only for
// resources matching Where (with one type). Deny rules are unconditional
// on resources (no Compartment, IDs or Where): a filter cannot express
// "all but these", and a rule that cannot be enforced must not exist.
//
// CompartmentParams widen Compartment by search parameters that the
// CompartmentDefinition does not list, as "Type:param" (Device:patient:
// the Devices whose patient is the compartment's resource).
//
// Operations are the extended operations ("$export", "*" for every one)
// the rule allows or denies invoking on Types (at the system level too
// when Types is nil). That permission is not confined by Compartment, IDs
// or Where: what an operation reads or writes is decided by the rules for
// the data permissions it needs (Request.Needs).
//
// Tenants limit the rule to requests on those tenants (every tenant when
// nil; store.DefaultTenant is the default tenant at B/fhir).
type Rule struct {
	Name              string
	Verdict           Verdict
	Perms             Perms
	Types             []string
	Compartment       *search.Compartment
	CompartmentParams []string
	IDs               []string
	Where             []search.Clause
	Operations        []string
	Tenants           []string
}

func (r *Rule) appliesTo(typ, tenant string) bool {
	return (len(r.Types) == 0 || typ == "" || slices.Contains(r.Types, typ)) &&
		(len(r.Tenants) == 0 || slices.Contains(r.Tenants, tenant))
}

// grants are the store.Grants of an allow rule for a request on typ (""
// for every type), less the types denied before it; none when nothing is
// left. A rule with CompartmentParams has one more grant per parameter
// whose type is left: the resources of that type whose parameter refers
// to the compartment's resource.
func (r *Rule) grants(typ string, denied map[string]bool) []store.Grant {
	var types []string
	switch {
	case typ != "":
		types = []string{typ}
	case len(r.Types) > 0:
		types = r.Types
	case len(denied) > 0:
		types = fhir.ResourceTypes()
	}
	if len(denied) > 0 {
		types = slices.DeleteFunc(slices.Clone(types), func(t string) bool { return denied[t] })
		if len(types) == 0 {
			return nil
		}
	}
	g := store.Grant{Types: types, Compartment: r.Compartment, Where: r.Where}
	if len(r.IDs) > 0 {
		cl, err := idClause(r.Types[0], r.IDs)
		if err != nil {
			return nil
		}
		g.Where = append(slices.Clone(r.Where), cl)
	}
	out := []store.Grant{g}
	for _, cp := range r.CompartmentParams {
		pt, _, _ := strings.Cut(cp, ":")
		if len(types) > 0 && !slices.Contains(types, pt) {
			continue
		}
		w, err := compartmentParamClause(cp, r.Compartment)
		if err != nil {
			continue
		}
		out = append(out, store.Grant{Types: []string{pt}, Where: w})
	}
	return out
}

// compartmentParamClause is the condition "param refers to comp" of a
// CompartmentParams entry "Type:param".
func compartmentParamClause(cp string, comp *search.Compartment) ([]search.Clause, error) {
	typ, param, ok := strings.Cut(cp, ":")
	if !ok || !fhir.IsResourceType(typ) || param == "" {
		return nil, fmt.Errorf("compartment parameter %q is not Type:param", cp)
	}
	if comp == nil {
		return nil, fmt.Errorf("compartment parameter %q needs a compartment", cp)
	}
	sp, ok := fhir.LookupSearchParam(typ, param)
	if !ok || sp.Type != fhir.SearchParamReference || !slices.Contains(sp.Targets, comp.Type) {
		return nil, fmt.Errorf("compartment parameter %q: %s has no reference parameter %q to %s", cp, typ, param, comp.Type)
	}
	return parseWhere(typ, url.Values{param: {comp.Type + "/" + comp.ID}}.Encode())
}

func idClause(typ string, ids []string) (search.Clause, error) {
	w, err := parseWhere(typ, "_id="+strings.Join(ids, ","))
	if err != nil {
		return search.Clause{}, err
	}
	return w[0], nil
}

// Policy is an ordered list of rules. For a request the rules are read in
// order: each allow rule that covers the permission and type adds a grant
// to the decision's filter; a deny rule that covers them stops the reading
// (for those types), so that rules after it cannot allow them. What no
// rule allows is denied.
type Policy struct {
	Rules []Rule
}

// decide evaluates p for a request needing perm (one permission) on typ
// ("" for a request on every type: system-level search and history) in
// tenant.
func (p Policy) decide(perm Perms, typ, tenant string) Decision {
	var d Decision
	denied := map[string]bool{}
	for i := range p.Rules {
		r := &p.Rules[i]
		if r.Perms&perm == 0 || !r.appliesTo(typ, tenant) {
			continue
		}
		if r.Verdict == Deny {
			if len(r.Types) == 0 || typ != "" {
				if len(d.Filter.Grants) == 0 {
					d.Rule = r.Name
				}
				break
			}
			for _, t := range r.Types {
				denied[t] = true
			}
			continue
		}
		if gs := r.grants(typ, denied); len(gs) > 0 {
			d.Filter.Grants = append(d.Filter.Grants, gs...)
			if !slices.Contains(d.Rules, r.Name) {
				d.Rules = append(d.Rules, r.Name)
			}
		}
	}
	d.Allow = len(d.Filter.Grants) > 0
	if d.Allow {
		d.Rule = d.Rules[0]
	} else if d.Rule == "" {
		d.Rule = "default deny"
	}
	return d
}

// decideOperation says whether p lets the operation name be invoked on typ
// ("" at the system level): the first rule naming it (or "*") on that type
// decides; without one it is denied.
func (p Policy) decideOperation(name, typ, tenant string) (allow bool, rule string) {
	for i := range p.Rules {
		r := &p.Rules[i]
		if !slices.Contains(r.Operations, name) && !slices.Contains(r.Operations, "*") {
			continue
		}
		if !(len(r.Tenants) == 0 || slices.Contains(r.Tenants, tenant)) ||
			!(len(r.Types) == 0 || slices.Contains(r.Types, typ)) {
			continue
		}
		return r.Verdict == Allow, r.Name
	}
	return false, "default deny"
}

// Builder builds a Policy, one rule at a time:
//
//	p, err := authz.NewBuilder().
//		Allow("own data").Read().Write().AllTypes().InCompartment("Patient", "123").
//		Allow("directory").Read().Types("Practitioner", "Organization").
//		Deny("no deletes").Delete().AllTypes().
//		Build()
//
// Allow and Deny start a rule; the methods after them shape it. Build
// reports the first error (a rule with no permission is one).
type Builder struct {
	rules []Rule
	err   error
}

// NewBuilder starts an empty policy (which denies everything).
func NewBuilder() *Builder { return &Builder{} }

// Allow starts an allow rule.
func (b *Builder) Allow(name string) *Builder {
	b.rules = append(b.rules, Rule{Name: name, Verdict: Allow})
	return b
}

// Deny starts a deny rule.
func (b *Builder) Deny(name string) *Builder {
	b.rules = append(b.rules, Rule{Name: name, Verdict: Deny})
	return b
}

func (b *Builder) cur() *Rule {
	if len(b.rules) == 0 {
		b.fail("a rule method before Allow or Deny")
		b.rules = append(b.rules, Rule{Name: "(none)"})
	}
	return &b.rules[len(b.rules)-1]
}

func (b *Builder) fail(format string, a ...any) {
	if b.err == nil {
		b.err = fmt.Errorf("authz: "+format, a...)
	}
}

// Perms adds permissions to the current rule.
func (b *Builder) Perms(p Perms) *Builder { b.cur().Perms |= p; return b }

// Read covers read, vread, history and search.
func (b *Builder) Read() *Builder { return b.Perms(PermRead | PermSearch) }

// Write covers create, update, patch and delete.
func (b *Builder) Write() *Builder { return b.Perms(PermWrite) }

func (b *Builder) Create() *Builder { return b.Perms(PermCreate) }
func (b *Builder) Update() *Builder { return b.Perms(PermUpdate) }
func (b *Builder) Patch() *Builder  { return b.Perms(PermPatch) }
func (b *Builder) Delete() *Builder { return b.Perms(PermDelete) }

// Search covers search only.
func (b *Builder) Search() *Builder { return b.Perms(PermSearch) }

// Operations adds extended operations ("$export", or "*" for every one)
// to the current rule: it allows or denies invoking them on its types.
func (b *Builder) Operations(names ...string) *Builder {
	r := b.cur()
	for _, n := range names {
		if !validOperation(n) {
			b.fail("rule %q: %q is not an operation name ($name, or * for every operation)", r.Name, n)
		}
	}
	r.Operations = append(r.Operations, names...)
	return b
}

func validOperation(n string) bool {
	if n == "*" {
		return true
	}
	if len(n) < 2 || n[0] != '$' {
		return false
	}
	for _, c := range n[1:] {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Tenants limits the current rule to requests on these tenants
// (store.DefaultTenant for the default one).
func (b *Builder) Tenants(names ...string) *Builder {
	r := b.cur()
	r.Tenants = append(r.Tenants, names...)
	return b
}

// AllTypes makes the current rule cover every resource type (the default).
func (b *Builder) AllTypes() *Builder { b.cur().Types = nil; return b }

// Types restricts the current rule to resource types.
func (b *Builder) Types(types ...string) *Builder {
	r := b.cur()
	for _, t := range types {
		if !fhir.IsResourceType(t) {
			b.fail("rule %q: %q is not a resource type", r.Name, t)
		}
	}
	r.Types = append(r.Types, types...)
	return b
}

// InCompartment restricts the current rule to the resources in the
// compartment typ/id (Patient/123).
func (b *Builder) InCompartment(typ, id string) *Builder {
	r := b.cur()
	if !slices.Contains(fhir.CompartmentTypes(), typ) || id == "" {
		b.fail("rule %q: %s/%s is not a compartment", r.Name, typ, id)
	}
	r.Compartment = &search.Compartment{Type: typ, ID: id}
	return b
}

// CompartmentParams widens the current rule's compartment (InCompartment)
// by reference search parameters "Type:param" that point at the
// compartment's resource (Device:patient), as HAPI's additional
// compartment search parameters.
func (b *Builder) CompartmentParams(params ...string) *Builder {
	r := b.cur()
	r.CompartmentParams = append(r.CompartmentParams, params...)
	return b
}

// Instances restricts the current rule to resources named "Type/id", all
// of one type (which becomes the rule's type).
func (b *Builder) Instances(refs ...string) *Builder {
	r := b.cur()
	for _, ref := range refs {
		typ, id, ok := strings.Cut(ref, "/")
		if !ok || !fhir.IsResourceType(typ) || id == "" {
			b.fail("rule %q: %q is not Type/id", r.Name, ref)
			continue
		}
		if len(r.Types) == 0 {
			r.Types = []string{typ}
		} else if len(r.Types) != 1 || r.Types[0] != typ {
			b.fail("rule %q: instances of one type only", r.Name)
		}
		r.IDs = append(r.IDs, id)
	}
	return b
}

// Where restricts the current rule, which must name one type, to the
// resources matching a search query on it ("category=...|laboratory").
func (b *Builder) Where(query string) *Builder {
	r := b.cur()
	if len(r.Types) != 1 {
		b.fail("rule %q: Where needs exactly one type", r.Name)
		return b
	}
	w, err := parseWhere(r.Types[0], query)
	if err != nil {
		b.fail("rule %q: %v", r.Name, err)
		return b
	}
	r.Where = append(r.Where, w...)
	return b
}

// AllowAll adds a rule allowing everything: every permission and every
// operation.
func (b *Builder) AllowAll(name string) *Builder {
	return b.Allow(name).Perms(PermAll).Operations("*")
}

// DenyAll adds a rule denying everything (what the rules before it have
// not allowed).
func (b *Builder) DenyAll(name string) *Builder { return b.Deny(name).Perms(PermAll).Operations("*") }

// Rule appends a rule made elsewhere (SMART scopes, a policy file).
func (b *Builder) Rule(r Rule) *Builder {
	b.rules = append(b.rules, r)
	return b
}

// Build checks the rules and returns the policy.
func (b *Builder) Build() (Policy, error) {
	for _, r := range b.rules {
		if r.Verdict == Deny && (r.Compartment != nil || len(r.IDs) > 0 || len(r.Where) > 0) {
			b.fail("rule %q: a deny rule cannot be limited to a compartment, instances or a query", r.Name)
		}
		if (len(r.IDs) > 0 || len(r.Where) > 0) && len(r.Types) != 1 {
			b.fail("rule %q: instances and Where need exactly one type", r.Name)
		}
		for _, cp := range r.CompartmentParams {
			if _, err := compartmentParamClause(cp, r.Compartment); err != nil {
				b.fail("rule %q: %v", r.Name, err)
			}
		}
		if r.Perms == 0 && len(r.Operations) == 0 {
			b.fail("rule %q: no permission (read, write, ... or an operation)", r.Name)
		}
	}
	if b.err != nil {
		return Policy{}, b.err
	}
	return Policy{Rules: slices.Clone(b.rules)}, nil
}
