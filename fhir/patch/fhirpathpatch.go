package patch

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/fhirpath"
)

// FHIRPathPatch is a FHIRPath Patch: a Parameters resource with one
// "operation" parameter per operation (add, insert, delete, replace, move).
type FHIRPathPatch struct {
	ops []fpOp
}

type fpOp struct {
	typ      string
	pathText string
	path     *fhirpath.Expression
	name     string
	// value is the new value; valueType is the X of value[x] ("String",
	// "CodeableConcept"), "" for a value built from parts.
	value     any
	hasValue  bool
	valueType string
	parts     []any // the parts of a value built from parts
	index     int
	source    int
	dest      int
}

// ParseFHIRPathPatch parses a FHIRPath Patch Parameters resource.
func ParseFHIRPathPatch(doc []byte) (*FHIRPathPatch, error) {
	v, err := decodeValue(doc)
	if err != nil {
		return nil, invalid("the FHIRPath Patch is not valid JSON: %v", err)
	}
	m, _ := v.(map[string]any)
	if rt, _ := m["resourceType"].(string); rt != "Parameters" {
		return nil, invalid("a FHIRPath Patch is a Parameters resource (or send a JSON Patch as %s)", MediaTypeJSONPatch)
	}
	params, _ := m["parameter"].([]any)
	if len(params) == 0 {
		return nil, invalid("the FHIRPath Patch has no operation parameters")
	}
	p := &FHIRPathPatch{}
	for i, raw := range params {
		op, err := parseFPOp(raw)
		if err != nil {
			return nil, invalid("FHIRPath Patch operation %d: %v", i, err)
		}
		p.ops = append(p.ops, op)
	}
	return p, nil
}

func parseFPOp(raw any) (fpOp, error) {
	var op fpOp
	param, _ := raw.(map[string]any)
	if name, _ := param["name"].(string); name != "operation" {
		return op, fmt.Errorf(`every parameter must be named "operation", not %q`, name)
	}
	parts, _ := param["part"].([]any)
	seen := map[string]bool{}
	has := func(n string) bool { return seen[n] }
	for _, rawPart := range parts {
		part, _ := rawPart.(map[string]any)
		name, _ := part["name"].(string)
		if seen[name] {
			return op, fmt.Errorf("part %q is given twice", name)
		}
		seen[name] = true
		key, val, ok := valueOf(part)
		switch name {
		case "type", "path", "name":
			s, isStr := val.(string)
			if !ok || !isStr {
				return op, fmt.Errorf("part %q needs a string value (valueCode or valueString)", name)
			}
			switch name {
			case "type":
				op.typ = s
			case "path":
				op.pathText = s
			default:
				op.name = s
			}
		case "index", "source", "destination":
			n, isNum := val.(json.Number)
			i, err := strconv.Atoi(string(n))
			if !ok || !isNum || err != nil || i < 0 {
				return op, fmt.Errorf("part %q needs a non-negative valueInteger", name)
			}
			switch name {
			case "index":
				op.index = i
			case "source":
				op.source = i
			default:
				op.dest = i
			}
		case "value":
			op.hasValue = true
			if ok {
				op.value, op.valueType = val, strings.TrimPrefix(key, "value")
			} else if sub, _ := part["part"].([]any); len(sub) > 0 {
				op.parts = sub
			} else {
				return op, fmt.Errorf("part value has neither a value[x] nor parts")
			}
		default:
			return op, fmt.Errorf("unknown part %q", name)
		}
	}
	need := map[string][]string{
		"add":     {"path", "name", "value"},
		"insert":  {"path", "index", "value"},
		"delete":  {"path"},
		"replace": {"path", "value"},
		"move":    {"path", "source", "destination"},
	}[op.typ]
	if need == nil {
		return op, fmt.Errorf("unknown type %q (add, insert, delete, replace or move)", op.typ)
	}
	for _, n := range need {
		if !has(n) {
			return op, fmt.Errorf("%s needs a part %q", op.typ, n)
		}
	}
	var err error
	if op.path, err = fhirpath.Compile(op.pathText); err != nil {
		return op, fmt.Errorf("path %q: %v", op.pathText, err)
	}
	return op, nil
}

// valueOf returns the value[x] member of a parameter part.
func valueOf(part map[string]any) (key string, v any, ok bool) {
	for k, v := range part {
		if len(k) > len("value") && strings.HasPrefix(k, "value") && k[5] >= 'A' && k[5] <= 'Z' {
			return k, v, true
		}
	}
	return "", nil, false
}

// Apply implements Patch.
func (p *FHIRPathPatch) Apply(body []byte) ([]byte, error) {
	root, err := decode(body)
	if err != nil {
		return nil, err
	}
	env := &fhirpath.Env{Model: fhir.TypeModel(), Resource: fhirpath.ResourceNode(root)}
	for i := range p.ops {
		op := &p.ops[i]
		if err := op.apply(env); err != nil {
			return nil, unprocessable("FHIRPath Patch operation %d (%s %s): %v", i, op.typ, op.pathText, err)
		}
	}
	return encode(root)
}

func (op *fpOp) apply(env *fhirpath.Env) error {
	locs, err := op.path.Locate(env, env.Resource)
	if err != nil {
		return err
	}
	switch op.typ {
	case "add":
		if len(locs) != 1 {
			return fmt.Errorf("the path must name exactly one element, it names %d", len(locs))
		}
		obj, ok := locs[0].Node.Value.(map[string]any)
		if !ok {
			return fmt.Errorf("the path names a primitive value, which has no elements to add to")
		}
		typ := locs[0].Node.Type
		key, elType, err := keyFor(env.Model, typ, op.name, op.valueType)
		if err != nil {
			return err
		}
		v, err := op.newValue(env.Model, elType)
		if err != nil {
			return err
		}
		if isRepeating(typ, op.name) {
			list, _ := obj[key].([]any)
			obj[key] = append(list, v)
			return nil
		}
		if _, exists := obj[key]; exists {
			return fmt.Errorf("%s already has a %s; use replace", typ, op.name)
		}
		obj[key] = v
		return nil
	case "insert", "move":
		parent, key, elType, err := op.list(env, locs)
		if err != nil {
			return err
		}
		list, _ := parent[key].([]any)
		if op.typ == "insert" {
			if op.index > len(list) {
				return fmt.Errorf("index %d is beyond the end of the list (%d items)", op.index, len(list))
			}
			v, err := op.newValue(env.Model, elType)
			if err != nil {
				return err
			}
			list = append(list, nil)
			copy(list[op.index+1:], list[op.index:])
			list[op.index] = v
			parent[key] = list
			return nil
		}
		if op.source >= len(list) || op.dest >= len(list) {
			return fmt.Errorf("source %d and destination %d must be below the length of the list (%d items)", op.source, op.dest, len(list))
		}
		v := list[op.source]
		list = append(list[:op.source], list[op.source+1:]...)
		list = append(list, nil)
		copy(list[op.dest+1:], list[op.dest:])
		list[op.dest] = v
		parent[key] = list
		return nil
	case "delete":
		switch {
		case len(locs) == 0:
			return nil // nothing to delete is not an error
		case len(locs) > 1:
			return fmt.Errorf("the path must name at most one element, it names %d", len(locs))
		case locs[0].Parent == nil:
			return fmt.Errorf("the resource itself cannot be deleted by a patch")
		}
		removeAt(locs[0])
		return nil
	case "replace":
		if len(locs) != 1 {
			return fmt.Errorf("the path must name exactly one element, it names %d", len(locs))
		}
		l := locs[0]
		if l.Parent == nil {
			return fmt.Errorf("the resource itself cannot be replaced by a patch")
		}
		key := l.Key
		if l.Key != l.Name && op.valueType != "" {
			// A choice element (value[x]) may change its type.
			key = l.Name + op.valueType
		}
		v, err := op.newValue(env.Model, l.Node.Type)
		if err != nil {
			return err
		}
		if l.Index >= 0 {
			l.Parent[key].([]any)[l.Index] = v
			return nil
		}
		if key != l.Key {
			delete(l.Parent, l.Key)
			delete(l.Parent, "_"+l.Key)
		}
		l.Parent[key] = v
		return nil
	}
	return fmt.Errorf("unknown type %q", op.typ)
}

// list returns the object and member that hold the list a path of insert
// or move names, and the type of its items; for an insert into a list with
// no items yet, the element named by the path's last step.
func (op *fpOp) list(env *fhirpath.Env, locs []fhirpath.Location) (map[string]any, string, string, error) {
	if len(locs) == 0 {
		if op.typ == "move" {
			return nil, "", "", fmt.Errorf("the path names no list items to move")
		}
		parents, name, err := op.path.Container(env, env.Resource)
		if err != nil {
			return nil, "", "", err
		}
		if len(parents) != 1 {
			return nil, "", "", fmt.Errorf("the path must name one list, its parent names %d elements", len(parents))
		}
		obj, ok := parents[0].Value.(map[string]any)
		if !ok || !isRepeating(parents[0].Type, name) {
			return nil, "", "", fmt.Errorf("the path does not name a list")
		}
		_, elType, err := keyFor(env.Model, parents[0].Type, name, "")
		if err != nil {
			return nil, "", "", err
		}
		return obj, name, elType, nil
	}
	first := locs[0]
	for _, l := range locs {
		if l.Index < 0 || l.Parent == nil || !sameMap(l.Parent, first.Parent) || l.Key != first.Key {
			return nil, "", "", fmt.Errorf("the path does not name one list")
		}
	}
	if list, _ := first.Parent[first.Key].([]any); len(list) != len(locs) {
		return nil, "", "", fmt.Errorf("the path names some items of a list, not the list")
	}
	return first.Parent, first.Key, first.Node.Type, nil
}

// sameMap reports whether a and b are the same map (not equal ones).
func sameMap(a, b map[string]any) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// removeAt removes the item at l, with its primitive extensions (_key).
func removeAt(l fhirpath.Location) {
	if l.Index < 0 {
		delete(l.Parent, l.Key)
		delete(l.Parent, "_"+l.Key)
		return
	}
	list := l.Parent[l.Key].([]any)
	list = append(list[:l.Index], list[l.Index+1:]...)
	if len(list) == 0 {
		delete(l.Parent, l.Key)
	} else {
		l.Parent[l.Key] = list
	}
	if ext, ok := l.Parent["_"+l.Key].([]any); ok && l.Index < len(ext) {
		ext = append(ext[:l.Index], ext[l.Index+1:]...)
		if len(ext) == 0 {
			delete(l.Parent, "_"+l.Key)
		} else {
			l.Parent["_"+l.Key] = ext
		}
	}
}

// keyFor returns the JSON member of element name of typ for a value of type
// valueType (the X of value[x]), and the element's type.
func keyFor(m fhirpath.Model, typ, name, valueType string) (key, elType string, err error) {
	el, ok := m.Element(typ, name)
	if !ok {
		if typ == "" {
			return name, "", nil
		}
		// A choice element named with its type (deceasedBoolean).
		for i := 1; i < len(name); i++ {
			if name[i] < 'A' || name[i] > 'Z' {
				continue
			}
			if el, ok := m.Element(typ, name[:i]); ok {
				for j, k := range el.Keys {
					if k == name && (valueType == "" || valueType == name[i:]) {
						return k, el.Types[j], nil
					}
				}
			}
		}
		return "", "", fmt.Errorf("%s has no element %q", typ, name)
	}
	if len(el.Keys) == 1 && el.Keys[0] == name {
		return name, el.Types[0], nil
	}
	if valueType == "" {
		return "", "", fmt.Errorf("%s.%s is a choice of types: give the value as value[x]", typ, name)
	}
	for i, k := range el.Keys {
		if k == name+valueType {
			return k, el.Types[i], nil
		}
	}
	return "", "", fmt.Errorf("%s.%s cannot be a %s", typ, name, valueType)
}

// newValue is the operation's value: value[x] as given, or an object built
// from parts (elType, when known, says which of its elements repeat).
func (op *fpOp) newValue(m fhirpath.Model, elType string) (any, error) {
	if op.parts == nil {
		return deepCopy(op.value), nil
	}
	return fromParts(m, elType, op.parts)
}

// fromParts builds an element from parameter parts: each part is one of
// its elements, with a value[x] or parts of its own.
func fromParts(m fhirpath.Model, typ string, parts []any) (map[string]any, error) {
	obj := map[string]any{}
	for _, raw := range parts {
		part, _ := raw.(map[string]any)
		name, _ := part["name"].(string)
		if name == "" {
			return nil, fmt.Errorf("a part of the value has no name")
		}
		key, val, ok := valueOf(part)
		childType := ""
		var v any
		if ok {
			k, t, err := keyFor(m, typ, name, strings.TrimPrefix(key, "value"))
			if err != nil {
				return nil, err
			}
			key, childType, v = k, t, deepCopy(val)
		} else {
			sub, _ := part["part"].([]any)
			if len(sub) == 0 {
				return nil, fmt.Errorf("part %q of the value has neither a value[x] nor parts", name)
			}
			k, t, err := keyFor(m, typ, name, "")
			if err != nil {
				return nil, err
			}
			key, childType = k, t
			if v, err = fromParts(m, childType, sub); err != nil {
				return nil, err
			}
		}
		existing, dup := obj[key]
		switch {
		case isRepeating(typ, name):
			list, _ := existing.([]any)
			obj[key] = append(list, v)
		case dup:
			return nil, fmt.Errorf("part %q of the value is given twice, but %s.%s does not repeat", name, typ, name)
		default:
			obj[key] = v
		}
	}
	return obj, nil
}
