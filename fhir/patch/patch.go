// Package patch applies the two patch formats of FHIR R4 to a resource:
// JSON Patch (RFC 6902, application/json-patch+json) and FHIRPath Patch (a
// Parameters resource, http://hl7.org/fhir/R4/fhirpatch.html). It imports
// only the standard library and package fhir.
//
// The resource is decoded with fhirpath.Decode: numbers stay json.Number,
// so a decimal such as 176.35499866729558 keeps its exact text through a
// patch. The result is compact JSON with the members of each object in
// sorted order (the store puts resourceType, id and meta first again).
//
// Errors are *fhir.Error: KindInvalid for a patch document that is
// malformed, KindUnprocessable for a well-formed patch that does not apply
// to the resource (a path that names nothing, a failed test). Whether the
// result is a valid resource, and whether it kept its type and id, is for
// the caller to check.
package patch

import (
	"bytes"
	"encoding/json"
	"math/big"
	"strings"
	"sync"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/fhirpath"
)

// MediaTypeJSONPatch is the media type of a JSON Patch document.
const MediaTypeJSONPatch = "application/json-patch+json"

// Patch is a parsed patch document.
type Patch interface {
	// Apply returns body (a resource) with the patch applied.
	Apply(body []byte) ([]byte, error)
}

func invalid(format string, args ...any) error { return fhir.Errorf(fhir.KindInvalid, format, args...) }

func unprocessable(format string, args ...any) error {
	return fhir.Errorf(fhir.KindUnprocessable, format, args...)
}

// decode decodes a resource into maps, slices and json.Number.
func decode(body []byte) (map[string]any, error) {
	n, err := fhirpath.Decode(body)
	if err != nil {
		return nil, invalid("the resource is not valid JSON: %v", err)
	}
	return n.Value.(map[string]any), nil
}

// encode writes v as compact JSON without HTML escaping.
func encode(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, unprocessable("the patched resource cannot be written as JSON: %v", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// decodeValue decodes a JSON value of a patch document, numbers as
// json.Number.
func decodeValue(raw []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// deepCopy copies a decoded JSON value, so that a value taken from a patch
// document or moved within the resource is never shared.
func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, x := range v {
			m[k] = deepCopy(x)
		}
		return m
	case []any:
		s := make([]any, len(v))
		for i, x := range v {
			s[i] = deepCopy(x)
		}
		return s
	}
	return v
}

// equal compares decoded JSON values as RFC 6902 test does: numbers by
// value (1.0 equals 1), objects regardless of member order.
func equal(a, b any) bool {
	switch a := a.(type) {
	case map[string]any:
		bm, ok := b.(map[string]any)
		if !ok || len(a) != len(bm) {
			return false
		}
		for k, v := range a {
			w, ok := bm[k]
			if !ok || !equal(v, w) {
				return false
			}
		}
		return true
	case []any:
		bs, ok := b.([]any)
		if !ok || len(a) != len(bs) {
			return false
		}
		for i := range a {
			if !equal(a[i], bs[i]) {
				return false
			}
		}
		return true
	case json.Number:
		bn, ok := b.(json.Number)
		if !ok {
			return false
		}
		x, okx := new(big.Rat).SetString(string(a))
		y, oky := new(big.Rat).SetString(string(bn))
		if !okx || !oky {
			return a == bn
		}
		return x.Cmp(y) == 0
	}
	return a == b
}

// repeating is the generated table of repeating elements.
var repeating = sync.OnceValue(func() map[string]bool {
	lines := strings.Split(strings.TrimSuffix(repeatingPaths, "\n"), "\n")
	m := make(map[string]bool, len(lines))
	for _, l := range lines {
		m[l] = true
	}
	return m
})

// isRepeating reports whether element name of type typ (a type name or a
// backbone element's path, as fhir.TypeModel names them) repeats.
func isRepeating(typ, name string) bool {
	switch name {
	case "extension", "modifierExtension", "contained":
		return true
	}
	return repeating()[typ+"."+name]
}
