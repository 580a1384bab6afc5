package index

import (
	"encoding/json"
	"html"
	"strings"
	"unicode/utf8"
)

// MaxFullText bounds the text kept for _text or _content of one resource,
// so that a resource with a huge narrative or many notes cannot make one
// index row (and its full-text vector) unbounded.
const MaxFullText = 256 << 10

// FullText returns what the full-text parameters search: narrative, the
// text of the resource's narrative (Resource.text.div without its XHTML
// markup, for _text), and content, every text value of the resource (for
// _content): strings, codes, displays, narratives of the resource and its
// contained resources, but not attachment data (base64) nor the
// resourceType. Both are cut at MaxFullText bytes. body must be a JSON
// object; anything else gives empty strings.
func FullText(body []byte) (narrative, content string) {
	var root map[string]any
	if err := json.Unmarshal(body, &root); err != nil {
		return "", ""
	}
	if t, ok := root["text"].(map[string]any); ok {
		if div, ok := t["div"].(string); ok {
			narrative = clip(xhtmlText(div))
		}
	}
	var b strings.Builder
	collectText(&b, root)
	return narrative, clip(b.String())
}

// collectText appends the text values under v to b, separated by spaces,
// stopping once b holds MaxFullText bytes.
func collectText(b *strings.Builder, v any) {
	if b.Len() >= MaxFullText {
		return
	}
	switch v := v.(type) {
	case string:
		b.WriteString(v)
		b.WriteByte(' ')
	case []any:
		for _, e := range v {
			collectText(b, e)
		}
	case map[string]any:
		for k, e := range v {
			switch k {
			case "resourceType", "data":
				continue
			case "div":
				if s, ok := e.(string); ok {
					b.WriteString(xhtmlText(s))
					b.WriteByte(' ')
				}
				continue
			}
			collectText(b, e)
		}
	}
}

// xhtmlText is the text of an XHTML fragment: tags dropped (each one
// separates words), character references decoded, runs of white space
// collapsed.
func xhtmlText(s string) string {
	var b strings.Builder
	for s != "" {
		i := strings.IndexByte(s, '<')
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		b.WriteByte(' ')
		j := strings.IndexByte(s[i:], '>')
		if j < 0 {
			break
		}
		s = s[i+j+1:]
	}
	return strings.Join(strings.Fields(html.UnescapeString(b.String())), " ")
}

// clip cuts s to at most MaxFullText bytes, on a rune boundary.
func clip(s string) string {
	if len(s) <= MaxFullText {
		return s
	}
	n := MaxFullText
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
