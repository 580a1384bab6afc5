package authz

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/store"
)

// AccessPolicy is the server's own access policy, on top of the tokens'
// SMART scopes: ordered rules, each applying to the callers its When
// selects (HAPI's "rules per request"), which narrow what the scopes
// allow. For a caller, the rules that select it make a Policy (For), read
// as every Policy: allows add up, a deny stops the reading, what no rule
// allows is denied. Caller.Decide intersects its decision with the scopes'.
//
// Build one with NewAccessPolicy (package authz/policyfile reads it from a
// YAML or JSON file). It is immutable and safe for concurrent use.
type AccessPolicy struct {
	rules []policyRule
}

// PolicyRule is one rule of an access policy, as a policy file writes it.
//
// Exactly one of Allow and Deny lists the permissions: read (read, vread,
// history and search), search, create, update, patch, delete, write
// (create, update, patch, delete), all (every permission and operation),
// and operations by name ("$export", "$everything"; "$*" for every one).
//
// Types are resource types ("*" or none for every type). Compartment lists
// compartments ("Patient/123"); the rule is one grant per compartment.
// CompartmentParams ("Device:patient") widen them. Instances ("Type/id")
// and Where (a search query on the rule's one type) narrow the rule.
// Tenants limit it to tenants ("default" names the default tenant).
//
// Compartment, Instances and Where may hold placeholders filled in from
// the caller: {patient} is the patient id of the token (its launch
// context, else its Patient fhirUser), {fhirUser} the user's "Type/id". A
// rule whose placeholders the caller cannot fill does not apply to it.
type PolicyRule struct {
	Name              string
	When              CallerMatch
	Allow, Deny       []string
	Tenants           []string
	Types             []string
	Compartment       []string
	CompartmentParams []string
	Instances         []string
	Where             string
}

// CallerMatch selects callers: each list that is not empty must hold what
// the caller has (so the lists are ANDed, their items ORed); an empty
// CallerMatch selects every caller.
type CallerMatch struct {
	// ClientIDs are OAuth client ids.
	ClientIDs []string
	// FHIRUserTypes are types of the user's resource (Practitioner...).
	FHIRUserTypes []string
	// FHIRUsers are users' resources, "Practitioner/123".
	FHIRUsers []string
	// Scopes are scopes of which the token must hold one, exactly as
	// granted ("user/*.cruds", "launch/patient").
	Scopes []string
	// ScopeLevels are levels (patient, user, system) of which the token
	// must hold a resource scope.
	ScopeLevels []Level
}

func (m *CallerMatch) matches(c *Caller) bool {
	if len(m.ClientIDs) > 0 && !slices.Contains(m.ClientIDs, c.ClientID) {
		return false
	}
	if len(m.FHIRUserTypes) > 0 && !slices.Contains(m.FHIRUserTypes, c.FHIRUserType) {
		return false
	}
	if len(m.FHIRUsers) > 0 && (c.FHIRUserType == "" || !slices.Contains(m.FHIRUsers, c.FHIRUser())) {
		return false
	}
	if len(m.Scopes) > 0 && !slices.ContainsFunc(m.Scopes, func(s string) bool { return slices.Contains(c.Scopes, s) }) {
		return false
	}
	if len(m.ScopeLevels) > 0 && !slices.ContainsFunc(c.Scopes, func(s string) bool {
		level, _, ok := strings.Cut(s, "/")
		return ok && slices.Contains(m.ScopeLevels, Level(level)) && !isContextScope(s)
	}) {
		return false
	}
	return true
}

func (m *CallerMatch) check() error {
	for _, t := range m.FHIRUserTypes {
		if !fhir.IsResourceType(t) {
			return fmt.Errorf("when: %q is not a resource type", t)
		}
	}
	for _, u := range m.FHIRUsers {
		if typ, id, ok := strings.Cut(u, "/"); !ok || !fhir.IsResourceType(typ) || !fhir.ValidID(id) {
			return fmt.Errorf("when: fhirUser %q is not Type/id", u)
		}
	}
	for _, l := range m.ScopeLevels {
		if l != LevelPatient && l != LevelUser && l != LevelSystem {
			return fmt.Errorf("when: scope level %q is not patient, user or system", l)
		}
	}
	return nil
}

// policyRule is a PolicyRule ready to apply: its rules, or, when it holds
// placeholders, the PolicyRule to fill in per caller.
type policyRule struct {
	name  string
	when  CallerMatch
	rules []Rule
	tmpl  *PolicyRule
}

// RuleError is the error of one rule of a policy: Index is its position
// (from 0), Name its name.
type RuleError struct {
	Index int
	Name  string
	Err   error
}

func (e *RuleError) Error() string {
	if e.Name == "" {
		return fmt.Sprintf("rule %d: %v", e.Index+1, e.Err)
	}
	return fmt.Sprintf("rule %d (%q): %v", e.Index+1, e.Name, e.Err)
}

func (e *RuleError) Unwrap() error { return e.Err }

// NewAccessPolicy checks rules and returns the policy. An error is a
// *RuleError naming the first bad rule.
func NewAccessPolicy(rules []PolicyRule) (*AccessPolicy, error) {
	p := &AccessPolicy{}
	seen := map[string]bool{}
	for i, pr := range rules {
		fail := func(err error) (*AccessPolicy, error) {
			return nil, &RuleError{Index: i, Name: pr.Name, Err: err}
		}
		if strings.TrimSpace(pr.Name) == "" {
			return fail(errors.New("a rule needs a name (explanations and audit lines name the rule that decided)"))
		}
		if seen[pr.Name] {
			return fail(errors.New("another rule has this name"))
		}
		seen[pr.Name] = true
		if err := pr.When.check(); err != nil {
			return fail(err)
		}
		r := policyRule{name: pr.Name, when: pr.When}
		if pr.templated() {
			// Checked now with a caller that fills every placeholder, so
			// that a rule does not first fail on a real request.
			sample := &Caller{Patient: "example", FHIRUserType: "Practitioner", FHIRUserID: "example"}
			if len(pr.When.FHIRUserTypes) > 0 {
				sample.FHIRUserType = pr.When.FHIRUserTypes[0]
			}
			if len(pr.When.FHIRUsers) > 0 {
				sample.FHIRUserType, sample.FHIRUserID, _ = strings.Cut(pr.When.FHIRUsers[0], "/")
			}
			filled, _ := pr.fill(sample)
			if _, err := filled.compile(); err != nil {
				return fail(err)
			}
			t := pr
			r.tmpl = &t
		} else {
			var err error
			if r.rules, err = pr.compile(); err != nil {
				return fail(err)
			}
		}
		p.rules = append(p.rules, r)
	}
	return p, nil
}

// Len returns the number of rules of p.
func (p *AccessPolicy) Len() int { return len(p.rules) }

// For returns the rules of p that apply to c, as a Policy, and their names.
func (p *AccessPolicy) For(c *Caller) (Policy, []string) {
	var out Policy
	var names []string
	for _, r := range p.rules {
		if !r.when.matches(c) {
			continue
		}
		rules := r.rules
		if r.tmpl != nil {
			filled, ok := r.tmpl.fill(c)
			if !ok {
				continue
			}
			var err error
			if rules, err = filled.compile(); err != nil {
				// A value from the token that makes no valid rule (a
				// fhirUser whose type has no compartment): the rule
				// grants nothing.
				continue
			}
		}
		out.Rules = append(out.Rules, rules...)
		names = append(names, r.name)
	}
	return out, names
}

const (
	phPatient  = "{patient}"
	phFHIRUser = "{fhirUser}"
)

func (pr *PolicyRule) templated() bool {
	has := func(s string) bool { return strings.Contains(s, phPatient) || strings.Contains(s, phFHIRUser) }
	return slices.ContainsFunc(pr.Compartment, has) || slices.ContainsFunc(pr.Instances, has) || has(pr.Where)
}

// fill replaces the placeholders with c's values; ok is false when c has
// no value for one of them.
func (pr PolicyRule) fill(c *Caller) (PolicyRule, bool) {
	ok := true
	sub := func(s string) string {
		if strings.Contains(s, phPatient) {
			if id := c.patientID(); id != "" {
				s = strings.ReplaceAll(s, phPatient, id)
			} else {
				ok = false
			}
		}
		if strings.Contains(s, phFHIRUser) {
			if u := c.FHIRUser(); u != "" {
				s = strings.ReplaceAll(s, phFHIRUser, u)
			} else {
				ok = false
			}
		}
		return s
	}
	subAll := func(in []string) []string {
		out := make([]string, len(in))
		for i, s := range in {
			out[i] = sub(s)
		}
		return out
	}
	pr.Compartment = subAll(pr.Compartment)
	pr.Instances = subAll(pr.Instances)
	pr.Where = sub(pr.Where)
	return pr, ok
}

// compile turns a rule without placeholders into engine rules: one per
// compartment (one when it names none).
func (pr *PolicyRule) compile() ([]Rule, error) {
	verdict, words := Allow, pr.Allow
	switch {
	case len(pr.Allow) > 0 && len(pr.Deny) > 0:
		return nil, errors.New("a rule either allows or denies, not both")
	case len(pr.Deny) > 0:
		verdict, words = Deny, pr.Deny
	case len(pr.Allow) == 0:
		return nil, errors.New("a rule needs allow or deny and its permissions")
	}
	var perms Perms
	var ops []string
	for _, w := range words {
		switch w {
		case "read":
			perms |= PermRead | PermSearch
		case "search":
			perms |= PermSearch
		case "create":
			perms |= PermCreate
		case "update":
			perms |= PermUpdate
		case "patch":
			perms |= PermPatch
		case "delete":
			perms |= PermDelete
		case "write":
			perms |= PermWrite
		case "all":
			perms |= PermAll
			ops = append(ops, "*")
		case "$*":
			ops = append(ops, "*")
		default:
			if !strings.HasPrefix(w, "$") || !validOperation(w) {
				return nil, fmt.Errorf("unknown permission %q (read, search, create, update, patch, delete, write, all, $operation or $*)", w)
			}
			ops = append(ops, w)
		}
	}
	var types []string
	for _, t := range pr.Types {
		if t == "*" {
			if len(pr.Types) > 1 {
				return nil, errors.New(`types: "*" (every type) goes alone`)
			}
			continue
		}
		types = append(types, t)
	}
	var tenants []string
	for _, t := range pr.Tenants {
		if t == "default" {
			t = store.DefaultTenant
		}
		tenants = append(tenants, t)
	}
	comps := pr.Compartment
	if len(comps) == 0 {
		comps = []string{""}
	}
	var out []Rule
	for _, comp := range comps {
		b := NewBuilder()
		if verdict == Allow {
			b.Allow(pr.Name)
		} else {
			b.Deny(pr.Name)
		}
		b.Perms(perms)
		if len(ops) > 0 {
			b.Operations(ops...)
		}
		if len(types) > 0 {
			b.Types(types...)
		}
		if len(tenants) > 0 {
			b.Tenants(tenants...)
		}
		if len(pr.Instances) > 0 {
			b.Instances(pr.Instances...)
		}
		if pr.Where != "" {
			b.Where(pr.Where)
		}
		if comp != "" {
			typ, id, ok := strings.Cut(comp, "/")
			if !ok {
				return nil, fmt.Errorf("compartment %q is not Type/id (Patient/123, Patient/{patient}, {fhirUser})", comp)
			}
			b.InCompartment(typ, id)
		}
		if len(pr.CompartmentParams) > 0 {
			b.CompartmentParams(pr.CompartmentParams...)
		}
		p, err := b.Build()
		if err != nil {
			// The builder names the rule; the caller of compile does too.
			return nil, errors.New(strings.TrimPrefix(strings.TrimPrefix(err.Error(), "authz: "), fmt.Sprintf("rule %q: ", pr.Name)))
		}
		out = append(out, p.Rules...)
	}
	return out, nil
}
