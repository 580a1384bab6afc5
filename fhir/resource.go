package fhir

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Resource is one stored version of a resource. Body is the JSON exactly as
// it is served; for a deleted version it is empty.
type Resource struct {
	Type        string
	ID          string
	Version     int64
	LastUpdated time.Time
	Deleted     bool
	Body        []byte
}

// ETag is the weak entity tag FHIR uses for a version.
func (r *Resource) ETag() string { return `W/"` + strconv.FormatInt(r.Version, 10) + `"` }

// InstantFormat is how meta.lastUpdated is written: always UTC, microseconds,
// so that stored text and database timestamps agree exactly.
const InstantFormat = "2006-01-02T15:04:05.000000Z07:00"

// FormatInstant renders t as a FHIR instant in UTC.
func FormatInstant(t time.Time) string { return t.UTC().Format(InstantFormat) }

// Object is a JSON object whose members keep their order, so that a resource
// can be re-stamped without decoding and re-encoding its content.
type Object struct {
	keys []string
	vals []json.RawMessage
}

// ParseObject splits a JSON object into its members. Values stay raw
// (compacted) bytes. It runs on every write, so it scans bytes instead of
// decoding: one json.Compact pass validates, then a scanner finds the
// member boundaries of the valid, compact text.
func ParseObject(b []byte) (*Object, error) {
	var buf bytes.Buffer
	buf.Grow(len(b))
	if err := json.Compact(&buf, b); err != nil {
		return nil, Errorf(KindInvalid, "body is not valid JSON: %v", err)
	}
	c := buf.Bytes()
	if len(c) < 2 || c[0] != '{' {
		return nil, Errorf(KindInvalid, "body must be a JSON object")
	}
	o := &Object{}
	i := 1
	for c[i] != '}' {
		end := skipString(c, i)
		key, err := unquoteKey(c[i:end])
		if err != nil {
			return nil, err
		}
		for _, k := range o.keys {
			if k == key {
				return nil, Errorf(KindInvalid, "duplicate JSON property %q", key)
			}
		}
		i = end + 1 // the ':'
		vend := skipValue(c, i)
		o.keys = append(o.keys, key)
		o.vals = append(o.vals, json.RawMessage(c[i:vend]))
		i = vend
		if c[i] == ',' {
			i++
		}
	}
	return o, nil
}

// skipString returns the index after the string that starts at c[i] == '"'.
func skipString(c []byte, i int) int {
	for j := i + 1; j < len(c); j++ {
		switch c[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(c)
}

// skipValue returns the index after the value that starts at c[i], in
// valid compact JSON.
func skipValue(c []byte, i int) int {
	switch c[i] {
	case '"':
		return skipString(c, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(c); j++ {
			switch c[j] {
			case '"':
				j = skipString(c, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(c)
	default: // number, true, false, null
		j := i
		for j < len(c) && c[j] != ',' && c[j] != '}' && c[j] != ']' {
			j++
		}
		return j
	}
}

func unquoteKey(q []byte) (string, error) {
	if bytes.IndexByte(q, '\\') < 0 {
		return string(q[1 : len(q)-1]), nil
	}
	var s string
	if err := json.Unmarshal(q, &s); err != nil {
		return "", Errorf(KindInvalid, "body is not valid JSON: %v", err)
	}
	return s, nil
}

// Get returns the raw value of member k.
func (o *Object) Get(k string) (json.RawMessage, bool) {
	for i, key := range o.keys {
		if key == k {
			return o.vals[i], true
		}
	}
	return nil, false
}

// String returns member k when it is a JSON string.
func (o *Object) String(k string) (string, bool) {
	raw, ok := o.Get(k)
	if !ok {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// Set replaces member k or appends it.
func (o *Object) Set(k string, v json.RawMessage) {
	for i, key := range o.keys {
		if key == k {
			o.vals[i] = v
			return
		}
	}
	o.keys = append(o.keys, k)
	o.vals = append(o.vals, v)
}

// Delete removes member k if present.
func (o *Object) Delete(k string) {
	for i, key := range o.keys {
		if key == k {
			o.keys = append(o.keys[:i], o.keys[i+1:]...)
			o.vals = append(o.vals[:i], o.vals[i+1:]...)
			return
		}
	}
}

// MoveFirst puts the named members first, in the given order.
func (o *Object) MoveFirst(names ...string) {
	keys := make([]string, 0, len(o.keys))
	vals := make([]json.RawMessage, 0, len(o.vals))
	for _, n := range names {
		if v, ok := o.Get(n); ok {
			keys = append(keys, n)
			vals = append(vals, v)
		}
	}
	for i, k := range o.keys {
		first := false
		for _, n := range names {
			first = first || n == k
		}
		if !first {
			keys = append(keys, k)
			vals = append(vals, o.vals[i])
		}
	}
	o.keys, o.vals = keys, vals
}

// Bytes encodes the object compactly.
func (o *Object) Bytes() []byte {
	n := 2
	for i, k := range o.keys {
		n += len(k) + len(o.vals[i]) + 4
	}
	buf := make([]byte, 0, n)
	buf = append(buf, '{')
	for i, k := range o.keys {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendJSONString(buf, k)
		buf = append(buf, ':')
		buf = append(buf, o.vals[i]...) // compact already: ParseObject compacted it
	}
	return append(buf, '}')
}

// appendJSONString appends s as a JSON string; FHIR names, ids and
// instants need no escaping, so that is the fast path.
func appendJSONString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			q, _ := json.Marshal(s)
			return append(buf, q...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}

func jsonString(s string) json.RawMessage { return appendJSONString(nil, s) }

// Envelope reads resourceType and id from a resource body.
func Envelope(body []byte) (resourceType, id string, err error) {
	o, err := ParseObject(body)
	if err != nil {
		return "", "", err
	}
	resourceType, _ = o.String("resourceType")
	if resourceType == "" {
		return "", "", Errorf(KindInvalid, "resource has no resourceType")
	}
	id, _ = o.String("id")
	return resourceType, id, nil
}

// Stamp returns body with id, meta.versionId and meta.lastUpdated set.
func Stamp(body []byte, id string, version int64, lastUpdated time.Time) ([]byte, error) {
	p, err := Prepare(body)
	if err != nil {
		return nil, err
	}
	return p.Stamp(id, version, lastUpdated), nil
}

// ValidID reports whether s is a legal FHIR id: 1-64 of [A-Za-z0-9-.].
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// ParseVersion parses a version id as used in URLs and ETags.
func ParseVersion(s string) (int64, error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 1 {
		return 0, Errorf(KindInvalid, "%q is not a valid version id", s)
	}
	return v, nil
}

// ParseETag reads a version out of W/"n" (or "n").
func ParseETag(s string) (int64, error) {
	t := s
	if len(t) > 2 && (t[:2] == "W/" || t[:2] == "w/") {
		t = t[2:]
	}
	if len(t) >= 2 && t[0] == '"' && t[len(t)-1] == '"' {
		t = t[1 : len(t)-1]
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v < 1 {
		return 0, Errorf(KindInvalid, "%s is not a valid ETag; expected W/\"<version>\"", fmt.Sprintf("%q", s))
	}
	return v, nil
}

// Prepared is a resource body parsed once for stamping and hashing.
type Prepared struct {
	obj  *Object
	meta *Object
	// Hash identifies the content regardless of id, versionId and
	// lastUpdated, so that an update that changes nothing can be detected.
	Hash []byte
}

// Prepare parses body and computes its content hash.
func Prepare(body []byte) (*Prepared, error) {
	o, err := ParseObject(body)
	if err != nil {
		return nil, err
	}
	meta := &Object{}
	if raw, ok := o.Get("meta"); ok {
		if meta, err = ParseObject(raw); err != nil {
			return nil, Errorf(KindInvalid, "meta must be an object")
		}
	}
	meta.Delete("versionId")
	meta.Delete("lastUpdated")
	o.Delete("id")
	if len(meta.keys) > 0 {
		o.Set("meta", meta.Bytes())
	} else {
		o.Delete("meta")
	}
	// Stamp puts these first; doing it before hashing makes a stored body
	// hash like the request it came from.
	o.MoveFirst("resourceType", "meta")
	sum := sha256.Sum256(o.Bytes())
	return &Prepared{obj: o, meta: meta, Hash: sum[:]}, nil
}

// Stamp renders the body with id, meta.versionId and meta.lastUpdated set,
// resourceType, id and meta first and everything else in its original order.
func (p *Prepared) Stamp(id string, version int64, lastUpdated time.Time) []byte {
	meta := &Object{keys: append([]string(nil), p.meta.keys...), vals: append([]json.RawMessage(nil), p.meta.vals...)}
	meta.Set("versionId", jsonString(strconv.FormatInt(version, 10)))
	meta.Set("lastUpdated", jsonString(FormatInstant(lastUpdated)))
	meta.MoveFirst("versionId", "lastUpdated")
	o := &Object{keys: append([]string(nil), p.obj.keys...), vals: append([]json.RawMessage(nil), p.obj.vals...)}
	o.Set("id", jsonString(id))
	o.Set("meta", meta.Bytes())
	o.MoveFirst("resourceType", "id", "meta")
	return o.Bytes()
}

// Keys returns the member names in order.
func (o *Object) Keys() []string { return append([]string(nil), o.keys...) }
