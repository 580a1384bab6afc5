package storetest

import (
	"context"
	"net/url"
	"testing"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/search"
	"github.com/fhirserver/fhirserver/store"
)

// RunFullText checks _text and _content on a store opened by open with
// full-text search on (fullText true) or off.
func RunFullText(t *testing.T, open func(t *testing.T, fullText bool) store.Store) {
	ctx := context.Background()
	s := open(t, true)
	put := func(typ, id, body string) {
		t.Helper()
		if _, _, err := s.Update(ctx, store.Write{Type: typ, ID: id, Body: []byte(body)}); err != nil {
			t.Fatalf("writing %s/%s: %v", typ, id, err)
		}
	}
	put("Observation", "ft-a", `{"resourceType":"Observation","id":"ft-a","status":"final","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Patient reports <b>severe</b> headaches in the morning</div>"},"code":{"text":"Pain assessment"}}`)
	put("Observation", "ft-b", `{"resourceType":"Observation","id":"ft-b","status":"final","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Routine checkup</div>"},"code":{"text":"Exercise"},"note":[{"text":"running daily"}]}`)
	put("Observation", "ft-c", `{"resourceType":"Observation","id":"ft-c","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"85354-9","display":"Blood pressure panel"}]}}`)
	put("Patient", "ft-p", `{"resourceType":"Patient","id":"ft-p","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Severe allergy to penicillin</div>"}}`)

	find := func(t *testing.T, s store.Store, types []string, raw string) ([]string, error) {
		t.Helper()
		vals, err := url.ParseQuery(raw)
		must(t, err)
		q, err := search.Parse(vals, search.Options{Types: types, Strict: true, FullText: true})
		if err != nil {
			return nil, err
		}
		page, err := s.Search(ctx, store.DefaultTenant, q)
		if err != nil {
			return nil, err
		}
		return keysOf(page.Matches), nil
	}
	obs := []string{"Observation"}
	for _, tc := range []struct {
		types []string
		query string
		want  []string
	}{
		{obs, "_text=headache", keys("Observation", "ft-a")}, // stemmed: headaches
		{obs, "_text=SEVERE Morning", keys("Observation", "ft-a")},
		{obs, "_text=severe checkup", nil},
		{obs, "_text=checkup,morning", keys("Observation", "ft-a", "ft-b")},
		{obs, "_text=blood", nil}, // not in any narrative
		{obs, "_content=blood", keys("Observation", "ft-c")},
		{obs, "_content=pressure panel", keys("Observation", "ft-c")},
		{obs, "_content=run", keys("Observation", "ft-b")}, // stemmed: running
		{obs, "_content=assessment", keys("Observation", "ft-a")},
		{obs, "_content=85354", keys("Observation", "ft-c")},
		{obs, "_content=Observation", nil}, // the resourceType is not text
		{nil, "_type=Observation,Patient&_text=severe", append(keys("Observation", "ft-a"), keys("Patient", "ft-p")...)},
		{obs, "_text=severe&code:text=pain", keys("Observation", "ft-a")},
	} {
		t.Run(tc.query, func(t *testing.T) {
			got, err := find(t, s, tc.types, tc.query)
			if err != nil {
				t.Fatal(err)
			}
			if !sameSet(got, tc.want) {
				t.Errorf("found %v, want %v", got, tc.want)
			}
		})
	}

	t.Run("no words", func(t *testing.T) {
		if _, err := find(t, s, obs, "_text=%2B%2B%2B"); fhir.KindOf(err) != fhir.KindInvalid {
			t.Errorf("error %v, want invalid", err)
		}
	})
	t.Run("update replaces the text", func(t *testing.T) {
		put("Observation", "ft-a", `{"resourceType":"Observation","id":"ft-a","status":"final","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Resolved</div>"},"code":{"text":"Pain assessment"}}`)
		for q, want := range map[string][]string{"_text=headache": nil, "_text=resolved": keys("Observation", "ft-a")} {
			got, err := find(t, s, obs, q)
			if err != nil || !sameSet(got, want) {
				t.Errorf("%s found %v, %v; want %v", q, got, err, want)
			}
		}
	})
	t.Run("delete removes the text", func(t *testing.T) {
		if _, err := s.Delete(ctx, store.Delete{Type: "Observation", ID: "ft-b"}); err != nil {
			t.Fatal(err)
		}
		if got, err := find(t, s, obs, "_content=running"); err != nil || len(got) != 0 {
			t.Errorf("found %v, %v after delete", got, err)
		}
	})
	t.Run("off", func(t *testing.T) {
		off := open(t, false)
		if _, err := find(t, off, obs, "_text=severe"); fhir.KindOf(err) != fhir.KindNotSupported {
			t.Errorf("error %v, want not-supported", err)
		}
	})
}
