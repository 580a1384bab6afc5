package server

// The search_elements_gen.go table is generated from the R4 resource
// StructureDefinitions in ../shared/fhir-r4. Regenerate with
// `go generate ./server`.
//go:generate go run ./internal/gen -spec ../../shared/fhir-r4 -out search_elements_gen.go

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/search"
)

// elementFlags say what an element of the generated table is.
type elementFlags uint8

const (
	// elChoice marks a choice element (value[x]): its JSON keys are the
	// name followed by a type name (valueQuantity).
	elChoice elementFlags = 1 << iota
	// elSummary marks an element that _summary=true keeps (isSummary).
	elSummary
	// elMandatory marks a top-level element with min > 0, which _elements
	// and _summary=text keep whether asked for or not.
	elMandatory
)

// elementDef is one entry of the generated table.
type elementDef struct {
	name     string // without [x]
	flags    elementFlags
	backbone string // for a backbone element a summary keeps: the table key of its elements
}

// matches reports whether the JSON key k (without a leading '_', which
// holds a primitive's id and extensions) belongs to the element.
func (e *elementDef) matches(k string) bool {
	if e.flags&elChoice == 0 {
		return k == e.name
	}
	return len(k) > len(e.name) && k[:len(e.name)] == e.name && k[len(e.name)] >= 'A' && k[len(e.name)] <= 'Z'
}

// elementIndex is the generated table, built once per Handler: it is read
// only afterwards.
type elementIndex map[string][]elementDef

// lookup returns the element of key k in the elements els, or nil.
func lookup(els []elementDef, k string) *elementDef {
	if len(k) > 1 && k[0] == '_' {
		k = k[1:]
	}
	for i := range els {
		if els[i].matches(k) {
			return &els[i]
		}
	}
	return nil
}

// subsettedTag is the meta.tag that marks a resource from which _summary
// or _elements removed content, as the specification requires.
const (
	subsettedSystem = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
	subsettedTag    = `{"system":"` + subsettedSystem + `","code":"SUBSETTED","display":"Resource encoded in summary mode"}`
)

// subsetter decides which members of a resource a search returns, from
// _summary and _elements.
type subsetter struct {
	summary  search.Summary
	elements map[string]bool // nil: no _elements
}

func newSubsetter(q *search.Query) subsetter {
	s := subsetter{summary: q.Summary}
	if s.summary == search.SummaryFalse {
		s.summary = search.SummaryNone
	}
	if len(q.Elements) > 0 {
		s.elements = make(map[string]bool, len(q.Elements))
		for _, e := range q.Elements {
			s.elements[e] = true
		}
	}
	return s
}

// active reports whether the resources need transforming at all.
func (s subsetter) active(match bool) bool {
	switch s.summary {
	case search.SummaryTrue, search.SummaryText, search.SummaryData:
		return true
	}
	return match && s.elements != nil
}

// member is one member of a JSON object, its value kept raw.
type member struct {
	key string
	val json.RawMessage
}

// members splits a JSON object into its members, in order.
func members(b []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	var out []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		k, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		out = append(out, member{k, v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	return out, nil
}

// object writes members as a compact JSON object.
func object(ms []member) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range ms {
		if i > 0 {
			b.WriteByte(',')
		}
		writeJSONString(&b, m.key)
		b.WriteByte(':')
		b.Write(m.val)
	}
	b.WriteByte('}')
	return b.Bytes()
}

func subsetError(err error) error {
	return fhir.Internal("subsetting a stored resource for _summary or _elements", err)
}

// apply returns body reduced as _summary and (for matches) _elements ask,
// with the SUBSETTED tag when anything was removed. It decodes the
// resource: the one place in the server that does.
func (ix elementIndex) apply(s subsetter, body []byte, match bool) ([]byte, error) {
	if !s.active(match) {
		return body, nil
	}
	ms, err := members(body)
	if err != nil {
		return nil, subsetError(err)
	}
	var typ string
	for _, m := range ms {
		if m.key == "resourceType" {
			_ = json.Unmarshal(m.val, &typ)
		}
	}
	els := ix[typ]
	keep := func(string) bool { return true }
	switch s.summary {
	case search.SummaryTrue:
		keep = func(k string) bool {
			e := lookup(els, k)
			return e != nil && e.flags&elSummary != 0
		}
	case search.SummaryText:
		keep = func(k string) bool {
			if k == "text" {
				return true
			}
			e := lookup(els, k)
			return e != nil && e.flags&elMandatory != 0
		}
	case search.SummaryData:
		keep = func(k string) bool { return k != "text" }
	}
	if match && s.elements != nil {
		summaryKeep := keep
		keep = func(k string) bool {
			if !summaryKeep(k) {
				return false
			}
			e := lookup(els, k)
			if e == nil {
				return s.elements[strings.TrimPrefix(k, "_")]
			}
			// _elements may name a choice element (value) or one of its
			// typed forms (valueQuantity).
			return s.elements[e.name] || s.elements[strings.TrimPrefix(k, "_")] || e.flags&elMandatory != 0
		}
	}
	out := make([]member, 0, len(ms)+1)
	removed := false
	for _, m := range ms {
		// resourceType, id and meta always stay: they say what the
		// resource is, and meta carries the SUBSETTED tag.
		always := m.key == "resourceType" || m.key == "id" || m.key == "meta"
		if !always && !keep(m.key) {
			removed = true
			continue
		}
		if s.summary == search.SummaryTrue && !strings.HasPrefix(m.key, "_") {
			if e := lookup(els, m.key); e != nil && e.backbone != "" {
				v, cut, err := ix.summarise(e.backbone, m.val)
				if err != nil {
					return nil, err
				}
				m.val, removed = v, removed || cut
			}
		}
		out = append(out, m)
	}
	if !removed {
		return body, nil
	}
	return tagSubsetted(out)
}

// summarise keeps the summary elements of a backbone element (an object or
// an array of objects) at path, and reports whether it removed anything.
func (ix elementIndex) summarise(path string, v json.RawMessage) (json.RawMessage, bool, error) {
	v = bytes.TrimSpace(v)
	if len(v) > 0 && v[0] == '[' {
		var items []json.RawMessage
		if err := json.Unmarshal(v, &items); err != nil {
			return nil, false, subsetError(err)
		}
		removed := false
		for i, it := range items {
			nv, cut, err := ix.summarise(path, it)
			if err != nil {
				return nil, false, err
			}
			items[i], removed = nv, removed || cut
		}
		if !removed {
			return v, false, nil
		}
		var b bytes.Buffer
		b.WriteByte('[')
		for i, it := range items {
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(it)
		}
		b.WriteByte(']')
		return b.Bytes(), true, nil
	}
	if len(v) == 0 || v[0] != '{' {
		return v, false, nil
	}
	ms, err := members(v)
	if err != nil {
		return nil, false, subsetError(err)
	}
	els := ix[path]
	out := ms[:0:0]
	removed := false
	for _, m := range ms {
		e := lookup(els, m.key)
		if e == nil {
			removed = true
			continue
		}
		if e.backbone != "" && !strings.HasPrefix(m.key, "_") {
			nv, cut, err := ix.summarise(e.backbone, m.val)
			if err != nil {
				return nil, false, err
			}
			m.val, removed = nv, removed || cut
		}
		out = append(out, m)
	}
	if !removed {
		return v, false, nil
	}
	return object(out), true, nil
}

// tagSubsetted adds the SUBSETTED tag to meta (once), puts resourceType,
// id and meta first, and writes the resource.
func tagSubsetted(ms []member) ([]byte, error) {
	var meta []member
	at := -1
	for i, m := range ms {
		if m.key == "meta" {
			var err error
			if meta, err = members(m.val); err != nil {
				return nil, subsetError(err)
			}
			at = i
		}
	}
	var tags []json.RawMessage
	tagAt := -1
	for i, m := range meta {
		if m.key == "tag" {
			if err := json.Unmarshal(m.val, &tags); err != nil {
				return nil, subsetError(err)
			}
			tagAt = i
		}
	}
	tagged := false
	for _, t := range tags {
		var c struct{ System, Code string }
		if json.Unmarshal(t, &c) == nil && c.System == subsettedSystem && c.Code == "SUBSETTED" {
			tagged = true
		}
	}
	if !tagged {
		tags = append(tags, json.RawMessage(subsettedTag))
		var b bytes.Buffer
		b.WriteByte('[')
		for i, t := range tags {
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(t)
		}
		b.WriteByte(']')
		if tagAt >= 0 {
			meta[tagAt].val = b.Bytes()
		} else {
			meta = append(meta, member{"tag", b.Bytes()})
		}
	}
	mv := member{"meta", object(meta)}
	if at >= 0 {
		ms[at] = mv
	} else {
		ms = append(ms, mv)
	}
	// resourceType, id and meta first, the rest in their order.
	out := make([]member, 0, len(ms))
	for _, k := range []string{"resourceType", "id", "meta"} {
		for _, m := range ms {
			if m.key == k {
				out = append(out, m)
			}
		}
	}
	for _, m := range ms {
		switch m.key {
		case "resourceType", "id", "meta":
		default:
			out = append(out, m)
		}
	}
	return object(out), nil
}
