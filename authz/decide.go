package authz

import (
	"slices"
	"strings"
	"sync"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/search"
	"github.com/fhirserver/fhirserver/store"
)

// Interaction is a FHIR REST interaction as authz tells them apart.
type Interaction string

const (
	Read       Interaction = "read"
	VRead      Interaction = "vread"
	History    Interaction = "history" // instance, type (Type set) or system (Type "") level
	Search     Interaction = "search"  // type (Type set) or system (Type "") level
	Create     Interaction = "create"
	Update     Interaction = "update"
	Patch      Interaction = "patch"
	Delete     Interaction = "delete"
	CondCreate Interaction = "conditional-create"
	CondUpdate Interaction = "conditional-update"
	CondPatch  Interaction = "conditional-patch"
	CondDelete Interaction = "conditional-delete"
	// Operation is an extended operation ($everything, $export...); the
	// request says what it needs in Request.Needs.
	Operation Interaction = "operation"
)

// Request is what a decision is asked for.
type Request struct {
	Interaction Interaction
	// Type is the resource type; "" for system-level search and history.
	Type string
	// Needs are the permissions an Operation needs (each must be allowed).
	Needs Perms
	// Operation names an Operation ("$export"); when set, invoking it must
	// be allowed too (Rule.Operations). SMART scopes allow every
	// operation, so for them Needs alone decides.
	Operation string
	// Tenant is the tenant the request is on; Caller.Decide fills in the
	// caller's (store.DefaultTenant, "", is the default tenant).
	Tenant string
}

// Decision is the answer: whether the interaction may go ahead at all, and
// the filter that confines it.
//
//   - read, vread, history, search, operations: Filter is what the caller
//     may see; the store applies it in SQL (a resource outside it is "not
//     found", a search only counts and returns what it admits).
//   - create: the new resource must be inside Filter once written.
//   - update, patch, delete: the current resource must be inside Filter
//     before, and (update, patch) the new version inside it after, so a
//     write can neither reach into nor move a resource out of what the
//     caller may touch. An update that creates needs Create as well: ask
//     for it when the store reports a create.
//   - conditional variants: Filter as for the plain write, and Match is
//     what the criteria may match (the caller's search access); both must
//     be non-empty.
//
// Rule names the rule that decided (the first allowing one, the denying
// one, or "default deny"); Rules lists every rule whose grant is in Filter.
type Decision struct {
	Allow  bool
	Filter store.Filter
	Match  store.Filter
	Rule   string
	Rules  []string
}

// needs is the permission an interaction needs.
func needs(i Interaction) (perm Perms, match bool) {
	switch i {
	case Read, VRead, History:
		return PermRead, false
	case Search:
		return PermSearch, false
	case Create:
		return PermCreate, false
	case Update:
		return PermUpdate, false
	case Patch:
		return PermPatch, false
	case Delete:
		return PermDelete, false
	case CondCreate:
		return PermCreate, true
	case CondUpdate:
		return PermUpdate, true
	case CondPatch:
		return PermPatch, true
	case CondDelete:
		return PermDelete, true
	}
	return 0, false
}

// Decide evaluates p for req. Unknown interactions are denied. An
// Operation naming its operation needs a rule allowing it; one needing
// data permissions is allowed when each is, with the filter of its read
// permission (else of the first it needs).
func (p Policy) Decide(req Request) Decision {
	if req.Interaction == Operation {
		if req.Operation != "" {
			if ok, rule := p.decideOperation(req.Operation, req.Type, req.Tenant); !ok {
				return Decision{Rule: rule}
			}
		}
		if req.Needs == 0 {
			return Decision{Allow: true, Filter: store.AllowAll(), Rule: "operation needs no permission"}
		}
		var out Decision
		first := true
		for _, perm := range []Perms{PermRead, PermSearch, PermCreate, PermUpdate, PermPatch, PermDelete} {
			if !req.Needs.Has(perm) {
				continue
			}
			d := p.decide(perm, req.Type, req.Tenant)
			if !d.Allow {
				return d
			}
			if first {
				out, first = d, false
			}
		}
		return out
	}
	perm, match := needs(req.Interaction)
	if perm == 0 {
		return Decision{Rule: "unknown interaction " + string(req.Interaction)}
	}
	d := p.decide(perm, req.Type, req.Tenant)
	if d.Allow && req.Interaction == Search && req.Type != "" {
		// The filter of a search applies to its _include and _revinclude
		// results too, which may be of other types: it is what the caller
		// may search of every type (the query confines the matches to
		// req.Type).
		all := p.decide(perm, "", req.Tenant)
		d.Filter, d.Rules = all.Filter, all.Rules
	}
	if d.Allow && match {
		m := p.decide(PermSearch, req.Type, req.Tenant)
		if !m.Allow {
			return Decision{Rule: m.Rule}
		}
		d.Match = m.Filter
	}
	return d
}

// Caller is who makes a request, from a verified access token.
type Caller struct {
	// Issuer is "" for tokens of this server, and the iss of a trusted
	// external issuer's token (whose ClientID and Subject are that
	// issuer's, not ours).
	Issuer   string
	ClientID string
	Subject  string
	// Scopes are the granted scopes, as in the token.
	Scopes []string
	// Patient is the launch context patient id ("" when none).
	Patient string
	// FHIRUserType and FHIRUserID name the user's resource (Patient,
	// Practitioner, RelatedPerson...); both "" when no user is behind the
	// token (client_credentials).
	FHIRUserType, FHIRUserID string
	// Tenant is the tenant the token is for, and the tenant of the
	// requests decided for it unless a Request names another.
	Tenant string
	// Access is the server's access policy (a policy file), which narrows
	// what the scopes allow by who the caller is; nil when there is none.
	Access *AccessPolicy

	// observe, when set, sees every decision made for the caller (the
	// server's audit records the rule of a denial with it).
	observe func(Request, Decision)
}

// Observed returns a copy of c whose decisions are also passed to fn.
func (c *Caller) Observed(fn func(Request, Decision)) *Caller {
	o := *c
	o.observe = fn
	return &o
}

// FHIRUser is the caller's user as a relative reference ("Practitioner/1"),
// "" when no user is behind the token.
func (c *Caller) FHIRUser() string {
	if c.FHIRUserType == "" {
		return ""
	}
	return c.FHIRUserType + "/" + c.FHIRUserID
}

// ParseFHIRUser splits a fhirUser claim (an absolute URL or a relative
// reference ending in Type/id) into its type and id.
func ParseFHIRUser(s string) (typ, id string, ok bool) {
	s = strings.TrimRight(s, "/")
	i := strings.LastIndexByte(s, '/')
	if i <= 0 {
		return "", "", false
	}
	id = s[i+1:]
	j := strings.LastIndexByte(s[:i], '/')
	typ = s[j+1 : i]
	if !fhir.IsResourceType(typ) || id == "" {
		return "", "", false
	}
	return typ, id, true
}

// patientID is the patient a patient/ scope confines the caller to: the
// launch context, else a Patient user; "" when there is none (patient/
// scopes then grant nothing).
func (c *Caller) patientID() string {
	if c.Patient != "" {
		return c.Patient
	}
	if c.FHIRUserType == "Patient" {
		return c.FHIRUserID
	}
	return ""
}

// Policy expresses the caller's SMART scopes as rules:
//
//   - system/T.p: p on T (every type for *), unconfined.
//   - patient/T.p: p on T in the patient's compartment (launch context
//     patient, else a Patient fhirUser); a type that belongs to no Patient
//     compartment (Practitioner, Organization, Medication... computed from
//     the CompartmentDefinition) is granted whole when the scope names it
//     or *. Without a patient, patient/ scopes grant nothing.
//   - user/T.p: as patient/ for a Patient user; confined to the
//     RelatedPerson compartment for a RelatedPerson user; unconfined for
//     other users (a Practitioner sees every patient). Without a fhirUser,
//     user/ scopes grant nothing.
//   - granular scopes add their query as the grant's Where; several are
//     ORed with each other and with the plain scopes.
//   - operations: SMART has no scope for them; a last rule allows
//     invoking any, and the permissions each needs decide.
//
// Malformed scopes grant nothing; ignored lists them.
func (c *Caller) Policy() (p Policy, ignored []string) {
	scopes, ignored := ParseScopes(c.Scopes)
	for _, s := range scopes {
		var types []string
		if s.Type != "*" {
			types = []string{s.Type}
		}
		base := Rule{Name: s.Raw, Verdict: Allow, Perms: s.Perms, Types: types, Where: s.Where}
		var comp *search.Compartment
		switch s.Level {
		case LevelSystem:
		case LevelPatient:
			if id := c.patientID(); id != "" {
				comp = &search.Compartment{Type: "Patient", ID: id}
			} else {
				ignored = append(ignored, s.Raw)
				continue
			}
		case LevelUser:
			switch c.FHIRUserType {
			case "":
				ignored = append(ignored, s.Raw)
				continue
			case "Patient", "RelatedPerson":
				comp = &search.Compartment{Type: c.FHIRUserType, ID: c.FHIRUserID}
			}
		}
		if comp == nil {
			p.Rules = append(p.Rules, base)
			continue
		}
		members := fhir.CompartmentMembers(comp.Type)
		switch {
		case s.Type == "*":
			in := base
			in.Compartment = comp
			p.Rules = append(p.Rules, in)
			if comp.Type == "Patient" {
				out := base
				out.Name = s.Raw + " (types outside patient compartments)"
				out.Types = nonPatientTypes()
				p.Rules = append(p.Rules, out)
			}
		case slices.Contains(members, s.Type) || comp.Type != "Patient":
			base.Compartment = comp
			p.Rules = append(p.Rules, base)
		default:
			// A type no patient's compartment holds: granted whole.
			p.Rules = append(p.Rules, base)
		}
	}
	// SMART has no scopes for operations: invoking any is allowed, and
	// what it reads or writes is decided by the permissions it needs.
	p.Rules = append(p.Rules, Rule{Name: "operations (by the permissions they need)", Verdict: Allow, Operations: []string{"*"}})
	return p, ignored
}

// Explanation is a decision for a caller with the parts it is made of.
type Explanation struct {
	// Decision is what the server applies: the scopes' decision, narrowed
	// by the access policy's when there is one.
	Decision Decision
	// Scopes is the decision of the token's scopes alone.
	Scopes Decision
	// Policy is the decision of the access policy alone; nil without one.
	Policy *Decision
	// Selected names the policy rules that apply to this caller (their
	// "when" matches it and it has what their placeholders need), in
	// order.
	Selected []string
	// Ignored lists the scopes that grant nothing (malformed, or patient/
	// and user/ scopes without a patient or user).
	Ignored []string
}

// Decide evaluates the caller's SMART scopes for req and, when there is
// an access policy, narrows the result by it (see Explain).
func (c *Caller) Decide(req Request) Decision { return c.Explain(req).Decision }

// Explain decides req for c and says how. The token's scopes are the outer
// limit: a request is allowed when the scopes allow it and the access
// policy (if any) allows it too, and its filter is the intersection of the
// two filters. Rule names the deciding rule as "scopes: R" or "policy: R";
// Rules lists the rules of both whose grants make the filter.
func (c *Caller) Explain(req Request) Explanation {
	if req.Tenant == "" {
		req.Tenant = c.Tenant
	}
	sp, ignored := c.Policy()
	e := Explanation{Scopes: sp.Decide(req), Ignored: ignored}
	if c.Access == nil {
		e.Decision = labelled("scopes", e.Scopes)
	} else {
		pp, selected := c.Access.For(c)
		pd := pp.Decide(req)
		e.Policy, e.Selected = &pd, selected
		e.Decision = combine(e.Scopes, pd)
	}
	if c.observe != nil {
		c.observe(req, e.Decision)
	}
	return e
}

// nonPatientTypes are the resource types that are members of no Patient
// compartment, from the generated CompartmentDefinition data.
var nonPatientTypes = sync.OnceValue(func() []string {
	members := fhir.CompartmentMembers("Patient")
	var out []string
	for _, t := range fhir.ResourceTypes() {
		if !slices.Contains(members, t) {
			out = append(out, t)
		}
	}
	return out
})

// NonPatientTypes returns the resource types that belong to no Patient
// compartment (Practitioner, Organization, Location, Medication...).
func NonPatientTypes() []string { return slices.Clone(nonPatientTypes()) }
