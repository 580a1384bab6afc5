package patch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// JSONPatch is a JSON Patch document (RFC 6902).
type JSONPatch struct {
	ops []jsonOp
}

type jsonOp struct {
	op    string // add, remove, replace, move, copy, test
	path  []string
	from  []string
	value any
	text  string // the operation as written, for messages
}

// ParseJSONPatch parses a JSON Patch document: an array of operations.
func ParseJSONPatch(doc []byte) (*JSONPatch, error) {
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal(doc, &raw); err != nil {
		return nil, invalid("a JSON Patch document must be a JSON array of operation objects: %v", err)
	}
	p := &JSONPatch{ops: make([]jsonOp, 0, len(raw))}
	for i, m := range raw {
		op, err := parseJSONOp(m)
		if err != nil {
			return nil, invalid("JSON Patch operation %d: %v", i, err)
		}
		p.ops = append(p.ops, op)
	}
	return p, nil
}

func parseJSONOp(m map[string]json.RawMessage) (jsonOp, error) {
	var op jsonOp
	str := func(name string) (string, bool, error) {
		raw, ok := m[name]
		if !ok {
			return "", false, nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", true, fmt.Errorf("%q must be a string", name)
		}
		return s, true, nil
	}
	name, ok, err := str("op")
	if err != nil {
		return op, err
	}
	if !ok {
		return op, fmt.Errorf(`"op" is missing`)
	}
	op.op = name
	path, ok, err := str("path")
	if err != nil {
		return op, err
	}
	if !ok {
		return op, fmt.Errorf(`"path" is missing`)
	}
	if op.path, err = parsePointer(path); err != nil {
		return op, err
	}
	op.text = name + " " + path
	switch name {
	case "add", "replace", "test":
		raw, ok := m["value"]
		if !ok {
			return op, fmt.Errorf(`%s needs a "value"`, name)
		}
		if op.value, err = decodeValue(raw); err != nil {
			return op, fmt.Errorf(`"value" is not valid JSON: %v`, err)
		}
	case "move", "copy":
		from, ok, err := str("from")
		if err != nil {
			return op, err
		}
		if !ok {
			return op, fmt.Errorf(`%s needs a "from"`, name)
		}
		if op.from, err = parsePointer(from); err != nil {
			return op, err
		}
		op.text = name + " " + from + " to " + path
		if name == "move" && len(op.from) < len(op.path) && pointerHasPrefix(op.path, op.from) {
			return op, fmt.Errorf("cannot move %s into itself", from)
		}
	case "remove":
	default:
		return op, fmt.Errorf("unknown op %q (add, remove, replace, move, copy or test)", name)
	}
	return op, nil
}

// parsePointer splits a JSON Pointer (RFC 6901) into its reference tokens;
// "" (the whole document) gives none.
func parsePointer(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	if s[0] != '/' {
		return nil, fmt.Errorf("%q is not a JSON Pointer (it must start with /)", s)
	}
	tokens := strings.Split(s[1:], "/")
	for i, t := range tokens {
		if strings.Contains(t, "~") {
			for j := 0; j < len(t); j++ {
				if t[j] == '~' && (j+1 == len(t) || (t[j+1] != '0' && t[j+1] != '1')) {
					return nil, fmt.Errorf("%q is not a JSON Pointer (~ must be followed by 0 or 1)", s)
				}
			}
			tokens[i] = strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
		}
	}
	return tokens, nil
}

func pointerHasPrefix(p, prefix []string) bool {
	if len(prefix) > len(p) {
		return false
	}
	for i := range prefix {
		if p[i] != prefix[i] {
			return false
		}
	}
	return true
}

// Apply implements Patch: the operations in order, all or nothing.
func (p *JSONPatch) Apply(body []byte) ([]byte, error) {
	root, err := decode(body)
	if err != nil {
		return nil, err
	}
	var doc any = root
	for i, op := range p.ops {
		if doc, err = op.apply(doc); err != nil {
			return nil, unprocessable("JSON Patch operation %d (%s): %s", i, op.text, err)
		}
	}
	return encode(doc)
}

func (op *jsonOp) apply(doc any) (any, error) {
	switch op.op {
	case "add":
		return add(doc, op.path, deepCopy(op.value))
	case "remove":
		doc, _, err := remove(doc, op.path)
		return doc, err
	case "replace":
		if _, err := get(doc, op.path); err != nil {
			return nil, err
		}
		if len(op.path) == 0 {
			return deepCopy(op.value), nil
		}
		return at(doc, op.path, func(c any, last string) (any, error) {
			switch c := c.(type) {
			case map[string]any:
				c[last] = deepCopy(op.value)
				return c, nil
			case []any:
				i, err := index(last, len(c), false)
				if err != nil {
					return nil, err
				}
				c[i] = deepCopy(op.value)
				return c, nil
			}
			return nil, fmt.Errorf("the path names nothing")
		})
	case "move":
		doc, v, err := remove(doc, op.from)
		if err != nil {
			return nil, err
		}
		return add(doc, op.path, v)
	case "copy":
		v, err := get(doc, op.from)
		if err != nil {
			return nil, err
		}
		return add(doc, op.path, deepCopy(v))
	case "test":
		v, err := get(doc, op.path)
		if err != nil {
			return nil, err
		}
		if !equal(v, op.value) {
			got, _ := encode(v)
			want, _ := encode(op.value)
			return nil, fmt.Errorf("test failed: the value is %s, not %s", abbreviate(got), abbreviate(want))
		}
		return doc, nil
	}
	return nil, fmt.Errorf("unknown op %q", op.op)
}

func abbreviate(b []byte) string {
	if len(b) > 80 {
		return string(bytes.ToValidUTF8(b[:77], nil)) + "..."
	}
	return string(b)
}

// at calls fn with the container of the last token of path (an object or
// an array) and that token, and stores what fn returns in place of the
// container; it returns the new document.
func at(doc any, path []string, fn func(container any, last string) (any, error)) (any, error) {
	if len(path) == 1 {
		return fn(doc, path[0])
	}
	switch n := doc.(type) {
	case map[string]any:
		child, ok := n[path[0]]
		if !ok {
			return nil, fmt.Errorf("the path names nothing: there is no member %q", path[0])
		}
		nc, err := at(child, path[1:], fn)
		if err != nil {
			return nil, err
		}
		n[path[0]] = nc
		return n, nil
	case []any:
		i, err := index(path[0], len(n), false)
		if err != nil {
			return nil, err
		}
		nc, err := at(n[i], path[1:], fn)
		if err != nil {
			return nil, err
		}
		n[i] = nc
		return n, nil
	}
	return nil, fmt.Errorf("the path names nothing: %q is inside a value that is neither an object nor an array", path[0])
}

// index reads an array index token: a decimal without leading zeros below
// n, or with end also "-" and n itself (the position after the last item).
func index(tok string, n int, end bool) (int, error) {
	if end && tok == "-" {
		return n, nil
	}
	i, err := strconv.Atoi(tok)
	if err != nil || i < 0 || (len(tok) > 1 && tok[0] == '0') || tok[0] == '+' {
		return 0, fmt.Errorf("%q is not an array index", tok)
	}
	if i > n || (!end && i == n) {
		return 0, fmt.Errorf("index %d is out of range (the array has %d items)", i, n)
	}
	return i, nil
}

func get(doc any, path []string) (any, error) {
	v := doc
	for _, tok := range path {
		switch n := v.(type) {
		case map[string]any:
			child, ok := n[tok]
			if !ok {
				return nil, fmt.Errorf("the path names nothing: there is no member %q", tok)
			}
			v = child
		case []any:
			i, err := index(tok, len(n), false)
			if err != nil {
				return nil, err
			}
			v = n[i]
		default:
			return nil, fmt.Errorf("the path names nothing: %q is inside a value that is neither an object nor an array", tok)
		}
	}
	return v, nil
}

func add(doc any, path []string, v any) (any, error) {
	if len(path) == 0 {
		return v, nil
	}
	return at(doc, path, func(c any, last string) (any, error) {
		switch c := c.(type) {
		case map[string]any:
			c[last] = v
			return c, nil
		case []any:
			i, err := index(last, len(c), true)
			if err != nil {
				return nil, err
			}
			c = append(c, nil)
			copy(c[i+1:], c[i:])
			c[i] = v
			return c, nil
		}
		return nil, fmt.Errorf("the path names nothing: its parent is neither an object nor an array")
	})
}

// remove removes the value at path and returns the new document and the
// value.
func remove(doc any, path []string) (any, any, error) {
	if len(path) == 0 {
		return nil, nil, fmt.Errorf("the whole resource cannot be removed")
	}
	var removed any
	doc, err := at(doc, path, func(c any, last string) (any, error) {
		switch c := c.(type) {
		case map[string]any:
			v, ok := c[last]
			if !ok {
				return nil, fmt.Errorf("the path names nothing: there is no member %q", last)
			}
			removed = v
			delete(c, last)
			return c, nil
		case []any:
			i, err := index(last, len(c), false)
			if err != nil {
				return nil, err
			}
			removed = c[i]
			return append(c[:i], c[i+1:]...), nil
		}
		return nil, fmt.Errorf("the path names nothing: its parent is neither an object nor an array")
	})
	return doc, removed, err
}
