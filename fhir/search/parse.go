package search

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/fhirserver/fhirserver/fhir"
)

// Options say what is searched and how the request is to be read.
type Options struct {
	// Types is the type of a type-level search (B/fhir/Observation), the
	// member type of a compartment search (B/fhir/Patient/1/Observation),
	// or nil: every type (system level, or B/fhir/Patient/1/*). _type
	// narrows it; a _type outside a non-nil Types is an error.
	Types []string
	// Compartment restricts the search to a compartment; every searched
	// type must be a member of it.
	Compartment *Compartment
	// Strict is Prefer: handling=strict: an unknown or unsupported
	// parameter is an error instead of an Issue in Query.Unknown.
	Strict bool
	// DefaultCount is the page size when _count is absent (0: leave Count
	// 0, the store's default); MaxCount caps _count (0: no cap).
	DefaultCount, MaxCount int
	// Base is the server's base URL (B/fhir, no trailing slash needed): an
	// absolute reference value under it is taken as the local reference it
	// names, so that subject=B/fhir/Patient/1 matches "Patient/1".
	Base string
	// FullText says that the store implements _text and _content; without
	// it they are unsupported parameters.
	FullText bool
}

// Parse turns the query parameters of a search request into a Query,
// following the FHIR R4 search specification
// (http://hl7.org/fhir/R4/search.html). Errors are *fhir.Error of kind
// invalid, with a message that names the parameter: a malformed value, a
// modifier or prefix the parameter's type does not allow, a chain or _has
// that names no parameter, an _include of a non-reference parameter...
//
// An unknown parameter, or one this server does not support (_query,
// _filter, _contained=true, _text without Options.FullText...), is an error
// only with Options.Strict; otherwise it is ignored and listed in
// Query.Unknown with the reason. _format and _pretty are left to the
// server. Parameters with an empty value are ignored, as are empty items
// of a comma-separated list.
//
// Clauses come in the order of their parameter names (sorted), then as
// repeated in the request. _count=0 asks for the count only (R4 treats it
// as _summary=count): Parse sets Summary to SummaryCount, and Count is 0
// whenever Summary is SummaryCount.
func Parse(params url.Values, opt Options) (*Query, error) {
	p := &parser{opt: opt, q: &Query{}}
	if err := p.resolveTypes(params["_type"]); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p.key = k
		if err := p.param(k, params[k]); err != nil {
			return nil, err
		}
	}
	p.finish()
	return p.q, nil
}

type parser struct {
	opt Options
	q   *Query
	// scope is the types a parameter must be defined on: the searched
	// types, the compartment's members, or nil for every resource type.
	scope []string
	key   string // the parameter being parsed, for messages
	// countGiven and countZero record _count for finish.
	countGiven, countZero bool
}

// errf is an invalid-request error about the current parameter.
func (p *parser) errf(format string, args ...any) error {
	return fhir.Errorf(fhir.KindInvalid, "search parameter %s: %s", p.key, fmt.Sprintf(format, args...))
}

// unsupportedError is an unknown or unsupported parameter: ignored and
// reported in lenient mode, an error in strict mode.
type unsupportedError struct{ msg string }

func (e *unsupportedError) Error() string { return e.msg }

// skip handles an unknown or unsupported parameter: an Issue, or in strict
// mode an error.
func (p *parser) skip(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if p.opt.Strict {
		return fhir.Errorf(fhir.KindInvalid, "search parameter %s: %s", p.key, msg)
	}
	if issue := (Issue{Param: p.key, Message: msg}); !slices.Contains(p.q.Unknown, issue) {
		p.q.Unknown = append(p.q.Unknown, issue)
	}
	return nil
}

// resolveTypes sets Query.Types, Query.Compartment and the scope.
func (p *parser) resolveTypes(typeParam []string) error {
	var types []string
	for _, t := range p.opt.Types {
		if !fhir.IsResourceType(t) {
			return fhir.Errorf(fhir.KindInvalid, "%q is not a resource type", t)
		}
		if !slices.Contains(types, t) {
			types = append(types, t)
		}
	}
	p.key = "_type"
	if len(typeParam) > 1 {
		return p.errf("give it once, with the types separated by commas")
	}
	if len(typeParam) == 1 {
		var narrowed []string
		for _, t := range strings.Split(typeParam[0], ",") {
			switch {
			case t == "":
			case !fhir.IsResourceType(t):
				return p.errf("%q is not a resource type", t)
			case len(types) > 0 && !slices.Contains(types, t):
				return p.errf("%s is not among the searched types (%s)", t, strings.Join(types, ", "))
			case !slices.Contains(narrowed, t):
				narrowed = append(narrowed, t)
			}
		}
		if len(narrowed) > 0 {
			types = narrowed
		}
	}
	p.q.Types = types
	p.scope = types
	if c := p.opt.Compartment; c != nil {
		if !slices.Contains(fhir.CompartmentTypes(), c.Type) {
			return fhir.Errorf(fhir.KindInvalid, "%s is not a compartment (compartments: %s)", c.Type, strings.Join(fhir.CompartmentTypes(), ", "))
		}
		if !fhir.ValidID(c.ID) {
			return fhir.Errorf(fhir.KindInvalid, "compartment %s: %q is not a valid id", c.Type, c.ID)
		}
		members := fhir.CompartmentMembers(c.Type)
		for _, t := range types {
			if !slices.Contains(members, t) {
				return fhir.Errorf(fhir.KindInvalid, "%s is not in the %s compartment", t, c.Type)
			}
		}
		p.q.Compartment = &Compartment{Type: c.Type, ID: c.ID}
		if len(types) == 0 {
			p.scope = members
		}
	}
	return nil
}

// param parses one parameter name with all its occurrences.
func (p *parser) param(key string, vals []string) error {
	name, mod, hasMod := strings.Cut(key, ":")
	if rp, ok := resultParam(name); ok {
		if hasMod && !(rp.iterate && (mod == "iterate" || mod == "recurse")) {
			return p.errf("no modifier :%s on %s", mod, name)
		}
		if !rp.repeat {
			vals = nonEmpty(vals)
			if len(vals) > 1 {
				return p.errf("given %d times; give it once", len(vals))
			}
		}
		for _, v := range vals {
			if v == "" {
				continue
			}
			if err := rp.parse(p, mod, v); err != nil {
				return err
			}
		}
		return nil
	}
	n := len(p.q.Clauses)
	for _, v := range vals {
		if err := p.searchParam(key, v); err != nil {
			return err
		}
	}
	if added := p.q.Clauses[n:]; len(added) > 1 {
		if leaf := leafOf(&added[0]); leaf.Param != nil && !leaf.Param.MultipleAnd {
			return p.errf("%s does not allow repeating the parameter (multipleAnd is false)", leaf.Code)
		}
	}
	return nil
}

func nonEmpty(vals []string) []string {
	var out []string
	for _, v := range vals {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// leafOf returns the clause at the end of c's chains and _has: the one that
// holds the values.
func leafOf(c *Clause) *Clause {
	for {
		switch {
		case c.Chain != nil:
			c = c.Chain
		case c.Has != nil:
			c = &c.Has.Clause
		default:
			return c
		}
	}
}

// searchParam parses one occurrence of a search parameter into a clause.
func (p *parser) searchParam(key, raw string) error {
	if raw == "" {
		return nil
	}
	c, err := p.clause(p.scope, key, raw, 0)
	if err != nil {
		var u *unsupportedError
		if errors.As(err, &u) {
			return p.skip("%s", u.msg)
		}
		return err
	}
	if c != nil {
		p.q.Clauses = append(p.q.Clauses, *c)
	}
	return nil
}

// clause parses key=raw for a search over types (nil: every type). depth is
// 0 for the parameter as named in the request, more inside a chain or _has,
// where an unknown parameter is always an error. It returns nil when every
// value is empty.
func (p *parser) clause(types []string, key, raw string, depth int) (*Clause, error) {
	if rest, ok := strings.CutPrefix(key, "_has:"); ok {
		return p.hasClause(types, rest, raw, depth)
	}
	head, tail, chained := strings.Cut(key, ".")
	code, mod, hasMod := strings.Cut(head, ":")
	if hasMod && mod == "" {
		return nil, p.errf("empty modifier after %s:", code)
	}
	defs, err := p.defs(types, code, depth)
	if err != nil {
		return nil, err
	}
	if chained {
		return p.chainClause(defs, code, mod, tail, raw, depth)
	}
	return p.leafClause(defs, code, Modifier(mod), raw)
}

// defs returns the definitions of code for each of types (one, the generic
// one, when types is nil). A generic parameter (_id, _text...) counts as
// defined on every type, even those it does not apply to (_text on Bundle).
// All must have the same type.
func (p *parser) defs(types []string, code string, depth int) ([]*fhir.SearchParam, error) {
	unknown := func(format string, args ...any) error {
		msg := fmt.Sprintf(format, args...)
		if depth == 0 {
			return &unsupportedError{msg}
		}
		return p.errf("%s", msg)
	}
	switch code {
	case "":
		return nil, p.errf("empty parameter name")
	case "_has":
		return nil, p.errf("_has needs the form _has:Type:reference-parameter:parameter")
	case "_query":
		return nil, unknown("named queries (_query) are not supported")
	case "_text", "_content":
		if !p.opt.FullText {
			return nil, unknown("full-text search (%s) is not supported", code)
		}
	}
	var defs []*fhir.SearchParam
	if len(types) == 0 {
		d, ok := fhir.LookupSearchParam("DomainResource", code)
		if !ok {
			return nil, unknown("%s is not a parameter of every resource type; name the types with _type", code)
		}
		defs = append(defs, d)
	}
	for _, t := range types {
		d, ok := fhir.LookupSearchParam(t, code)
		if !ok {
			if _, generic := fhir.LookupSearchParam("DomainResource", code); generic {
				continue
			}
			if len(types) == 1 {
				return nil, unknown("%s has no search parameter %s", t, code)
			}
			if depth == 0 && len(p.q.Types) == 0 && p.q.Compartment != nil {
				return nil, unknown("%s is not a parameter of every type in the %s compartment (%s has none); name the types with _type", code, p.q.Compartment.Type, t)
			}
			return nil, unknown("%s has no search parameter %s (over several types, a parameter must be defined on each)", t, code)
		}
		defs = append(defs, d)
	}
	first := defs[0]
	for _, d := range defs[1:] {
		if d.Type != first.Type || len(d.Components) != len(first.Components) {
			return nil, p.errf("%s is a %s parameter of %s but a %s parameter of %s; search the types one at a time", code, first.Type, first.Base, d.Type, d.Base)
		}
		for i := range d.Components {
			if d.Components[i].Type != first.Components[i].Type {
				return nil, p.errf("%s has different components on %s and %s; search the types one at a time", code, first.Base, d.Base)
			}
		}
	}
	if first.Expression == "" && code != "_text" && code != "_content" {
		return nil, unknown("%s is not supported (it has no expression to index)", code)
	}
	if first.Type == fhir.SearchParamSpecial && first.XPathUsage != "nearby" {
		return nil, unknown("the special parameter %s is not supported", code)
	}
	return defs, nil
}

// targetsOf is the union of the target types of reference parameters, sorted.
func targetsOf(defs []*fhir.SearchParam) []string {
	var out []string
	for _, d := range defs {
		for _, t := range d.Targets {
			if !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	}
	sort.Strings(out)
	return out
}

// definedOn reports whether code is a search parameter of type t.
func definedOn(t, code string) bool {
	_, ok := fhir.LookupSearchParam(t, code)
	return ok
}

// chainClause parses code[:Type].tail=raw.
func (p *parser) chainClause(defs []*fhir.SearchParam, code, mod, tail, raw string, depth int) (*Clause, error) {
	def := defs[0]
	if def.Type != fhir.SearchParamReference {
		return nil, p.errf("%s is a %s parameter: only reference parameters can be chained", code, def.Type)
	}
	if tail == "" {
		return nil, p.errf("nothing after %s.", code)
	}
	targets := targetsOf(defs)
	var types []string
	if mod != "" {
		if !fhir.IsResourceType(mod) {
			return nil, p.errf("a chain takes a resource type modifier (%s:Type.parameter), not :%s", code, mod)
		}
		if !slices.Contains(targets, mod) {
			return nil, p.errf("%s is not a target type of %s (%s)", mod, code, listOr(targets))
		}
		types = []string{mod}
	} else {
		next := chainedCode(tail)
		for _, t := range targets {
			if next == "_has" && hasRefersTo(tail, t) || next != "_has" && definedOn(t, next) {
				types = append(types, t)
			}
		}
		if len(types) == 0 {
			if len(targets) == 0 {
				return nil, p.errf("%s names no target types to chain through", code)
			}
			return nil, p.errf("no target type of %s (%s) has a search parameter %s", code, listOr(targets), next)
		}
	}
	inner, err := p.clause(types, tail, raw, depth+1)
	if err != nil || inner == nil {
		return nil, err
	}
	return &Clause{Param: def, Code: code, Type: def.Type, TargetType: mod, Chain: inner, ChainTypes: types}, nil
}

// chainedCode is the parameter code at the start of a chain's tail.
func chainedCode(tail string) string {
	if strings.HasPrefix(tail, "_has:") {
		return "_has"
	}
	tail, _, _ = strings.Cut(tail, ".")
	tail, _, _ = strings.Cut(tail, ":")
	return tail
}

// hasRefersTo reports whether the _has:Type:refParam:... at the start of
// tail can refer to type t (or is malformed, for hasClause to report).
func hasRefersTo(tail, t string) bool {
	parts := strings.SplitN(strings.TrimPrefix(tail, "_has:"), ":", 3)
	if len(parts) < 3 {
		return true
	}
	rp, ok := fhir.LookupSearchParam(parts[0], parts[1])
	return !ok || slices.Contains(rp.Targets, t)
}

func listOr(types []string) string {
	if len(types) == 0 {
		return "none"
	}
	if len(types) > 8 {
		return strings.Join(types[:8], ", ") + fmt.Sprintf(" and %d more", len(types)-8)
	}
	return strings.Join(types, ", ")
}

// hasClause parses _has:Type:refParam:rest=raw.
func (p *parser) hasClause(types []string, rest, raw string, depth int) (*Clause, error) {
	parts := strings.SplitN(rest, ":", 3)
	if len(parts) < 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return nil, p.errf("_has needs the form _has:Type:reference-parameter:parameter")
	}
	typ, ref, inner := parts[0], parts[1], parts[2]
	if !fhir.IsResourceType(typ) {
		return nil, p.errf("_has: %q is not a resource type", typ)
	}
	rp, ok := fhir.LookupSearchParam(typ, ref)
	if !ok || rp.Type != fhir.SearchParamReference {
		return nil, p.errf("_has: %s has no reference parameter %s", typ, ref)
	}
	if len(types) > 0 && !slices.ContainsFunc(types, func(t string) bool { return slices.Contains(rp.Targets, t) }) {
		return nil, p.errf("_has: %s.%s does not refer to %s (it refers to %s)", typ, ref, strings.Join(types, " or "), listOr(rp.Targets))
	}
	c, err := p.clause([]string{typ}, inner, raw, depth+1)
	if err != nil || c == nil {
		return nil, err
	}
	return &Clause{Code: "_has", Has: &Has{Type: typ, RefParam: ref, Clause: *c}}, nil
}

// modifiersOf lists the modifiers a parameter type takes besides :missing
// (R4 search, modifiers by type); a reference also takes a target type.
func modifiersOf(t fhir.SearchParamType) []Modifier {
	switch t {
	case fhir.SearchParamString:
		return []Modifier{ModExact, ModContains}
	case fhir.SearchParamToken:
		return []Modifier{ModText, ModNot, ModAbove, ModBelow, ModIn, ModNotIn, ModOfType}
	case fhir.SearchParamReference:
		return []Modifier{ModIdentifier}
	case fhir.SearchParamURI:
		return []Modifier{ModAbove, ModBelow}
	}
	return nil
}

// leafClause parses code[:modifier]=raw, the clause that holds values.
func (p *parser) leafClause(defs []*fhir.SearchParam, code string, mod Modifier, raw string) (*Clause, error) {
	def := defs[0]
	c := &Clause{Param: def, Code: code, Type: def.Type}
	if mod == ModMissing {
		switch raw {
		case "true", "false":
			b := raw == "true"
			c.Modifier, c.Missing = ModMissing, &b
			return c, nil
		}
		return nil, p.errf(":missing takes true or false, not %q", raw)
	}
	spec := valueSpec{typ: def.Type, comparators: def.Comparators, components: def.Components}
	if def.Type == fhir.SearchParamReference {
		spec.targets = targetsOf(defs)
	}
	allowed := modifiersOf(def.Type)
	if code == "_id" {
		allowed = []Modifier{ModNot}
	}
	switch {
	case mod == ModNone:
	case def.Type == fhir.SearchParamReference && fhir.IsResourceType(string(mod)):
		if !slices.Contains(spec.targets, string(mod)) {
			return nil, p.errf("%s is not a target type of %s (%s)", mod, code, listOr(spec.targets))
		}
		c.TargetType, spec.targetType = string(mod), string(mod)
	case slices.Contains(allowed, mod):
		c.Modifier, spec.mod = mod, mod
	default:
		valid := []string{":missing"}
		for _, m := range allowed {
			valid = append(valid, ":"+string(m))
		}
		if def.Type == fhir.SearchParamReference {
			valid = append(valid, ":[type]")
		}
		return nil, p.errf("modifier :%s is not valid for %s, a %s parameter (valid: %s)", mod, code, def.Type, strings.Join(valid, ", "))
	}
	spec.id = code == "_id"
	for _, item := range splitEscaped(raw, ',') {
		if item == "" {
			continue
		}
		v, err := p.value(&spec, item)
		if err != nil {
			return nil, err
		}
		c.Values = append(c.Values, v)
	}
	if len(c.Values) == 0 {
		return nil, nil
	}
	if len(c.Values) > 1 && !def.MultipleOr {
		return nil, p.errf("%s takes one value at a time (multipleOr is false); repeat the parameter to AND values", code)
	}
	return c, nil
}
