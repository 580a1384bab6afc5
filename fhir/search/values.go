package search

import (
	"slices"
	"strconv"
	"strings"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/index"
	"github.com/fhirserver/fhirserver/fhir/terminology"
)

// valueSpec is what parsing one value needs to know of its parameter.
type valueSpec struct {
	typ         fhir.SearchParamType
	mod         Modifier
	targetType  string   // reference :Type modifier
	targets     []string // reference target types (may be empty)
	comparators []string // allowed prefixes; empty: all
	components  []fhir.SearchParamComponent
	id          bool // _id: the code must be a valid id
}

// value parses one (still escaped) item of a comma-separated value.
func (p *parser) value(s *valueSpec, raw string) (Value, error) {
	switch s.typ {
	case fhir.SearchParamString:
		v := unescape(raw)
		if s.mod == ModExact {
			return Value{Raw: v, Str: v}, nil
		}
		return Value{Raw: v, Str: index.Normalize(v)}, nil
	case fhir.SearchParamToken:
		return p.token(s, raw)
	case fhir.SearchParamReference:
		if s.mod == ModIdentifier {
			return p.token(&valueSpec{typ: fhir.SearchParamToken}, raw)
		}
		return p.reference(s, raw)
	case fhir.SearchParamDate:
		return p.date(s, raw)
	case fhir.SearchParamNumber:
		v := Value{Raw: unescape(raw)}
		num, err := p.prefix(s, &v, v.Raw)
		if err != nil {
			return v, err
		}
		return v, p.number(&v, num, "number")
	case fhir.SearchParamQuantity:
		return p.quantity(s, raw)
	case fhir.SearchParamURI:
		v := unescape(raw)
		return Value{Raw: v, Str: v}, nil
	case fhir.SearchParamComposite:
		return p.composite(s, raw)
	case fhir.SearchParamSpecial:
		return p.near(raw)
	}
	return Value{}, p.errf("parameters of type %s are not supported", s.typ)
}

func (p *parser) token(s *valueSpec, raw string) (Value, error) {
	v := Value{Raw: unescape(raw)}
	switch s.mod {
	case ModText:
		v.Str = index.Normalize(v.Raw)
		return v, nil
	case ModIn, ModNotIn:
		// The value set is expanded by the store, which knows the value
		// sets stored on the server as well as the specification's.
		v.URL = v.Raw
		return v, nil
	case ModOfType:
		parts := splitEscaped(raw, '|')
		if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
			return v, p.errf(":of-type takes type-system|type-code|value, all three given, not %q", v.Raw)
		}
		v.TypeSystem, v.TypeCode, v.Code = unescape(parts[0]), unescape(parts[1]), unescape(parts[2])
		return v, nil
	}
	parts := splitEscaped(raw, '|')
	switch len(parts) {
	case 1:
		v.Code = v.Raw
	case 2:
		v.System, v.Code, v.HasSystem = unescape(parts[0]), unescape(parts[1]), true
		if v.System == "" && v.Code == "" {
			return v, p.errf("%q has neither a system nor a code", v.Raw)
		}
	default:
		return v, p.errf("%q is not [system|]code (escape a | that belongs to the value as \\|)", v.Raw)
	}
	if s.id && (v.HasSystem || !fhir.ValidID(v.Code)) {
		return v, p.errf("%q is not a resource id", v.Raw)
	}
	if s.mod == ModBelow || s.mod == ModAbove {
		return v, p.subsumption(s.mod, &v)
	}
	return v, nil
}

// subsumption fills v.Expansion for :below (the code and its descendants)
// or :above (the code and its ancestors), from the code system's is-a
// hierarchy.
func (p *parser) subsumption(mod Modifier, v *Value) error {
	if v.System == "" || v.Code == "" {
		return p.errf(":%s takes system|code (a code of a code system whose hierarchy is known), not %q", mod, v.Raw)
	}
	walk := terminology.R4().Below
	if mod == ModAbove {
		walk = terminology.R4().Above
	}
	codes, err := walk(v.System, v.Code)
	if err != nil {
		return p.termErr(err)
	}
	v.Expansion = []terminology.CodeSet{{System: v.System, Codes: codes}}
	return nil
}

// termErr is a terminology error about the current parameter, of the same
// kind (an unknown code is invalid, a code system that needs an outside
// terminology not-supported; neither is ignored in lenient mode, which
// would widen the search).
func (p *parser) termErr(err error) error {
	k := fhir.KindOf(err)
	if k == fhir.KindInternal {
		return err
	}
	return fhir.Errorf(k, "search parameter %s: %s", p.key, fhir.MessageOf(err))
}

func (p *parser) reference(s *valueSpec, raw string) (Value, error) {
	v := Value{Raw: unescape(raw)}
	parts := splitEscaped(raw, '|')
	if len(parts) > 2 {
		return v, p.errf("%q has more than one | (a canonical reference is url|version)", v.Raw)
	}
	ref := unescape(parts[0])
	if len(parts) == 2 {
		version := unescape(parts[1])
		if !strings.Contains(ref, ":") || version == "" {
			return v, p.errf("%q: a |version follows an absolute canonical URL", v.Raw)
		}
		v.URL, v.RefVersion = ref, version
		v.RefType, v.RefID, _ = urlTail(ref)
		return v, nil
	}
	if strings.Contains(ref, ":") {
		if base := strings.TrimSuffix(p.opt.Base, "/"); base != "" && strings.HasPrefix(ref, base+"/") {
			if t, id, ver, ok := splitLocal(ref[len(base)+1:]); ok && t != "" {
				v.RefType, v.RefID, v.RefVersion = t, id, ver
				return v, p.checkRefType(s, &v)
			}
		}
		v.URL = ref
		v.RefType, v.RefID, v.RefVersion = urlTail(ref)
		return v, nil
	}
	t, id, ver, ok := splitLocal(ref)
	if !ok {
		return v, p.errf("%q is not a reference: an id, Type/id, Type/id/_history/version or an absolute URL", v.Raw)
	}
	v.RefType, v.RefID, v.RefVersion = t, id, ver
	return v, p.checkRefType(s, &v)
}

// checkRefType checks a local reference's type against the :Type modifier
// and the parameter's targets, and fills in the modifier's type for a bare id.
func (p *parser) checkRefType(s *valueSpec, v *Value) error {
	switch {
	case v.RefType == "":
		v.RefType = s.targetType
	case s.targetType != "" && v.RefType != s.targetType:
		return p.errf("%q is not a %s reference (the modifier says :%s)", v.Raw, s.targetType, s.targetType)
	case len(s.targets) > 0 && !slices.Contains(s.targets, v.RefType):
		return p.errf("%q: %s is not a target type of this parameter (%s)", v.Raw, v.RefType, listOr(s.targets))
	}
	return nil
}

// splitLocal parses id, Type/id or Type/id/_history/version.
func splitLocal(ref string) (typ, id, version string, ok bool) {
	segs := strings.Split(ref, "/")
	switch {
	case len(segs) == 1:
		id = segs[0]
	case len(segs) == 2:
		typ, id = segs[0], segs[1]
	case len(segs) == 4 && segs[2] == "_history":
		typ, id, version = segs[0], segs[1], segs[3]
		if !fhir.ValidID(version) {
			return "", "", "", false
		}
	default:
		return "", "", "", false
	}
	if (typ != "" && !fhir.IsResourceType(typ)) || !fhir.ValidID(id) {
		return "", "", "", false
	}
	return typ, id, version, true
}

// urlTail returns the type, id and version an absolute URL ends in
// (…/Type/id or …/Type/id/_history/v), as the index splits references.
func urlTail(u string) (typ, id, version string) {
	if q := strings.IndexAny(u, "?#"); q >= 0 {
		u = u[:q]
	}
	segs := strings.Split(u, "/")
	if len(segs) >= 4 && segs[len(segs)-2] == "_history" {
		version = segs[len(segs)-1]
		segs = segs[:len(segs)-2]
	}
	if len(segs) < 2 {
		return "", "", ""
	}
	t, i := segs[len(segs)-2], segs[len(segs)-1]
	if !fhir.IsResourceType(t) || !fhir.ValidID(i) {
		return "", "", ""
	}
	return t, i, version
}

// prefix takes the comparison prefix off s into v.Prefix (eq when there is
// none) and returns the rest.
func (p *parser) prefix(s *valueSpec, v *Value, str string) (string, error) {
	v.Prefix = PrefixEq
	if len(str) < 2 || str[0] < 'a' || str[0] > 'z' || str[1] < 'a' || str[1] > 'z' {
		return str, nil
	}
	switch pre := Prefix(str[:2]); pre {
	case PrefixEq, PrefixNe, PrefixGt, PrefixLt, PrefixGe, PrefixLe, PrefixSa, PrefixEb, PrefixAp:
		if pre != PrefixEq && len(s.comparators) > 0 && !slices.Contains(s.comparators, string(pre)) {
			return "", p.errf("prefix %s is not allowed here (allowed: %s)", pre, strings.Join(s.comparators, ", "))
		}
		v.Prefix = pre
		return str[2:], nil
	}
	return "", p.errf("%q: unknown prefix %q (eq, ne, gt, lt, ge, le, sa, eb, ap)", v.Raw, str[:2])
}

func (p *parser) date(s *valueSpec, raw string) (Value, error) {
	v := Value{Raw: unescape(raw)}
	str, err := p.prefix(s, &v, v.Raw)
	if err != nil {
		return v, err
	}
	low, high, err := index.DateRange(str)
	if err != nil {
		hint := ""
		if strings.Contains(str, " ") {
			hint = "; a + in a time zone must be sent as %2B"
		}
		return v, p.errf("%q is not a date: YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss[.sss]][Z|+hh:mm|-hh:mm]%s", v.Raw, hint)
	}
	v.Low, v.High = low, high
	return v, nil
}

// number fills v.Number and its precision range from num.
func (p *parser) number(v *Value, num, what string) error {
	low, high, err := index.PrecisionRange(num)
	if err != nil {
		return p.errf("%q is not a %s: a decimal such as 100, -0.5 or 1.5e3, after an optional prefix", v.Raw, what)
	}
	v.Number, v.NumLow, v.NumHigh = num, low, high
	return nil
}

func (p *parser) quantity(s *valueSpec, raw string) (Value, error) {
	v := Value{Raw: unescape(raw)}
	parts := splitEscaped(raw, '|')
	if len(parts) != 1 && len(parts) != 3 {
		return v, p.errf("%q is not a quantity: number, number|system|code or number||code", v.Raw)
	}
	num, err := p.prefix(s, &v, unescape(parts[0]))
	if err != nil {
		return v, err
	}
	if err := p.number(&v, num, "quantity"); err != nil {
		return v, err
	}
	if len(parts) == 3 {
		v.UnitSystem, v.UnitCode = unescape(parts[1]), unescape(parts[2])
	}
	return v, nil
}

func (p *parser) composite(s *valueSpec, raw string) (Value, error) {
	v := Value{Raw: unescape(raw)}
	parts := splitEscaped(raw, '$')
	if len(parts) != len(s.components) {
		codes := make([]string, len(s.components))
		for i, c := range s.components {
			codes[i] = c.Code
		}
		return v, p.errf("%q: a value has %d parts separated by $ (%s)", v.Raw, len(s.components), strings.Join(codes, "$"))
	}
	for i, part := range parts {
		if part == "" {
			return v, p.errf("%q: the %s part is empty", v.Raw, s.components[i].Code)
		}
		pv, err := p.value(&valueSpec{typ: s.components[i].Type}, part)
		if err != nil {
			return v, err
		}
		v.Parts = append(v.Parts, pv)
	}
	return v, nil
}

// near parses Location near: latitude|longitude[|distance[|unit]].
func (p *parser) near(raw string) (Value, error) {
	v := Value{Raw: unescape(raw)}
	parts := splitEscaped(raw, '|')
	bad := func() (Value, error) {
		return v, p.errf("%q is not latitude|longitude[|distance[|unit]] in decimal degrees", v.Raw)
	}
	if len(parts) < 2 || len(parts) > 4 {
		return bad()
	}
	lat, long := unescape(parts[0]), unescape(parts[1])
	if !degrees(lat, 90) || !degrees(long, 180) {
		return bad()
	}
	v.Latitude, v.Longitude = lat, long
	dist, unit := "", ""
	if len(parts) > 2 {
		dist = unescape(parts[2])
	}
	if len(parts) > 3 {
		unit = unescape(parts[3])
	}
	switch {
	case dist == "" && unit != "":
		return v, p.errf("%q: a unit needs a distance", v.Raw)
	case dist == "":
		return v, nil
	case strings.HasPrefix(dist, "-"):
		return v, p.errf("%q: the distance is negative", v.Raw)
	}
	if err := p.number(&v, dist, "distance"); err != nil {
		return v, err
	}
	if v.UnitCode = unit; unit == "" {
		v.UnitCode = "km"
	}
	return v, nil
}

// degrees reports whether s is a decimal within [-limit, limit].
func degrees(s string, limit float64) bool {
	if !index.ValidDecimal(s) {
		return false
	}
	f, err := strconv.ParseFloat(s, 64)
	return err == nil && f >= -limit && f <= limit
}
