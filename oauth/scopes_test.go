package oauth

import (
	"slices"
	"testing"
)

func TestParseScope(t *testing.T) {
	cases := []struct {
		in   string
		ok   bool
		want string // v2 form
	}{
		{"patient/*.read", true, "patient/*.rs"},
		{"user/Observation.write", true, "user/Observation.cud"},
		{"system/*.*", true, "system/*.cruds"},
		{"patient/Observation.rs?category=laboratory", true, "patient/Observation.rs?category=laboratory"},
		{"patient/*.cruds", true, "patient/*.cruds"},
		{"patient/*.sr", false, ""},   // out of order
		{"patient/*.rr", false, ""},   // repeated
		{"patient/*.x", false, ""},    // unknown permission
		{"patient/*.", false, ""},     // none
		{"patient/obs.rs", false, ""}, // not a type name
		{"patient/*.read?x=1", false, ""},
		{"openid", false, ""},
		{"launch/patient", false, ""},
		{"group/*.rs", false, ""},
	}
	for _, c := range cases {
		sc, ok := parseScope(c.in)
		if ok != c.ok || (ok && sc.v2() != c.want) {
			t.Errorf("parseScope(%q) = %+v %v, want %q %v", c.in, sc, ok, c.want, c.ok)
		}
	}
}

func TestScopeCovered(t *testing.T) {
	cases := []struct {
		have []string
		want string
		ok   bool
	}{
		{[]string{"patient/*.rs"}, "patient/Observation.rs?category=laboratory", true},
		{[]string{"patient/*.rs"}, "patient/Observation.r", true},
		{[]string{"patient/*.read"}, "patient/Observation.rs", true},
		{[]string{"patient/*.rs"}, "patient/*.read", true},
		{[]string{"patient/*.rs"}, "patient/*.write", false},
		{[]string{"patient/*.rs"}, "patient/Observation.cruds", false},
		{[]string{"patient/Observation.rs"}, "patient/*.rs", false},
		{[]string{"patient/Observation.rs?category=laboratory"}, "patient/Observation.rs", false},
		{[]string{"patient/Observation.rs?category=laboratory"}, "patient/Observation.rs?category=laboratory", true},
		{[]string{"user/*.rs"}, "patient/*.rs", true},
		{[]string{"patient/*.rs"}, "user/*.rs", false},
		{[]string{"system/*.rs"}, "user/*.rs", false},
		{[]string{"openid", "fhirUser"}, "openid", true},
		{[]string{"openid"}, "fhirUser", false},
	}
	for _, c := range cases {
		if got := scopeCovered(c.have, c.want); got != c.ok {
			t.Errorf("scopeCovered(%v, %q) = %v, want %v", c.have, c.want, got, c.ok)
		}
	}
}

func TestNarrowScopes(t *testing.T) {
	cases := []struct {
		asked, caps, want []string
	}{
		{[]string{"patient/*.read"}, []string{"patient/*.rs"}, []string{"patient/*.read", "patient/*.rs"}},
		{[]string{"patient/*.cruds"}, []string{"patient/*.rs"}, []string{"patient/*.rs"}},
		{[]string{"patient/*.*"}, []string{"patient/Observation.rs", "patient/Condition.r"}, []string{"patient/Observation.rs", "patient/Condition.r"}},
		{[]string{"patient/Observation.rs"}, []string{"patient/*.rs?category=vital-signs"}, []string{"patient/Observation.rs?category=vital-signs"}},
		{[]string{"user/*.rs"}, []string{"patient/*.rs"}, nil},
		{[]string{"openid", "launch"}, []string{"openid"}, []string{"openid"}},
	}
	for _, c := range cases {
		if got := narrowScopes(c.asked, c.caps); !slices.Equal(got, c.want) {
			t.Errorf("narrowScopes(%v, %v) = %v, want %v", c.asked, c.caps, got, c.want)
		}
	}
}

func TestNormalizeScopes(t *testing.T) {
	got := normalizeScopes([]string{"system/*.read", "system/*.rs", "openid", "user/Patient.*"})
	want := []string{"system/*.read", "system/*.rs", "openid", "user/Patient.*", "user/Patient.cruds"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestDescribeScope(t *testing.T) {
	for in, want := range map[string]string{
		"patient/Observation.rs": "Read, search Observation records of the selected patient",
		"user/*.cud":             "Create, update, delete all kinds of records that you may access",
		"openid":                 "Confirm your identity to the app",
	} {
		if got := describeScope(in); got != want {
			t.Errorf("describeScope(%q) = %q, want %q", in, got, want)
		}
	}
}
