package validate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// scanner is the structural pre-pass, one walk over the bytes. It checks the
// JSON syntax (as strictly as encoding/json, which a fuzz test confirms) and
// records what FHIR JSON forbids but the library accepts: duplicate
// properties (the library keeps the last), empty strings, objects and
// arrays, nulls, property names starting with an upper-case letter (the
// library lower-cases the first letter), and nesting deeper than maxDepth.
// It also reads the top-level resourceType.
type scanner struct {
	buf []byte
	pos int
	// path holds one segment per open object member or array element.
	path []segment

	issues []issue // paths are relative to the resource until scan returns
	fatal  *issue  // nesting too deep: scanning stopped

	syntax        bool // not JSON: scanning stopped
	notObject     bool
	hasType       bool
	typeNotString bool
	resourceType  string
}

type segment struct {
	name  []byte // member name, or nil for an array element
	index int
}

// issue is one problem found in a body: a message shown to clients and the
// FHIRPath-like location it is about.
type issue struct {
	expr string
	msg  string
	// at is, while scanning, the relative path that replaces pathMark in
	// msg when it differs from expr.
	at *string
}

// pathMark stands for the (absolute) path in a message until the root type
// is known.
const pathMark = "\x00PATH\x00"

func (s *scanner) scan() {
	s.path = make([]segment, 0, 16)
	s.skipSpace()
	if s.pos >= len(s.buf) {
		s.syntax = true
		return
	}
	if s.buf[s.pos] != '{' {
		// Tell "not JSON" from "JSON, but not an object".
		s.value(1)
		s.skipSpace()
		s.syntax = s.syntax || s.pos != len(s.buf)
		s.notObject = true
		return
	}
	s.object(1, true)
	if !s.stopped() {
		s.skipSpace()
		s.syntax = s.pos != len(s.buf)
	}
	s.absolute()
}

// absolute makes the issues' paths absolute now that the root is known.
func (s *scanner) absolute() {
	root := ""
	if s.hasType && !s.typeNotString {
		root = s.resourceType
	}
	abs := func(rel string) string {
		if root == "" {
			return strings.TrimPrefix(rel, ".")
		}
		return root + rel
	}
	fix := func(is *issue) {
		where := abs(is.expr)
		if is.at != nil {
			where = abs(*is.at)
			is.at = nil
		}
		if where == "" {
			where = "the top level"
		}
		is.expr = abs(is.expr)
		is.msg = strings.ReplaceAll(is.msg, pathMark, where)
	}
	if s.fatal != nil {
		fix(s.fatal)
	}
	for i := range s.issues {
		fix(&s.issues[i])
	}
}

func (s *scanner) rel() string {
	var b strings.Builder
	for _, seg := range s.path {
		if seg.name != nil {
			b.WriteByte('.')
			b.Write(seg.name)
		} else {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(seg.index))
			b.WriteByte(']')
		}
	}
	return b.String()
}

// add records a problem at the current path; msg contains pathMark where the
// path belongs.
func (s *scanner) add(msg string) {
	if len(s.issues) >= maxIssues {
		return
	}
	s.issues = append(s.issues, issue{expr: s.rel(), msg: msg})
}

// addMember records a problem with member name of the current object: the
// message names the object, the expression the member.
func (s *scanner) addMember(name, msg string) {
	if len(s.issues) >= maxIssues {
		return
	}
	at := s.rel()
	s.issues = append(s.issues, issue{expr: at + "." + name, msg: msg, at: &at})
}

func (s *scanner) skipSpace() {
	for s.pos < len(s.buf) {
		switch s.buf[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// stopped reports whether scanning must end.
func (s *scanner) stopped() bool { return s.syntax || s.fatal != nil }

// value reads any JSON value starting at s.pos.
func (s *scanner) value(depth int) {
	if s.pos >= len(s.buf) {
		s.syntax = true
		return
	}
	switch c := s.buf[s.pos]; {
	case c == '{':
		if s.deep(depth) {
			return
		}
		s.object(depth, false)
	case c == '[':
		if s.deep(depth) {
			return
		}
		s.array(depth)
	case c == '"':
		start, end, _ := s.str()
		if !s.syntax && end == start {
			s.add("empty string at " + pathMark + "; FHIR does not allow empty values")
		}
	case c == 'n':
		if s.literal("null") {
			s.add("null value at " + pathMark + "; leave the element out instead")
		}
	case c == 't':
		s.literal("true")
	case c == 'f':
		s.literal("false")
	case c == '-' || c >= '0' && c <= '9':
		s.number()
	default:
		s.syntax = true
	}
}

func (s *scanner) deep(depth int) bool {
	if depth <= maxDepth {
		return false
	}
	s.fatal = &issue{expr: s.rel(), msg: fmt.Sprintf("JSON nested more than %d levels deep at %s", maxDepth, pathMark)}
	return true
}

func (s *scanner) literal(lit string) bool {
	if !bytes.HasPrefix(s.buf[s.pos:], []byte(lit)) {
		s.syntax = true
		return false
	}
	s.pos += len(lit)
	return true
}

// number reads -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() {
	b, p := s.buf, s.pos
	if p < len(b) && b[p] == '-' {
		p++
	}
	digits := func() int {
		n := 0
		for p < len(b) && b[p] >= '0' && b[p] <= '9' {
			p++
			n++
		}
		return n
	}
	switch {
	case p < len(b) && b[p] == '0':
		p++
	case digits() == 0:
		s.syntax = true
		return
	}
	if p < len(b) && b[p] == '.' {
		p++
		if digits() == 0 {
			s.syntax = true
			return
		}
	}
	if p < len(b) && (b[p] == 'e' || b[p] == 'E') {
		p++
		if p < len(b) && (b[p] == '+' || b[p] == '-') {
			p++
		}
		if digits() == 0 {
			s.syntax = true
			return
		}
	}
	s.pos = p
}

// str reads a string starting at the opening quote and returns the bounds of
// its contents and whether it holds escapes.
func (s *scanner) str() (start, end int, escaped bool) {
	b := s.buf
	s.pos++
	start = s.pos
	for p := s.pos; p < len(b); p++ {
		switch c := b[p]; {
		case c == '"':
			s.pos = p + 1
			return start, p, escaped
		case c < 0x20:
			s.syntax = true
			return start, p, escaped
		case c == '\\':
			escaped = true
			p++
			if p >= len(b) {
				break
			}
			switch b[p] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if p+4 >= len(b) || !isHex(b[p+1]) || !isHex(b[p+2]) || !isHex(b[p+3]) || !isHex(b[p+4]) {
					s.syntax = true
					return start, p, escaped
				}
				p += 4
			default:
				s.syntax = true
				return start, p, escaped
			}
		}
	}
	s.syntax = true
	return start, len(b), escaped
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// text returns the decoded string whose contents are buf[start:end].
func (s *scanner) text(start, end int, escaped bool) string {
	if !escaped {
		return string(s.buf[start:end])
	}
	var v string
	if err := json.Unmarshal(s.buf[start-1:end+1], &v); err != nil {
		return string(s.buf[start:end])
	}
	return v
}

// expect consumes byte c after optional white space.
func (s *scanner) expect(c byte) bool {
	s.skipSpace()
	if s.pos >= len(s.buf) || s.buf[s.pos] != c {
		s.syntax = true
		return false
	}
	s.pos++
	return true
}

func (s *scanner) object(depth int, top bool) {
	s.pos++ // '{'
	s.skipSpace()
	if s.pos < len(s.buf) && s.buf[s.pos] == '}' {
		s.pos++
		if !top {
			s.add("empty object at " + pathMark + "; FHIR does not allow empty values")
		}
		return
	}
	// Member names seen so far; a map takes over for very wide objects so
	// that the check stays linear.
	var small [24][]byte
	seen := small[:0]
	var wide map[string]bool
	for {
		s.skipSpace()
		if s.pos >= len(s.buf) || s.buf[s.pos] != '"' {
			s.syntax = true
			return
		}
		start, end, escaped := s.str()
		if s.syntax {
			return
		}
		key := s.buf[start:end]
		if escaped {
			key = []byte(s.text(start, end, escaped))
		}
		dup := false
		if wide != nil {
			dup = wide[string(key)]
			wide[string(key)] = true
		} else {
			for _, k := range seen {
				if bytes.Equal(k, key) {
					dup = true
					break
				}
			}
			seen = append(seen, key)
			if len(seen) == len(small) {
				wide = make(map[string]bool, 2*len(small))
				for _, k := range seen {
					wide[string(k)] = true
				}
			}
		}
		if dup {
			s.addMember(string(key), fmt.Sprintf("duplicate property %q at %s", key, pathMark))
		} else if upperFirst(key) {
			s.addMember(string(key), fmt.Sprintf("unknown field %q at %s", key, pathMark))
		}
		if !s.expect(':') {
			return
		}
		s.skipSpace()
		s.path = append(s.path, segment{name: key})
		if top && string(key) == "resourceType" {
			s.hasType = true
			if s.pos < len(s.buf) && s.buf[s.pos] == '"' {
				vs, ve, vesc := s.str()
				s.resourceType = s.text(vs, ve, vesc)
			} else {
				s.typeNotString = true
				s.value(depth + 1)
			}
		} else {
			s.value(depth + 1)
		}
		s.path = s.path[:len(s.path)-1]
		if s.stopped() {
			return
		}
		s.skipSpace()
		if s.pos < len(s.buf) && s.buf[s.pos] == ',' {
			s.pos++
			continue
		}
		s.expect('}')
		return
	}
}

func (s *scanner) array(depth int) {
	s.pos++ // '['
	s.skipSpace()
	if s.pos < len(s.buf) && s.buf[s.pos] == ']' {
		s.pos++
		s.add("empty array at " + pathMark + "; FHIR does not allow empty values")
		return
	}
	for i := 0; ; i++ {
		s.skipSpace()
		s.path = append(s.path, segment{index: i})
		s.value(depth + 1)
		s.path = s.path[:len(s.path)-1]
		if s.stopped() {
			return
		}
		s.skipSpace()
		if s.pos < len(s.buf) && s.buf[s.pos] == ',' {
			s.pos++
			continue
		}
		s.expect(']')
		return
	}
}

// upperFirst reports whether a member name starts (after an optional "_")
// with an upper-case letter; FHIR element names never do.
func upperFirst(name []byte) bool {
	name = bytes.TrimPrefix(name, []byte("_"))
	return len(name) > 0 && name[0] >= 'A' && name[0] <= 'Z'
}
