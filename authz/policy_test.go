package authz_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/fhirserver/fhirserver/authz"
	"github.com/fhirserver/fhirserver/fhir/search"
	"github.com/fhirserver/fhirserver/store"
)

const labWhere = "category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"

// testPolicy is an access policy using every kind of rule; policyfile's
// tests read the same policy from YAML.
func testPolicy() []authz.PolicyRule {
	return []authz.PolicyRule{
		{Name: "no deletes for users", When: authz.CallerMatch{ScopeLevels: []authz.Level{authz.LevelUser}}, Deny: []string{"delete"}},
		{Name: "ward", When: authz.CallerMatch{FHIRUserTypes: []string{"Practitioner"}}, Allow: []string{"read", "write"}, Compartment: []string{"Patient/a"}},
		{Name: "directory", Allow: []string{"read"}, Types: []string{"Practitioner", "Organization"}},
		{Name: "own data and devices", When: authz.CallerMatch{ScopeLevels: []authz.Level{authz.LevelPatient}}, Allow: []string{"read"},
			Compartment: []string{"Patient/{patient}"}, CompartmentParams: []string{"Device:patient"}},
		{Name: "labs", When: authz.CallerMatch{ClientIDs: []string{"lab-app"}}, Allow: []string{"read"}, Types: []string{"Observation"}, Where: labWhere},
		{Name: "one condition", When: authz.CallerMatch{ClientIDs: []string{"lab-app"}}, Allow: []string{"read"}, Instances: []string{"Condition/cb"}},
		{Name: "export", When: authz.CallerMatch{ScopeLevels: []authz.Level{authz.LevelSystem}}, Allow: []string{"$export"}},
		{Name: "backend", When: authz.CallerMatch{ClientIDs: []string{"backend"}}, Allow: []string{"all"}},
		{Name: "tenant x", Tenants: []string{"x"}, Allow: []string{"all"}},
		{Name: "me", When: authz.CallerMatch{FHIRUsers: []string{"Practitioner/doc"}}, Allow: []string{"update"}, Instances: []string{"{fhirUser}"}},
	}
}

// TestAccessPolicy decides requests for callers under testPolicy, runs the
// searches with the decision's filter on a real store holding two
// patients' data, and checks exactly what each caller sees and which rule
// decided.
func TestAccessPolicy(t *testing.T) {
	s := seed(t)
	ctx := context.Background()
	for _, w := range []store.Write{
		{Type: "Device", ID: "da", Body: []byte(`{"resourceType":"Device","id":"da","patient":{"reference":"Patient/a"}}`)},
		{Type: "Device", ID: "db", Body: []byte(`{"resourceType":"Device","id":"db","patient":{"reference":"Patient/b"}}`)},
	} {
		if _, _, err := s.Update(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	p, err := authz.NewAccessPolicy(testPolicy())
	if err != nil {
		t.Fatal(err)
	}
	with := func(c authz.Caller) authz.Caller { c.Access = p; return c }
	doc := with(authz.Caller{ClientID: "ehr", Scopes: []string{"user/*.cruds"}, FHIRUserType: "Practitioner", FHIRUserID: "doc"})
	docRead := with(authz.Caller{ClientID: "ehr", Scopes: []string{"user/*.rs"}, FHIRUserType: "Practitioner", FHIRUserID: "doc"})
	nurse := with(authz.Caller{ClientID: "ehr", Scopes: []string{"user/*.cruds"}, FHIRUserType: "Practitioner", FHIRUserID: "nurse"})
	patientA := with(authz.Caller{ClientID: "app", Scopes: []string{"launch/patient", "patient/*.rs"}, Patient: "a"})
	noPatient := with(authz.Caller{ClientID: "app", Scopes: []string{"patient/*.rs"}})
	lab := with(authz.Caller{ClientID: "lab-app", Scopes: []string{"system/*.rs"}})
	backend := with(authz.Caller{ClientID: "backend", Scopes: []string{"system/*.cruds"}})
	tenantX := with(authz.Caller{ClientID: "other", Scopes: []string{"system/*.cruds"}, Tenant: "x"})
	other := with(authz.Caller{ClientID: "other", Scopes: []string{"system/*.cruds"}})
	obsA, condA := "Observation/la Observation/va", "Condition/ca"
	for _, tc := range []struct {
		name   string
		caller authz.Caller
		req    authz.Request
		allow  bool
		rule   string
		sees   string // what the filter admits of req.Type, when allowed
	}{
		{"practitioner searches the ward", doc, authz.Request{Interaction: authz.Search, Type: "Observation"}, true, "policy: ward", obsA},
		{"practitioner system search", doc, authz.Request{Interaction: authz.Search}, true, "policy: ward",
			"Patient/a " + obsA + " " + condA + " Practitioner/doc Organization/org"},
		// The ward's grant comes first, admitting no Organization.
		{"practitioner reads the directory", doc, authz.Request{Interaction: authz.Read, Type: "Organization"}, true, "policy: ward", "Organization/org"},
		{"practitioner updates in the ward", doc, authz.Request{Interaction: authz.Update, Type: "Condition"}, true, "policy: ward", condA},
		{"practitioner updates own resource", doc, authz.Request{Interaction: authz.Update, Type: "Practitioner"}, true, "policy: ward", "Practitioner/doc"},
		{"another practitioner cannot", nurse, authz.Request{Interaction: authz.Update, Type: "Practitioner"}, true, "policy: ward", ""},
		{"practitioner cannot delete", doc, authz.Request{Interaction: authz.Delete, Type: "Condition"}, false, "policy: no deletes for users", ""},
		{"scopes are the outer limit", docRead, authz.Request{Interaction: authz.Create, Type: "Condition"}, false, "scopes: default deny", ""},
		{"conditional update: both filters", doc, authz.Request{Interaction: authz.CondUpdate, Type: "Condition"}, true, "policy: ward", condA},
		{"patient token: own compartment", patientA, authz.Request{Interaction: authz.Search, Type: "Observation"}, true, "policy: own data and devices", obsA},
		{"patient token: devices by Device:patient", patientA, authz.Request{Interaction: authz.Search, Type: "Device"}, true, "policy: own data and devices", "Device/da"},
		{"patient token: directory", patientA, authz.Request{Interaction: authz.Read, Type: "Practitioner"}, true, "policy: directory", "Practitioner/doc"},
		{"patient token without a patient", noPatient, authz.Request{Interaction: authz.Search, Type: "Observation"}, false, "scopes: default deny", ""},
		{"lab app sees labs only", lab, authz.Request{Interaction: authz.Search, Type: "Observation"}, true, "policy: labs", "Observation/la Observation/lb"},
		{"lab app reads one instance", lab, authz.Request{Interaction: authz.Read, Type: "Condition"}, true, "policy: one condition", "Condition/cb"},
		{"lab app reads no patients", lab, authz.Request{Interaction: authz.Read, Type: "Patient"}, false, "policy: default deny", ""},
		{"backend deletes", backend, authz.Request{Interaction: authz.Delete, Type: "Condition"}, true, "policy: backend", "Condition/ca Condition/cb"},
		{"tenant rule on its tenant", tenantX, authz.Request{Interaction: authz.Delete, Type: "Condition"}, true, "policy: tenant x", "Condition/ca Condition/cb"},
		{"tenant rule on another tenant", other, authz.Request{Interaction: authz.Delete, Type: "Condition"}, false, "policy: default deny", ""},
		{"tenant named in the request", other, authz.Request{Interaction: authz.Delete, Type: "Condition", Tenant: "x"}, true, "policy: tenant x", "Condition/ca Condition/cb"},
		{"system export", lab, authz.Request{Interaction: authz.Operation, Operation: "$export", Needs: authz.PermRead}, true, "policy: directory", "Practitioner/doc Organization/org Observation/la Observation/lb Condition/cb"},
		{"export needs the data too", lab, authz.Request{Interaction: authz.Operation, Operation: "$export", Needs: authz.PermDelete}, false, "scopes: default deny", ""},
		{"other operations", lab, authz.Request{Interaction: authz.Operation, Operation: "$everything", Type: "Patient", Needs: authz.PermRead}, false, "policy: default deny", ""},
		{"patient token export", patientA, authz.Request{Interaction: authz.Operation, Operation: "$export", Needs: authz.PermRead}, false, "policy: default deny", ""},
		{"backend: every operation", backend, authz.Request{Interaction: authz.Operation, Operation: "$everything", Type: "Patient", Needs: authz.PermRead}, true, "policy: backend", "Patient/a Patient/b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.caller.Decide(tc.req)
			if d.Allow != tc.allow || d.Rule != tc.rule {
				t.Fatalf("allow %v by %q, want %v by %q (rules %v)", d.Allow, d.Rule, tc.allow, tc.rule, d.Rules)
			}
			got := visible(t, s, d.Filter, tc.req.Type, "")
			if !d.Allow {
				if len(got) != 0 {
					t.Errorf("denied, but the filter admits %v", got)
				}
				return
			}
			if !slices.Equal(got, list(tc.sees)) {
				t.Errorf("sees %v, want %v (filter %v)", got, list(tc.sees), authz.DescribeFilter(d.Filter))
			}
			if strings.HasPrefix(string(tc.req.Interaction), "conditional") {
				if m := visible(t, s, d.Match, tc.req.Type, ""); !slices.Equal(m, list(tc.sees)) {
					t.Errorf("match filter admits %v, want %v", m, list(tc.sees))
				}
			}
		})
	}

	t.Run("explain", func(t *testing.T) {
		e := patientA.Explain(authz.Request{Interaction: authz.Search, Type: "Device"})
		if !e.Scopes.Allow || e.Policy == nil || !e.Policy.Allow {
			t.Fatalf("scopes %+v policy %+v", e.Scopes, e.Policy)
		}
		if want := []string{"directory", "own data and devices", "tenant x"}; !slices.Equal(e.Selected, want) {
			t.Errorf("selected %v, want %v", e.Selected, want)
		}
		if !slices.Contains(e.Decision.Rules, "scopes: patient/*.rs") || !slices.Contains(e.Decision.Rules, "policy: own data and devices") {
			t.Errorf("rules %v", e.Decision.Rules)
		}
		// Without a policy the rules are the scopes'.
		c := patientA
		c.Access = nil
		if d := c.Decide(authz.Request{Interaction: authz.Search, Type: "Device"}); !d.Allow || d.Rule != "scopes: patient/*.rs" {
			t.Errorf("without a policy: %+v", d)
		}
	})

	t.Run("observer", func(t *testing.T) {
		var seen []string
		c := doc.Observed(func(req authz.Request, d authz.Decision) { seen = append(seen, string(req.Interaction)+" "+d.Rule) })
		c.Decide(authz.Request{Interaction: authz.Delete, Type: "Condition"})
		if want := []string{"delete policy: no deletes for users"}; !slices.Equal(seen, want) {
			t.Errorf("observed %v, want %v", seen, want)
		}
	})
}

func TestNewAccessPolicyErrors(t *testing.T) {
	for _, tc := range []struct {
		rule authz.PolicyRule
		want string
	}{
		{authz.PolicyRule{Allow: []string{"read"}}, "needs a name"},
		{authz.PolicyRule{Name: "x"}, "needs allow or deny"},
		{authz.PolicyRule{Name: "x", Allow: []string{"read"}, Deny: []string{"write"}}, "not both"},
		{authz.PolicyRule{Name: "x", Allow: []string{"reed"}}, `unknown permission "reed"`},
		{authz.PolicyRule{Name: "x", Allow: []string{"$ export"}}, "unknown permission"},
		{authz.PolicyRule{Name: "x", Allow: []string{"read"}, Types: []string{"Nope"}}, "not a resource type"},
		{authz.PolicyRule{Name: "x", Allow: []string{"read"}, Types: []string{"*", "Patient"}}, "goes alone"},
		{authz.PolicyRule{Name: "x", Allow: []string{"read"}, Compartment: []string{"Observation/1"}}, "not a compartment"},
		{authz.PolicyRule{Name: "x", Allow: []string{"read"}, Compartment: []string{"Patient"}}, "not Type/id"},
		{authz.PolicyRule{Name: "x", Allow: []string{"read"}, Compartment: []string{"Patient/{patient}"}, CompartmentParams: []string{"Device:nope"}}, "no reference parameter"},
		{authz.PolicyRule{Name: "x", Allow: []string{"read"}, CompartmentParams: []string{"Device:patient"}}, "needs a compartment"},
		{authz.PolicyRule{Name: "x", Allow: []string{"read"}, Types: []string{"Observation"}, Where: "nosuch=1"}, "nosuch"},
		{authz.PolicyRule{Name: "x", Allow: []string{"read"}, Types: []string{"Observation"}, Where: "subject=Patient/{patient}&nosuch=1"}, "nosuch"},
		{authz.PolicyRule{Name: "x", Allow: []string{"read"}, Where: labWhere}, "exactly one type"},
		{authz.PolicyRule{Name: "x", Deny: []string{"read"}, Compartment: []string{"Patient/a"}}, "deny rule cannot"},
		{authz.PolicyRule{Name: "x", Allow: []string{"read"}, When: authz.CallerMatch{FHIRUserTypes: []string{"Doctor"}}}, "not a resource type"},
		{authz.PolicyRule{Name: "x", Allow: []string{"read"}, When: authz.CallerMatch{FHIRUsers: []string{"doc"}}}, "not Type/id"},
		{authz.PolicyRule{Name: "x", Allow: []string{"read"}, When: authz.CallerMatch{ScopeLevels: []authz.Level{"admin"}}}, "not patient, user or system"},
	} {
		_, err := authz.NewAccessPolicy([]authz.PolicyRule{{Name: "first", Allow: []string{"read"}}, tc.rule})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "rule 2") {
			t.Errorf("%+v: error %v, want rule 2 and %q", tc.rule, err, tc.want)
		}
	}
	_, err := authz.NewAccessPolicy([]authz.PolicyRule{{Name: "a", Allow: []string{"read"}}, {Name: "a", Allow: []string{"read"}}})
	if err == nil || !strings.Contains(err.Error(), "another rule has this name") {
		t.Errorf("duplicate names: %v", err)
	}
}

func TestIntersect(t *testing.T) {
	pa := &search.Compartment{Type: "Patient", ID: "a"}
	pb := &search.Compartment{Type: "Patient", ID: "b"}
	rp := &search.Compartment{Type: "RelatedPerson", ID: "r"}
	where := func(q string) []search.Clause {
		t.Helper()
		c, err := authz.ParseScope("system/Observation.rs?" + q)
		if err != nil {
			t.Fatal(err)
		}
		return c.Where
	}
	lab := store.Grant{Types: []string{"Observation"}, Where: where(labWhere)}
	for _, tc := range []struct {
		name string
		a, b store.Filter
		want []string
	}{
		{"allow all is the identity", store.AllowAll(), store.Filter{Grants: []store.Grant{{Compartment: pa}}}, []string{"every type in compartment Patient/a"}},
		{"nothing", store.Filter{}, store.AllowAll(), []string{"nothing"}},
		{"types", store.Filter{Grants: []store.Grant{{Types: []string{"Observation", "Condition"}}}}, store.Filter{Grants: []store.Grant{{Types: []string{"Condition", "Patient"}}}}, []string{"Condition"}},
		{"disjoint types", store.Filter{Grants: []store.Grant{{Types: []string{"Observation"}}}}, store.Filter{Grants: []store.Grant{{Types: []string{"Patient"}}}}, []string{"nothing"}},
		{"same compartment once", store.Filter{Grants: []store.Grant{{Compartment: pa}}}, store.Filter{Grants: []store.Grant{{Compartment: pa, Types: []string{"Observation"}}}}, []string{"Observation in compartment Patient/a"}},
		{"compartments ANDed", store.Filter{Grants: []store.Grant{{Compartment: rp}}}, store.Filter{Grants: []store.Grant{{Compartment: pa}, {Compartment: pb}}},
			[]string{"every type in each of the compartments RelatedPerson/r, Patient/a", "every type in each of the compartments RelatedPerson/r, Patient/b"}},
		{"where kept", store.Filter{Grants: []store.Grant{{Compartment: pa}}}, store.Filter{Grants: []store.Grant{lab}},
			[]string{"Observation in compartment Patient/a where " + labWhere}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := authz.DescribeFilter(authz.Intersect(tc.a, tc.b)); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if got := authz.DescribeFilter(authz.Intersect(tc.b, tc.a)); len(got) != len(tc.want) {
				t.Errorf("b AND a: got %q", got)
			}
		})
	}
}
