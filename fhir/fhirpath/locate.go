package fhirpath

import (
	"fmt"
	"strings"
)

// Location is where an item of a collection is held in the decoded JSON of
// a resource, so that a caller can replace or remove it (FHIRPath Patch).
type Location struct {
	// Parent is the JSON object that holds the item; nil for the focus
	// itself (the resource, for a path that is just its type name).
	Parent map[string]any
	// Name is the element name (value for valueQuantity) and Key the JSON
	// member of Parent that holds the item (valueQuantity).
	Name, Key string
	// Index is the position of the item in the array Parent[Key], or -1
	// when the member is not an array.
	Index int
	// Node is the item, typed as Evaluate types it.
	Node Node
}

// Locate evaluates a path expression like Evaluate and returns where each
// resulting item is held. Paths are made of element names, indexers ([0])
// and the functions that narrow a collection without changing its items:
// where(), first(), last(), tail(), single(), ofType(), as() and
// extension('url'). Anything else fails.
func (e *Expression) Locate(env *Env, focus Node) ([]Location, error) {
	c := e.newCtx(env, focus)
	return c.locate(e.root, c.context)
}

// Container returns, for a path that ends in an element name (X.name), the
// items of X that hold or would hold that element, and the name: what an
// insert into a list that may still be empty needs.
func (e *Expression) Container(env *Env, focus Node) (parents []Node, name string, err error) {
	m, ok := e.root.(*memberExpr)
	if !ok || (m.root && isTypeName(m.name)) {
		return nil, "", fmt.Errorf("%s does not end in an element name", e.src)
	}
	c := e.newCtx(env, focus)
	parents = c.context
	if m.recv != nil {
		if parents, err = m.recv.eval(c, c.context); err != nil {
			return nil, "", err
		}
	}
	return parents, m.name, nil
}

func (e *Expression) newCtx(env *Env, focus Node) *evalCtx {
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
	return c
}

func isTypeName(name string) bool { return name[0] >= 'A' && name[0] <= 'Z' }

func (c *evalCtx) locate(e expr, focus []Node) ([]Location, error) {
	switch e := e.(type) {
	case thisExpr:
		return rootLocations(focus), nil
	case *varExpr:
		n, err := e.eval(c, focus)
		return rootLocations(n), err
	case *memberExpr:
		if e.recv == nil && e.root && isTypeName(e.name) {
			return rootLocations(c.ofType(focus, e.name)), nil
		}
		in := focus
		if e.recv != nil {
			var err error
			if in, err = e.recv.eval(c, focus); err != nil {
				return nil, err
			}
		}
		var out []Location
		for _, n := range in {
			out = c.childLocations(out, n, e.name)
		}
		return out, nil
	case *indexExpr:
		in, err := c.locate(e.recv, focus)
		if err != nil || e.index < 0 || e.index >= len(in) {
			return nil, err
		}
		return in[e.index : e.index+1], nil
	case *callExpr:
		if e.recv == nil {
			return nil, fmt.Errorf("%s() does not name an element", e.name)
		}
		in, err := c.locate(e.recv, focus)
		if err != nil {
			return nil, err
		}
		switch e.name {
		case "first":
			if len(in) > 1 {
				in = in[:1]
			}
			return in, nil
		case "last":
			if len(in) > 1 {
				in = in[len(in)-1:]
			}
			return in, nil
		case "tail":
			if len(in) == 0 {
				return nil, nil
			}
			return in[1:], nil
		case "single":
			if len(in) > 1 {
				return nil, fmt.Errorf("single() on %d items", len(in))
			}
			return in, nil
		case "where", "ofType", "as":
			var out []Location
			for _, l := range in {
				var keep []Node
				if e.name == "where" {
					if keep, err = c.filter("where", e.args[0], []Node{l.Node}); err != nil {
						return nil, err
					}
				} else {
					keep = c.ofType([]Node{l.Node}, e.typ)
				}
				if len(keep) > 0 {
					out = append(out, l)
				}
			}
			return out, nil
		case "extension":
			var out []Location
			for _, l := range in {
				for _, x := range c.childLocations(nil, l.Node, "extension") {
					if m, ok := x.Node.Value.(map[string]any); ok && m["url"] == e.typ {
						out = append(out, x)
					}
				}
			}
			return out, nil
		}
		return nil, fmt.Errorf("%s() cannot be used in a path that names elements", e.name)
	}
	return nil, fmt.Errorf("the expression is not a path to elements")
}

func rootLocations(ns []Node) []Location {
	out := make([]Location, len(ns))
	for i, n := range ns {
		out[i] = Location{Index: -1, Node: n}
	}
	return out
}

// childLocations appends the locations of the values of element name of n,
// as children appends their values.
func (c *evalCtx) childLocations(out []Location, n Node, name string) []Location {
	obj, ok := n.Value.(map[string]any)
	if !ok {
		return out
	}
	add := func(key string, typ string) {
		v, ok := obj[key]
		if !ok {
			return
		}
		if list, ok := v.([]any); ok {
			for i, item := range list {
				for _, node := range appendValue(nil, item, typ) {
					out = append(out, Location{Parent: obj, Name: name, Key: key, Index: i, Node: node})
				}
			}
			return
		}
		for _, node := range appendValue(nil, v, typ) {
			out = append(out, Location{Parent: obj, Name: name, Key: key, Index: -1, Node: node})
		}
	}
	if c.model != nil && n.Type != "" {
		if el, ok := c.model.Element(n.Type, name); ok {
			for i, key := range el.Keys {
				add(key, el.Types[i])
			}
			return out
		}
	}
	if _, ok := obj[name]; ok {
		add(name, "")
		return out
	}
	for key, v := range obj {
		if len(key) > len(name) && strings.HasPrefix(key, name) && key[len(name)] >= 'A' && key[len(name)] <= 'Z' {
			add(key, choiceType(key[len(name):], v))
		}
	}
	return out
}
