package fhir

import (
	"bytes"
	"encoding/json"
)

// The functions here rewrite string values in the bytes of compact JSON
// (json.Compact output: valid, no white space outside strings), so that
// nothing is decoded into Go values: decimals and the order of members stay
// exactly as written. In compact JSON a string is a member name exactly when
// ':' follows it, and it is the value of a member exactly when ':' precedes
// it. The importer and the Bundle interactions of the server share them to
// turn urn:uuid references into Type/id.

// RewriteStrings returns b with string values replaced: fn is called for
// every string value (not member names) with the name of the member it is
// the value of (nil for an item of an array) and the decoded value, and
// when it returns ok the value is replaced by repl. Both slices are only
// valid during the call. RewriteStrings returns b itself when nothing
// changes. b must be compact JSON.
func RewriteStrings(b []byte, fn func(member, value []byte) (repl string, ok bool)) []byte {
	var out []byte
	last := 0
	var member []byte // the member name just read, while its value follows
	for i := 0; i < len(b); i++ {
		if b[i] != '"' {
			continue
		}
		end := skipString(b, i) // index after the closing quote
		if end < len(b) && b[end] == ':' {
			member = b[i+1 : end-1]
			i = end // the ':'
			continue
		}
		var name []byte
		if i > 0 && b[i-1] == ':' {
			name = member
		}
		raw := b[i+1 : end-1]
		value := raw
		if bytes.IndexByte(raw, '\\') >= 0 {
			var s string
			if err := json.Unmarshal(b[i:end], &s); err == nil {
				value = []byte(s)
			}
		}
		if repl, ok := fn(name, value); ok {
			if out == nil {
				out = make([]byte, 0, len(b)+64)
			}
			out = append(out, b[last:i]...)
			out = appendStringNoHTML(out, repl)
			last = end
		}
		i = end - 1
	}
	if out == nil {
		return b
	}
	return append(out, b[last:]...)
}

// RewriteReferences replaces the value of every "reference" member, at any
// depth (contained resources, extensions, ...), that is a key of refs by
// the mapped value. It returns b itself when nothing changes. b must be
// compact JSON.
func RewriteReferences(b []byte, refs map[string]string) []byte {
	return RewriteStrings(b, func(member, value []byte) (string, bool) {
		if string(member) != "reference" {
			return "", false
		}
		to, ok := refs[string(value)] // no allocation for the lookup
		return to, ok
	})
}

// appendStringNoHTML appends s as a JSON string without the HTML escaping
// of encoding/json, so that a rewritten narrative keeps its '<' and '>'.
func appendStringNoHTML(buf []byte, s string) []byte {
	plain := true
	for i := 0; i < len(s) && plain; i++ {
		c := s[i]
		plain = c >= 0x20 && c != '"' && c != '\\' && c < 0x80
	}
	if plain {
		buf = append(buf, '"')
		buf = append(buf, s...)
		return append(buf, '"')
	}
	var w bytes.Buffer
	enc := json.NewEncoder(&w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return append(buf, bytes.TrimSuffix(w.Bytes(), []byte("\n"))...)
}
