package fhirpath

import (
	"encoding/json"
	"fmt"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Evaluate runs the expression with focus as its input ($this, %context) and
// returns the resulting collection. env may be nil. The result must not be
// modified; it may share JSON values with the input.
func (e *Expression) Evaluate(env *Env, focus Node) ([]Node, error) {
	c := &evalCtx{}
	c.focus[0] = focus
	c.context = c.focus[:]
	if env != nil {
		c.model = env.Model
		c.resource = env.Resource
	}
	if c.resource.Value == nil {
		c.resource = focus
	}
	return e.root.eval(c, c.context)
}

type evalCtx struct {
	model    Model
	resource Node
	context  []Node
	focus    [1]Node // backs context: one allocation per evaluation
}

type expr interface {
	eval(c *evalCtx, focus []Node) ([]Node, error)
}

type literalExpr struct{ nodes []Node }

func (e *literalExpr) eval(*evalCtx, []Node) ([]Node, error) { return e.nodes, nil }

type thisExpr struct{}

func (thisExpr) eval(_ *evalCtx, focus []Node) ([]Node, error) { return focus, nil }

type varExpr struct{ name string }

func (e *varExpr) eval(c *evalCtx, _ []Node) ([]Node, error) {
	if e.name == "context" {
		return c.context, nil
	}
	return []Node{c.resource}, nil
}

// memberExpr is name or recv.name. A name that starts a path and begins with
// an upper-case letter is a type name (Observation.code): it keeps the items
// of that type, so Resource.id works on every resource.
type memberExpr struct {
	recv expr
	name string
	root bool
}

func (e *memberExpr) eval(c *evalCtx, focus []Node) ([]Node, error) {
	in := focus
	if e.recv != nil {
		var err error
		if in, err = e.recv.eval(c, focus); err != nil {
			return nil, err
		}
	}
	if e.root && e.name[0] >= 'A' && e.name[0] <= 'Z' {
		return c.ofType(in, e.name), nil
	}
	var out []Node
	for _, n := range in {
		out = c.children(out, n, e.name)
	}
	return out, nil
}

// children appends the values of element name of n.
func (c *evalCtx) children(out []Node, n Node, name string) []Node {
	obj, ok := n.Value.(map[string]any)
	if !ok {
		return out
	}
	if c.model != nil && n.Type != "" {
		if el, ok := c.model.Element(n.Type, name); ok {
			for i, key := range el.Keys {
				if v, ok := obj[key]; ok {
					out = appendValue(out, v, el.Types[i])
				}
			}
			return out
		}
	}
	if v, ok := obj[name]; ok {
		return appendValue(out, v, "")
	}
	// A choice element without a model: value matches valueQuantity etc.
	for key, v := range obj {
		if len(key) > len(name) && strings.HasPrefix(key, name) && key[len(name)] >= 'A' && key[len(name)] <= 'Z' {
			out = appendValue(out, v, choiceType(key[len(name):], v))
		}
	}
	return out
}

// choiceType names the type of a choice element from its JSON suffix:
// Quantity stays, DateTime becomes dateTime (primitive types start lower-case).
func choiceType(suffix string, v any) string {
	if _, ok := v.(map[string]any); ok {
		return suffix
	}
	if a, ok := v.([]any); ok && len(a) > 0 {
		if _, ok := a[0].(map[string]any); ok {
			return suffix
		}
	}
	return strings.ToLower(suffix[:1]) + suffix[1:]
}

func appendValue(out []Node, v any, typ string) []Node {
	switch v := v.(type) {
	case nil:
		return out
	case []any:
		out = slices.Grow(out, len(v))
		for _, item := range v {
			out = appendValue(out, item, typ)
		}
		return out
	case map[string]any:
		if rt, ok := v["resourceType"].(string); ok {
			typ = rt
		}
	}
	return append(out, Node{Type: typ, Value: v})
}

// isType reports whether n is of type name or derives from it. Type names
// compare case-insensitively so that System.String matches FHIR string and
// DateTime matches dateTime.
func (c *evalCtx) isType(n Node, name string) bool {
	t := n.Type
	if c.model == nil && (name == "Resource" || name == "DomainResource") {
		// Without a model, any resource (an object with a resourceType)
		// counts as a Resource; DomainResource is approximated the same way.
		m, ok := n.Value.(map[string]any)
		if !ok {
			return n.Value == nil && t != "" // a resolve() target
		}
		_, ok = m["resourceType"].(string)
		return ok
	}
	if t == "" {
		switch v := n.Value.(type) {
		case map[string]any:
			t, _ = v["resourceType"].(string)
		case string:
			t = "string"
		case bool:
			t = "boolean"
		case json.Number:
			t = "decimal"
		}
	}
	for depth := 0; t != "" && depth < 32; depth++ {
		if strings.EqualFold(t, name) {
			return true
		}
		if c.model == nil {
			return false
		}
		t = c.model.BaseType(t)
	}
	return false
}

type indexExpr struct {
	recv  expr
	index int
}

func (e *indexExpr) eval(c *evalCtx, focus []Node) ([]Node, error) {
	in, err := e.recv.eval(c, focus)
	if err != nil {
		return nil, err
	}
	if e.index < 0 || e.index >= len(in) {
		return nil, nil
	}
	return in[e.index : e.index+1 : e.index+1], nil
}

type unionExpr struct{ left, right expr }

func (e *unionExpr) eval(c *evalCtx, focus []Node) ([]Node, error) {
	l, err := e.left.eval(c, focus)
	if err != nil {
		return nil, err
	}
	r, err := e.right.eval(c, focus)
	if err != nil {
		return nil, err
	}
	if len(r) == 0 {
		return distinct(l), nil
	}
	out := make([]Node, 0, len(l)+len(r))
	out = appendDistinct(out, l)
	return appendDistinct(out, r), nil
}

// distinct returns ns without repeated items, sharing ns when it has none.
func distinct(ns []Node) []Node {
	for i := 1; i < len(ns); i++ {
		for j := 0; j < i; j++ {
			if sameNode(ns[i], ns[j]) {
				return appendDistinct(make([]Node, 0, len(ns)), ns)
			}
		}
	}
	return ns
}

func appendDistinct(out, add []Node) []Node {
next:
	for _, n := range add {
		for _, o := range out {
			if sameNode(o, n) {
				continue next
			}
		}
		out = append(out, n)
	}
	return out
}

// sameNode is the duplicate test of | and distinct(): primitives compare by
// value, complex values by identity (the same element of the resource). Two
// different elements with equal content are therefore both kept, which
// differs from FHIRPath equality only in keeping such copies, and saves a
// deep comparison of every pair.
func sameNode(a, b Node) bool {
	if am, ok := a.Value.(map[string]any); ok {
		bm, ok := b.Value.(map[string]any)
		return ok && reflect.ValueOf(am).UnsafePointer() == reflect.ValueOf(bm).UnsafePointer()
	}
	return equalNode(a, b)
}

type equalExpr struct {
	not         bool
	left, right expr
}

func (e *equalExpr) eval(c *evalCtx, focus []Node) ([]Node, error) {
	l, err := e.left.eval(c, focus)
	if err != nil {
		return nil, err
	}
	r, err := e.right.eval(c, focus)
	if err != nil {
		return nil, err
	}
	if len(l) == 0 || len(r) == 0 {
		return nil, nil
	}
	eq := len(l) == len(r)
	for i := 0; eq && i < len(l); i++ {
		eq = equalNode(l[i], r[i])
	}
	return boolResult(eq != e.not), nil
}

func boolResult(b bool) []Node { return []Node{{Type: "boolean", Value: b}} }

// equalNode is FHIRPath equality of two items: primitives by value (numbers
// numerically), complex values member by member.
func equalNode(a, b Node) bool {
	switch av := a.Value.(type) {
	case string:
		bv, ok := b.Value.(string)
		return ok && av == bv
	case bool:
		bv, ok := b.Value.(bool)
		return ok && av == bv
	case json.Number:
		bv, ok := b.Value.(json.Number)
		if !ok {
			return false
		}
		if av == bv {
			return true
		}
		x, okx := new(big.Rat).SetString(string(av))
		y, oky := new(big.Rat).SetString(string(bv))
		return okx && oky && x.Cmp(y) == 0
	case map[string]any:
		bv, ok := b.Value.(map[string]any)
		if !ok {
			return false
		}
		if reflect.ValueOf(av).UnsafePointer() == reflect.ValueOf(bv).UnsafePointer() {
			return true
		}
		return reflect.DeepEqual(av, bv)
	case nil:
		return b.Value == nil && a.Type == b.Type
	}
	return false
}

type logicExpr struct {
	op          string
	left, right expr
}

func (e *logicExpr) eval(c *evalCtx, focus []Node) ([]Node, error) {
	ln, err := e.left.eval(c, focus)
	if err != nil {
		return nil, err
	}
	l, lok, err := singletonBool(ln)
	if err != nil {
		return nil, err
	}
	// Short cuts that do not need the right operand.
	switch {
	case e.op == "and" && lok && !l:
		return boolResult(false), nil
	case e.op == "or" && lok && l:
		return boolResult(true), nil
	case e.op == "implies" && lok && !l:
		return boolResult(true), nil
	}
	rn, err := e.right.eval(c, focus)
	if err != nil {
		return nil, err
	}
	r, rok, err := singletonBool(rn)
	if err != nil {
		return nil, err
	}
	switch e.op {
	case "and":
		if rok && !r {
			return boolResult(false), nil
		}
		if lok && rok {
			return boolResult(true), nil
		}
	case "or":
		if rok && r {
			return boolResult(true), nil
		}
		if lok && rok {
			return boolResult(false), nil
		}
	case "xor":
		if lok && rok {
			return boolResult(l != r), nil
		}
	case "implies":
		if rok && r {
			return boolResult(true), nil
		}
		if lok && rok {
			return boolResult(r), nil
		}
	}
	return nil, nil
}

// singletonBool applies FHIRPath singleton evaluation of a collection as a
// boolean: empty is unknown, one boolean is itself, any other single item is
// true, several items are an error.
func singletonBool(ns []Node) (val, known bool, err error) {
	switch len(ns) {
	case 0:
		return false, false, nil
	case 1:
		if b, ok := ns[0].Value.(bool); ok {
			return b, true, nil
		}
		return true, true, nil
	}
	return false, false, fmt.Errorf("expected a single boolean, got %d items", len(ns))
}

type typeOpExpr struct {
	is   bool
	left expr
	typ  string
}

func (e *typeOpExpr) eval(c *evalCtx, focus []Node) ([]Node, error) {
	in, err := e.left.eval(c, focus)
	if err != nil {
		return nil, err
	}
	if e.is {
		return c.isFn(in, e.typ)
	}
	return c.ofType(in, e.typ), nil
}

func (c *evalCtx) isFn(in []Node, typ string) ([]Node, error) {
	switch len(in) {
	case 0:
		return nil, nil
	case 1:
		return boolResult(c.isType(in[0], typ)), nil
	}
	return nil, fmt.Errorf("'is %s' needs a single item, got %d", typ, len(in))
}

// ofType keeps the items of type typ. It also implements 'as' and as(),
// which FHIRPath defines on a single item only; applying them item by item
// gives the same answer there and a useful one on collections (an R4 search
// expression such as Observation.component.value as Quantity).
func (c *evalCtx) ofType(in []Node, typ string) []Node {
	for i, n := range in {
		if !c.isType(n, typ) {
			// At least one item drops out: copy the others.
			out := append([]Node(nil), in[:i]...)
			for _, n := range in[i+1:] {
				if c.isType(n, typ) {
					out = append(out, n)
				}
			}
			return out
		}
	}
	return in // all of them: results are read-only, so share the input
}

type callExpr struct {
	recv expr
	name string
	args []expr
	typ  string // type argument of ofType/as/is, url of extension
}

func (e *callExpr) eval(c *evalCtx, focus []Node) ([]Node, error) {
	in := focus
	if e.recv != nil {
		var err error
		if in, err = e.recv.eval(c, focus); err != nil {
			return nil, err
		}
	}
	switch e.name {
	case "where", "exists", "all", "select":
		if len(e.args) == 0 { // exists()
			return boolResult(len(in) > 0), nil
		}
		return c.filter(e.name, e.args[0], in)
	case "empty":
		return boolResult(len(in) == 0), nil
	case "not":
		b, ok, err := singletonBool(in)
		if err != nil || !ok {
			return nil, err
		}
		return boolResult(!b), nil
	case "first":
		if len(in) == 0 {
			return nil, nil
		}
		return in[:1:1], nil
	case "last":
		if len(in) == 0 {
			return nil, nil
		}
		return in[len(in)-1:], nil
	case "tail":
		if len(in) <= 1 {
			return nil, nil
		}
		return in[1:], nil
	case "single":
		if len(in) > 1 {
			return nil, fmt.Errorf("single() on %d items", len(in))
		}
		return in, nil
	case "count":
		return []Node{{Type: "integer", Value: json.Number(strconv.Itoa(len(in)))}}, nil
	case "distinct":
		return appendDistinct(make([]Node, 0, len(in)), in), nil
	case "hasValue":
		return boolResult(len(in) == 1 && in[0].IsPrimitive()), nil
	case "ofType", "as":
		return c.ofType(in, e.typ), nil
	case "is":
		return c.isFn(in, e.typ)
	case "extension":
		var out []Node
		for _, n := range in {
			for _, x := range c.children(nil, n, "extension") {
				if m, ok := x.Value.(map[string]any); ok && m["url"] == e.typ {
					out = append(out, x)
				}
			}
		}
		return out, nil
	case "resolve":
		var out []Node
		for _, n := range in {
			if r, ok := c.resolve(n); ok {
				out = append(out, r)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("function %s() is not supported", e.name)
}

// filter runs where, exists(criteria), all and select: the argument is
// evaluated once per input item, with that item as $this.
func (c *evalCtx) filter(name string, arg expr, in []Node) ([]Node, error) {
	var out []Node
	one := make([]Node, 1)
	for _, n := range in {
		one[0] = n
		r, err := arg.eval(c, one)
		if err != nil {
			return nil, err
		}
		if name == "select" {
			out = append(out, r...)
			continue
		}
		b, ok, err := singletonBool(r)
		if err != nil {
			return nil, fmt.Errorf("%s(): %v", name, err)
		}
		match := ok && b
		switch name {
		case "where":
			if match {
				out = append(out, n)
			}
		case "exists":
			if match {
				return boolResult(true), nil
			}
		case "all":
			if !match {
				return boolResult(false), nil
			}
		}
	}
	switch name {
	case "exists":
		return boolResult(false), nil
	case "all":
		return boolResult(true), nil
	}
	return out, nil
}

// resolve finds the target of a Reference (or a canonical/uri string). A
// "#id" reference yields the contained resource from %resource; any other
// reference yields a node that only knows the target's type, taken from the
// reference text (Patient/1, http://x/fhir/Patient/1/_history/2) or
// Reference.type. resolve() is Patient therefore works without a database.
func (c *evalCtx) resolve(n Node) (Node, bool) {
	var ref, typ string
	switch v := n.Value.(type) {
	case map[string]any:
		ref, _ = v["reference"].(string)
		typ, _ = v["type"].(string)
	case string:
		ref = v
	default:
		return Node{}, false
	}
	if strings.HasPrefix(ref, "#") {
		root, _ := c.resource.Value.(map[string]any)
		if ref == "#" {
			return c.resource, root != nil
		}
		list, _ := root["contained"].([]any)
		for _, item := range list {
			if m, ok := item.(map[string]any); ok && m["id"] == ref[1:] {
				return ResourceNode(m), true
			}
		}
		return Node{}, false
	}
	if t := referenceType(ref); t != "" && c.isResourceType(t) {
		return Node{Type: t}, true
	}
	if typ != "" {
		return Node{Type: typ}, true
	}
	return Node{}, false
}

func (c *evalCtx) isResourceType(t string) bool {
	if c.model == nil {
		return true
	}
	return c.isType(Node{Type: t}, "Resource")
}

// referenceType returns the resource type named in a literal reference:
// Type/id, Type/id/_history/v, or an absolute URL ending in one of these.
func referenceType(ref string) string {
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	slash := strings.LastIndexByte(ref, '/')
	if slash <= 0 || slash == len(ref)-1 {
		return ""
	}
	head := ref[:slash]
	t := head[strings.LastIndexByte(head, '/')+1:]
	if t == "" || t[0] < 'A' || t[0] > 'Z' {
		return ""
	}
	for i := 1; i < len(t); i++ {
		if !(t[i] >= 'a' && t[i] <= 'z' || t[i] >= 'A' && t[i] <= 'Z') {
			return ""
		}
	}
	return t
}
