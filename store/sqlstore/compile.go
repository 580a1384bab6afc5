package sqlstore

import (
	"context"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/index"
	"github.com/fhirserver/fhirserver/fhir/search"
	"github.com/fhirserver/fhirserver/fhir/terminology"
)

// The search compiler turns a search.Query into one SQL statement for both
// databases. Every clause becomes an EXISTS (or NOT EXISTS) subquery on the
// index tables, correlated to the resources row it constrains; the values
// of a clause are ORed inside it and the clauses are ANDed. Chains and _has
// are EXISTS over the reference table joined to another resources row,
// which is itself constrained by the base condition and by the chained
// clause, to any depth. Every value is a bind parameter.

// maxDepth bounds the nesting of chains and _has.
const maxDepth = 4

// compiler builds the SQL of one statement.
type compiler struct {
	d      Dialect
	a      args
	tenant string // placeholder of the tenant
	access Access
	now    time.Time
	n      int // numbers aliases
	depth  int
	// fullText: the store indexes text for _text and _content.
	fullText bool
	// anchored: where started from a reference to given resources (see
	// probe), so the matches are few whatever the table holds.
	anchored bool
	// The value sets of :in and :not-in are looked up in the tenant as the
	// statement is compiled (valuesets.go): ctx, s and tenantID are for
	// that, expanded holds the expansions done so far.
	ctx      context.Context
	s        *Store
	tenantID string
	expanded map[string][]terminology.CodeSet
	// join and key0, when set, are a join of resources alias r to one
	// patient's date rows grouped by resource, and the first sort key
	// taken from it (see groupedSort).
	join, key0 string
	// patient is X of a search by one patient (patient=X, see
	// planPatientRoute); sortJoin joins the sort keys taken from X's rows.
	patient, sortJoin string
	// grouped is groupedSort's statement (id, k) of the matches.
	grouped string
	// matchSet, when set, selects the ids (and for groupedSort the first
	// sort key, k) of the matches from index rows alone: search orders and
	// pages them before it reads any resource (late).
	matchSet string
	// fenceAccess: compartment tests are per-row probes (visibleIDs).
	fenceAccess bool
}

func (s *Store) newCompiler(ctx context.Context, tenant string, access Access) *compiler {
	c := &compiler{d: s.Driver, access: access, now: s.now(), fullText: s.FullText, ctx: ctx, s: s, tenantID: tenant}
	c.tenant = c.bind(tenant)
	return c
}

func (c *compiler) bind(v any) string { return c.a.add(v) }

func (c *compiler) num(s string) string { return c.d.NumericParam(c.a.add(s)) }

func (c *compiler) alias(prefix string) string {
	c.n++
	return prefix + strconv.Itoa(c.n)
}

// in renders expr = $1 or expr IN ($1, ...).
func (c *compiler) in(expr string, vals []string) string {
	if len(vals) == 1 {
		return expr + " = " + c.bind(vals[0])
	}
	ph := make([]string, len(vals))
	for i, v := range vals {
		ph[i] = c.bind(v)
	}
	return expr + " IN (" + strings.Join(ph, ", ") + ")"
}

// base is the condition every resources row that a search reads must meet:
// the tenant, a current (not deleted) version, and the caller's Access. It
// is the only place where the access filter enters the SQL, and every
// resources alias of a search statement (matches, includes, counts, chain
// and _has targets) goes through it.
func (c *compiler) base(r string) string {
	cond := r + ".tenant = " + c.tenant + " AND NOT " + r + ".deleted"
	if a := c.accessCond(r, c.access); a != "" {
		cond += " AND " + a
	}
	return cond
}

// scope is a resources row alias and the types it can have (nil: any).
type scope struct {
	r     string
	types []string
}

// cond is a compiled clause: a plain SQL condition, or a set of resources
// given as "FROM ... WHERE ..." over rows whose (typeCol, idCol) name them.
// Sets are kept apart so that the sets of several clauses can be
// intersected on the index tables before any resources row is read.
type cond struct {
	sql string
	set *idSet
}

type idSet struct {
	typeCol, idCol, sel string
	// patientCol, when set, is the patient column of the index rows the
	// set selects (token and date rows, see patientsOf): the set can be
	// narrowed to one patient's rows.
	patientCol string
	// For token and date sets: the set's rows without the value condition
	// (of any value of the parameter), and that condition, on alias.
	rows, valueCond, alias string
}

func plain(sql string) cond { return cond{sql: sql} }

func set(typeCol, idCol, sel string) cond {
	return cond{set: &idSet{typeCol: typeCol, idCol: idCol, sel: sel}}
}

// render turns cd into a condition on the resources row of sc.
func (c *compiler) render(sc scope, cd cond) string {
	if cd.set == nil {
		return cd.sql
	}
	return c.member(sc, sc.r+".type", sc.r+".id", cd.set)
}

// member renders "(typeCol, idCol) is in set", restricted to the types of
// sc. It is an uncorrelated IN, which both databases can start from (an
// index on the subquery's side) or probe (a hashed or ephemeral set),
// whichever the planner prefers.
func (c *compiler) member(sc scope, typeCol, idCol string, s *idSet) string {
	switch len(sc.types) {
	case 0:
		return "(" + typeCol + ", " + idCol + ") IN (SELECT " + s.typeCol + ", " + s.idCol + " " + s.sel + ")"
	case 1:
		return idCol + " IN (SELECT " + s.idCol + " " + s.sel + " AND " + s.typeCol + " = " + c.bind(sc.types[0]) + ")"
	}
	return "(" + typeCol + ", " + idCol + ") IN (SELECT " + s.typeCol + ", " + s.idCol + " " + s.sel + " AND " + c.in(s.typeCol, sc.types) + ")"
}

// intersect nests the sets: the first selects only what the second
// selects, which selects only what the third selects... so that the
// database intersects the index rows first and reads resources rows only
// for the result (instead of reading every resource of one set and probing
// the others).
func (c *compiler) intersect(sc scope, sets []cond) cond {
	for i := len(sets) - 2; i >= 0; i-- {
		outer, inner := *sets[i].set, sets[i+1].set
		outer.sel += " AND " + c.member(sc, outer.typeCol, outer.idCol, inner)
		sets[i] = cond{set: &outer}
	}
	return sets[0]
}

// owns correlates index row alias x with resources row alias r.
func owns(x, r string) string {
	return x + ".tenant = " + r + ".tenant AND " + x + ".type = " + r + ".type AND " + x + ".id = " + r + ".id"
}

func invalid(format string, a ...any) error { return fhir.Errorf(fhir.KindInvalid, format, a...) }

func notSupported(format string, a ...any) error {
	return fhir.Errorf(fhir.KindNotSupported, format, a...)
}

// tableFor is the index table of a parameter type.
func tableFor(t fhir.SearchParamType) (table, bool) {
	switch t {
	case fhir.SearchParamString:
		return tString, true
	case fhir.SearchParamToken:
		return tToken, true
	case fhir.SearchParamReference:
		return tReference, true
	case fhir.SearchParamDate:
		return tDate, true
	case fhir.SearchParamNumber:
		return tNumber, true
	case fhir.SearchParamQuantity:
		return tQuantity, true
	case fhir.SearchParamURI:
		return tURI, true
	case fhir.SearchParamSpecial: // Location near, the only one parsed
		return tPosition, true
	}
	return 0, false
}

func clauseType(cl *search.Clause) fhir.SearchParamType {
	if cl.Type != "" {
		return cl.Type
	}
	if cl.Param != nil {
		return cl.Param.Type
	}
	return ""
}

// clause compiles one clause as a condition on the resources row of sc.
func (c *compiler) clause(sc scope, cl *search.Clause) (string, error) {
	cd, err := c.clauseCond(sc, cl)
	if err != nil {
		return "", err
	}
	return c.render(sc, cd), nil
}

// clauseCond compiles one clause on the resources row of sc.
func (c *compiler) clauseCond(sc scope, cl *search.Clause) (cond, error) {
	r := sc.r
	switch {
	case cl.Has != nil:
		return c.has(sc, cl.Has)
	case cl.Chain != nil:
		return c.chain(sc, cl)
	case cl.Code == "_id":
		sql, err := c.idClause(r, cl)
		return plain(sql), err
	case cl.Code == "_lastUpdated":
		sql, err := c.lastUpdated(r, cl)
		return plain(sql), err
	case cl.Code == "_text" || cl.Code == "_content":
		return c.fullTextClause(cl)
	}
	typ := clauseType(cl)
	if cl.Missing != nil || cl.Modifier == search.ModMissing {
		return c.missing(sc, cl, typ)
	}
	if len(cl.Values) == 0 {
		return cond{}, invalid("parameter %s has no value", cl.Code)
	}
	if typ == fhir.SearchParamComposite {
		return c.composite(sc, cl)
	}
	t, ok := tableFor(typ)
	if !ok {
		return cond{}, notSupported("search parameter %s (%s) is not supported", cl.Code, typ)
	}
	x := c.alias("x")
	var ors []string
	for i := range cl.Values {
		vc, err := c.value(x, typ, cl.Modifier, cl.TargetType, &cl.Values[i])
		if err != nil {
			return cond{}, err
		}
		ors = append(ors, vc)
	}
	if cl.Modifier == search.ModNot || cl.Modifier == search.ModNotIn {
		if typ != fhir.SearchParamToken {
			return cond{}, invalid(":%s applies to token parameters, not to %s (%s)", cl.Modifier, cl.Code, typ)
		}
		// Resources without a matching row, those without any value too.
		return plain("NOT EXISTS (SELECT 1 FROM " + indexTables[t].name + " " + x + " WHERE " + owns(x, r) + " AND " + x + ".param = " + c.bind(cl.Code) + " AND " + orJoin(ors) + ")"), nil
	}
	rows := "FROM " + indexTables[t].name + " " + x + " WHERE " + x + ".tenant = " + c.tenant + " AND " + x + ".param = " + c.bind(cl.Code)
	cd := set(x+".type", x+".id", rows+" AND "+orJoin(ors))
	if t == tToken || t == tDate {
		cd.set.patientCol = x + ".patient"
		cd.set.rows, cd.set.valueCond, cd.set.alias = rows, orJoin(ors), x
	}
	return cd, nil
}

func orJoin(conds []string) string {
	if len(conds) == 1 {
		return conds[0]
	}
	return "(" + strings.Join(conds, " OR ") + ")"
}

// missing compiles :missing=true|false: whether the resource has any row of
// the parameter.
func (c *compiler) missing(sc scope, cl *search.Clause, typ fhir.SearchParamType) (cond, error) {
	want := true
	if cl.Missing != nil {
		want = *cl.Missing
	} else if len(cl.Values) == 1 {
		switch cl.Values[0].Raw {
		case "true":
		case "false":
			want = false
		default:
			return cond{}, invalid(":missing takes true or false, not %q", cl.Values[0].Raw)
		}
	}
	code := cl.Code
	if typ == fhir.SearchParamComposite {
		if cl.Param == nil || len(cl.Param.Components) == 0 {
			return cond{}, invalid("composite parameter %s has no components", cl.Code)
		}
		typ, code = cl.Param.Components[0].Type, compositeParam(cl.Code, 0)
	}
	t, ok := tableFor(typ)
	if !ok {
		return cond{}, notSupported(":missing is not supported on %s (%s)", cl.Code, typ)
	}
	x := c.alias("x")
	if want {
		return plain("NOT EXISTS (SELECT 1 FROM " + indexTables[t].name + " " + x + " WHERE " + owns(x, sc.r) + " AND " + x + ".param = " + c.bind(code) + ")"), nil
	}
	return set(x+".type", x+".id", "FROM "+indexTables[t].name+" "+x+" WHERE "+x+".tenant = "+c.tenant+" AND "+x+".param = "+c.bind(code)), nil
}

// value compiles one value of a parameter of type typ against index row x.
func (c *compiler) value(x string, typ fhir.SearchParamType, mod search.Modifier, targetType string, v *search.Value) (string, error) {
	switch typ {
	case fhir.SearchParamString:
		return c.stringValue(x, mod, v)
	case fhir.SearchParamToken:
		return c.tokenValue(x, mod, v)
	case fhir.SearchParamReference:
		return c.referenceValue(x, mod, targetType, v)
	case fhir.SearchParamDate:
		if mod != search.ModNone {
			return "", invalid("modifier :%s does not apply to date parameters", mod)
		}
		return c.dateValue(x+".low", x+".high", v)
	case fhir.SearchParamNumber:
		if mod != search.ModNone {
			return "", invalid("modifier :%s does not apply to number parameters", mod)
		}
		return c.numberValue(x, v)
	case fhir.SearchParamQuantity:
		if mod != search.ModNone {
			return "", invalid("modifier :%s does not apply to quantity parameters", mod)
		}
		return c.quantityValue(x, v)
	case fhir.SearchParamURI:
		return c.uriValue(x, mod, v)
	case fhir.SearchParamSpecial:
		if mod != search.ModNone {
			return "", invalid("modifier :%s does not apply to near", mod)
		}
		return c.nearValue(x, v)
	}
	return "", notSupported("search parameters of type %s are not supported", typ)
}

// prefixRange binds the half-open range of strings that start with p:
// [p, p with its last character incremented). Under byte-wise collation
// (PostgreSQL "C", SQLite BINARY) it is exactly the strings with prefix p,
// and an index serves it even in a generic plan.
func (c *compiler) prefixRange(col, p string) string {
	if p == "" {
		return col + " IS NOT NULL"
	}
	if end, ok := prefixEnd(p); ok {
		return "(" + col + " >= " + c.bind(p) + " AND " + col + " < " + c.bind(end) + ")"
	}
	return "(" + col + " >= " + c.bind(p) + ")"
}

// prefixEnd returns the smallest string greater than every string that
// starts with p: p with its last rune incremented (carrying over U+10FFFF
// and skipping surrogates). ok is false when there is none.
func prefixEnd(p string) (string, bool) {
	for p != "" {
		r, size := utf8.DecodeLastRuneInString(p)
		p = p[:len(p)-size]
		if r == utf8.RuneError && size <= 1 {
			continue
		}
		if r == utf8.MaxRune {
			continue
		}
		r++
		if r >= 0xD800 && r <= 0xDFFF {
			r = 0xE000
		}
		return p + string(r), true
	}
	return "", false
}

// likeEscape escapes LIKE wildcards with backslash (used with ESCAPE '\').
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

func (c *compiler) stringValue(x string, mod search.Modifier, v *search.Value) (string, error) {
	raw := v.Str
	if raw == "" {
		raw = v.Raw
	}
	norm := index.Normalize(raw)
	switch mod {
	case search.ModNone:
		return c.prefixRange(x+".norm", norm), nil
	case search.ModExact:
		exact := v.Raw
		if v.Str != "" {
			exact = v.Str
		}
		return "(" + x + ".norm = " + c.bind(index.Normalize(exact)) + " AND " + x + ".value = " + c.bind(exact) + ")", nil
	case search.ModContains:
		return x + ".norm LIKE " + c.bind("%"+likeEscape(norm)+"%") + ` ESCAPE '\'`, nil
	}
	return "", invalid("modifier :%s does not apply to string parameters", mod)
}

// splitPipes splits on | that is not escaped with a backslash.
func splitPipes(s string) []string {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case s[i] == '|':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(s[i])
		}
	}
	return append(parts, cur.String())
}

func (c *compiler) tokenValue(x string, mod search.Modifier, v *search.Value) (string, error) {
	switch mod {
	case search.ModNone, search.ModNot:
		return c.tokenCode(x, v)
	case search.ModText:
		text := v.Str
		if text == "" {
			text = v.Raw
		}
		t := likeEscape(index.Normalize(text))
		// The text starts with the value, or one of its words does.
		return "(" + x + ".text_norm LIKE " + c.bind(t+"%") + ` ESCAPE '\' OR ` + x + ".text_norm LIKE " + c.bind("% "+t+"%") + ` ESCAPE '\')`, nil
	case search.ModOfType:
		ts, tc, code := v.TypeSystem, v.TypeCode, v.Code
		if ts == "" && tc == "" {
			parts := splitPipes(v.Raw)
			if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
				return "", invalid(":of-type takes type-system|type-code|value, not %q", v.Raw)
			}
			ts, tc, code = parts[0], parts[1], parts[2]
		}
		return "(" + x + ".type_system = " + c.bind(ts) + " AND " + x + ".type_code = " + c.bind(tc) + " AND " + x + ".code = " + c.bind(code) + ")", nil
	case search.ModIn, search.ModNotIn:
		sets, err := c.valueSetCodes(v)
		if err != nil {
			return "", err
		}
		return c.codeSets(x, sets), nil
	case search.ModAbove, search.ModBelow:
		if v.Expansion == nil {
			return "", invalid("modifier :%s: %q was not expanded (search.Parse expands it)", mod, v.Raw)
		}
		return c.codeSets(x, v.Expansion), nil
	}
	return "", invalid("modifier :%s does not apply to token parameters", mod)
}

// maxBoundList is the longest list bound value by value (x IN ($1, $2...));
// a longer one is bound as one value (Dialect.AnyOf), so that a value set
// of thousands of codes is one bind value and one short statement.
const maxBoundList = 32

// anyOf renders "expr is one of vals".
func (c *compiler) anyOf(expr string, vals []string) string {
	if len(vals) <= maxBoundList {
		return c.in(expr, vals)
	}
	return c.d.AnyOf(expr, c.bind, vals)
}

// codeSets matches an index row whose system and code are in one of the
// sets (an expansion of :in, :not-in, :below or :above, at most
// terminology.MaxCodes codes for a value set), or that has no
// system and whose code is in one of them: a code element's system is
// implicit in its binding, and the index leaves it empty. Each set becomes
// "code IN (...) AND system IN (empty, system)", which the token index
// (tenant, type, param, code, system, id) serves by probes.
func (c *compiler) codeSets(x string, sets []terminology.CodeSet) string {
	var ors []string
	for _, s := range sets {
		if len(s.Codes) == 0 {
			continue
		}
		ors = append(ors, "("+c.anyOf(x+".code", s.Codes)+" AND "+c.in(x+".system", []string{"", s.System})+")")
	}
	if len(ors) == 0 {
		return "FALSE" // an empty value set
	}
	return orJoin(ors)
}

// tokenCode matches [system|]code: code alone matches any system, |code
// only codes without a system, system| any code of the system.
func (c *compiler) tokenCode(x string, v *search.Value) (string, error) {
	system, code, hasSystem := v.System, v.Code, v.HasSystem
	if !hasSystem && code == "" && v.Raw != "" {
		if parts := splitPipes(v.Raw); len(parts) == 2 {
			system, code, hasSystem = parts[0], parts[1], true
		} else {
			code = v.Raw
		}
	}
	switch {
	case !hasSystem:
		return x + ".code = " + c.bind(code), nil
	case code == "":
		return x + ".system = " + c.bind(system), nil
	default:
		return "(" + x + ".code = " + c.bind(code) + " AND " + x + ".system = " + c.bind(system) + ")", nil
	}
}

func (c *compiler) referenceValue(x string, mod search.Modifier, targetType string, v *search.Value) (string, error) {
	switch mod {
	case search.ModNone:
	case search.ModIdentifier:
		system, code, hasSystem := v.System, v.Code, v.HasSystem
		if !hasSystem && code == "" {
			if parts := splitPipes(v.Raw); len(parts) == 2 {
				system, code, hasSystem = parts[0], parts[1], true
			} else {
				code = v.Raw
			}
		}
		cond := x + ".ident_value = " + c.bind(code)
		if hasSystem {
			cond = "(" + cond + " AND " + x + ".ident_system = " + c.bind(system) + ")"
		}
		return cond, nil
	case search.ModAbove, search.ModBelow:
		return "", notSupported("modifier :%s on reference parameters is not supported", mod)
	default:
		return "", invalid("modifier :%s does not apply to reference parameters", mod)
	}
	if v.URL != "" {
		url, version := v.URL, v.RefVersion
		if version == "" {
			if i := strings.LastIndexByte(url, '|'); i >= 0 {
				url, version = url[:i], url[i+1:]
			}
		}
		cond := x + ".url = " + c.bind(url)
		if version != "" && !strings.Contains(url, "/_history/") {
			cond += " AND " + x + ".version = " + c.bind(version)
		}
		return "(" + cond + ")", nil
	}
	id, typ := v.RefID, v.RefType
	if id == "" {
		raw := v.Raw
		if i := strings.IndexByte(raw, '/'); i >= 0 {
			typ, raw = raw[:i], raw[i+1:]
		}
		id = raw
	}
	if typ == "" {
		typ = targetType
	}
	if id == "" {
		return "", invalid("%q is not a reference", v.Raw)
	}
	cond := x + ".target_id = " + c.bind(id)
	if typ != "" {
		cond += " AND " + x + ".target_type = " + c.bind(typ)
	}
	if v.RefVersion != "" {
		cond += " AND " + x + ".version = " + c.bind(v.RefVersion)
	}
	return "(" + cond + " AND " + x + ".url = '')", nil
}

// dateValue compiles a date value against the stored range [low, high)
// (microseconds; open ends are the extreme int64 values), with the R4
// prefix semantics: eq means the stored range lies within the value's
// range, ne the opposite; gt/lt ask whether the stored range reaches above
// the value's range or below it; ge/le are gt/lt or eq; sa/eb mean the
// stored range lies wholly after/before the value's range; ap overlaps the
// value's range widened by 10% of its distance from now.
func (c *compiler) dateValue(low, high string, v *search.Value) (string, error) {
	if v.Low.IsZero() || v.High.IsZero() {
		return "", invalid("%q is not a date", v.Raw)
	}
	pl, ph := v.Low.UnixMicro(), v.High.UnixMicro()
	eq := func() string {
		return "(" + low + " >= " + c.bind(pl) + " AND " + high + " <= " + c.bind(ph) + ")"
	}
	switch v.Prefix {
	case search.PrefixEq, "":
		return eq(), nil
	case search.PrefixNe:
		return "(" + low + " < " + c.bind(pl) + " OR " + high + " > " + c.bind(ph) + ")", nil
	case search.PrefixGt:
		return high + " > " + c.bind(ph), nil
	case search.PrefixLt:
		return low + " < " + c.bind(pl), nil
	case search.PrefixGe:
		return "(" + high + " > " + c.bind(ph) + " OR " + eq() + ")", nil
	case search.PrefixLe:
		return "(" + low + " < " + c.bind(pl) + " OR " + eq() + ")", nil
	case search.PrefixSa:
		return low + " >= " + c.bind(ph), nil
	case search.PrefixEb:
		return high + " <= " + c.bind(pl), nil
	case search.PrefixAp:
		gap := c.now.Sub(v.Low)
		if gap < 0 {
			gap = -gap
		}
		delta := (gap / 10).Microseconds()
		return "(" + low + " < " + c.bind(ph+delta) + " AND " + high + " > " + c.bind(pl-delta) + ")", nil
	}
	return "", invalid("unknown prefix %q", v.Prefix)
}

// numberValue compiles a number value against the stored range [low, high)
// (NULL is an open end), with the same prefix semantics as dates; ap is the
// value ±10% (at least its precision range).
func (c *compiler) numberValue(x string, v *search.Value) (string, error) {
	lo, hi := v.NumLow, v.NumHigh
	if lo == "" || hi == "" {
		return "", invalid("%q is not a number", v.Raw)
	}
	low, high := x+".low", x+".high"
	eq := func() string {
		return "(" + low + " >= " + c.num(lo) + " AND " + high + " <= " + c.num(hi) + ")"
	}
	switch v.Prefix {
	case search.PrefixEq, "":
		return eq(), nil
	case search.PrefixNe:
		return "(" + low + " IS NULL OR " + high + " IS NULL OR " + low + " < " + c.num(lo) + " OR " + high + " > " + c.num(hi) + ")", nil
	case search.PrefixGt:
		return "(" + high + " IS NULL OR " + high + " > " + c.num(hi) + ")", nil
	case search.PrefixLt:
		return "(" + low + " IS NULL OR " + low + " < " + c.num(lo) + ")", nil
	case search.PrefixGe:
		return "(" + high + " IS NULL OR " + high + " > " + c.num(hi) + " OR " + eq() + ")", nil
	case search.PrefixLe:
		return "(" + low + " IS NULL OR " + low + " < " + c.num(lo) + " OR " + eq() + ")", nil
	case search.PrefixSa:
		return low + " >= " + c.num(hi), nil
	case search.PrefixEb:
		return high + " <= " + c.num(lo), nil
	case search.PrefixAp:
		al, ah, err := approx(v.Number, lo, hi)
		if err != nil {
			return "", err
		}
		return "((" + low + " IS NULL OR " + low + " < " + c.num(ah) + ") AND (" + high + " IS NULL OR " + high + " > " + c.num(al) + "))", nil
	}
	return "", invalid("unknown prefix %q", v.Prefix)
}

// approx returns the range n ± 10%, widened to at least [lo, hi].
func approx(n, lo, hi string) (string, string, error) {
	parse := func(s string) (*big.Rat, bool) { return new(big.Rat).SetString(s) }
	v, ok1 := parse(n)
	l, ok2 := parse(lo)
	h, ok3 := parse(hi)
	if !ok1 || !ok2 || !ok3 {
		return "", "", invalid("%q is not a number", n)
	}
	delta := new(big.Rat).Abs(v)
	delta.Quo(delta, big.NewRat(10, 1))
	al := new(big.Rat).Sub(v, delta)
	ah := new(big.Rat).Add(v, delta)
	if l.Cmp(al) < 0 {
		al = l
	}
	if h.Cmp(ah) > 0 {
		ah = h
	}
	return al.FloatString(30), ah.FloatString(30), nil
}

func (c *compiler) quantityValue(x string, v *search.Value) (string, error) {
	cond, err := c.numberValue(x, v)
	if err != nil {
		return "", err
	}
	switch {
	case v.UnitSystem != "" && v.UnitCode != "":
		cond += " AND " + x + ".system = " + c.bind(v.UnitSystem) + " AND " + x + ".code = " + c.bind(v.UnitCode)
	case v.UnitSystem != "":
		cond += " AND " + x + ".system = " + c.bind(v.UnitSystem)
	case v.UnitCode != "":
		// number||code: the coded unit or the human-readable one.
		u := c.bind(v.UnitCode)
		cond += " AND (" + x + ".code = " + u + " OR " + x + ".unit = " + u + ")"
	}
	return "(" + cond + ")", nil
}

func (c *compiler) uriValue(x string, mod search.Modifier, v *search.Value) (string, error) {
	u := v.Str
	if u == "" {
		u = v.Raw
	}
	switch mod {
	case search.ModNone:
		return x + ".value = " + c.bind(u), nil
	case search.ModBelow:
		return c.prefixRange(x+".value", u), nil
	case search.ModAbove:
		// The stored URI is u or a parent of it, path segment by segment.
		prefixes := []string{u}
		for i := len(u) - 1; i > 0; i-- {
			if u[i] == '/' && !strings.HasSuffix(u[:i], "/") && strings.Contains(u[:i], "/") {
				prefixes = append(prefixes, u[:i])
			}
		}
		return c.in(x+".value", prefixes), nil
	}
	return "", invalid("modifier :%s does not apply to uri parameters", mod)
}

// composite matches every component on rows of the same tuple (group).
func (c *compiler) composite(sc scope, cl *search.Clause) (cond, error) {
	if cl.Param == nil || len(cl.Param.Components) == 0 {
		return cond{}, invalid("composite parameter %s has no components", cl.Code)
	}
	if cl.Modifier != search.ModNone {
		return cond{}, invalid("modifier :%s does not apply to composite parameters", cl.Modifier)
	}
	comps := cl.Param.Components
	var sets []cond
	for _, v := range cl.Values {
		if len(v.Parts) != len(comps) {
			return cond{}, invalid("%q: %s takes %d parts separated by $", v.Raw, cl.Code, len(comps))
		}
		// Innermost first: component i is an EXISTS inside component i-1.
		inner := ""
		var first cond
		for i := len(comps) - 1; i >= 0; i-- {
			t, ok := tableFor(comps[i].Type)
			if !ok {
				return cond{}, notSupported("composite component %s (%s) is not supported", comps[i].Code, comps[i].Type)
			}
			x := c.alias("x")
			vc, err := c.value(x, comps[i].Type, search.ModNone, "", &v.Parts[i])
			if err != nil {
				return cond{}, err
			}
			where := x + ".param = " + c.bind(compositeParam(cl.Code, i)) + " AND " + vc
			if inner != "" {
				where += " AND " + strings.ReplaceAll(inner, "\x00", x)
			}
			if i > 0 {
				// Correlated to the previous component's row, same group;
				// "\x00" stands for that row's alias until it is known.
				inner = "EXISTS (SELECT 1 FROM " + indexTables[t].name + " " + x + " WHERE " + x + ".tenant = \x00.tenant AND " + x + ".type = \x00.type AND " + x + ".id = \x00.id AND " + x + ".grp = \x00.grp AND " + where + ")"
			} else {
				first = set(x+".type", x+".id", "FROM "+indexTables[t].name+" "+x+" WHERE "+x+".tenant = "+c.tenant+" AND "+where)
			}
		}
		sets = append(sets, first)
	}
	if len(sets) == 1 {
		return sets[0], nil
	}
	ors := make([]string, len(sets))
	for i, cd := range sets {
		ors[i] = c.render(sc, cd)
	}
	return plain(orJoin(ors)), nil
}

func (c *compiler) idClause(r string, cl *search.Clause) (string, error) {
	if cl.Missing != nil || cl.Modifier == search.ModMissing {
		if cl.Missing != nil && !*cl.Missing {
			return "TRUE", nil
		}
		return "FALSE", nil
	}
	ids := make([]string, 0, len(cl.Values))
	for _, v := range cl.Values {
		id := v.Code
		if id == "" {
			id = v.Raw
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return "", invalid("_id has no value")
	}
	switch cl.Modifier {
	case search.ModNone:
		return c.in(r+".id", ids), nil
	case search.ModNot:
		return "NOT (" + c.in(r+".id", ids) + ")", nil
	}
	return "", invalid("modifier :%s does not apply to _id", cl.Modifier)
}

// lastUpdated compares resources.last_updated, an instant: the range of
// one microsecond.
func (c *compiler) lastUpdated(r string, cl *search.Clause) (string, error) {
	if cl.Missing != nil || cl.Modifier == search.ModMissing {
		if cl.Missing != nil && !*cl.Missing {
			return "TRUE", nil
		}
		return "FALSE", nil
	}
	if cl.Modifier != search.ModNone {
		return "", invalid("modifier :%s does not apply to _lastUpdated", cl.Modifier)
	}
	var ors []string
	for i := range cl.Values {
		cond, err := c.dateValue(r+".last_updated", "("+r+".last_updated + 1)", &cl.Values[i])
		if err != nil {
			return "", err
		}
		ors = append(ors, cond)
	}
	if len(ors) == 0 {
		return "", invalid("_lastUpdated has no value")
	}
	return orJoin(ors), nil
}

// chain compiles ref.param=value: a reference of the resource, through
// parameter cl.Code, to a resource that the chained clause matches.
func (c *compiler) chain(sc scope, cl *search.Clause) (cond, error) {
	if c.depth >= maxDepth {
		return cond{}, fhir.Errorf(fhir.KindTooCostly, "chains and _has are nested more than %d deep", maxDepth)
	}
	if clauseType(cl) != fhir.SearchParamReference && clauseType(cl) != "" {
		return cond{}, invalid("%s is not a reference parameter and cannot be chained", cl.Code)
	}
	c.depth++
	defer func() { c.depth-- }()
	x, t := c.alias("x"), c.alias("r")
	var targets []string
	switch {
	case len(cl.ChainTypes) > 0:
		targets = cl.ChainTypes
	case cl.TargetType != "":
		targets = []string{cl.TargetType}
	case cl.Param != nil:
		targets = cl.Param.Targets
	}
	inner, err := c.clause(scope{r: t, types: targets}, cl.Chain)
	if err != nil {
		return cond{}, err
	}
	sel := "FROM idx_reference " + x + " JOIN resources " + t + " ON " + t + ".tenant = " + x + ".tenant AND " + t + ".type = " + x + ".target_type AND " + t + ".id = " + x + ".target_id" +
		" WHERE " + x + ".tenant = " + c.tenant + " AND " + x + ".param = " + c.bind(cl.Code) + " AND " + x + ".url = ''"
	if len(targets) > 0 {
		sel += " AND " + c.in(x+".target_type", targets)
	}
	sel += " AND " + c.base(t) + " AND " + inner
	return set(x+".type", x+".id", sel), nil
}

// has compiles _has:Type:param:clause: a resource of Type refers to this
// one through param and matches the clause.
func (c *compiler) has(sc scope, h *search.Has) (cond, error) {
	if c.depth >= maxDepth {
		return cond{}, fhir.Errorf(fhir.KindTooCostly, "chains and _has are nested more than %d deep", maxDepth)
	}
	if !fhir.IsResourceType(h.Type) {
		return cond{}, invalid("_has: %q is not a resource type", h.Type)
	}
	c.depth++
	defer func() { c.depth-- }()
	x, t := c.alias("x"), c.alias("r")
	inner, err := c.clause(scope{r: t, types: []string{h.Type}}, &h.Clause)
	if err != nil {
		return cond{}, err
	}
	sel := "FROM idx_reference " + x + " JOIN resources " + t + " ON " + owns(x, t) +
		" WHERE " + x + ".tenant = " + c.tenant + " AND " + x + ".type = " + c.bind(h.Type) + " AND " + x + ".param = " + c.bind(h.RefParam) + " AND " + x + ".url = ''" +
		" AND " + c.base(t) + " AND " + inner
	return set(x+".target_type", x+".target_id", sel), nil
}

// fullTextClause compiles _text (the narrative) or _content (every text
// value): each value is a set of words that must all occur; values
// separated by commas are alternatives.
func (c *compiler) fullTextClause(cl *search.Clause) (cond, error) {
	if !c.fullText {
		return cond{}, notSupported("full-text search (%s) is not enabled on this server (serve --full-text)", cl.Code)
	}
	if cl.Modifier != search.ModNone {
		return cond{}, invalid("modifier :%s does not apply to %s", cl.Modifier, cl.Code)
	}
	if len(cl.Values) == 0 {
		return cond{}, invalid("parameter %s has no value", cl.Code)
	}
	x := c.alias("x")
	ors := make([]string, 0, len(cl.Values))
	for _, v := range cl.Values {
		words := strings.FieldsFunc(v.Raw, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
		if len(words) == 0 {
			return cond{}, invalid("%s=%q has no words to search for", cl.Code, v.Raw)
		}
		ors = append(ors, c.d.FullTextMatch(x, c.bind(c.d.FullTextQuery(words))))
	}
	return set(x+".type", x+".id", "FROM idx_text "+x+" WHERE "+x+".tenant = "+c.tenant+" AND "+x+".param = "+c.bind(cl.Code)+" AND "+orJoin(ors)), nil
}

// Location near: distances on a sphere of the Earth's mean radius, where a
// degree of latitude is kmPerDegree long.
const (
	kmPerDegree = 6371.0088 * math.Pi / 180
	// defaultNearKm is the distance of a near without one.
	defaultNearKm = 5
)

// nearUnits are the distance units near accepts (UCUM codes), in km.
var nearUnits = map[string]float64{"km": 1, "m": 0.001, "[mi_i]": 1.609344, "[nmi_i]": 1.852}

// nearValue compiles near=lat|long[|distance[|unit]]: the position is
// within the distance, by the equirectangular approximation (the longitude
// difference scaled by the cosine of the searched latitude), which is
// within 1% of the great-circle distance up to a few hundred kilometres
// away from the poles. The index serves a bounding box first. A search
// box that crosses the antimeridian is cut at it.
func (c *compiler) nearValue(x string, v *search.Value) (string, error) {
	lat, err1 := strconv.ParseFloat(v.Latitude, 64)
	lon, err2 := strconv.ParseFloat(v.Longitude, 64)
	if err1 != nil || err2 != nil {
		return "", invalid("%q is not latitude|longitude in decimal degrees", v.Raw)
	}
	km := float64(defaultNearKm)
	if v.Number != "" {
		d, err := strconv.ParseFloat(v.Number, 64)
		perKm, ok := nearUnits[v.UnitCode]
		if err != nil || !ok {
			return "", invalid("%q: the distance must be a number in km, m, [mi_i] or [nmi_i]", v.Raw)
		}
		km = d * perKm
	}
	dLat := km / kmPerDegree
	cos := math.Cos(lat * math.Pi / 180)
	box := "(" + x + ".lat BETWEEN " + c.bind(lat-dLat) + " AND " + c.bind(lat+dLat)
	if cos > 1e-9 && dLat/cos < 180 {
		dLon := dLat / cos
		box += " AND " + x + ".lon BETWEEN " + c.bind(lon-dLon) + " AND " + c.bind(lon+dLon)
	}
	dy := "(" + x + ".lat - " + c.bind(lat) + ")"
	dx := "((" + x + ".lon - " + c.bind(lon) + ") * " + c.bind(cos) + ")"
	return box + " AND " + dy + " * " + dy + " + " + dx + " * " + dx + " <= " + c.bind(dLat*dLat) + ")", nil
}
