package search

import "strings"

// Search values escape the characters that separate them with a backslash:
// "\," (a comma that does not separate OR values), "\$" (composite parts),
// "\|" (token, reference and quantity parts) and "\\". A backslash before
// any other character is kept as it is.

// splitEscaped splits s at every sep that is not escaped. The pieces keep
// their escapes, so that they can be split again at another separator
// before unescape.
func splitEscaped(s string, sep byte) []string {
	if strings.IndexByte(s, sep) < 0 {
		return []string{s}
	}
	var parts []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++ // the next byte is escaped (or kept): never a separator
		case sep:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// unescape removes the escaping backslash of "\,", "\$", "\|" and "\\".
func unescape(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && isEscapable(s[i+1]) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// escape is the inverse of unescape, for one atomic part of a value.
func escape(s string) string {
	if !strings.ContainsAny(s, `\,$|`) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 4)
	for i := 0; i < len(s); i++ {
		if isEscapable(s[i]) {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isEscapable(c byte) bool { return c == '\\' || c == ',' || c == '$' || c == '|' }
