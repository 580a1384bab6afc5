package fhirpath

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

type tokKind int

const (
	tokEOF     tokKind = iota
	tokIdent           // name or `delimited name`
	tokString          // 'literal'
	tokNumber          // 12 or 1.5
	tokVar             // %name (text without the %)
	tokSpecial         // $this, $index, $total (text without the $)
	tokOp              // punctuation and symbolic operators
)

type token struct {
	kind tokKind
	text string
	pos  int
	// quoted is set for `delimited` identifiers, which are never keywords.
	quoted bool
}

func (t token) String() string {
	switch t.kind {
	case tokEOF:
		return "end of expression"
	case tokString:
		return strconv.Quote(t.text)
	case tokVar:
		return "%" + t.text
	case tokSpecial:
		return "$" + t.text
	}
	return "'" + t.text + "'"
}

// lex splits a FHIRPath expression into tokens.
func lex(src string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '/' && i+1 < len(src) && src[i+1] == '/':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("unterminated comment at %d", i)
			}
			i += end + 4
		case isIdentStart(c):
			j := i + 1
			for j < len(src) && isIdentPart(src[j]) {
				j++
			}
			toks = append(toks, token{kind: tokIdent, text: src[i:j], pos: i})
			i = j
		case c == '`':
			s, n, err := unquote(src[i:], '`')
			if err != nil {
				return nil, fmt.Errorf("at %d: %v", i, err)
			}
			toks = append(toks, token{kind: tokIdent, text: s, pos: i, quoted: true})
			i += n
		case c == '\'':
			s, n, err := unquote(src[i:], '\'')
			if err != nil {
				return nil, fmt.Errorf("at %d: %v", i, err)
			}
			toks = append(toks, token{kind: tokString, text: s, pos: i})
			i += n
		case c >= '0' && c <= '9':
			j := i
			for j < len(src) && src[j] >= '0' && src[j] <= '9' {
				j++
			}
			if j+1 < len(src) && src[j] == '.' && src[j+1] >= '0' && src[j+1] <= '9' {
				j++
				for j < len(src) && src[j] >= '0' && src[j] <= '9' {
					j++
				}
			}
			toks = append(toks, token{kind: tokNumber, text: src[i:j], pos: i})
			i = j
		case c == '%':
			if i+1 < len(src) && src[i+1] == '`' {
				s, n, err := unquote(src[i+1:], '`')
				if err != nil {
					return nil, fmt.Errorf("at %d: %v", i, err)
				}
				toks = append(toks, token{kind: tokVar, text: s, pos: i})
				i += 1 + n
				continue
			}
			if i+1 < len(src) && src[i+1] == '\'' {
				s, n, err := unquote(src[i+1:], '\'')
				if err != nil {
					return nil, fmt.Errorf("at %d: %v", i, err)
				}
				toks = append(toks, token{kind: tokVar, text: s, pos: i})
				i += 1 + n
				continue
			}
			j := i + 1
			for j < len(src) && isIdentPart(src[j]) {
				j++
			}
			if j == i+1 {
				return nil, fmt.Errorf("at %d: '%%' must be followed by a name", i)
			}
			toks = append(toks, token{kind: tokVar, text: src[i+1 : j], pos: i})
			i = j
		case c == '$':
			j := i + 1
			for j < len(src) && isIdentPart(src[j]) {
				j++
			}
			toks = append(toks, token{kind: tokSpecial, text: src[i+1 : j], pos: i})
			i = j
		case c == '@':
			return nil, fmt.Errorf("at %d: date/time literals are not supported", i)
		default:
			op := ""
			if i+1 < len(src) {
				switch src[i : i+2] {
				case "!=", "!~", "<=", ">=":
					op = src[i : i+2]
				}
			}
			if op == "" {
				switch c {
				case '.', '(', ')', '[', ']', ',', '|', '=', '~', '<', '>', '+', '-', '*', '/', '&', '{', '}':
					op = src[i : i+1]
				}
			}
			if op == "" {
				r, _ := utf8.DecodeRuneInString(src[i:])
				return nil, fmt.Errorf("at %d: unexpected character %q", i, r)
			}
			toks = append(toks, token{kind: tokOp, text: op, pos: i})
			i += len(op)
		}
	}
	toks = append(toks, token{kind: tokEOF, pos: len(src)})
	return toks, nil
}

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
}

func isIdentPart(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

// unquote reads a quoted literal at the start of s (which begins with q) and
// returns its value and the number of bytes consumed.
func unquote(s string, q byte) (string, int, error) {
	var b strings.Builder
	i := 1
	for i < len(s) {
		c := s[i]
		switch {
		case c == q:
			return b.String(), i + 1, nil
		case c == '\\':
			if i+1 >= len(s) {
				return "", 0, fmt.Errorf("unterminated escape")
			}
			e := s[i+1]
			i += 2
			switch e {
			case '\'', '"', '`', '\\', '/':
				b.WriteByte(e)
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'u':
				if i+4 > len(s) {
					return "", 0, fmt.Errorf("short \\u escape")
				}
				v, err := strconv.ParseUint(s[i:i+4], 16, 32)
				if err != nil {
					return "", 0, fmt.Errorf("bad \\u escape %q", s[i:i+4])
				}
				b.WriteRune(rune(v))
				i += 4
			default:
				return "", 0, fmt.Errorf("unknown escape \\%c", e)
			}
		default:
			b.WriteByte(c)
			i++
		}
	}
	return "", 0, fmt.Errorf("unterminated literal")
}
