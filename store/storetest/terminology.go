package storetest

import (
	"context"
	"net/url"
	"slices"
	"testing"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/search"
	"github.com/fhirserver/fhirserver/store"
)

// The token modifiers that need terminology (:in, :not-in, :below, :above),
// on the Synthea data (expected sets computed from the bundle JSON with the
// codes of the value sets and hierarchies written out below, as the R4
// spec defines them) and on a tenant of small resources worked out by hand.

const termTenant = "terminology"

// Codes of the R4 spec, written out here rather than taken from
// fhir/terminology, so that the tests check its expansions too.
const (
	actCode      = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
	actEncounter = "http://terminology.hl7.org/ValueSet/v3-ActEncounterCode"
	vitalSigns   = "http://hl7.org/fhir/ValueSet/observation-vitalsignresult"
	loinc        = "http://loinc.org"
)

var (
	// v3-ActEncounterCode: _ActEncounterCode and what is below it in
	// v3-ActCode, without _ActEncounterCode itself.
	actEncounterCodes = []string{"ACUTE", "AMB", "EMER", "FLD", "HH", "IMP", "NONAC", "OBSENC", "PRENC", "SS", "VR"}
	// observation-vitalsignresult: an explicit list of LOINC codes.
	vitalSignCodes = []string{"85353-1", "9279-1", "8867-4", "2708-6", "8310-5", "8302-2", "9843-4", "29463-7", "39156-5", "85354-9", "8480-6", "8462-4", "8478-0"}
	// observation-category: the whole code system.
	observationCategories = []string{"social-history", "vital-signs", "imaging", "laboratory", "procedure", "survey", "exam", "therapy", "activity"}
)

var termResources = []string{
	`{"resourceType":"Patient","id":"t1","gender":"male","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]}}`,
	`{"resourceType":"Patient","id":"t2","gender":"female","meta":{"security":[{"system":"http://example.org/labels","code":"R"}]}}`,
	`{"resourceType":"Patient","id":"t3"}`,
	// Encounter classes: in the value set, a code without a system, a code
	// of another system, and the abstract root the value set leaves out.
	`{"resourceType":"Encounter","id":"c1","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"ACUTE"},"subject":{"reference":"Patient/t1"}}`,
	`{"resourceType":"Encounter","id":"c2","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"}}`,
	`{"resourceType":"Encounter","id":"c3","status":"finished","class":{"code":"IMP"},"subject":{"reference":"Patient/t2"}}`,
	`{"resourceType":"Encounter","id":"c4","status":"finished","class":{"system":"http://example.org/encounter-class","code":"ACUTE"},"subject":{"reference":"Patient/t3"}}`,
	`{"resourceType":"Encounter","id":"c5","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"_ActEncounterCode"}}`,
	// Observations: a vital sign, LDL cholesterol, a vital sign among
	// other codings, and one with a local code and no category.
	`{"resourceType":"Observation","id":"ob1","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"8302-2"}]}}`,
	`{"resourceType":"Observation","id":"ob2","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"18262-6"}]}}`,
	`{"resourceType":"Observation","id":"ob3","status":"final","category":[{"coding":[{"system":"http://example.org/categories","code":"vital-signs"}]}],"code":{"coding":[{"system":"http://snomed.info/sct","code":"27113001"},{"system":"http://loinc.org","code":"29463-7"}]}}`,
	`{"resourceType":"Observation","id":"ob4","status":"final","code":{"coding":[{"system":"http://example.org/local","code":"8302-2"}]}}`,
}

func loadTerminology(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, body := range termResources {
		typ, id, err := fhir.Envelope([]byte(body))
		must(t, err)
		if _, _, err := s.Update(ctx, store.Write{Tenant: termTenant, Type: typ, ID: id, Body: []byte(body)}); err != nil {
			t.Fatalf("loading %s/%s: %v", typ, id, err)
		}
	}
}

// hasCodingIn reports whether the CodeableConcept or Coding cc has a
// coding of system with one of codes.
func hasCodingIn(cc any, system string, codes []string) bool {
	m, _ := cc.(obj)
	if m == nil {
		return false
	}
	all := list(m["coding"])
	if m["code"] != nil {
		all = append(all, m) // a Coding
	}
	for _, c := range all {
		c := c.(obj)
		if code, _ := c["code"].(string); c["system"] == system && slices.Contains(codes, code) {
			return true
		}
	}
	return false
}

func testTerminologySearch(t *testing.T, se store.Searcher, c *corpus) {
	classIn := func(codes ...string) func(obj) bool {
		return func(r obj) bool { return hasCodingIn(r["class"], actCode, codes) }
	}
	codeIn := func(codes []string) func(obj) bool {
		return func(r obj) bool { return hasCodingIn(r["code"], loinc, codes) }
	}
	categoryIn := func(r obj) bool {
		for _, cat := range list(r["category"]) {
			if hasCodingIn(cat, "http://terminology.hl7.org/CodeSystem/observation-category", observationCategories) {
				return true
			}
		}
		return false
	}
	synthea := []searchCase{
		{name: "in", types: "Encounter", query: "class:in=" + actEncounter, want: c.filter("Encounter", classIn(actEncounterCodes...))},
		{name: "in a whole code system", types: "Observation", query: "category:in=http://hl7.org/fhir/ValueSet/observation-category", want: c.filter("Observation", categoryIn)},
		{name: "in an explicit list", types: "Observation", query: "code:in=" + vitalSigns, want: c.filter("Observation", codeIn(vitalSignCodes))},
		{name: "not-in", types: "Observation", query: "code:not-in=" + vitalSigns,
			want: c.filter("Observation", func(r obj) bool { return !codeIn(vitalSignCodes)(r) })},
		{name: "below", types: "Encounter", query: "class:below=" + url.QueryEscape(actCode+"|IMP"), want: c.filter("Encounter", classIn("IMP", "ACUTE", "NONAC"))},
		{name: "below the root", types: "Encounter", query: "class:below=" + url.QueryEscape(actCode+"|_ActEncounterCode"),
			want: c.filter("Encounter", classIn(append([]string{"_ActEncounterCode"}, actEncounterCodes...)...))},
		// condition-clinical: inactive > remission, resolved.
		{name: "below in a FHIR code system", types: "Condition", query: "clinical-status:below=" + url.QueryEscape("http://terminology.hl7.org/CodeSystem/condition-clinical|inactive"),
			want: c.filter("Condition", func(r obj) bool {
				return hasCodingIn(r["clinicalStatus"], "http://terminology.hl7.org/CodeSystem/condition-clinical", []string{"inactive", "remission", "resolved"})
			})},
		{name: "above", types: "Encounter", query: "class:above=" + url.QueryEscape(actCode+"|ACUTE"),
			want: c.filter("Encounter", classIn("ACUTE", "IMP", "_ActCareProvisionCode", "_ActEncounterCode"))},
		{name: "in with a patient", types: "Observation", query: "code:in=" + vitalSigns + "&patient=" + c.byType["Patient"][0]["id"].(string),
			want: c.filter("Observation", func(r obj) bool {
				return codeIn(vitalSignCodes)(r) && refID(r["subject"]) == c.byType["Patient"][0]["id"]
			})},
	}
	for _, tc := range synthea {
		if len(tc.want) == 0 {
			t.Fatalf("case %q expects nothing; the corpus no longer exercises it", tc.name)
		}
	}
	t.Run("Synthea", func(t *testing.T) { runCases(t, se, syntheaTenant, synthea) })

	P := func(ids ...string) []string { return keys("Patient", ids...) }
	E := func(ids ...string) []string { return keys("Encounter", ids...) }
	O := func(ids ...string) []string { return keys("Observation", ids...) }
	t.Run("Edge", func(t *testing.T) {
		runCases(t, se, termTenant, []searchCase{
			// :in: a code without a system matches on its code; another
			// system's code does not; the excluded root does not.
			{name: "in", types: "Encounter", query: "class:in=" + actEncounter, want: E("c1", "c2", "c3")},
			{name: "in with version", types: "Encounter", query: "class:in=" + url.QueryEscape(actEncounter+"|2014-03-26"), want: E("c1", "c2", "c3")},
			// 1116 codes: bound as one list value.
			{name: "in a long value set", types: "Encounter", query: "class:in=http://terminology.hl7.org/ValueSet/v3-ActCode", want: E("c1", "c2", "c3", "c5")},
			{name: "in a code element", types: "Patient", query: "gender:in=http://hl7.org/fhir/ValueSet/administrative-gender", want: P("t1", "t2")},
			{name: "in any coding", types: "Observation", query: "code:in=" + vitalSigns, want: O("ob1", "ob3")},
			{name: "in either value set", types: "Observation", query: "code:in=" + vitalSigns + ",http://hl7.org/fhir/ValueSet/ldlcholesterol-codes", want: O("ob1", "ob2", "ob3")},
			{name: "in several systems", types: "Patient", query: "_security:in=http://hl7.org/fhir/ValueSet/security-labels", want: P("t1")},
			{name: "in an empty value set", types: "Patient", query: "gender:in=http://hl7.org/fhir/ValueSet/message-events", want: nil},
			// :not-in: no token of the parameter in the set, no value at all included.
			{name: "not-in", types: "Encounter", query: "class:not-in=" + actEncounter, want: E("c4", "c5")},
			{name: "not-in without a value", types: "Patient", query: "gender:not-in=http://hl7.org/fhir/ValueSet/administrative-gender", want: P("t3")},
			{name: "not-in without a category", types: "Observation", query: "category:not-in=http://hl7.org/fhir/ValueSet/observation-category", want: O("ob3", "ob4")},
			{name: "not-in any coding", types: "Observation", query: "code:not-in=" + vitalSigns, want: O("ob2", "ob4")},
			{name: "not-in either", types: "Observation", query: "code:not-in=" + vitalSigns + ",http://hl7.org/fhir/ValueSet/ldlcholesterol-codes", want: O("ob4")},
			{name: "not-in an empty value set", types: "Patient", query: "gender:not-in=http://hl7.org/fhir/ValueSet/message-events", want: P("t1", "t2", "t3")},
			{name: "two not-in", types: "Patient", query: "gender:not-in=http://hl7.org/fhir/ValueSet/message-events&_security:not-in=http://hl7.org/fhir/ValueSet/security-labels", want: P("t2", "t3")},
			// :below and :above in the v3-ActCode hierarchy (ACUTE is under IMP,
			// and also under _ActCareProvisionCode; IMP under _ActEncounterCode).
			{name: "below", types: "Encounter", query: "class:below=" + url.QueryEscape(actCode+"|IMP"), want: E("c1", "c3")},
			{name: "below a leaf", types: "Encounter", query: "class:below=" + url.QueryEscape(actCode+"|ACUTE"), want: E("c1")},
			{name: "below the root", types: "Encounter", query: "class:below=" + url.QueryEscape(actCode+"|_ActEncounterCode"), want: E("c1", "c2", "c3", "c5")},
			{name: "above", types: "Encounter", query: "class:above=" + url.QueryEscape(actCode+"|ACUTE"), want: E("c1", "c3", "c5")},
			{name: "above a middle code", types: "Encounter", query: "class:above=" + url.QueryEscape(actCode+"|IMP"), want: E("c3", "c5")},
			{name: "above or below", types: "Encounter", query: "class:above=" + url.QueryEscape(actCode+"|AMB") + "," + url.QueryEscape(actCode+"|ACUTE"), want: E("c1", "c2", "c3", "c5")},
			// Inside chains and _has.
			{name: "has below", types: "Patient", query: "_has:Encounter:patient:class:below=" + url.QueryEscape(actCode+"|IMP"), want: P("t1", "t2")},
			{name: "chain not-in", types: "Encounter", query: "subject:Patient.gender:not-in=http://hl7.org/fhir/ValueSet/administrative-gender", want: E("c4")},
		})
	})

	t.Run("Unexpanded", func(t *testing.T) {
		// A :below or :above built without Parse has no expansion: the
		// store refuses it rather than guess. (The store expands the value
		// sets of :in and :not-in itself: see testStoredValueSets.)
		def, ok := fhir.LookupSearchParam("Encounter", "class")
		if !ok {
			t.Fatal("Encounter has no class parameter")
		}
		for _, mod := range []search.Modifier{search.ModBelow, search.ModAbove} {
			q := &search.Query{Types: []string{"Encounter"}, Clauses: []search.Clause{{Param: def, Code: "class", Type: def.Type, Modifier: mod,
				Values: []search.Value{{Raw: actCode + "|IMP", System: actCode, HasSystem: true, Code: "IMP"}}}}}
			_, err := se.Search(context.Background(), termTenant, q)
			wantKind(t, err, fhir.KindInvalid)
		}
	})
}
