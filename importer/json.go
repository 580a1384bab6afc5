package importer

import (
	"bytes"
	"encoding/json"

	"github.com/fhirserver/fhirserver/fhir"
)

// The functions here work on the bytes of compact JSON (json.Compact
// output: valid, no white space outside strings), so that nothing is decoded
// into Go values: decimals and the order of members stay exactly as written.
// In compact JSON a string is a member name exactly when ':' follows it.

// stringEnd returns the index of the closing quote of the string whose
// opening quote is at b[i].
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j
		}
	}
	return len(b)
}

// compactValid appends src, which must be valid JSON, to dst without the
// white space outside strings: what json.Compact does, without checking the
// syntax again (the bundle decoder has done that).
func compactValid(dst, src []byte) []byte {
	start := 0
	for i := 0; i < len(src); {
		switch src[i] {
		case '"':
			i = stringEnd(src, i) + 1
		case ' ', '\t', '\n', '\r':
			dst = append(dst, src[start:i]...)
			for i < len(src) && (src[i] == ' ' || src[i] == '\t' || src[i] == '\n' || src[i] == '\r') {
				i++
			}
			start = i
		default:
			i++
		}
	}
	return append(dst, src[start:]...)
}

// unquote decodes the JSON string b[i:j+1] (quotes included).
func unquote(b []byte, i, j int) string {
	s := b[i+1 : j]
	if bytes.IndexByte(s, '\\') < 0 {
		return string(s)
	}
	var v string
	if err := json.Unmarshal(b[i:j+1], &v); err != nil {
		return string(s)
	}
	return v
}

// envelope reads the top-level resourceType and id of a compact resource.
func envelope(b []byte) (typ, id string, err error) {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		case '"':
			j := stringEnd(b, i)
			if depth == 1 && j+2 < len(b) && b[j+1] == ':' {
				name := b[i+1 : j]
				isType, isID := string(name) == "resourceType", string(name) == "id"
				if isType || isID {
					if b[j+2] != '"' {
						return "", "", fhir.Errorf(fhir.KindInvalid, "%s must be a string", name)
					}
					k := stringEnd(b, j+2)
					if isType {
						typ = unquote(b, j+2, k)
					} else {
						id = unquote(b, j+2, k)
					}
					j = k
				}
			}
			i = j
		}
	}
	return typ, id, nil
}

// rewriteReferences replaces the value of every "reference" member, at any
// depth (contained resources, extensions, ...), that is a key of refs by the
// mapped value (fhir.RewriteReferences, after a quick look for "urn:"). It
// returns b itself when nothing changes.
func rewriteReferences(b []byte, refs map[string]string) []byte {
	if !bytes.Contains(b, []byte(`"urn:`)) {
		return b
	}
	return fhir.RewriteReferences(b, refs)
}
