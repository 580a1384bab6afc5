package authz

import (
	"slices"
	"testing"
)

func TestParseScope(t *testing.T) {
	const lab = "category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
	for _, tc := range []struct {
		raw    string
		level  Level
		typ    string
		perms  Perms
		v2     bool
		where  int // number of clauses
		errors bool
	}{
		{raw: "patient/*.read", level: LevelPatient, typ: "*", perms: PermRead | PermSearch},
		{raw: "user/Observation.write", level: LevelUser, typ: "Observation", perms: PermWrite},
		{raw: "system/*.*", level: LevelSystem, typ: "*", perms: PermAll},
		{raw: "patient/Observation.rs", level: LevelPatient, typ: "Observation", perms: PermRead | PermSearch, v2: true},
		{raw: "user/*.cruds", level: LevelUser, typ: "*", perms: PermAll, v2: true},
		{raw: "system/Patient.r", level: LevelSystem, typ: "Patient", perms: PermRead, v2: true},
		{raw: "patient/Patient.u", level: LevelPatient, typ: "Patient", perms: PermUpdate | PermPatch, v2: true},
		{raw: "patient/Encounter.cd", level: LevelPatient, typ: "Encounter", perms: PermCreate | PermDelete, v2: true},
		{raw: "patient/Observation.rs?" + lab, level: LevelPatient, typ: "Observation", perms: PermRead | PermSearch, v2: true, where: 1},
		{raw: "patient/Observation.rs?" + lab + "&status=final", level: LevelPatient, typ: "Observation", perms: PermRead | PermSearch, v2: true, where: 2},
		{raw: "patient/Condition.rs?category=http://terminology.hl7.org/CodeSystem/condition-category|problem-list-item,encounter-diagnosis", level: LevelPatient, typ: "Condition", perms: PermRead | PermSearch, v2: true, where: 1},
		// malformed
		{raw: "patient/Observation.sr", errors: true}, // letters out of order
		{raw: "patient/Observation.rr", errors: true}, // repeated
		{raw: "patient/Observation.", errors: true},   // no letters
		{raw: "patient/Observation.x", errors: true},  // unknown letter
		{raw: "patient/Observation.readwrite", errors: true},
		{raw: "patient/Observation", errors: true},             // no permissions
		{raw: "patient/Observation.r.s", errors: true},         // two dots
		{raw: "doctor/Observation.rs", errors: true},           // unknown level
		{raw: "Observation.rs", errors: true},                  // no level
		{raw: "patient/Observatio.rs", errors: true},           // unknown type
		{raw: "patient/observation.rs", errors: true},          // case matters
		{raw: "patient/*.rs?" + lab, errors: true},             // granular needs a type
		{raw: "patient/Observation.read?" + lab, errors: true}, // granular is v2
		{raw: "patient/Observation.rs?nosuch=1", errors: true},
		{raw: "patient/Observation.rs?", errors: true},                                  // empty query
		{raw: "patient/Observation.rs?_sort=date", errors: true},                        // not a constraint
		{raw: "patient/Observation.rs?_count=1", errors: true},                          // not a constraint
		{raw: "patient/Observation.rs?_include=Observation:subject", errors: true},      // not a constraint
		{raw: "patient/Observation.rs?subject:Patient.name=x", errors: true},            // chain
		{raw: "patient/Patient.rs?_has:Observation:subject:status=final", errors: true}, // _has
		{raw: "patient/Observation.rs?_type=Condition", errors: true},
		{raw: "patient/Observation.rs?date=notadate", errors: true},
	} {
		s, err := ParseScope(tc.raw)
		if tc.errors {
			if err == nil {
				t.Errorf("%s: parsed as %+v, want an error", tc.raw, s)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.raw, err)
			continue
		}
		if s.Level != tc.level || s.Type != tc.typ || s.Perms != tc.perms || s.V2 != tc.v2 || len(s.Where) != tc.where {
			t.Errorf("%s: got level %s type %s perms %s v2 %v where %d", tc.raw, s.Level, s.Type, s.Perms, s.V2, len(s.Where))
		}
	}
}

func TestParseScopes(t *testing.T) {
	scopes, ignored := ParseScopes([]string{"openid", "fhirUser", "launch/patient", "offline_access",
		"patient/*.rs", "patient/Observation.read", "bogus", "patient/Foo.rs", ""})
	var raws []string
	for _, s := range scopes {
		raws = append(raws, s.Raw)
	}
	if !slices.Equal(raws, []string{"patient/*.rs", "patient/Observation.read"}) {
		t.Errorf("scopes %v", raws)
	}
	if !slices.Equal(ignored, []string{"bogus", "patient/Foo.rs"}) {
		t.Errorf("ignored %v", ignored)
	}
}

func TestNonPatientTypes(t *testing.T) {
	np := NonPatientTypes()
	for _, want := range []string{"Practitioner", "Organization", "Location", "Medication", "Device", "ValueSet"} {
		if !slices.Contains(np, want) {
			t.Errorf("%s missing from %v", want, np)
		}
	}
	for _, not := range []string{"Patient", "Observation", "Condition", "Encounter", "MedicationRequest"} {
		if slices.Contains(np, not) {
			t.Errorf("%s is in a patient compartment", not)
		}
	}
}
