package index

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestFullText(t *testing.T) {
	for _, tc := range []struct {
		name, body    string
		narrative     string
		contentHas    []string
		contentHasNot []string
	}{
		{
			name:          "narrative and values",
			body:          `{"resourceType":"Observation","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Body&#160;height <b>measured</b></p>&amp; noted</div>"},"code":{"coding":[{"system":"http://loinc.org","code":"8302-2","display":"Body Height"}]},"note":[{"text":"patient was standing"}]}`,
			narrative:     "Body height measured & noted",
			contentHas:    []string{"Body Height", "8302-2", "patient was standing", "measured", "generated"},
			contentHasNot: []string{"Observation", "<p>"},
		},
		{
			name:          "attachment data is not text",
			body:          `{"resourceType":"DocumentReference","content":[{"attachment":{"contentType":"text/plain","data":"SGVsbG8gd29ybGQ=","title":"discharge letter"}}]}`,
			contentHas:    []string{"discharge letter", "text/plain"},
			contentHasNot: []string{"SGVsbG8gd29ybGQ="},
		},
		{
			name:       "contained narrative",
			body:       `{"resourceType":"Patient","contained":[{"resourceType":"Organization","text":{"div":"<div>Acme clinic</div>"}}]}`,
			contentHas: []string{"Acme clinic"},
		},
		{name: "not an object", body: `[1,2]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, c := FullText([]byte(tc.body))
			if n != tc.narrative {
				t.Errorf("narrative = %q, want %q", n, tc.narrative)
			}
			for _, s := range tc.contentHas {
				if !strings.Contains(c, s) {
					t.Errorf("content %q lacks %q", c, s)
				}
			}
			for _, s := range tc.contentHasNot {
				if strings.Contains(c, s) {
					t.Errorf("content %q has %q", c, s)
				}
			}
		})
	}
}

func TestFullTextClipsOnRuneBoundary(t *testing.T) {
	long := strings.Repeat("é", MaxFullText) // 2 bytes each, after one odd byte
	_, c := FullText([]byte(`{"resourceType":"Basic","code":{"text":"x` + long + `"}}`))
	if len(c) > MaxFullText || len(c) < MaxFullText-1 || !utf8.ValidString(c) {
		t.Errorf("content of %d bytes (valid UTF-8: %v), want %d or one less, valid", len(c), utf8.ValidString(c), MaxFullText)
	}
}
