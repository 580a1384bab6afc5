package terminology_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/internal/specgen"
	"github.com/fhirserver/fhirserver/fhir/terminology"
)

// The committed table is exactly what the generator makes now (compared
// uncompressed, so that another compressor version is no drift).
func TestTableUpToDate(t *testing.T) {
	spec := filepath.Join("..", "..", "..", "shared", "fhir-r4")
	if _, err := os.Stat(filepath.Join(spec, "valuesets.json.gz")); err != nil {
		t.Skipf("%s is absent (as in a fresh clone), so the table cannot be checked against the spec: %v", spec, err)
	}
	want, err := specgen.Terminology(spec)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(specgen.TerminologyFile)
	if err != nil {
		t.Fatalf("%v (run go generate ./fhir/terminology)", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) && i < len(wl); i++ {
			if gl[i] != wl[i] {
				t.Fatalf("%s is stale (run go generate ./fhir/terminology): line %d: committed %q, generated %q", specgen.TerminologyFile, i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("%s is stale (run go generate ./fhir/terminology): %d lines committed, %d generated", specgen.TerminologyFile, len(gl), len(wl))
	}
}

const (
	actCode  = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
	roleCode = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
)

// Expansions of the spec's value sets, as the spec's definitions give them
// (worked out from valuesets.json.gz, v3-codesystems.json.gz and
// v2-tables.json.gz by hand and by a separate script).
func TestSpecValueSets(t *testing.T) {
	r4 := terminology.R4()
	for _, tc := range []struct {
		url  string
		want []terminology.CodeSet
	}{
		// A whole FHIR code system.
		{"http://hl7.org/fhir/ValueSet/observation-status|4.0.1", []terminology.CodeSet{{"http://hl7.org/fhir/observation-status",
			[]string{"amended", "cancelled", "corrected", "entered-in-error", "final", "preliminary", "registered", "unknown"}}}},
		// is-a with the root excluded, through the v3 hierarchy.
		{"http://terminology.hl7.org/ValueSet/v3-ActEncounterCode", []terminology.CodeSet{{actCode,
			[]string{"ACUTE", "AMB", "EMER", "FLD", "HH", "IMP", "NONAC", "OBSENC", "PRENC", "SS", "VR"}}}},
		// is-not-a on a v2 table.
		{"http://hl7.org/fhir/ValueSet/patient-contactrelationship", []terminology.CodeSet{{"http://terminology.hl7.org/CodeSystem/v2-0131",
			[]string{"BP", "C", "CP", "E", "EP", "F", "I", "N", "PR", "S", "U"}}}},
		// descendent-of.
		{"http://hl7.org/fhir/ValueSet/inactive", []terminology.CodeSet{{"http://terminology.hl7.org/CodeSystem/v3-ActMood",
			[]string{"CRT", "EVN.CRT", "EXPEC", "GOL", "GOL.CRT", "INT.CRT", "OPT", "PRMS.CRT", "RQO.CRT", "RSK", "RSK.CRT"}}}},
		// An explicit list of an outside terminology's codes.
		{"http://hl7.org/fhir/ValueSet/ldlcholesterol-codes", []terminology.CodeSet{{"http://loinc.org", []string{"13457-7", "18262-6"}}}},
	} {
		got, err := r4.ValueSet(tc.url)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ValueSet(%s) = %v, %v\nwant %v", tc.url, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		url  string
		kind fhir.Kind
		msg  string
	}{
		{"http://hl7.org/fhir/ValueSet/condition-code", fhir.KindNotSupported, "its filter (concept is-a 404684003) needs http://snomed.info/sct"},
		{"http://hl7.org/fhir/ValueSet/observation-codes", fhir.KindNotSupported, "it includes every code of http://loinc.org"},
		{"http://hl7.org/fhir/ValueSet/action-participant-role", fhir.KindNotSupported, "it imports http://hl7.org/fhir/ValueSet/practitioner-role: its filter"},
		{"http://hl7.org/fhir/ValueSet/observation-status|3.0.2", fhir.KindInvalid, "version 4.0.1, not 3.0.2"},
		{"http://example.org/ValueSet/mine", fhir.KindInvalid, "not known"},
	} {
		_, err := r4.ValueSet(tc.url)
		if fhir.KindOf(err) != tc.kind || !strings.Contains(fhir.MessageOf(err), tc.msg) {
			t.Errorf("ValueSet(%s) = %v, want a %s error with %q", tc.url, err, tc.kind, tc.msg)
		}
	}
}

func TestSpecHierarchy(t *testing.T) {
	r4 := terminology.R4()
	for _, tc := range []struct {
		above        bool
		system, code string
		want         []string
	}{
		{false, actCode, "_ActEncounterCode", []string{"ACUTE", "AMB", "EMER", "FLD", "HH", "IMP", "NONAC", "OBSENC", "PRENC", "SS", "VR", "_ActEncounterCode"}},
		{false, actCode, "AMB", []string{"AMB"}},
		// ACUTE is under IMP, and also a child of _ActCareProvisionCode.
		{true, actCode, "ACUTE", []string{"ACUTE", "IMP", "_ActCareProvisionCode", "_ActEncounterCode"}},
		// DAUADOPT: nested under DAUC, listed as a child by CHLDADOPT.
		{true, roleCode, "DAUADOPT", []string{"CHILD", "CHLDADOPT", "DAUADOPT", "DAUC", "FAMMEMB", "_PersonalRelationshipRoleType"}},
		{false, "http://hl7.org/fhir/administrative-gender", "male", []string{"male"}},
	} {
		f := r4.Below
		if tc.above {
			f = r4.Above
		}
		got, err := f(tc.system, tc.code)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("above %v %s|%s = %v, %v\nwant %v", tc.above, tc.system, tc.code, got, err, tc.want)
		}
	}
	if _, err := r4.Below("http://loinc.org", "13457-7"); fhir.KindOf(err) != fhir.KindNotSupported {
		t.Errorf("Below in LOINC: %v", err)
	}
	if _, err := r4.Below(actCode, "NOPE"); fhir.KindOf(err) != fhir.KindInvalid {
		t.Errorf("Below of an unknown code: %v", err)
	}
}
