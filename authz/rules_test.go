package authz_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/fhirserver/fhirserver/authz"
)

func TestBuilder(t *testing.T) {
	s := seed(t)
	build := func(b *authz.Builder) authz.Policy {
		t.Helper()
		p, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	patientA := build(authz.NewBuilder().
		Deny("no deletes").Delete().AllTypes().
		Allow("own data").Read().Write().AllTypes().InCompartment("Patient", "a").
		Allow("directory").Read().Types("Practitioner", "Organization"))
	labs := build(authz.NewBuilder().
		Allow("labs").Read().Types("Observation").Where("category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory").
		Allow("one condition").Read().Instances("Condition/cb"))
	denyFirst := build(authz.NewBuilder().
		Deny("no conditions").Read().Types("Condition").
		AllowAll("everything else"))
	allowFirst := build(authz.NewBuilder().
		AllowAll("everything").
		DenyAll("too late"))
	for _, tc := range []struct {
		name  string
		p     authz.Policy
		req   authz.Request
		allow bool
		rule  string
		sees  string // search filter check, when allowed
	}{
		{"compartment read", patientA, authz.Request{Interaction: authz.Search, Type: "Observation"}, true, "own data", "Observation/la Observation/va"},
		{"compartment system search", patientA, authz.Request{Interaction: authz.Search}, true, "own data", "Patient/a Observation/la Observation/va Condition/ca Practitioner/doc Organization/org"},
		{"compartment write", patientA, authz.Request{Interaction: authz.Update, Type: "Condition"}, true, "own data", "Condition/ca"},
		{"deny rule", patientA, authz.Request{Interaction: authz.Delete, Type: "Condition"}, false, "no deletes", ""},
		{"directory read", patientA, authz.Request{Interaction: authz.Read, Type: "Practitioner"}, true, "own data", "Practitioner/doc"},
		// Allowed, but only into the compartment, where no Organization
		// can be: the after-write check refuses it.
		{"directory write", patientA, authz.Request{Interaction: authz.Create, Type: "Organization"}, true, "own data", ""},
		{"directory write: default deny", build(authz.NewBuilder().Allow("directory").Read().Types("Organization")), authz.Request{Interaction: authz.Create, Type: "Organization"}, false, "default deny", ""},
		{"where", labs, authz.Request{Interaction: authz.Search, Type: "Observation"}, true, "labs", "Observation/la Observation/lb"},
		{"instances", labs, authz.Request{Interaction: authz.Read, Type: "Condition"}, true, "one condition", "Condition/cb"},
		{"instances not others", labs, authz.Request{Interaction: authz.Read, Type: "Patient"}, false, "default deny", ""},
		{"deny before allow", denyFirst, authz.Request{Interaction: authz.Read, Type: "Condition"}, false, "no conditions", ""},
		{"deny before allow, other type", denyFirst, authz.Request{Interaction: authz.Read, Type: "Patient"}, true, "everything else", "Patient/a Patient/b"},
		{"deny before allow, system level", denyFirst, authz.Request{Interaction: authz.Search}, true, "everything else",
			"Patient/a Patient/b Observation/la Observation/va Observation/lb Observation/vb Practitioner/doc Organization/org"},
		{"allow before deny", allowFirst, authz.Request{Interaction: authz.Delete, Type: "Condition"}, true, "everything", "Condition/ca Condition/cb"},
		{"empty policy", authz.Policy{}, authz.Request{Interaction: authz.Read, Type: "Patient"}, false, "default deny", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.p.Decide(tc.req)
			if d.Allow != tc.allow || d.Rule != tc.rule {
				t.Fatalf("allow %v by %q, want %v by %q", d.Allow, d.Rule, tc.allow, tc.rule)
			}
			typ := tc.req.Type
			if !d.Allow {
				if got := visible(t, s, d.Filter, typ, ""); len(got) != 0 {
					t.Errorf("denied, but the filter admits %v", got)
				}
				return
			}
			if got := visible(t, s, d.Filter, typ, ""); !slices.Equal(got, list(tc.sees)) {
				t.Errorf("sees %v, want %v", got, list(tc.sees))
			}
		})
	}
}

func TestBuilderErrors(t *testing.T) {
	for _, tc := range []struct {
		b    *authz.Builder
		want string
	}{
		{authz.NewBuilder().Read(), "before Allow or Deny"},
		{authz.NewBuilder().Allow("x").Read().Types("Nope"), "not a resource type"},
		{authz.NewBuilder().Allow("x").Read().InCompartment("Observation", "1"), "not a compartment"},
		{authz.NewBuilder().Allow("x").Read().Instances("Patient"), "not Type/id"},
		{authz.NewBuilder().Allow("x").Read().Instances("Patient/1", "Observation/2"), "one type"},
		{authz.NewBuilder().Allow("x").Read().Where("status=final"), "exactly one type"},
		{authz.NewBuilder().Allow("x").Read().Types("Observation").Where("nosuch=1"), "nosuch"},
		{authz.NewBuilder().Deny("x").Read().AllTypes().InCompartment("Patient", "1"), "deny rule cannot"},
		{authz.NewBuilder().Allow("x").Types("Patient"), "no permission"},
		{authz.NewBuilder().Allow("x").Operations("export"), "not an operation name"},
		{authz.NewBuilder().Allow("x").Read().InCompartment("Patient", "1").CompartmentParams("Device"), "not Type:param"},
		{authz.NewBuilder().Allow("x").Read().InCompartment("Patient", "1").CompartmentParams("Device:type"), "no reference parameter"},
	} {
		if _, err := tc.b.Build(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
}
