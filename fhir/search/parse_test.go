package search

import (
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/terminology"
)

// describe renders a clause compactly for table tests: chains and _has as
// arrows, then the leaf's code, modifier, target type and values with their
// non-zero fields.
func describe(c *Clause) string {
	switch {
	case c.Has != nil:
		return fmt.Sprintf("_has(%s.%s) %s", c.Has.Type, c.Has.RefParam, describe(&c.Has.Clause))
	case c.Chain != nil:
		return fmt.Sprintf("%s:%s%v -> %s", c.Code, c.TargetType, c.ChainTypes, describe(c.Chain))
	}
	var b strings.Builder
	b.WriteString(c.Code)
	if c.Param == nil || c.Param.Code != c.Code || c.Param.Type != c.Type {
		b.WriteString(" BADPARAM")
	}
	if c.Modifier != ModNone {
		b.WriteString(" :" + string(c.Modifier))
	}
	if c.TargetType != "" {
		b.WriteString(" type=" + c.TargetType)
	}
	if c.Missing != nil {
		fmt.Fprintf(&b, " missing=%v", *c.Missing)
	}
	for _, v := range c.Values {
		b.WriteString(" " + describeValue(v))
	}
	return b.String()
}

func describeValue(v Value) string {
	var fields []string
	rv := reflect.ValueOf(v)
	for i := 0; i < rv.NumField(); i++ {
		f := rv.Field(i)
		if f.IsZero() {
			continue
		}
		name := rv.Type().Field(i).Name
		switch x := f.Interface().(type) {
		case time.Time:
			fields = append(fields, name+"="+x.Format(time.RFC3339Nano))
		case []Value:
			var parts []string
			for _, p := range x {
				parts = append(parts, describeValue(p))
			}
			fields = append(fields, name+"="+strings.Join(parts, "$"))
		case []terminology.CodeSet:
			var sets []string
			for _, cs := range x {
				sets = append(sets, cs.System+"|"+strings.Join(cs.Codes, ","))
			}
			fields = append(fields, name+"="+strings.Join(sets, ";"))
		default:
			fields = append(fields, fmt.Sprintf("%s=%v", name, x))
		}
	}
	return "{" + strings.Join(fields, " ") + "}"
}

func mustQuery(t *testing.T, s string) url.Values {
	t.Helper()
	v, err := url.ParseQuery(s)
	if err != nil {
		t.Fatalf("ParseQuery(%q): %v", s, err)
	}
	return v
}

func opts(ts ...string) Options { return Options{Types: ts} }

// TestParseClauses covers every parameter type with its modifiers,
// prefixes, escapes, chains and _has.
func TestParseClauses(t *testing.T) {
	for _, tc := range []struct {
		opt   Options
		query string
		want  []string // one describe() per clause, in order
	}{
		// string
		{opts("Patient"), "name=Peter", []string{"name {Raw=Peter Str=peter}"}},
		{opts("Patient"), "name=Jos%C3%A9", []string{"name {Raw=José Str=jose}"}},
		{opts("Patient"), "name:exact=Jos%C3%A9", []string{"name :exact {Raw=José Str=José}"}},
		{opts("Patient"), "name:contains=ETE", []string{"name :contains {Raw=ETE Str=ete}"}},
		{opts("Patient"), "name=a,b&name=c", []string{"name {Raw=a Str=a} {Raw=b Str=b}", "name {Raw=c Str=c}"}},
		{opts("Patient"), `name=a\,b,c\\`, []string{`name {Raw=a,b Str=a,b} {Raw=c\ Str=c\}`}},
		{opts("Patient"), `name=a\|b\$c\x`, []string{`name {Raw=a|b$c\x Str=a|b$c\x}`}},
		{opts("Patient"), "name=,a,,", []string{"name {Raw=a Str=a}"}},
		{opts("Patient"), "name=&name=,", nil},
		{opts("Patient"), "name:missing=true", []string{"name :missing missing=true"}},
		{opts("Patient"), "address-city:missing=false", []string{"address-city :missing missing=false"}},

		// token
		{opts("Observation"), "code=1234-5", []string{"code {Raw=1234-5 Code=1234-5}"}},
		{opts("Observation"), "code=http://loinc.org|1234-5", []string{"code {Raw=http://loinc.org|1234-5 System=http://loinc.org HasSystem=true Code=1234-5}"}},
		{opts("Observation"), "code=|1234-5", []string{"code {Raw=|1234-5 HasSystem=true Code=1234-5}"}},
		{opts("Observation"), "code=http://loinc.org|", []string{"code {Raw=http://loinc.org| System=http://loinc.org HasSystem=true}"}},
		{opts("Observation"), `code=a\|b|c\,d`, []string{`code {Raw=a|b|c,d System=a|b HasSystem=true Code=c,d}`}},
		{opts("Observation"), "code:not=x,y", []string{"code :not {Raw=x Code=x} {Raw=y Code=y}"}},
		{opts("Observation"), "code:text=Bl%C3%BCt", []string{"code :text {Raw=Blüt Str=blut}"}},
		// :in and :not-in: the value set as given, expanded by the store
		// (which knows the stored value sets too); :below and :above:
		// expanded from the spec's terminology.
		{opts("Observation"), "status:in=http://hl7.org/fhir/ValueSet/observation-status|4.0.1", []string{"status :in {Raw=http://hl7.org/fhir/ValueSet/observation-status|4.0.1 URL=http://hl7.org/fhir/ValueSet/observation-status|4.0.1}"}},
		{opts("Encounter"), "class:not-in=http://terminology.hl7.org/ValueSet/v3-ActEncounterCode", []string{"class :not-in {Raw=http://terminology.hl7.org/ValueSet/v3-ActEncounterCode URL=http://terminology.hl7.org/ValueSet/v3-ActEncounterCode}"}},
		{opts("Observation"), "code:in=http://example.org/vs/mine,ValueSet/123", []string{"code :in {Raw=http://example.org/vs/mine URL=http://example.org/vs/mine} {Raw=ValueSet/123 URL=ValueSet/123}"}},
		{opts("Encounter"), "class:below=http://terminology.hl7.org/CodeSystem/v3-ActCode|IMP", []string{"class :below {Raw=http://terminology.hl7.org/CodeSystem/v3-ActCode|IMP System=http://terminology.hl7.org/CodeSystem/v3-ActCode HasSystem=true Code=IMP " +
			"Expansion=http://terminology.hl7.org/CodeSystem/v3-ActCode|ACUTE,IMP,NONAC}"}},
		{opts("Encounter"), "class:above=http://terminology.hl7.org/CodeSystem/v3-ActCode|ACUTE", []string{"class :above {Raw=http://terminology.hl7.org/CodeSystem/v3-ActCode|ACUTE System=http://terminology.hl7.org/CodeSystem/v3-ActCode HasSystem=true Code=ACUTE " +
			"Expansion=http://terminology.hl7.org/CodeSystem/v3-ActCode|ACUTE,IMP,_ActCareProvisionCode,_ActEncounterCode}"}},
		{opts("Patient"), "gender:below=http://hl7.org/fhir/administrative-gender|male", []string{"gender :below {Raw=http://hl7.org/fhir/administrative-gender|male System=http://hl7.org/fhir/administrative-gender HasSystem=true Code=male " +
			"Expansion=http://hl7.org/fhir/administrative-gender|male}"}},
		{opts("Patient"), "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|446053",
			[]string{"identifier :of-type {Raw=http://terminology.hl7.org/CodeSystem/v2-0203|MR|446053 Code=446053 TypeSystem=http://terminology.hl7.org/CodeSystem/v2-0203 TypeCode=MR}"}},
		{opts("Patient"), "gender=male&active=true", []string{"active {Raw=true Code=true}", "gender {Raw=male Code=male}"}},
		{opts("Patient"), "telecom=phone|555", []string{"telecom {Raw=phone|555 System=phone HasSystem=true Code=555}"}},
		{opts("Patient"), "_id=a1,b-2.3", []string{"_id {Raw=a1 Code=a1} {Raw=b-2.3 Code=b-2.3}"}},
		{opts("Patient"), "_id:not=a1", []string{"_id :not {Raw=a1 Code=a1}"}},
		{opts("Patient"), "_tag=http://acme.org/tags|t1&_security=|R", []string{
			"_security {Raw=|R HasSystem=true Code=R}",
			"_tag {Raw=http://acme.org/tags|t1 System=http://acme.org/tags HasSystem=true Code=t1}"}},

		// reference
		{opts("Observation"), "subject=Patient/123", []string{"subject {Raw=Patient/123 RefType=Patient RefID=123}"}},
		{opts("Observation"), "subject=123", []string{"subject {Raw=123 RefID=123}"}},
		{opts("Observation"), "subject:Patient=123", []string{"subject type=Patient {Raw=123 RefType=Patient RefID=123}"}},
		{opts("Observation"), "subject:Patient=Patient/123", []string{"subject type=Patient {Raw=Patient/123 RefType=Patient RefID=123}"}},
		{opts("Observation"), "subject=Patient/123/_history/4", []string{"subject {Raw=Patient/123/_history/4 RefType=Patient RefID=123 RefVersion=4}"}},
		{opts("Observation"), "subject=http://other.org/fhir/Patient/123", []string{"subject {Raw=http://other.org/fhir/Patient/123 RefType=Patient RefID=123 URL=http://other.org/fhir/Patient/123}"}},
		{opts("Observation"), "subject=http://other.org/fhir/Patient/123/_history/2", []string{"subject {Raw=http://other.org/fhir/Patient/123/_history/2 RefType=Patient RefID=123 RefVersion=2 URL=http://other.org/fhir/Patient/123/_history/2}"}},
		{opts("Observation"), "subject=urn:uuid:8a3b3f5e-2bd4-4d24-9a7c-0f3b1e0e4a11", []string{"subject {Raw=urn:uuid:8a3b3f5e-2bd4-4d24-9a7c-0f3b1e0e4a11 URL=urn:uuid:8a3b3f5e-2bd4-4d24-9a7c-0f3b1e0e4a11}"}},
		{opts("Observation"), "subject=http://other.org/somewhere", []string{"subject {Raw=http://other.org/somewhere URL=http://other.org/somewhere}"}},
		{Options{Types: []string{"Observation"}, Base: "http://localhost:8080/fhir/"}, "subject=http://localhost:8080/fhir/Patient/123",
			[]string{"subject {Raw=http://localhost:8080/fhir/Patient/123 RefType=Patient RefID=123}"}},
		{opts("QuestionnaireResponse"), "questionnaire=http://acme.org/Questionnaire/q1|2.0",
			[]string{"questionnaire {Raw=http://acme.org/Questionnaire/q1|2.0 RefType=Questionnaire RefID=q1 RefVersion=2.0 URL=http://acme.org/Questionnaire/q1}"}},
		{opts("Observation"), "subject:identifier=http://acme.org/mrn|123", []string{"subject :identifier {Raw=http://acme.org/mrn|123 System=http://acme.org/mrn HasSystem=true Code=123}"}},
		{opts("Observation"), "subject:missing=true", []string{"subject :missing missing=true"}},

		// date
		{opts("Patient"), "birthdate=2020", []string{"birthdate {Raw=2020 Prefix=eq Low=2020-01-01T00:00:00Z High=2021-01-01T00:00:00Z}"}},
		{opts("Patient"), "birthdate=eq2020-02", []string{"birthdate {Raw=eq2020-02 Prefix=eq Low=2020-02-01T00:00:00Z High=2020-03-01T00:00:00Z}"}},
		{opts("Patient"), "birthdate=ne2020-02-29", []string{"birthdate {Raw=ne2020-02-29 Prefix=ne Low=2020-02-29T00:00:00Z High=2020-03-01T00:00:00Z}"}},
		{opts("Observation"), "date=gt2020-03-01T10:00", []string{"date {Raw=gt2020-03-01T10:00 Prefix=gt Low=2020-03-01T10:00:00Z High=2020-03-01T10:01:00Z}"}},
		{opts("Observation"), "date=lt2020-03-01T10:00:30Z", []string{"date {Raw=lt2020-03-01T10:00:30Z Prefix=lt Low=2020-03-01T10:00:30Z High=2020-03-01T10:00:31Z}"}},
		{opts("Observation"), "date=ge2020-03-01T10:00:30.25%2B02:00", []string{"date {Raw=ge2020-03-01T10:00:30.25+02:00 Prefix=ge Low=2020-03-01T08:00:30.25Z High=2020-03-01T08:00:30.26Z}"}},
		{opts("Observation"), "date=le2020-03-01T00:00:00-05:00", []string{"date {Raw=le2020-03-01T00:00:00-05:00 Prefix=le Low=2020-03-01T05:00:00Z High=2020-03-01T05:00:01Z}"}},
		{opts("Observation"), "date=sa2020&date=eb2021", []string{
			"date {Raw=sa2020 Prefix=sa Low=2020-01-01T00:00:00Z High=2021-01-01T00:00:00Z}",
			"date {Raw=eb2021 Prefix=eb Low=2021-01-01T00:00:00Z High=2022-01-01T00:00:00Z}"}},
		{opts("Observation"), "date=ap2020-06-15,2021", []string{
			"date {Raw=ap2020-06-15 Prefix=ap Low=2020-06-15T00:00:00Z High=2020-06-16T00:00:00Z} {Raw=2021 Prefix=eq Low=2021-01-01T00:00:00Z High=2022-01-01T00:00:00Z}"}},
		{opts("Patient"), "_lastUpdated=ge2024-01-01T00:00:00Z", []string{"_lastUpdated {Raw=ge2024-01-01T00:00:00Z Prefix=ge Low=2024-01-01T00:00:00Z High=2024-01-01T00:00:01Z}"}},

		// number
		{opts("RiskAssessment"), "probability=100", []string{"probability {Raw=100 Prefix=eq Number=100 NumLow=99.5 NumHigh=100.5}"}},
		{opts("RiskAssessment"), "probability=gt0.8", []string{"probability {Raw=gt0.8 Prefix=gt Number=0.8 NumLow=0.75 NumHigh=0.85}"}},
		{opts("RiskAssessment"), "probability=1e2", []string{"probability {Raw=1e2 Prefix=eq Number=1e2 NumLow=50 NumHigh=150}"}},
		{opts("RiskAssessment"), "probability=le-1.50", []string{"probability {Raw=le-1.50 Prefix=le Number=-1.50 NumLow=-1.505 NumHigh=-1.495}"}},
		{opts("RiskAssessment"), "probability=ap1.5E-3", []string{"probability {Raw=ap1.5E-3 Prefix=ap Number=1.5E-3 NumLow=0.00145 NumHigh=0.00155}"}},

		// quantity
		{opts("Observation"), "value-quantity=5.4", []string{"value-quantity {Raw=5.4 Prefix=eq Number=5.4 NumLow=5.35 NumHigh=5.45}"}},
		{opts("Observation"), "value-quantity=le5.4|http://unitsofmeasure.org|mg",
			[]string{"value-quantity {Raw=le5.4|http://unitsofmeasure.org|mg Prefix=le Number=5.4 NumLow=5.35 NumHigh=5.45 UnitSystem=http://unitsofmeasure.org UnitCode=mg}"}},
		{opts("Observation"), "value-quantity=5.4||mg", []string{"value-quantity {Raw=5.4||mg Prefix=eq Number=5.4 NumLow=5.35 NumHigh=5.45 UnitCode=mg}"}},
		{opts("Observation"), "value-quantity=gt5|http://unitsofmeasure.org|", []string{"value-quantity {Raw=gt5|http://unitsofmeasure.org| Prefix=gt Number=5 NumLow=4.5 NumHigh=5.5 UnitSystem=http://unitsofmeasure.org}"}},

		// uri
		{opts("ValueSet"), "url=http://acme.org/fhir/ValueSet/123", []string{"url {Raw=http://acme.org/fhir/ValueSet/123 Str=http://acme.org/fhir/ValueSet/123}"}},
		{opts("ValueSet"), "url:below=http://acme.org/fhir/", []string{"url :below {Raw=http://acme.org/fhir/ Str=http://acme.org/fhir/}"}},
		{opts("ValueSet"), "url:above=http://acme.org/fhir/ValueSet/123/_history/5", []string{"url :above {Raw=http://acme.org/fhir/ValueSet/123/_history/5 Str=http://acme.org/fhir/ValueSet/123/_history/5}"}},
		{opts("Patient"), "_profile=http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient&_source=http://acme.org/src",
			[]string{"_profile {Raw=http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient Str=http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient}",
				"_source {Raw=http://acme.org/src Str=http://acme.org/src}"}},

		// composite
		{opts("Observation"), "code-value-quantity=http://loinc.org|8480-6$lt60",
			[]string{"code-value-quantity {Raw=http://loinc.org|8480-6$lt60 Parts={Raw=http://loinc.org|8480-6 System=http://loinc.org HasSystem=true Code=8480-6}${Raw=lt60 Prefix=lt Number=60 NumLow=59.5 NumHigh=60.5}}"}},
		{opts("Observation"), "code-value-quantity=8480-6$gt5.4|http://unitsofmeasure.org|mm[Hg]",
			[]string{"code-value-quantity {Raw=8480-6$gt5.4|http://unitsofmeasure.org|mm[Hg] Parts={Raw=8480-6 Code=8480-6}${Raw=gt5.4|http://unitsofmeasure.org|mm[Hg] Prefix=gt Number=5.4 NumLow=5.35 NumHigh=5.45 UnitSystem=http://unitsofmeasure.org UnitCode=mm[Hg]}}"}},
		{opts("Observation"), `code-value-string=a\$b$Hello`,
			[]string{"code-value-string {Raw=a$b$Hello Parts={Raw=a$b Code=a$b}${Raw=Hello Str=hello}}"}},
		{opts("Observation"), "code-value-date=1234$ge2020", []string{
			"code-value-date {Raw=1234$ge2020 Parts={Raw=1234 Code=1234}${Raw=ge2020 Prefix=ge Low=2020-01-01T00:00:00Z High=2021-01-01T00:00:00Z}}"}},
		{opts("Observation"), "code-value-quantity:missing=true", []string{"code-value-quantity :missing missing=true"}},

		// special
		{opts("Location"), "near=42.256500|-83.694810|11.20|km", []string{"near {Raw=42.256500|-83.694810|11.20|km Number=11.20 NumLow=11.195 NumHigh=11.205 UnitCode=km Latitude=42.256500 Longitude=-83.694810}"}},
		{opts("Location"), "near=42.2565|-83.6948|5", []string{"near {Raw=42.2565|-83.6948|5 Number=5 NumLow=4.5 NumHigh=5.5 UnitCode=km Latitude=42.2565 Longitude=-83.6948}"}},
		{opts("Location"), "near=42.2565|-83.6948", []string{"near {Raw=42.2565|-83.6948 Latitude=42.2565 Longitude=-83.6948}"}},

		// chains
		{opts("Observation"), "subject:Patient.name=peter", []string{"subject:Patient[Patient] -> name {Raw=peter Str=peter}"}},
		{opts("Observation"), "subject.name=peter", []string{"subject:[Location Patient] -> name {Raw=peter Str=peter}"}},
		{opts("Observation"), "subject.birthdate=ge2000", []string{"subject:[Patient] -> birthdate {Raw=ge2000 Prefix=ge Low=2000-01-01T00:00:00Z High=2001-01-01T00:00:00Z}"}},
		{opts("Observation"), "subject._id=1", []string{"subject:[Device Group Location Patient] -> _id {Raw=1 Code=1}"}},
		{opts("Observation"), "subject:Patient.organization.name:exact=Acme", []string{"subject:Patient[Patient] -> organization:[Organization] -> name :exact {Raw=Acme Str=Acme}"}},
		{opts("Observation"), "subject:Patient.general-practitioner:Practitioner.identifier=http://npi|1", []string{
			"subject:Patient[Patient] -> general-practitioner:Practitioner[Practitioner] -> identifier {Raw=http://npi|1 System=http://npi HasSystem=true Code=1}"}},
		{opts("Observation"), "subject:Patient.name:missing=true", []string{"subject:Patient[Patient] -> name :missing missing=true"}},
		{opts("Observation"), "subject:Patient.organization=Organization/1", []string{"subject:Patient[Patient] -> organization {Raw=Organization/1 RefType=Organization RefID=1}"}},
		{opts("Encounter"), "patient._has:Group:member:_id=102", []string{"patient:[Group Patient] -> _has(Group.member) _id {Raw=102 Code=102}"}},

		// _has
		{opts("Patient"), "_has:Observation:patient:code=1234", []string{"_has(Observation.patient) code {Raw=1234 Code=1234}"}},
		{opts("Patient"), "_has:Observation:patient:code:text=bp", []string{"_has(Observation.patient) code :text {Raw=bp Str=bp}"}},
		{opts("Patient"), "_has:Observation:patient:_has:AuditEvent:entity:agent=Practitioner/1",
			[]string{"_has(Observation.patient) _has(AuditEvent.entity) agent {Raw=Practitioner/1 RefType=Practitioner RefID=1}"}},
		{opts("Patient"), "_has:Observation:subject:performer.name=x",
			[]string{"_has(Observation.subject) performer:[Organization Patient Practitioner RelatedPerson] -> name {Raw=x Str=x}"}},
		{opts("Patient"), "_list=42,43", []string{"_has(List.item) _id {Raw=42 Code=42} {Raw=43 Code=43}"}},

		// full text, when the store has it
		{Options{Types: []string{"Patient"}, FullText: true}, "_text=cough&_content=Smith", []string{"_content {Raw=Smith Str=smith}", "_text {Raw=cough Str=cough}"}},

		// several types: a parameter they all have
		{opts("Observation", "Condition"), "code=1&patient=Patient/1", []string{"code {Raw=1 Code=1}", "patient {Raw=Patient/1 RefType=Patient RefID=1}"}},
		{Options{}, "_id=1&_lastUpdated=2020&_tag=x", []string{
			"_id {Raw=1 Code=1}",
			"_lastUpdated {Raw=2020 Prefix=eq Low=2020-01-01T00:00:00Z High=2021-01-01T00:00:00Z}",
			"_tag {Raw=x Code=x}"}},
		{Options{}, "_type=Observation,Condition&code=1", []string{"code {Raw=1 Code=1}"}},
	} {
		t.Run(tc.query, func(t *testing.T) {
			q, err := Parse(mustQuery(t, tc.query), tc.opt)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(q.Unknown) > 0 {
				t.Errorf("Unknown: %v", q.Unknown)
			}
			var got []string
			for i := range q.Clauses {
				got = append(got, describe(&q.Clauses[i]))
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("clauses:\n got %q\nwant %q", got, tc.want)
			}
			checkRoundTrip(t, q, tc.opt)
		})
	}
}

// checkRoundTrip parses q's canonical parameters again and expects the
// same canonical parameters.
func checkRoundTrip(t *testing.T, q *Query, opt Options) {
	t.Helper()
	enc := q.Params()
	q2, err := Parse(enc, opt)
	if err != nil {
		t.Fatalf("Parse(Params() = %s): %v", q.String(), err)
	}
	if got, want := q2.String(), q.String(); got != want {
		t.Errorf("round trip:\n got %s\nwant %s", got, want)
	}
	if len(q2.Clauses) != len(q.Clauses) {
		t.Errorf("round trip: %d clauses, want %d", len(q2.Clauses), len(q.Clauses))
	}
	for i := range q.Clauses {
		if i < len(q2.Clauses) {
			if a, b := describe(&q.Clauses[i]), describe(&q2.Clauses[i]); stripRaw(a) != stripRaw(b) {
				t.Errorf("round trip clause %d:\n got %s\nwant %s", i, b, a)
			}
		}
	}
}

// stripRaw drops the Raw fields, which keep the request's spelling.
func stripRaw(s string) string {
	var b strings.Builder
	for _, f := range strings.Split(s, " ") {
		if strings.HasPrefix(f, "{Raw=") {
			b.WriteString("{")
			continue
		}
		if strings.HasPrefix(f, "Parts=") {
			f = "Parts=" + stripRaw(strings.ReplaceAll(strings.TrimPrefix(f, "Parts="), "${Raw=", "$ {Raw="))
		}
		if strings.HasPrefix(f, "Raw=") {
			continue
		}
		b.WriteString(f + " ")
	}
	return b.String()
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		opt   Options
		query string
		want  string // in the message, after the parameter's name
	}{
		// modifiers
		{opts("Patient"), "name:text=x", "modifier :text is not valid for name, a string parameter"},
		{opts("Patient"), "name:not=x", "modifier :not is not valid"},
		{opts("Patient"), "birthdate:exact=2020", "modifier :exact is not valid for birthdate, a date parameter"},
		{opts("Observation"), "code:exact=x", "modifier :exact is not valid for code, a token parameter"},
		{opts("Observation"), "subject:text=x", "modifier :text is not valid for subject, a reference parameter"},
		{opts("Observation"), "subject:Medication=1", "Medication is not a target type of subject"},
		{opts("Observation"), "value-quantity:above=5", "modifier :above is not valid"},
		{opts("ValueSet"), "url:contains=x", "modifier :contains is not valid"},
		{opts("Patient"), "_id:text=x", "modifier :text is not valid for _id"},
		{opts("Patient"), "name:=x", "empty modifier"},
		{opts("Patient"), "name:missing=yes", ":missing takes true or false"},
		{opts("Patient"), "name:missing=true,false", ":missing takes true or false"},
		// token
		{opts("Observation"), "code=a|b|c", "is not [system|]code"},
		{opts("Observation"), "code=|", "has neither a system nor a code"},
		{opts("Patient"), "identifier:of-type=a|b", ":of-type takes type-system|type-code|value"},
		{opts("Patient"), "identifier:of-type=a||c", ":of-type takes type-system|type-code|value"},
		{opts("Patient"), "_id=a%20b", `"a b" is not a resource id`},
		{opts("Patient"), "_id=x|1", "is not a resource id"},
		{opts("Encounter"), "class:below=IMP", ":below takes system|code (a code of a code system whose hierarchy is known), not \"IMP\""},
		{opts("Encounter"), "class:above=|IMP", ":above takes system|code"},
		{opts("Encounter"), "class:above=http://terminology.hl7.org/CodeSystem/v3-ActCode|", ":above takes system|code"},
		{opts("Encounter"), "class:below=http://terminology.hl7.org/CodeSystem/v3-ActCode|imp", `code system http://terminology.hl7.org/CodeSystem/v3-ActCode has no code "imp"`},
		// reference
		{opts("Observation"), "subject=Foo/1", "is not a reference"},
		{opts("Observation"), "subject=Patient/1/2", "is not a reference"},
		{opts("Observation"), "subject=a%20b", "is not a reference"},
		{opts("Observation"), "subject=Medication/1", "Medication is not a target type of this parameter"},
		{opts("Observation"), "subject:Patient=Group/1", "is not a Patient reference"},
		{opts("Observation"), "subject=Patient/1|2", "a |version follows an absolute canonical URL"},
		{opts("Observation"), "subject=http://x/y|1|2", "has more than one |"},
		// date
		{opts("Patient"), "birthdate=2020-13", `"2020-13" is not a date`},
		{opts("Patient"), "birthdate=2019-02-29", "is not a date"},
		{opts("Patient"), "birthdate=20", "is not a date"},
		{opts("Patient"), "birthdate=2020-01-01T10", "is not a date"},
		{opts("Patient"), "birthdate=2020-01-01T25:00", "is not a date"},
		{opts("Observation"), "date=2020-01-01T10:00:00+02:00", "a + in a time zone must be sent as %2B"},
		{opts("Patient"), "birthdate=xx2020", `unknown prefix "xx"`},
		{opts("Patient"), "birthdate=gt", "is not a date"},
		// number and quantity
		{opts("RiskAssessment"), "probability=abc", `unknown prefix "ab"`},
		{opts("RiskAssessment"), "probability=1.", "is not a number"},
		{opts("RiskAssessment"), "probability=0x10", "is not a number"},
		{opts("RiskAssessment"), "probability=gt", "is not a number"},
		{opts("Observation"), "value-quantity=5.4|mg", "is not a quantity: number, number|system|code or number||code"},
		{opts("Observation"), "value-quantity=5.4|a|b|c", "is not a quantity"},
		{opts("Observation"), "value-quantity=five||mg", "unknown prefix"},
		{opts("Observation"), "value-quantity=||mg", "is not a quantity"},
		// composite and special
		{opts("Observation"), "code-value-quantity=1234", "a value has 2 parts separated by $ (code$value-quantity)"},
		{opts("Observation"), "code-value-quantity=1$2$3", "a value has 2 parts"},
		{opts("Observation"), "code-value-quantity=1234$", "the value-quantity part is empty"},
		{opts("Observation"), "code-value-quantity=1234$abc", "unknown prefix"},
		{opts("Observation"), "code-value-quantity=1$2,3$4", "takes one value at a time (multipleOr is false)"},
		{opts("Observation"), "code-value-quantity:exact=1$2", "modifier :exact is not valid"},
		{opts("Location"), "near=1", "is not latitude|longitude"},
		{opts("Location"), "near=91|0", "is not latitude|longitude"},
		{opts("Location"), "near=0|181", "is not latitude|longitude"},
		{opts("Location"), "near=1|2|-3", "the distance is negative"},
		{opts("Location"), "near=1|2||km", "a unit needs a distance"},
		{opts("Location"), "near=1|2|x|km", "is not a distance"},
		// chains
		{opts("Observation"), "code.name=x", "code is a token parameter: only reference parameters can be chained"},
		{opts("Observation"), "subject.foo=x", "no target type of subject (Device, Group, Location, Patient) has a search parameter foo"},
		{opts("Observation"), "subject:Patient.foo=x", "Patient has no search parameter foo"},
		{opts("Observation"), "subject:Organization.name=x", "Organization is not a target type of subject"},
		{opts("Observation"), "subject:identifier.name=x", "a chain takes a resource type modifier"},
		{opts("Observation"), "subject.=x", "nothing after subject."},
		{opts("Observation"), "subject:Patient.name:foo=x", "modifier :foo is not valid for name"},
		{opts("Observation"), "subject:Patient.birthdate=x", "is not a date"},
		{opts("RequestGroup"), "instantiates-canonical.name=x", "instantiates-canonical names no target types"},
		// _has
		{opts("Patient"), "_has:Observation:patient=1", "_has needs the form _has:Type:reference-parameter:parameter"},
		{opts("Patient"), "_has=1", "_has needs the form"},
		{opts("Patient"), "_has:Foo:patient:code=1", `_has: "Foo" is not a resource type`},
		{opts("Patient"), "_has:Observation:code:code=1", "_has: Observation has no reference parameter code"},
		{opts("Patient"), "_has:Observation:foo:code=1", "_has: Observation has no reference parameter foo"},
		{opts("Organization"), "_has:Observation:patient:code=1", "_has: Observation.patient does not refer to Organization"},
		{opts("Patient"), "_has:Observation:patient:foo=1", "Observation has no search parameter foo"},
		{opts("Patient"), "_has:Observation:patient:code:exact=1", "modifier :exact is not valid for code"},
		{opts("Patient"), "_list=a%20b", `"a b" is not a List id`},
		// several types
		{opts("Patient", "Practitioner"), "name=x&phonetic=y&address-use=z&gender=w&family:exact=a&_id=b", ""},
		// result parameters
		{opts("Patient"), "_count=-1", `"-1" is not a count`},
		{opts("Patient"), "_count=ten", "is not a count"},
		{opts("Patient"), "_count=1&_count=2", "given 2 times"},
		{opts("Patient"), "_count:x=1", "no modifier :x on _count"},
		{opts("Patient"), "_sort:asc=name", "no modifier :asc on _sort"},
		{opts("Patient"), "_sort=-", "a sort key is a parameter name"},
		{opts("Observation"), "_sort=code-value-quantity", "cannot sort by code-value-quantity, a composite parameter"},
		{opts("Location"), "_sort=near", "cannot sort by near, a special parameter"},
		{opts("Patient"), "_total=all", `"all" is not none, estimate or accurate`},
		{opts("Patient"), "_summary=yes", `"yes" is not true, text, data, count or false`},
		{opts("Patient"), "_elements=name.family", `"name.family" is not a top-level element name`},
		{opts("Patient"), "_elements=na-me", "is not a top-level element name"},
		{opts("Patient"), "_include=Patient", "is not Type:parameter[:TargetType] or *"},
		{opts("Patient"), "_include=Patient:a:b:c", "is not Type:parameter[:TargetType] or *"},
		{opts("Patient"), "_include=Foo:bar", `"Foo" is not a resource type`},
		{opts("Patient"), "_include=Patient:name", "Patient has no reference parameter name"},
		{opts("Patient"), "_include=Patient:nope", "Patient has no reference parameter nope"},
		{opts("Patient"), "_include=Patient:organization:Patient", "Patient is not a target type of Patient:organization"},
		{opts("Patient"), "_include=Patient:organization:Foo", `"Foo" is not a resource type`},
		{opts("Patient"), "_include:foo=Patient:organization", "no modifier :foo on _include"},
		{opts("Patient"), "_revinclude=Observation:code", "Observation has no reference parameter code"},
		{opts("Patient"), "_contained=maybe", `"maybe" is not true, false or both`},
		{opts("Patient"), "_containedType=x", `"x" is not container or contained`},
		{opts("Patient"), "_type=Patient&_type=Observation", "give it once"},
		// types and compartments
		{opts("Patient"), "_type=Foo", `"Foo" is not a resource type`},
		{opts("Patient"), "_type=Observation", "Observation is not among the searched types (Patient)"},
		{opts("Foo"), "", `"Foo" is not a resource type`},
		{Options{Types: []string{"Practitioner"}, Compartment: &Compartment{Type: "Patient", ID: "1"}}, "", "Practitioner is not in the Patient compartment"},
		{Options{Compartment: &Compartment{Type: "Observation", ID: "1"}}, "", "Observation is not a compartment"},
		{Options{Compartment: &Compartment{Type: "Patient", ID: "a b"}}, "", `compartment Patient: "a b" is not a valid id`},
		{Options{Compartment: &Compartment{Type: "Patient", ID: "1"}}, "_type=Observation,Practitioner", "Practitioner is not in the Patient compartment"},
		{opts("Observation", "Patient"), "date=2020", ""},
		{opts("Device", "Immunization"), "manufacturer=x", "manufacturer is a string parameter of Device but a reference parameter of Immunization; search the types one at a time"},
		{Options{}, "_type=AuditEvent,DocumentManifest&source=x", "source is a reference parameter of AuditEvent but a uri parameter of DocumentManifest"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			q, err := Parse(mustQuery(t, tc.query), tc.opt)
			if tc.want == "" { // valid, for contrast with a neighbour
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error; got %s, unknown %v", q.String(), q.Unknown)
			}
			var fe *fhir.Error
			if !errors.As(err, &fe) || fe.Kind != fhir.KindInvalid {
				t.Fatalf("error %v is not a fhir.Error of kind invalid", err)
			}
			if !strings.Contains(fe.Message, tc.want) {
				t.Errorf("message %q does not contain %q", fe.Message, tc.want)
			}
			if key, _, _ := strings.Cut(tc.query, "="); tc.query != "" && !strings.Contains(fe.Message, "search parameter "+key+": ") &&
				!strings.Contains(tc.query, "&") && !strings.HasPrefix(tc.query, "_type") {
				t.Errorf("message %q does not name the parameter %s", fe.Message, key)
			}
		})
	}
}

// An unknown or unsupported parameter is an Issue in lenient mode and an
// error in strict mode; the rest of the query still applies.
func TestUnknownLenientAndStrict(t *testing.T) {
	for _, tc := range []struct {
		opt   Options
		query string
		issue string
	}{
		{opts("Patient"), "foo=bar", "Patient has no search parameter foo"},
		{opts("Patient"), "_foo=bar", "Patient has no search parameter _foo"},
		{opts("Patient"), "code=1", "Patient has no search parameter code"},
		{opts("Patient"), "foo.bar=1", "Patient has no search parameter foo"},
		{opts("Observation", "Patient"), "code=1", "Patient has no search parameter code (over several types, a parameter must be defined on each)"},
		{Options{}, "name=x", "name is not a parameter of every resource type; name the types with _type"},
		{Options{Compartment: &Compartment{Type: "Patient", ID: "1"}}, "code=x", "code is not a parameter of every type in the Patient compartment (Account has none); name the types with _type"},
		{opts("Patient"), "_text=x", "full-text search (_text) is not supported"},
		{opts("Patient"), "_content=x", "full-text search (_content) is not supported"},
		{opts("Patient"), "_query=everything", "named queries (_query) are not supported"},
		{opts("Patient"), "_filter=name eq x", "_filter is not supported"},
		{opts("Patient"), "_list=$current-allergies", "functional lists ($current-allergies) are not supported"},
		{opts("Patient"), "_contained=true", "searching contained resources (_contained=true) is not supported"},
		{opts("Patient"), "_containedType=contained", "returning contained resources (_containedType=contained) is not supported"},
		{opts("Patient"), "_sort=foo", "cannot sort by foo: Patient has no search parameter foo"},
		{opts("Patient"), "_elements=foo", "Patient has no element foo"},
		{opts("Patient"), "_elements=Observation.code", "Observation is not a searched type"},
		{opts("Patient"), "_include=Observation:subject", "Observation is not a searched type, so Observation:subject includes nothing (:iterate follows included resources)"},
		{opts("Patient"), "_revinclude=Observation:performer:Practitioner", "Observation:performer does not refer to the searched types, so it includes nothing"},
		{opts("Organization"), "_revinclude=Observation:patient", "Observation:patient does not refer to the searched types, so it includes nothing"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			params := mustQuery(t, tc.query+"&_id=1")
			q, err := Parse(params, tc.opt)
			if err != nil {
				t.Fatalf("lenient: %v", err)
			}
			key, _, _ := strings.Cut(tc.query, "=")
			want := []Issue{{Param: key, Message: tc.issue}}
			if !reflect.DeepEqual(q.Unknown, want) {
				t.Errorf("Unknown = %q, want %q", q.Unknown, want)
			}
			if len(q.Clauses) != 1 || q.Clauses[0].Code != "_id" {
				t.Errorf("the other clause is lost: %s", q.String())
			}
			if strings.Contains(q.String(), key) && key != "_id" {
				t.Errorf("canonical parameters show the ignored %s: %s", key, q.String())
			}
			strict := tc.opt
			strict.Strict = true
			_, err = Parse(params, strict)
			if err == nil || fhir.KindOf(err) != fhir.KindInvalid || !strings.Contains(err.Error(), key+": "+tc.issue) {
				t.Errorf("strict: error %v, want one naming %s: %s", err, key, tc.issue)
			}
		})
	}
}

func TestResultParameters(t *testing.T) {
	name, _ := fhir.LookupSearchParam("Patient", "name")
	birthdate, _ := fhir.LookupSearchParam("Patient", "birthdate")
	for _, tc := range []struct {
		opt   Options
		query string
		check func(*Query) bool
	}{
		{opts("Patient"), "_count=10", func(q *Query) bool { return q.Count == 10 && q.Summary == SummaryNone }},
		{opts("Patient"), "_count=0", func(q *Query) bool { return q.Count == 0 && q.Summary == SummaryCount }},
		{opts("Patient"), "_count=0&_summary=data", func(q *Query) bool { return q.Count == 0 && q.Summary == SummaryCount }},
		{Options{Types: []string{"Patient"}, MaxCount: 100}, "_count=1000", func(q *Query) bool { return q.Count == 100 }},
		{Options{Types: []string{"Patient"}, MaxCount: 100}, "_count=99999999999999999999999", func(q *Query) bool { return q.Count == 100 }},
		{Options{Types: []string{"Patient"}, DefaultCount: 20, MaxCount: 100}, "", func(q *Query) bool { return q.Count == 20 }},
		{Options{Types: []string{"Patient"}, DefaultCount: 20, MaxCount: 100}, "_count=5", func(q *Query) bool { return q.Count == 5 }},
		{Options{Types: []string{"Patient"}, DefaultCount: 200, MaxCount: 100}, "", func(q *Query) bool { return q.Count == 100 }},
		{Options{Types: []string{"Patient"}, DefaultCount: 20}, "_count=0", func(q *Query) bool { return q.Count == 0 && q.Summary == SummaryCount }},
		{Options{Types: []string{"Patient"}, DefaultCount: 20}, "_summary=count&_count=5", func(q *Query) bool { return q.Count == 0 && q.Summary == SummaryCount }},
		{opts("Patient"), "_count=", func(q *Query) bool { return q.Count == 0 && q.Summary == SummaryNone }},
		{opts("Patient"), "_sort=-birthdate,name,_id,-_lastUpdated,name", func(q *Query) bool {
			return reflect.DeepEqual(q.Sort, []SortKey{{Param: birthdate, Code: "birthdate", Descending: true}, {Param: name, Code: "name"},
				{Code: "_id"}, {Code: "_lastUpdated", Descending: true}})
		}},
		{opts("Patient"), "_total=accurate", func(q *Query) bool { return q.Total == TotalAccurate }},
		{opts("Patient"), "_total=none", func(q *Query) bool { return q.Total == TotalNone }},
		{opts("Patient"), "_total=estimate", func(q *Query) bool { return q.Total == TotalEstimate }},
		{opts("Patient"), "_summary=true", func(q *Query) bool { return q.Summary == SummaryTrue }},
		{opts("Patient"), "_summary=text", func(q *Query) bool { return q.Summary == SummaryText }},
		{opts("Patient"), "_summary=false", func(q *Query) bool { return q.Summary == SummaryFalse }},
		{opts("Patient"), "_elements=name,Patient.birthDate,name,,id&_elements=meta", func(q *Query) bool {
			return reflect.DeepEqual(q.Elements, []string{"name", "birthDate", "id", "meta"})
		}},
		{opts("Observation"), "_elements=valueQuantity,value,effective", func(q *Query) bool {
			return reflect.DeepEqual(q.Elements, []string{"valueQuantity", "value", "effective"})
		}},
		{Options{}, "_elements=anything", func(q *Query) bool { return reflect.DeepEqual(q.Elements, []string{"anything"}) }},
		{opts("Observation"), "_include=Observation:subject&_include=Observation:subject:Patient&_include:iterate=Patient:general-practitioner&_include=Observation:*&_include=*",
			func(q *Query) bool {
				return reflect.DeepEqual(q.Includes, []Include{
					{Source: "Observation", Param: "subject"}, {Source: "Observation", Param: "subject", TargetType: "Patient"},
					{Source: "Observation", Param: "*"}, {Source: "*", Param: "*"},
					{Source: "Patient", Param: "general-practitioner", Iterate: true}})
			}},
		{opts("Observation"), "_include:recurse=Observation:has-member&_include=Observation:subject&_include=Observation:subject", func(q *Query) bool {
			return reflect.DeepEqual(q.Includes, []Include{{Source: "Observation", Param: "subject"}, {Source: "Observation", Param: "has-member", Iterate: true}})
		}},
		{opts("Patient"), "_revinclude=Observation:subject&_revinclude=Observation:patient:Patient&_revinclude:iterate=Provenance:target&_revinclude=Provenance:*",
			func(q *Query) bool {
				return reflect.DeepEqual(q.RevIncludes, []Include{
					{Source: "Observation", Param: "subject"}, {Source: "Observation", Param: "patient", TargetType: "Patient"},
					{Source: "Provenance", Param: "*"}, {Source: "Provenance", Param: "target", Iterate: true}})
			}},
		{Options{}, "_include=Observation:subject", func(q *Query) bool {
			return len(q.Includes) == 1 && len(q.Unknown) == 0
		}},
		{opts("Patient"), "_contained=false&_containedType=container&_format=json&_pretty=true", func(q *Query) bool {
			return q.String() == "_type=Patient" && len(q.Unknown) == 0
		}},
		{opts("Patient"), "_cursor=abc%3D&name=x", func(q *Query) bool { return q.Cursor == "abc=" && len(q.Clauses) == 1 }},
		{Options{}, "_type=Observation,Condition,Observation", func(q *Query) bool {
			return reflect.DeepEqual(q.Types, []string{"Observation", "Condition"})
		}},
		{Options{}, "_type=,", func(q *Query) bool { return q.Types == nil }},
		{opts("Observation", "Condition"), "_type=Condition", func(q *Query) bool { return reflect.DeepEqual(q.Types, []string{"Condition"}) }},
		{Options{Types: []string{"Patient", "Patient"}}, "", func(q *Query) bool { return reflect.DeepEqual(q.Types, []string{"Patient"}) }},
		{Options{Compartment: &Compartment{Type: "Patient", ID: "123"}}, "_type=Observation,Condition&_lastUpdated=gt2020", func(q *Query) bool {
			return *q.Compartment == Compartment{"Patient", "123"} && reflect.DeepEqual(q.Types, []string{"Observation", "Condition"}) && len(q.Clauses) == 1
		}},
		{Options{Types: []string{"Observation"}, Compartment: &Compartment{Type: "Patient", ID: "123"}}, "code=1", func(q *Query) bool {
			return *q.Compartment == Compartment{"Patient", "123"} && len(q.Clauses) == 1
		}},
		{Options{Compartment: &Compartment{Type: "Patient", ID: "123"}}, "_id=1", func(q *Query) bool { return q.Types == nil && len(q.Clauses) == 1 }},
		{Options{Types: []string{"Practitioner"}, Compartment: &Compartment{Type: "Practitioner", ID: "1"}}, "", func(q *Query) bool { return q.Compartment != nil }},
	} {
		t.Run(tc.query, func(t *testing.T) {
			q, err := Parse(mustQuery(t, tc.query), tc.opt)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !tc.check(q) {
				t.Errorf("unexpected query %s: %+v", q.String(), *q)
			}
			checkRoundTrip(t, q, tc.opt)
		})
	}
}

func TestParams(t *testing.T) {
	for _, tc := range []struct {
		opt         Options
		query, want string
	}{
		{opts("Patient"), "name=Peter&birthdate=eq2020&birthdate=ge2020-01-01T10:00:00%2B01:00",
			"_type=Patient&birthdate=2020&birthdate=ge2020-01-01T10:00:00+01:00&name=Peter"},
		{opts("Observation"), `code=a\|b|c\,d,e&value-quantity=gt5||mg&code-value-quantity=1\$2$5`,
			`_type=Observation&code=a\|b|c\,d,e&code-value-quantity=1\$2$5&value-quantity=gt5||mg`},
		{opts("Observation"), "subject:Patient=1&performer=http://x/y|2&subject:Patient.name:exact=A&_has:Provenance:target:agent:missing=true",
			"_has:Provenance:target:agent:missing=true&_type=Observation&performer=http://x/y|2&subject:Patient=Patient/1&subject:Patient.name:exact=A"},
		{opts("Patient"), "_list=1&_sort=-name&_count=5&_total=none&_summary=data&_elements=Patient.name&_include=Patient:organization&_revinclude:recurse=Observation:subject&_cursor=c",
			"_count=5&_cursor=c&_elements=name&_has:List:item:_id=1&_include=Patient:organization&_revinclude:iterate=Observation:subject&_sort=-name&_summary=data&_total=none&_type=Patient"},
		{opts("Location"), "near=1|2|3", "_type=Location&near=1|2|3|km"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			q, err := Parse(mustQuery(t, tc.query), tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			got, err := url.QueryUnescape(q.String())
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("String:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestEscaping(t *testing.T) {
	for _, tc := range []struct {
		in   string
		sep  byte
		want []string
	}{
		{"a,b", ',', []string{"a", "b"}},
		{`a\,b,c`, ',', []string{`a\,b`, "c"}},
		{`a\\,b`, ',', []string{`a\\`, "b"}},
		{`a\\\,b`, ',', []string{`a\\\,b`}},
		{`a|b\|c|`, '|', []string{"a", `b\|c`, ""}},
		{`x\`, ',', []string{`x\`}},
	} {
		if got := splitEscaped(tc.in, tc.sep); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("splitEscaped(%q, %q) = %q, want %q", tc.in, tc.sep, got, tc.want)
		}
	}
	for in, want := range map[string]string{`a\,b`: "a,b", `a\\b`: `a\b`, `\$\|`: "$|", `a\b`: `a\b`, `x\`: `x\`} {
		if got := unescape(in); got != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
		if got := unescape(escape(want)); got != want {
			t.Errorf("unescape(escape(%q)) = %q", want, got)
		}
	}
}

func TestUnknownReportedOnce(t *testing.T) {
	q, err := Parse(mustQuery(t, "foo=1&foo=2&bar=3"), opts("Patient"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Issue{{"bar", "Patient has no search parameter bar"}, {"foo", "Patient has no search parameter foo"}}
	if !reflect.DeepEqual(q.Unknown, want) {
		t.Errorf("Unknown = %q, want %q", q.Unknown, want)
	}
}

// A code system that needs an outside terminology is an error in lenient
// mode too: ignoring the parameter would widen the search, and an empty
// result would be a wrong answer. (The value sets of :in and :not-in are
// the store's to expand, and its errors are errors in any mode.)
func TestTerminologyNotAtHand(t *testing.T) {
	for _, tc := range []struct {
		typ, query, want string
	}{
		{"Observation", "code:below=http://loinc.org|13457-7", "search parameter code:below: the concepts of code system http://loinc.org are not known here"},
		{"Observation", "code:above=http://snomed.info/sct|3738000", "the concepts of code system http://snomed.info/sct are not known here"},
	} {
		for _, strict := range []bool{false, true} {
			_, err := Parse(mustQuery(t, tc.query), Options{Types: []string{tc.typ}, Strict: strict})
			if fhir.KindOf(err) != fhir.KindNotSupported || !strings.Contains(fhir.MessageOf(err), tc.want) {
				t.Errorf("%s?%s (strict %v): %v, want a not-supported error with %q", tc.typ, tc.query, strict, err, tc.want)
			}
		}
	}
}
