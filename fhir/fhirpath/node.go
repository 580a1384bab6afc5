package fhirpath

import "encoding/json"

// Node is one item of a FHIRPath collection: a JSON value of a resource plus
// its FHIR type where the evaluator knows it.
type Node struct {
	// Type is the FHIR type name: a primitive ("string", "dateTime", "code"),
	// a complex type ("CodeableConcept", "Quantity", "Age", "Period"), a
	// resource type ("Patient"), or a backbone element named by its path
	// ("Observation.component"). For a choice element it is the type chosen
	// in the JSON (valueQuantity gives "Quantity"). It is "" when the type is
	// unknown, for example without a Model.
	Type string
	// Value is the JSON value as decoded by encoding/json with UseNumber:
	// map[string]any for complex types and resources, string, bool or
	// json.Number for primitives. It is nil for a resource that resolve()
	// only knows by type (a reference to another resource).
	Value any
}

// IsPrimitive reports whether the node holds a primitive value.
func (n Node) IsPrimitive() bool {
	switch n.Value.(type) {
	case string, bool, json.Number:
		return true
	}
	return false
}

// Object returns the node's JSON object, if it is one.
func (n Node) Object() (map[string]any, bool) {
	m, ok := n.Value.(map[string]any)
	return m, ok
}

// Model describes FHIR types to the evaluator: the elements of each type and
// the type hierarchy. With a model, choice elements, backbone elements and
// type tests (is, as, ofType) are exact; without one the evaluator falls back
// to the JSON conventions (valueQuantity is value of type Quantity).
type Model interface {
	// Element describes element name of type typeName, including elements
	// inherited from base types.
	Element(typeName, name string) (Element, bool)
	// BaseType returns the type typeName derives from ("Age" -> "Quantity",
	// "Patient" -> "DomainResource"), or "" for a root type or unknown name.
	BaseType(typeName string) string
}

// Element is one element of a type.
type Element struct {
	// Types are the element's possible types: one for an ordinary element,
	// several for a choice element (value[x]).
	Types []string
	// Keys are the JSON property names, parallel to Types: the element name
	// for an ordinary element, name plus the capitalised type for a choice
	// ("valueQuantity").
	Keys []string
}

// Env is the environment of an evaluation.
type Env struct {
	// Model describes FHIR types; nil means no type information.
	Model Model
	// Resource is %resource and %rootResource. resolve() finds contained
	// resources ("#id" references) in it.
	Resource Node
}

// ResourceNode returns the node for a decoded resource, typed by its
// resourceType.
func ResourceNode(v any) Node {
	n := Node{Value: v}
	if m, ok := v.(map[string]any); ok {
		n.Type, _ = m["resourceType"].(string)
	}
	return n
}
