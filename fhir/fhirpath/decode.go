package fhirpath

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Decode decodes a JSON resource into the values the evaluator works on:
// exactly what encoding/json produces when decoding into an `any` with
// UseNumber (map[string]any, []any, string, bool, json.Number, nil), so
// decimals keep their exact text (176.35499866729558 stays as written).
//
// It is a purpose-built decoder rather than encoding/json itself because it
// runs on every write and is about three times faster; the results are the
// same, including invalid UTF-8 becoming U+FFFD and the last of duplicate
// keys winning (tested against encoding/json, also by fuzzing). Values
// decoded by encoding/json with UseNumber work with Evaluate just as well.
func Decode(body []byte) (Node, error) {
	// One copy of the body as a string: every string value without escapes
	// is then a substring of it, which saves an allocation per value.
	d := decoder{data: string(body)}
	d.space()
	v, err := d.value()
	if err != nil {
		return Node{}, err
	}
	d.space()
	if d.i != len(d.data) {
		return Node{}, d.errorf("data after the top-level value")
	}
	if _, ok := v.(map[string]any); !ok {
		return Node{}, errors.New("a resource must be a JSON object")
	}
	return ResourceNode(v), nil
}

// maxDepth is the nesting limit, as in encoding/json.
const maxDepth = 10000

type decoder struct {
	data  string
	i     int
	depth int
}

func (d *decoder) errorf(format string, args ...any) error {
	return fmt.Errorf("invalid JSON at offset %d: %s", d.i, fmt.Sprintf(format, args...))
}

func (d *decoder) space() {
	for d.i < len(d.data) {
		switch d.data[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) value() (any, error) {
	if d.i >= len(d.data) {
		return nil, d.errorf("unexpected end of input")
	}
	switch c := d.data[d.i]; {
	case c == '{':
		return d.object()
	case c == '[':
		return d.array()
	case c == '"':
		return d.str()
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	default:
		return nil, d.errorf("unexpected character %q", c)
	}
}

func (d *decoder) literal(lit string) error {
	if len(d.data)-d.i < len(lit) || d.data[d.i:d.i+len(lit)] != lit {
		return d.errorf("invalid literal")
	}
	d.i += len(lit)
	return nil
}

func (d *decoder) object() (any, error) {
	if d.depth++; d.depth > maxDepth {
		return nil, d.errorf("nested too deeply")
	}
	d.i++ // {
	m := map[string]any{}
	d.space()
	if d.i < len(d.data) && d.data[d.i] == '}' {
		d.i++
		d.depth--
		return m, nil
	}
	for {
		if d.i >= len(d.data) || d.data[d.i] != '"' {
			return nil, d.errorf("expected a member name")
		}
		k, err := d.str()
		if err != nil {
			return nil, err
		}
		key := k.(string)
		d.space()
		if d.i >= len(d.data) || d.data[d.i] != ':' {
			return nil, d.errorf("expected ':'")
		}
		d.i++
		d.space()
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		m[key] = v
		d.space()
		if d.i >= len(d.data) {
			return nil, d.errorf("unexpected end of input")
		}
		switch d.data[d.i] {
		case ',':
			d.i++
			d.space()
		case '}':
			d.i++
			d.depth--
			return m, nil
		default:
			return nil, d.errorf("expected ',' or '}'")
		}
	}
}

func (d *decoder) array() (any, error) {
	if d.depth++; d.depth > maxDepth {
		return nil, d.errorf("nested too deeply")
	}
	d.i++ // [
	a := []any{}
	d.space()
	if d.i < len(d.data) && d.data[d.i] == ']' {
		d.i++
		d.depth--
		return a, nil
	}
	for {
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		d.space()
		if d.i >= len(d.data) {
			return nil, d.errorf("unexpected end of input")
		}
		switch d.data[d.i] {
		case ',':
			d.i++
			d.space()
		case ']':
			d.i++
			d.depth--
			return a, nil
		default:
			return nil, d.errorf("expected ',' or ']'")
		}
	}
}

func (d *decoder) number() (any, error) {
	start := d.i
	data := d.data
	i := d.i
	if data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case i < len(data) && data[i] >= '1' && data[i] <= '9':
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	default:
		d.i = i
		return nil, d.errorf("invalid number")
	}
	if i < len(data) && data[i] == '.' {
		i++
		if i >= len(data) || data[i] < '0' || data[i] > '9' {
			d.i = i
			return nil, d.errorf("invalid number")
		}
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) || data[i] < '0' || data[i] > '9' {
			d.i = i
			return nil, d.errorf("invalid number")
		}
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	}
	d.i = i
	return json.Number(data[start:i]), nil
}

// str reads a string literal.
func (d *decoder) str() (any, error) {
	d.i++ // opening quote
	start := d.i
	for i := start; i < len(d.data); i++ {
		c := d.data[i]
		if c == '"' {
			d.i = i + 1
			return d.data[start:i], nil
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
	}
	return d.strSlow(start)
}

// strSlow decodes a string with escapes, control characters or non-ASCII
// bytes the way encoding/json does.
func (d *decoder) strSlow(start int) (any, error) {
	buf := make([]byte, 0, 32)
	i := start
	for i < len(d.data) {
		c := d.data[i]
		switch {
		case c == '"':
			d.i = i + 1
			return string(buf), nil
		case c < 0x20:
			d.i = i
			return nil, d.errorf("control character in string")
		case c == '\\':
			if i+1 >= len(d.data) {
				d.i = i
				return nil, d.errorf("unexpected end of input")
			}
			e := d.data[i+1]
			i += 2
			switch e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r, ok := hex4(d.data, i)
				if !ok {
					d.i = i
					return nil, d.errorf("invalid \\u escape")
				}
				i += 4
				if utf16.IsSurrogate(r) {
					r2, ok := rune(-1), false
					if i+6 <= len(d.data) && d.data[i] == '\\' && d.data[i+1] == 'u' {
						r2, ok = hex4(d.data, i+2)
					}
					if dec := utf16.DecodeRune(r, r2); ok && dec != utf8.RuneError {
						r = dec
						i += 6
					} else {
						r = utf8.RuneError
					}
				}
				buf = utf8.AppendRune(buf, r)
			default:
				d.i = i - 1
				return nil, d.errorf("invalid escape \\%c", e)
			}
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			i++
		default:
			r, size := utf8.DecodeRuneInString(d.data[i:])
			if r == utf8.RuneError && size == 1 {
				buf = utf8.AppendRune(buf, utf8.RuneError)
			} else {
				buf = append(buf, d.data[i:i+size]...)
			}
			i += size
		}
	}
	d.i = i
	return nil, d.errorf("unterminated string")
}

func hex4(b string, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	v, err := strconv.ParseUint(b[i:i+4], 16, 32)
	if err != nil {
		return 0, false
	}
	return rune(v), true
}
