package index

import (
	"encoding/json"
	"sort"
	"strings"
	"time"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/fhirpath"
)

// maxCompositeRows bounds the combinations one element may produce for one
// composite parameter.
const maxCompositeRows = 256

// Extract evaluates every search parameter of resourceType on body (a JSON
// resource of that type) and returns the index rows and compartment
// memberships. It fails with a fhir.Error of kind invalid when the body is
// not a JSON resource of that type, or when a value that is indexed cannot
// be read (a malformed date or decimal): such a resource could not be found
// by search, so it is refused rather than half indexed.
func (x *Extractor) Extract(resourceType string, body []byte) (*Entries, error) {
	pl, ok := x.plans[resourceType]
	if !ok {
		return nil, fhir.Errorf(fhir.KindInvalid, "%q is not a resource type", resourceType)
	}
	root, err := fhirpath.Decode(body)
	if err != nil {
		return nil, fhir.Errorf(fhir.KindInvalid, "resource body: %v", err)
	}
	obj := root.Value.(map[string]any)
	if root.Type != resourceType {
		return nil, fhir.Errorf(fhir.KindInvalid, "resourceType is %q, expected %q", root.Type, resourceType)
	}
	e := &Entries{ResourceType: resourceType}
	if id, ok := obj["id"].(string); ok {
		e.ID = id
	}
	b := builder{model: x.model, env: &fhirpath.Env{Model: x.model, Resource: root}}
	for _, p := range pl.params {
		expr := p.Compiled()
		if expr == nil {
			continue // _text, _content, _query: no expression
		}
		nodes, err := expr.Evaluate(b.env, root)
		if err != nil {
			return nil, fhir.Errorf(fhir.KindInvalid, "search parameter %s: %v", p.Code, err)
		}
		if len(nodes) == 0 {
			continue
		}
		if p.Type == fhir.SearchParamComposite {
			err = b.addComposite(e, p, nodes)
		} else {
			for _, n := range nodes {
				if err = b.add(e, p.Type, p.Code, n); err != nil {
					break
				}
			}
		}
		if err != nil {
			return nil, fhir.Errorf(fhir.KindInvalid, "search parameter %s: %v", p.Code, err)
		}
	}
	e.Compartments = compartments(e, pl.compartments)
	return e, nil
}

// compartments applies the compartment rules to the extracted references.
func compartments(e *Entries, rules []compartmentRule) []Compartment {
	var out []Compartment
	add := func(c Compartment) {
		for _, o := range out {
			if o == c {
				return
			}
		}
		out = append(out, c)
	}
	for _, r := range rules {
		if r.compartment == e.ResourceType && e.ID != "" {
			add(Compartment{Type: r.compartment, ID: e.ID}) // {def}, and a Patient is in its own compartment
		}
		for _, code := range r.params {
			for _, ref := range e.References {
				if ref.Code == code && ref.URL == "" && ref.TargetType == r.compartment && ref.TargetID != "" {
					add(Compartment{Type: r.compartment, ID: ref.TargetID})
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Type != out[j].Type {
			return out[i].Type < out[j].Type
		}
		return out[i].ID < out[j].ID
	})
	return out
}

type builder struct {
	model fhirpath.Model
	env   *fhirpath.Env
	// scratch collects the component values of composites. It only grows
	// during one Extract, so the Parts that point into it stay valid.
	scratch *Entries
	// norms remembers Normalize results: the same display text recurs in
	// code, combo-code and the composites.
	norms [][2]string
}

// normalize is Normalize with a small memo.
func (b *builder) normalize(s string) string {
	for _, n := range b.norms {
		if n[0] == s {
			return n[1]
		}
	}
	n := Normalize(s)
	if len(b.norms) < 32 {
		b.norms = append(b.norms, [2]string{s, n})
	}
	return n
}

// isA reports whether type t is typ or derives from it.
func (b *builder) isA(t, typ string) bool {
	for depth := 0; t != "" && depth < 32; depth++ {
		if t == typ {
			return true
		}
		t = b.model.BaseType(t)
	}
	return false
}

// add converts one FHIRPath result into rows of a parameter of type typ.
// Values of a type the parameter type cannot index (a SampledData for a
// quantity, an Attachment for a reference) are skipped.
func (b *builder) add(e *Entries, typ fhir.SearchParamType, code string, n fhirpath.Node) error {
	switch typ {
	case fhir.SearchParamString:
		b.addString(e, code, n)
	case fhir.SearchParamToken:
		b.addToken(e, code, n)
	case fhir.SearchParamReference:
		b.addReference(e, code, n)
	case fhir.SearchParamDate:
		return b.addDate(e, code, n)
	case fhir.SearchParamNumber:
		return b.addNumber(e, code, n)
	case fhir.SearchParamQuantity:
		return b.addQuantity(e, code, n)
	case fhir.SearchParamURI:
		if s, ok := n.Value.(string); ok {
			appendRow(&e.URIs, URI{Code: code, Value: s}, e != b.scratch)
		}
	case fhir.SearchParamSpecial:
		if m, ok := n.Object(); ok {
			lat, ok1 := m["latitude"].(json.Number)
			lon, ok2 := m["longitude"].(json.Number)
			if ok1 && ok2 {
				appendRow(&e.Positions, Position{Code: code, Latitude: string(lat), Longitude: string(lon)}, e != b.scratch)
			}
		}
	}
	return nil
}

// appendRow appends r, unless unique is set and an equal row is already
// there. Rows of one resource are few, so a scan is cheaper than a set.
func appendRow[R comparable](rows *[]R, r R, unique bool) {
	if unique {
		for _, o := range *rows {
			if o == r {
				return
			}
		}
	}
	*rows = append(*rows, r)
}

func str(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

// strs returns a string member or the strings of an array member.
func strs(m map[string]any, key string) []string {
	switch v := m[key].(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func objs(m map[string]any, key string) []map[string]any {
	switch v := m[key].(type) {
	case map[string]any:
		return []map[string]any{v}
	case []any:
		out := make([]map[string]any, 0, len(v))
		for _, x := range v {
			if o, ok := x.(map[string]any); ok {
				out = append(out, o)
			}
		}
		return out
	}
	return nil
}

func (b *builder) addString(e *Entries, code string, n fhirpath.Node) {
	add := func(s string) {
		if s != "" {
			appendRow(&e.Strings, String{Code: code, Value: s, Norm: b.normalize(s)}, e != b.scratch)
		}
	}
	switch v := n.Value.(type) {
	case string:
		add(v)
	case map[string]any:
		var keys []string
		switch {
		case b.isA(n.Type, "HumanName"):
			keys = []string{"family", "given", "prefix", "suffix", "text"}
		case b.isA(n.Type, "Address"):
			keys = []string{"line", "city", "district", "state", "postalCode", "country", "text"}
		case b.isA(n.Type, "CodeableConcept"):
			add(str(v, "text"))
			for _, c := range objs(v, "coding") {
				add(str(c, "display"))
			}
		case b.isA(n.Type, "Coding"):
			add(str(v, "display"))
		case b.isA(n.Type, "Identifier") || b.isA(n.Type, "ContactPoint"):
			keys = []string{"value"}
		case b.isA(n.Type, "Annotation"):
			keys = []string{"text"}
		}
		for _, k := range keys {
			for _, s := range strs(v, k) {
				add(s)
			}
		}
	}
}

func (b *builder) addToken(e *Entries, code string, n fhirpath.Node) {
	add := func(t Token) {
		t.Code = code
		if t.Text != "" {
			t.TextNorm = b.normalize(t.Text)
		}
		appendRow(&e.Tokens, t, e != b.scratch)
	}
	switch v := n.Value.(type) {
	case string:
		add(Token{Value: v})
	case bool:
		if v {
			add(Token{Value: "true"})
		} else {
			add(Token{Value: "false"})
		}
	case json.Number:
		add(Token{Value: string(v)})
	case map[string]any:
		switch {
		case b.isA(n.Type, "CodeableConcept"):
			text := str(v, "text")
			for _, c := range objs(v, "coding") {
				display := str(c, "display")
				add(Token{System: str(c, "system"), Value: str(c, "code"), Text: display})
				if display == text {
					text = "" // already findable by :text
				}
			}
			if text != "" {
				add(Token{Text: text})
			}
		case b.isA(n.Type, "Coding"):
			add(Token{System: str(v, "system"), Value: str(v, "code"), Text: str(v, "display")})
		case b.isA(n.Type, "Identifier"):
			t := Token{System: str(v, "system"), Value: str(v, "value")}
			typ, _ := v["type"].(map[string]any)
			t.Text = str(typ, "text")
			codings := objs(typ, "coding")
			if len(codings) == 0 {
				add(t)
			}
			for _, c := range codings {
				t.TypeSystem, t.TypeCode = str(c, "system"), str(c, "code")
				add(t)
			}
		case b.isA(n.Type, "ContactPoint"):
			add(Token{System: str(v, "system"), Value: str(v, "value")})
		case b.isA(n.Type, "Quantity"):
			// A token on a Quantity (none in R4 core) matches its coded unit.
			add(Token{System: str(v, "system"), Value: str(v, "code")})
		}
	}
}

func (b *builder) addReference(e *Entries, code string, n fhirpath.Node) {
	switch v := n.Value.(type) {
	case string: // canonical, uri, url
		if v == "" || strings.HasPrefix(v, "#") {
			return
		}
		r := Reference{Code: code, URL: v}
		if i := strings.LastIndexByte(v, '|'); i >= 0 {
			r.URL, r.Version = v[:i], v[i+1:]
		}
		appendRow(&e.References, r, e != b.scratch)
	case map[string]any:
		if !b.isA(n.Type, "Reference") && n.Type != "" {
			return
		}
		ref := str(v, "reference")
		if strings.HasPrefix(ref, "#") {
			return // contained resource
		}
		r := Reference{Code: code}
		if ref != "" {
			r.TargetType, r.TargetID, r.Version, r.URL = splitReference(ref)
		}
		if r.TargetType == "" {
			r.TargetType = str(v, "type")
		}
		if id, ok := v["identifier"].(map[string]any); ok {
			r.IdentifierSystem, r.IdentifierValue = str(id, "system"), str(id, "value")
		}
		if ref == "" && r.IdentifierValue == "" {
			return // display or type only: nothing to search on
		}
		appendRow(&e.References, r, e != b.scratch)
	}
}

// splitReference parses a literal reference. A relative "Type/id" or
// "Type/id/_history/v" gives type, id and version with an empty url; an
// absolute URL gives url plus whatever type, id and version its tail names.
func splitReference(ref string) (typ, id, version, url string) {
	local := !strings.Contains(ref, ":")
	if !local {
		url = ref
	}
	path := ref
	if q := strings.IndexAny(path, "?#"); q >= 0 {
		if local {
			return "", "", "", ref // a conditional reference: keep as written
		}
		path = path[:q]
	}
	segs := strings.Split(path, "/")
	if len(segs) >= 4 && segs[len(segs)-2] == "_history" {
		version = segs[len(segs)-1]
		segs = segs[:len(segs)-2]
	}
	if len(segs) < 2 || (local && len(segs) != 2) {
		if local {
			return "", "", "", ref
		}
		return "", "", "", url
	}
	t, i := segs[len(segs)-2], segs[len(segs)-1]
	if !fhir.IsResourceType(t) || !fhir.ValidID(i) {
		if local {
			return "", "", "", ref
		}
		return "", "", "", url
	}
	return t, i, version, url
}

func (b *builder) addDate(e *Entries, code string, n fhirpath.Node) error {
	switch v := n.Value.(type) {
	case string:
		if n.Type != "" && !b.isA(n.Type, "date") && !b.isA(n.Type, "dateTime") && !b.isA(n.Type, "instant") {
			return nil // a string, Age or time reached by a choice (clinical-date on onsetString)
		}
		lo, hi, err := DateRange(v)
		if err != nil {
			return err
		}
		appendRow(&e.Dates, Date{Code: code, Low: lo, High: hi}, e != b.scratch)
	case map[string]any:
		switch {
		case b.isA(n.Type, "Period"):
			d, ok, err := periodRange(v)
			if err != nil || !ok {
				return err
			}
			d.Code = code
			appendRow(&e.Dates, d, e != b.scratch)
		case b.isA(n.Type, "Timing"):
			d, ok, err := timingRange(v)
			if err != nil || !ok {
				return err
			}
			d.Code = code
			appendRow(&e.Dates, d, e != b.scratch)
		}
	}
	return nil
}

// periodRange covers a Period from the start of its start to the end of its
// end; a missing side is unbounded.
func periodRange(p map[string]any) (Date, bool, error) {
	var d Date
	start, end := str(p, "start"), str(p, "end")
	if start == "" && end == "" {
		return d, false, nil
	}
	if start != "" {
		lo, _, err := DateRange(start)
		if err != nil {
			return d, false, err
		}
		d.Low = lo
	}
	if end != "" {
		_, hi, err := DateRange(end)
		if err != nil {
			return d, false, err
		}
		d.High = hi
	}
	return d, true, nil
}

// timingRange covers a Timing from its earliest to its latest event, widened
// by repeat.boundsPeriod.
func timingRange(t map[string]any) (Date, bool, error) {
	var d Date
	found, lowOpen, highOpen := false, false, false
	widen := func(lo, hi time.Time) {
		if lo.IsZero() {
			lowOpen = true
		} else if d.Low.IsZero() || lo.Before(d.Low) {
			d.Low = lo
		}
		if hi.IsZero() {
			highOpen = true
		} else if d.High.IsZero() || hi.After(d.High) {
			d.High = hi
		}
		found = true
	}
	for _, ev := range strs(t, "event") {
		lo, hi, err := DateRange(ev)
		if err != nil {
			return d, false, err
		}
		widen(lo, hi)
	}
	if rep, ok := t["repeat"].(map[string]any); ok {
		if bp, ok := rep["boundsPeriod"].(map[string]any); ok {
			p, ok, err := periodRange(bp)
			if err != nil {
				return d, false, err
			}
			if ok {
				widen(p.Low, p.High)
			}
		}
	}
	if lowOpen {
		d.Low = time.Time{}
	}
	if highOpen {
		d.High = time.Time{}
	}
	return d, found, nil
}

func (b *builder) addNumber(e *Entries, code string, n fhirpath.Node) error {
	switch v := n.Value.(type) {
	case json.Number:
		lo, hi, err := PrecisionRange(string(v))
		if err != nil {
			return err
		}
		appendRow(&e.Numbers, Number{Code: code, Value: string(v), Low: lo, High: hi}, e != b.scratch)
	case map[string]any:
		if b.isA(n.Type, "Range") {
			lo, hi, ok, err := rangeBounds(v)
			if err != nil || !ok {
				return err
			}
			appendRow(&e.Numbers, Number{Code: code, Low: lo, High: hi}, e != b.scratch)
		}
	}
	return nil
}

// rangeBounds reads Range.low.value and Range.high.value.
func rangeBounds(r map[string]any) (lo, hi string, ok bool, err error) {
	for i, key := range []string{"low", "high"} {
		q, _ := r[key].(map[string]any)
		num, isNum := q["value"].(json.Number)
		if !isNum {
			continue
		}
		if _, err := parseDecimal(string(num)); err != nil {
			return "", "", false, err
		}
		if i == 0 {
			lo = string(num)
		} else {
			hi = string(num)
		}
		ok = true
	}
	return lo, hi, ok, nil
}

func (b *builder) addQuantity(e *Entries, code string, n fhirpath.Node) error {
	v, ok := n.Object()
	if !ok {
		return nil
	}
	switch {
	case b.isA(n.Type, "Quantity"):
		num, ok := v["value"].(json.Number)
		if !ok {
			return nil
		}
		q := Quantity{Code: code, Value: string(num), Comparator: str(v, "comparator"),
			System: str(v, "system"), Unit: str(v, "code"), UnitText: str(v, "unit")}
		lo, hi, err := PrecisionRange(q.Value)
		if err != nil {
			return err
		}
		switch q.Comparator {
		case "<", "<=":
			q.High = q.Value
		case ">", ">=":
			q.Low = q.Value
		default:
			q.Low, q.High = lo, hi
		}
		appendRow(&e.Quantities, q, e != b.scratch)
	case b.isA(n.Type, "Money"):
		num, ok := v["value"].(json.Number)
		if !ok {
			return nil
		}
		lo, hi, err := PrecisionRange(string(num))
		if err != nil {
			return err
		}
		q := Quantity{Code: code, Value: string(num), Low: lo, High: hi, Unit: str(v, "currency")}
		if q.Unit != "" {
			q.System = "urn:iso:std:iso:4217"
		}
		appendRow(&e.Quantities, q, e != b.scratch)
	case b.isA(n.Type, "Range"):
		lo, hi, ok, err := rangeBounds(v)
		if err != nil || !ok {
			return err
		}
		q := Quantity{Code: code, Low: lo, High: hi}
		for _, key := range []string{"low", "high"} {
			if bound, ok := v[key].(map[string]any); ok && q.System == "" && q.Unit == "" {
				q.System, q.Unit, q.UnitText = str(bound, "system"), str(bound, "code"), str(bound, "unit")
			}
		}
		appendRow(&e.Quantities, q, e != b.scratch)
	}
	return nil
}

// addComposite evaluates the components on each element the composite's
// expression selects and stores every combination of their values.
func (b *builder) addComposite(e *Entries, p *fhir.SearchParam, focus []fhirpath.Node) error {
	if b.scratch == nil {
		b.scratch = &Entries{}
	}
	var compNodes [4][]fhirpath.Node
	nodes := compNodes[:0]
	var compParts [4][]Part
	parts := compParts[:0]
	for _, f := range focus {
		nodes, parts = nodes[:0], parts[:0]
		for i := range p.Components {
			ns, err := p.Components[i].Compiled().Evaluate(b.env, f)
			if err != nil {
				return err
			}
			if len(ns) == 0 {
				break // no value for a component: no row for this element
			}
			nodes = append(nodes, ns)
		}
		if len(nodes) < len(p.Components) {
			continue
		}
		for i := range p.Components {
			c := &p.Components[i]
			start := b.scratch.len(c.Type)
			for _, n := range nodes[i] {
				if err := b.add(b.scratch, c.Type, c.Code, n); err != nil {
					return err
				}
			}
			ps := b.scratch.parts(c.Type, start)
			if len(ps) == 0 {
				break
			}
			parts = append(parts, ps)
		}
		if len(parts) < len(p.Components) {
			continue
		}
		// Every combination of one value per component, in order.
		idx := make([]int, len(parts))
		for rows := 0; rows < maxCompositeRows; rows++ {
			row := make([]Part, len(parts))
			for i, ps := range parts {
				row[i] = ps[idx[i]]
			}
			e.Composites = append(e.Composites, Composite{Code: p.Code, Parts: row})
			k := len(idx) - 1
			for k >= 0 {
				if idx[k]++; idx[k] < len(parts[k]) {
					break
				}
				idx[k] = 0
				k--
			}
			if k < 0 {
				break
			}
		}
	}
	return nil
}

// len returns the number of rows of type typ.
func (s *Entries) len(typ fhir.SearchParamType) int {
	switch typ {
	case fhir.SearchParamString:
		return len(s.Strings)
	case fhir.SearchParamToken:
		return len(s.Tokens)
	case fhir.SearchParamReference:
		return len(s.References)
	case fhir.SearchParamDate:
		return len(s.Dates)
	case fhir.SearchParamNumber:
		return len(s.Numbers)
	case fhir.SearchParamQuantity:
		return len(s.Quantities)
	case fhir.SearchParamURI:
		return len(s.URIs)
	}
	return 0
}

// parts wraps the rows of type typ from index start as composite parts.
func (s *Entries) parts(typ fhir.SearchParamType, start int) []Part {
	var parts []Part
	switch typ {
	case fhir.SearchParamString:
		for i := start; i < len(s.Strings); i++ {
			parts = append(parts, Part{Type: typ, String: &s.Strings[i]})
		}
	case fhir.SearchParamToken:
		for i := start; i < len(s.Tokens); i++ {
			if t := &s.Tokens[i]; t.System != "" || t.Value != "" { // text-only rows do not match a code
				parts = append(parts, Part{Type: typ, Token: t})
			}
		}
	case fhir.SearchParamReference:
		for i := start; i < len(s.References); i++ {
			parts = append(parts, Part{Type: typ, Reference: &s.References[i]})
		}
	case fhir.SearchParamDate:
		for i := start; i < len(s.Dates); i++ {
			parts = append(parts, Part{Type: typ, Date: &s.Dates[i]})
		}
	case fhir.SearchParamNumber:
		for i := start; i < len(s.Numbers); i++ {
			parts = append(parts, Part{Type: typ, Number: &s.Numbers[i]})
		}
	case fhir.SearchParamQuantity:
		for i := start; i < len(s.Quantities); i++ {
			parts = append(parts, Part{Type: typ, Quantity: &s.Quantities[i]})
		}
	case fhir.SearchParamURI:
		for i := start; i < len(s.URIs); i++ {
			parts = append(parts, Part{Type: typ, URI: &s.URIs[i]})
		}
	}
	return parts
}
