package terminology

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"
	"sort"
	"strings"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/internal/hierarchy"
)

// Source is what Expand needs of a server's own terminology: the ValueSet
// and CodeSystem resources stored on it, as JSON. A method returns nil and
// no error when the server holds none by that name; a lookup that fails
// returns the error, which Expand passes on unchanged.
type Source interface {
	// ValueSet returns the stored ValueSet that canonical names: its url,
	// url|version, or a relative reference ValueSet/id.
	ValueSet(ctx context.Context, canonical string) ([]byte, error)
	// CodeSystem returns the stored CodeSystem with the url, of the
	// version when it is not "".
	CodeSystem(ctx context.Context, url, version string) ([]byte, error)
}

const (
	// MaxCodes bounds an expansion: the codes end up as a list bound into
	// a search statement, and a value set of more is refused rather than
	// turned into a giant query. (The largest value set of the
	// specification that expands has 6,401 codes.)
	MaxCodes = 10000
	// maxNesting bounds the value sets included in one another; a cycle
	// is reported as such before it gets there.
	maxNesting = 8
	// maxLookups bounds the stored value sets and code systems one
	// expansion may read.
	maxLookups = 64
)

// Expand returns the codes of the value set that canonical names (url,
// url|version, or a reference ValueSet/id), by code system (sorted by
// system, codes sorted): a value set of src when it has one by that name
// (a server's own value sets take precedence, so that they may replace
// the specification's), else the specification's (Table.ValueSet).
//
// A stored value set stands for its expansion.contains when it has a
// complete one (abstract entries left out), else for what its compose
// selects: include.concept lists, include.valueSet (stored or of the
// specification, recursively), whole code systems and the concept filters
// =, in, not-in, is-a, descendent-of, is-not-a and generalizes over a code
// system whose concepts are known (a CodeSystem of src with content
// complete, whose nesting is its is-a hierarchy, else one of the
// specification's), with exclude taken away. What cannot be expanded that
// way (a code system known nowhere here, another filter, a cycle, more than
// MaxCodes codes) is an error that names the value set and the reason; no
// expansion is ever partial. The specification's value sets are expanded
// as the specification defines them, also when a stored value set replaces
// one they include.
func (t *Table) Expand(ctx context.Context, canonical string, src Source) ([]CodeSet, error) {
	tb, err := t.load()
	if err != nil {
		return nil, err
	}
	e := &expander{ctx: ctx, t: t, tb: tb, src: src}
	body, err := e.storedValueSet(canonical)
	if err != nil {
		return nil, err
	}
	if body == nil {
		// The specification's, as the table has it (shared slices).
		return e.specValueSet(canonical)
	}
	set, err := e.stored(canonical, body)
	if err != nil {
		return nil, err
	}
	return set.codeSets(), nil
}

// codeKey is one code of one code system.
type codeKey struct{ system, code string }

// codes is a set of codes of any systems.
type codes map[codeKey]struct{}

func (s codes) addAll(system string, cs []string) {
	for _, c := range cs {
		s[codeKey{system, c}] = struct{}{}
	}
}

func (s codes) intersect(o codes) codes {
	out := codes{}
	for k := range s {
		if _, ok := o[k]; ok {
			out[k] = struct{}{}
		}
	}
	return out
}

// codeSets groups s by system, sorted.
func (s codes) codeSets() []CodeSet {
	by := map[string][]string{}
	for k := range s {
		by[k.system] = append(by[k.system], k.code)
	}
	out := make([]CodeSet, 0, len(by))
	for sys, cs := range by {
		sort.Strings(cs)
		out = append(out, CodeSet{System: sys, Codes: cs})
	}
	slices.SortFunc(out, func(a, b CodeSet) int { return cmp.Compare(a.System, b.System) })
	return out
}

// The parts of ValueSet and CodeSystem that expansion reads.
type (
	valueSetJSON struct {
		URL       string `json:"url"`
		Version   string `json:"version"`
		Compose   *composeJSON
		Expansion *expansionJSON
	}
	composeJSON struct {
		Include []conceptSetJSON `json:"include"`
		Exclude []conceptSetJSON `json:"exclude"`
	}
	conceptSetJSON struct {
		System   string   `json:"system"`
		Version  string   `json:"version"`
		ValueSet []string `json:"valueSet"`
		Concept  []struct {
			Code string `json:"code"`
		} `json:"concept"`
		Filter []struct {
			Property string `json:"property"`
			Op       string `json:"op"`
			Value    string `json:"value"`
		} `json:"filter"`
	}
	expansionJSON struct {
		Total    *int           `json:"total"`
		Offset   *int           `json:"offset"`
		Contains []containsJSON `json:"contains"`
	}
	containsJSON struct {
		System   string         `json:"system"`
		Code     string         `json:"code"`
		Abstract bool           `json:"abstract"`
		Contains []containsJSON `json:"contains"`
	}
	codeSystemJSON struct {
		URL              string        `json:"url"`
		Content          string        `json:"content"`
		HierarchyMeaning string        `json:"hierarchyMeaning"`
		Concept          []conceptJSON `json:"concept"`
	}
	conceptJSON struct {
		Code    string        `json:"code"`
		Concept []conceptJSON `json:"concept"`
	}
)

// expander is one call of Expand.
type expander struct {
	ctx     context.Context
	t       *Table
	tb      *tables
	src     Source
	path    []string // the stored value sets being expanded, outermost first
	lookups int
}

func (e *expander) lookup() error {
	e.lookups++
	if e.lookups > maxLookups {
		return fhir.Errorf(fhir.KindNotSupported, "expanding value set %s reads more than %d value sets and code systems", e.path[0], maxLookups)
	}
	return nil
}

func (e *expander) storedValueSet(canonical string) ([]byte, error) {
	if e.src == nil {
		return nil, nil
	}
	if err := e.lookup(); err != nil {
		return nil, err
	}
	return e.src.ValueSet(e.ctx, canonical)
}

// specValueSet is the specification's value set, with a message for one
// that is known nowhere here.
func (e *expander) specValueSet(canonical string) ([]CodeSet, error) {
	url, _, _ := strings.Cut(canonical, "|")
	i := sort.Search(len(e.tb.valueSets), func(i int) bool { return e.tb.valueSets[i].url >= url })
	if i == len(e.tb.valueSets) || e.tb.valueSets[i].url != url {
		return nil, fhir.Errorf(fhir.KindInvalid, "value set %s is not known here (no ValueSet with that url is stored on this server, and the FHIR R4 specification has none)", canonical)
	}
	sets, err := e.t.ValueSet(canonical)
	if err == nil && size(sets) > MaxCodes {
		return nil, tooLarge(canonical)
	}
	return sets, err
}

func size(sets []CodeSet) int {
	n := 0
	for _, s := range sets {
		n += len(s.Codes)
	}
	return n
}

func tooLarge(vs string) error {
	return fhir.Errorf(fhir.KindNotSupported, "value set %s is too large to expand here (more than %d codes)", vs, MaxCodes)
}

// valueSet returns the codes of a value set that another includes.
func (e *expander) valueSet(canonical string) (codes, error) {
	body, err := e.storedValueSet(canonical)
	if err != nil {
		return nil, err
	}
	if body == nil {
		sets, err := e.specValueSet(canonical)
		if err != nil {
			return nil, err
		}
		out := codes{}
		for _, s := range sets {
			out.addAll(s.System, s.Codes)
		}
		return out, nil
	}
	return e.stored(canonical, body)
}

// stored expands a stored value set.
func (e *expander) stored(canonical string, body []byte) (codes, error) {
	var vs valueSetJSON
	if err := json.Unmarshal(body, &vs); err != nil {
		return nil, fhir.Errorf(fhir.KindInvalid, "value set %s cannot be expanded: it is not a valid ValueSet: %v", canonical, err)
	}
	name := canonical
	if vs.URL != "" {
		name = vs.URL
		if vs.Version != "" {
			name += "|" + vs.Version
		}
	}
	if slices.Contains(e.path, name) {
		return nil, fhir.Errorf(fhir.KindInvalid, "value set %s includes itself (%s → %s)", name, strings.Join(e.path, " → "), name)
	}
	if len(e.path) >= maxNesting {
		return nil, fhir.Errorf(fhir.KindNotSupported, "value set %s cannot be expanded here: value sets are included in one another more than %d deep (%s → %s)", e.path[0], maxNesting, strings.Join(e.path, " → "), name)
	}
	e.path = append(e.path, name)
	defer func() { e.path = e.path[:len(e.path)-1] }()

	if x := vs.Expansion; x != nil {
		out, n := codes{}, 0
		var walk func([]containsJSON)
		walk = func(cs []containsJSON) {
			for _, c := range cs {
				n++
				if c.Code != "" && !c.Abstract {
					out[codeKey{c.System, c.Code}] = struct{}{}
				}
				walk(c.Contains)
			}
		}
		walk(x.Contains)
		partial := (x.Offset != nil && *x.Offset > 0) || (x.Total != nil && *x.Total > n)
		switch {
		case !partial && len(out) > MaxCodes:
			return nil, tooLarge(name)
		case !partial:
			return out, nil
		case vs.Compose == nil:
			return nil, fhir.Errorf(fhir.KindNotSupported, "value set %s cannot be expanded here: its expansion is partial (a page of it, %d entries) and it has no compose", name, n)
		}
		// A partial expansion: the compose says what the whole is.
	}
	if vs.Compose == nil {
		return nil, fhir.Errorf(fhir.KindInvalid, "value set %s cannot be expanded: it has neither an expansion nor a compose", name)
	}
	out := codes{}
	for i := range vs.Compose.Include {
		part, err := e.conceptSet(name, "include", i, &vs.Compose.Include[i])
		if err != nil {
			return nil, err
		}
		for k := range part {
			out[k] = struct{}{}
		}
		if len(out) > MaxCodes {
			return nil, tooLarge(name)
		}
	}
	for i := range vs.Compose.Exclude {
		part, err := e.conceptSet(name, "exclude", i, &vs.Compose.Exclude[i])
		if err != nil {
			return nil, err
		}
		for k := range part {
			delete(out, k)
		}
	}
	return out, nil
}

// conceptSet returns the codes that compose.include[i] (or exclude[i]) of
// value set vs selects: those of its system (listed, filtered or all),
// intersected with those of each value set it names.
func (e *expander) conceptSet(vs, what string, i int, cs *conceptSetJSON) (codes, error) {
	fail := func(kind fhir.Kind, format string, a ...any) error {
		return fhir.Errorf(kind, "value set %s cannot be expanded here: compose.%s[%d]: "+format, append([]any{vs, what, i}, a...)...)
	}
	if cs.System == "" && len(cs.ValueSet) == 0 {
		return nil, fail(fhir.KindInvalid, "it names neither a system nor a value set")
	}
	var out codes
	if cs.System != "" {
		switch {
		case len(cs.Concept) > 0 && len(cs.Filter) > 0:
			return nil, fail(fhir.KindInvalid, "it has both concepts and filters")
		case len(cs.Concept) > 0:
			if len(cs.Concept) > MaxCodes {
				return nil, tooLarge(vs)
			}
			out = codes{}
			for _, c := range cs.Concept {
				out[codeKey{cs.System, c.Code}] = struct{}{}
			}
		default:
			sys, err := e.codeSystem(cs.System, cs.Version)
			if err != nil {
				if fhir.KindOf(err) == fhir.KindInternal {
					return nil, err
				}
				return nil, fail(fhir.KindOf(err), "%s", fhir.MessageOf(err))
			}
			if out, err = e.filter(sys, cs); err != nil {
				if fhir.KindOf(err) == fhir.KindInternal {
					return nil, err
				}
				return nil, fail(fhir.KindOf(err), "%s", fhir.MessageOf(err))
			}
			if len(out) > MaxCodes {
				return nil, tooLarge(vs)
			}
		}
	}
	for _, u := range cs.ValueSet {
		part, err := e.valueSet(u)
		if err != nil {
			if fhir.KindOf(err) == fhir.KindInternal {
				return nil, err
			}
			return nil, fail(fhir.KindOf(err), "%s", fhir.MessageOf(err))
		}
		if out == nil {
			out = part
		} else {
			out = out.intersect(part)
		}
	}
	return out, nil
}

// codeSystem is a code system whose concepts are all known here.
type codeSystem struct {
	url   string
	codes []string // sorted
	// below and above return the code and its descendants or ancestors,
	// sorted; an unknown code is an error.
	below, above func(code string) ([]string, error)
}

func (s *codeSystem) has(code string) bool {
	_, ok := slices.BinarySearch(s.codes, code)
	return ok
}

// codeSystem finds the code system with url: a stored one that lists all
// its concepts, else one of the specification's whose concepts it lists.
// (The specification's code systems have no versions here: a version
// only selects among stored ones.)
func (e *expander) codeSystem(url, version string) (*codeSystem, error) {
	if e.src != nil {
		if err := e.lookup(); err != nil {
			return nil, err
		}
		body, err := e.src.CodeSystem(e.ctx, url, version)
		if err != nil {
			return nil, err
		}
		if body != nil {
			return storedCodeSystem(url, body)
		}
	}
	i := sort.Search(len(e.tb.systems), func(i int) bool { return e.tb.systems[i].url >= url })
	if i == len(e.tb.systems) || e.tb.systems[i].url != url || !e.tb.systems[i].complete {
		return nil, fhir.Errorf(fhir.KindNotSupported, "the concepts of code system %s are not known here (no CodeSystem with that url listing them is stored on this server, and the FHIR R4 specification does not list them)", url)
	}
	return &codeSystem{
		url:   url,
		codes: e.tb.systems[i].codes,
		below: func(code string) ([]string, error) { return e.t.Below(url, code) },
		above: func(code string) ([]string, error) { return e.t.Above(url, code) },
	}, nil
}

// storedCodeSystem reads the concepts of a stored CodeSystem: nested
// concepts are its is-a hierarchy.
func storedCodeSystem(url string, body []byte) (*codeSystem, error) {
	var cs codeSystemJSON
	if err := json.Unmarshal(body, &cs); err != nil {
		return nil, fhir.Errorf(fhir.KindInvalid, "code system %s is not a valid CodeSystem: %v", url, err)
	}
	if cs.Content != "complete" && cs.Content != "" {
		return nil, fhir.Errorf(fhir.KindNotSupported, "the code system %s stored on this server does not list all its concepts (content %q, not complete)", url, cs.Content)
	}
	children := map[string][]string{}
	parents := map[string][]string{}
	seen := map[string]bool{}
	var all []string
	var walk func(parent string, cs []conceptJSON) error
	walk = func(parent string, cs []conceptJSON) error {
		for _, c := range cs {
			if len(all) > MaxCodes {
				return fhir.Errorf(fhir.KindNotSupported, "code system %s has more than %d concepts, too many to expand here", url, MaxCodes)
			}
			if !seen[c.Code] {
				seen[c.Code] = true
				all = append(all, c.Code)
			}
			if parent != "" {
				children[parent] = append(children[parent], c.Code)
				parents[c.Code] = append(parents[c.Code], parent)
			}
			if err := walk(c.Code, c.Concept); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk("", cs.Concept); err != nil {
		return nil, err
	}
	sort.Strings(all)
	isA := cs.HierarchyMeaning == "" || cs.HierarchyMeaning == "is-a"
	walker := func(next map[string][]string) func(string) ([]string, error) {
		return func(code string) ([]string, error) {
			if !seen[code] {
				return nil, fhir.Errorf(fhir.KindInvalid, "code system %s has no code %q", url, code)
			}
			if !isA {
				return nil, fhir.Errorf(fhir.KindNotSupported, "the hierarchy of code system %s is not is-a (hierarchyMeaning %s)", url, cs.HierarchyMeaning)
			}
			got := hierarchy.Closure(next, code)
			out := make([]string, 0, len(got))
			for c := range got {
				out = append(out, c)
			}
			sort.Strings(out)
			return out, nil
		}
	}
	return &codeSystem{url: url, codes: all, below: walker(children), above: walker(parents)}, nil
}

// filter returns the codes of sys that every filter of cs selects (all of
// them without filters). Only filters on the concept itself are known.
func (e *expander) filter(sys *codeSystem, cs *conceptSetJSON) (codes, error) {
	if len(cs.Filter) == 0 {
		if len(sys.codes) > MaxCodes {
			return nil, fhir.Errorf(fhir.KindNotSupported, "code system %s has more than %d concepts, too many to expand here", sys.url, MaxCodes)
		}
		out := codes{}
		out.addAll(sys.url, sys.codes)
		return out, nil
	}
	var out codes
	for _, f := range cs.Filter {
		var keep []string
		var drop []string // with keep nil: every code but these
		var err error
		switch {
		case f.Property != "concept" && f.Property != "code":
			err = fhir.Errorf(fhir.KindNotSupported, "its filter (%s %s %s) is not supported here: only filters on the concept itself are", f.Property, f.Op, f.Value)
		case f.Op == "=":
			if sys.has(f.Value) {
				keep = []string{f.Value}
			} else {
				keep = []string{}
			}
		case f.Op == "in" || f.Op == "not-in":
			var listed []string
			for _, c := range strings.Split(f.Value, ",") {
				if c = strings.TrimSpace(c); sys.has(c) {
					listed = append(listed, c)
				}
			}
			if f.Op == "in" {
				keep = append([]string{}, listed...)
			} else {
				drop = listed
			}
		case f.Op == "is-a":
			keep, err = sys.below(f.Value)
		case f.Op == "descendent-of":
			if keep, err = sys.below(f.Value); err == nil {
				keep = slices.DeleteFunc(keep, func(c string) bool { return c == f.Value })
			}
		case f.Op == "is-not-a":
			drop, err = sys.below(f.Value)
		case f.Op == "generalizes":
			keep, err = sys.above(f.Value)
		default:
			err = fhir.Errorf(fhir.KindNotSupported, "its filter (%s %s %s) is not supported here: the operations on the concept known here are =, in, not-in, is-a, descendent-of, is-not-a and generalizes", f.Property, f.Op, f.Value)
		}
		if err != nil {
			return nil, err
		}
		part := codes{}
		if keep != nil {
			part.addAll(sys.url, keep)
		} else {
			if len(sys.codes)-len(drop) > MaxCodes {
				return nil, fhir.Errorf(fhir.KindNotSupported, "code system %s has more than %d concepts, too many to expand here", sys.url, MaxCodes)
			}
			part.addAll(sys.url, sys.codes)
			for _, c := range drop {
				delete(part, codeKey{sys.url, c})
			}
		}
		if out == nil {
			out = part
		} else {
			out = out.intersect(part)
		}
	}
	return out, nil
}
