package authz

import (
	"reflect"
	"slices"

	"github.com/fhirserver/fhirserver/fhir/search"
	"github.com/fhirserver/fhirserver/store"
)

// labelled returns d with its rule names prefixed by the layer that made
// them ("scopes", "policy"), so that a log line or an explanation says
// where a rule comes from.
func labelled(layer string, d Decision) Decision {
	d.Rule = layer + ": " + d.Rule
	d.Rules = labels(layer, d.Rules)
	return d
}

func labels(layer string, names []string) []string {
	if len(names) == 0 {
		return nil
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = layer + ": " + n
	}
	return out
}

// combine narrows the scopes' decision s by the access policy's p: both
// must allow, and the filters (and the match filters of conditional
// interactions) are intersected. The rule of an allowed request is the
// policy's: the scopes are the outer limit, the policy says why this
// caller gets what it gets.
func combine(s, p Decision) Decision {
	if !s.Allow {
		return Decision{Rule: "scopes: " + s.Rule}
	}
	if !p.Allow {
		return Decision{Rule: "policy: " + p.Rule}
	}
	const disjoint = "scopes and policy: nothing that both allow"
	d := Decision{
		Allow:  true,
		Filter: Intersect(s.Filter, p.Filter),
		Rule:   "policy: " + p.Rule,
		Rules:  append(labels("scopes", s.Rules), labels("policy", p.Rules)...),
	}
	if len(d.Filter.Grants) == 0 {
		return Decision{Rule: disjoint}
	}
	if len(s.Match.Grants) > 0 || len(p.Match.Grants) > 0 {
		if d.Match = Intersect(s.Match, p.Match); len(d.Match.Grants) == 0 {
			return Decision{Rule: disjoint}
		}
	}
	return d
}

// Intersect returns the filter admitting what both a and b admit: the
// grants of one ANDed with those of the other, pair by pair (grants are
// ORed, so this is the distributive law), leaving out pairs that admit
// nothing (no type in common) and duplicates.
func Intersect(a, b store.Filter) store.Filter {
	if a.IsAllowAll() {
		return b
	}
	if b.IsAllowAll() {
		return a
	}
	var out store.Filter
	for _, ga := range a.Grants {
		for _, gb := range b.Grants {
			g, ok := andGrant(ga, gb)
			if !ok || slices.ContainsFunc(out.Grants, func(x store.Grant) bool { return reflect.DeepEqual(x, g) }) {
				continue
			}
			out.Grants = append(out.Grants, g)
		}
	}
	return out
}

// andGrant is the grant admitting what both a and b admit; ok is false
// when they have no type in common. A Where is parsed for its grant's one
// type, which the intersection keeps, so the clauses can be joined.
func andGrant(a, b store.Grant) (store.Grant, bool) {
	var g store.Grant
	switch {
	case len(a.Types) == 0:
		g.Types = b.Types
	case len(b.Types) == 0:
		g.Types = a.Types
	default:
		g.Types = slices.DeleteFunc(slices.Clone(a.Types), func(t string) bool { return !slices.Contains(b.Types, t) })
		if len(g.Types) == 0 {
			return store.Grant{}, false
		}
	}
	var comps []search.Compartment
	for _, c := range [][]search.Compartment{ptrSlice(a.Compartment), a.AlsoIn, ptrSlice(b.Compartment), b.AlsoIn} {
		for _, x := range c {
			if !slices.Contains(comps, x) {
				comps = append(comps, x)
			}
		}
	}
	if len(comps) > 0 {
		first := comps[0]
		g.Compartment = &first
		g.AlsoIn = comps[1:]
		if len(g.AlsoIn) == 0 {
			g.AlsoIn = nil
		}
	}
	if len(a.Where)+len(b.Where) > 0 {
		g.Where = append(slices.Clone(a.Where), b.Where...)
	}
	return g, true
}

func ptrSlice(c *search.Compartment) []search.Compartment {
	if c == nil {
		return nil
	}
	return []search.Compartment{*c}
}
