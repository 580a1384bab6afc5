package search

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/index"
)

// plausible returns a value of the parameter's type, and for a reference
// one of its target types.
func plausible(typ fhir.SearchParamType, targets []string) string {
	switch typ {
	case fhir.SearchParamNumber:
		return "ge10"
	case fhir.SearchParamDate:
		return "ge2020-01-01"
	case fhir.SearchParamString:
		return "abc"
	case fhir.SearchParamToken:
		return "http://example.org/cs|a"
	case fhir.SearchParamReference:
		if len(targets) > 0 {
			return targets[0] + "/1"
		}
		return "http://example.org/fhir/Questionnaire/q|1.0"
	case fhir.SearchParamQuantity:
		return "gt5.4|http://unitsofmeasure.org|mg"
	case fhir.SearchParamURI:
		return "http://example.org/x"
	case fhir.SearchParamSpecial:
		return "42.25|-83.69|10|km"
	}
	return ""
}

// Every search parameter of every resource type parses with a plausible
// value, missing, and (for references) chained to _id; and round-trips.
func TestEveryRegistryParameter(t *testing.T) {
	n := 0
	for _, rt := range fhir.ResourceTypes() {
		opt := Options{Types: []string{rt}, FullText: true, Strict: true}
		for _, sp := range fhir.SearchParams(rt) {
			if sp.Code == "_query" {
				continue // named queries: unsupported, see TestUnknownLenientAndStrict
			}
			params := url.Values{}
			switch {
			case sp.Code == "_id":
				params.Add(sp.Code, "abc-1.2")
			case sp.Type == fhir.SearchParamComposite:
				parts := make([]string, len(sp.Components))
				for i, c := range sp.Components {
					parts[i] = plausible(c.Type, nil)
				}
				params.Add(sp.Code, strings.Join(parts, "$"))
			default:
				params.Add(sp.Code, plausible(sp.Type, sp.Targets))
			}
			params.Add(sp.Code+":missing", "true")
			if sp.Type == fhir.SearchParamReference && len(sp.Targets) > 0 {
				params.Add(sp.Code+"._id", "1")
				params.Add(sp.Code+":"+sp.Targets[0]+"._lastUpdated", "gt2020")
			}
			name := fmt.Sprintf("%s?%s", rt, params.Encode())
			q, err := Parse(params, opt)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			if want := len(params); len(q.Clauses) != want {
				t.Errorf("%s: %d clauses, want %d", name, len(q.Clauses), want)
			}
			for i := range q.Clauses {
				if leaf := leafOf(&q.Clauses[i]); leaf.Missing == nil && len(leaf.Values) != 1 {
					t.Errorf("%s: clause %s has %d values", name, describe(&q.Clauses[i]), len(leaf.Values))
				}
			}
			checkRoundTrip(t, q, opt)
			n++
		}
	}
	if n < 1500 {
		t.Errorf("only %d parameters checked", n)
	}
}

// Search values are ranges comparable with the index's rows: the value a
// resource holds, searched for as written, gives the same range.
func TestRangesMatchIndex(t *testing.T) {
	dates := []string{"2020", "2020-02", "2020-02-29", "2020-02-29T10:11:12Z", "2020-02-29T10:11:12.5+05:30",
		"2020-02-29T10:11:12.123-08:00", "1999-12-31T23:59:60Z", "2021-06-01T00:00:00"}
	for _, d := range dates {
		body := fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveDateTime":%q}`, d)
		e, err := index.Extract("Observation", []byte(body))
		if err != nil {
			t.Fatalf("Extract %s: %v", d, err)
		}
		var row *index.Date
		for i := range e.Dates {
			if e.Dates[i].Code == "date" {
				row = &e.Dates[i]
			}
		}
		q, err := Parse(url.Values{"date": {d}}, Options{Types: []string{"Observation"}})
		if err != nil {
			t.Fatalf("Parse %s: %v", d, err)
		}
		v := q.Clauses[0].Values[0]
		if row == nil || !row.Low.Equal(v.Low) || !row.High.Equal(v.High) || v.Low.Location().String() != "UTC" {
			t.Errorf("%s: index %v, search [%v, %v)", d, row, v.Low, v.High)
		}
	}
	numbers := []string{"100", "1.50", "0", "0.05", "-1.5", "-100", "1e2", "1.5E-3", "176.35499866729558", "10", "0.1"}
	for _, n := range numbers {
		body := fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"text":"x"},
			"valueQuantity":{"value":%s,"system":"http://unitsofmeasure.org","code":"mg"}}`, n)
		e, err := index.Extract("Observation", []byte(body))
		if err != nil {
			t.Fatalf("Extract %s: %v", n, err)
		}
		var row *index.Quantity
		for i := range e.Quantities {
			if e.Quantities[i].Code == "value-quantity" {
				row = &e.Quantities[i]
			}
		}
		q, err := Parse(url.Values{"value-quantity": {n + "|http://unitsofmeasure.org|mg"}}, Options{Types: []string{"Observation"}})
		if err != nil {
			t.Fatalf("Parse %s: %v", n, err)
		}
		v := q.Clauses[0].Values[0]
		if row == nil || row.Low != v.NumLow || row.High != v.NumHigh || row.Value != v.Number || row.System != v.UnitSystem || row.Unit != v.UnitCode {
			t.Errorf("%s: index %+v, search %s", n, row, describeValue(v))
		}
	}
}

// Reference values are split as the index splits references.
func TestReferencesMatchIndex(t *testing.T) {
	for _, ref := range []string{"Patient/1", "Patient/1/_history/3", "http://other.org/fhir/Patient/1",
		"http://other.org/fhir/Patient/1/_history/3", "urn:uuid:8a3b3f5e-2bd4-4d24-9a7c-0f3b1e0e4a11", "http://other.org/x"} {
		body := fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":%q}}`, ref)
		e, err := index.Extract("Observation", []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		var row *index.Reference
		for i := range e.References {
			if e.References[i].Code == "subject" {
				row = &e.References[i]
			}
		}
		q, err := Parse(url.Values{"subject": {ref}}, Options{Types: []string{"Observation"}})
		if err != nil {
			t.Fatal(err)
		}
		v := q.Clauses[0].Values[0]
		if row == nil || row.TargetType != v.RefType || row.TargetID != v.RefID || row.Version != v.RefVersion || row.URL != v.URL {
			t.Errorf("%s: index %+v, search %s", ref, row, describeValue(v))
		}
	}
	// A canonical: URL without the version, as the index stores it.
	body := `{"resourceType":"QuestionnaireResponse","status":"completed","questionnaire":"http://acme.org/Questionnaire/q1|2.0"}`
	e, err := index.Extract("QuestionnaireResponse", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	q, err := Parse(url.Values{"questionnaire": {"http://acme.org/Questionnaire/q1|2.0"}}, Options{Types: []string{"QuestionnaireResponse"}})
	if err != nil {
		t.Fatal(err)
	}
	v := q.Clauses[0].Values[0]
	for _, row := range e.References {
		if row.Code == "questionnaire" && (row.URL != v.URL || row.Version != v.RefVersion) {
			t.Errorf("canonical: index %+v, search %s", row, describeValue(v))
		}
	}
}
