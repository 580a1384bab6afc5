package index

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Normalize prepares a string for FHIR string matching, which ignores case
// and accents: it lower-cases s, folds the accented Latin letters of
// U+00C0–U+017F to their base letters (é → e, ß → ss, Ł → l, Œ → oe) and
// drops combining diacritical marks (U+0300–U+036F, so decomposed input folds
// too). Other scripts are only lower-cased. Search values must go through the
// same function.
func Normalize(s string) string {
	ascii, upperSeen := true, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
		if c >= 'A' && c <= 'Z' {
			upperSeen = true
		}
	}
	if ascii {
		if !upperSeen {
			return s
		}
		b := []byte(s)
		for i, c := range b {
			if c >= 'A' && c <= 'Z' {
				b[i] = c + 'a' - 'A'
			}
		}
		return string(b)
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r >= 0x300 && r <= 0x36f:
			// combining mark: dropped
		case r >= 0xc0 && r <= 0x17f:
			switch f := latinFold[r-0xc0]; f {
			case '.':
				b.WriteRune(r)
			case '*':
				b.WriteString(foldSpecial(r))
			default:
				b.WriteByte(f)
			}
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// latinFold maps U+00C0 to U+017F to a lower-case base letter; '.' keeps the
// character (× and ÷), '*' is a ligature spelled out by foldSpecial.
const latinFold = "" +
	"aaaaaa*ceeeeiiiidnooooo.ouuuuy**" + // U+00C0 À … U+00DF ß
	"aaaaaa*ceeeeiiiidnooooo.ouuuuy*y" + // U+00E0 à … U+00FF ÿ
	"aaaaaa" + "cccccccc" + "dddd" + "eeeeeeeeee" + "gggggggg" + "hhhh" + // U+0100 Ā … U+0127 ħ
	"iiiiiiiiii" + "**" + "jj" + "kkk" + "llllllllll" + "nnnnnnnnn" + // U+0128 Ĩ … U+014B ŋ
	"oooooo" + "**" + "rrrrrr" + "ssssssss" + "tttttt" + "uuuuuuuuuuuu" + // U+014C Ō … U+0173 ų
	"ww" + "yyy" + "zzzzzz" + "s" // U+0174 Ŵ … U+017F ſ

func foldSpecial(r rune) string {
	switch r {
	case 'Æ', 'æ':
		return "ae"
	case 'Þ', 'þ':
		return "th"
	case 'ß':
		return "ss"
	case 'Ĳ', 'ĳ':
		return "ij"
	case 'Œ', 'œ':
		return "oe"
	}
	return string(unicode.ToLower(r))
}
