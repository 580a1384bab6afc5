package policyfile_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fhirserver/fhirserver/authz"
	"github.com/fhirserver/fhirserver/authz/policyfile"
)

// example is a policy using every key; TestParse checks that it decides
// as the same policy built in Go.
const example = `# Every kind of rule.
rules:
  - name: no deletes for users
    when: {scopeLevel: user}
    deny: delete
  - name: ward
    when:
      fhirUserType: [Practitioner]
    allow: [read, write]
    types: "*"
    compartment: [Patient/a, Patient/b]
  - name: directory
    allow: read
    types: [Practitioner, Organization]
  - name: own data and devices
    when: {scopeLevel: [patient]}
    allow: [read]
    compartment: Patient/{patient}
    compartmentParams: [Device:patient]
  - name: labs
    when: {clientId: lab-app}
    allow: [read]
    types: Observation
    where: category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory
  - name: one condition
    when: {clientId: [lab-app], scope: [system/*.rs, system/*.read]}
    allow: read
    instances: [Condition/cb]
  - name: export
    when: {scopeLevel: system}
    allow: [$export, $everything]
  - name: tenant x
    tenants: [x, default]
    allow: all
  - name: me
    when: {fhirUser: Practitioner/doc}
    allow: update
    instances: "{fhirUser}"
`

func TestParse(t *testing.T) {
	p, err := policyfile.Parse([]byte(example), "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p.Len() != 9 {
		t.Fatalf("%d rules", p.Len())
	}
	// The same policy in Go: the rules each caller gets are the same.
	same, err := authz.NewAccessPolicy([]authz.PolicyRule{
		{Name: "no deletes for users", When: authz.CallerMatch{ScopeLevels: []authz.Level{"user"}}, Deny: []string{"delete"}},
		{Name: "ward", When: authz.CallerMatch{FHIRUserTypes: []string{"Practitioner"}}, Allow: []string{"read", "write"}, Types: []string{"*"}, Compartment: []string{"Patient/a", "Patient/b"}},
		{Name: "directory", Allow: []string{"read"}, Types: []string{"Practitioner", "Organization"}},
		{Name: "own data and devices", When: authz.CallerMatch{ScopeLevels: []authz.Level{"patient"}}, Allow: []string{"read"}, Compartment: []string{"Patient/{patient}"}, CompartmentParams: []string{"Device:patient"}},
		{Name: "labs", When: authz.CallerMatch{ClientIDs: []string{"lab-app"}}, Allow: []string{"read"}, Types: []string{"Observation"}, Where: "category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"},
		{Name: "one condition", When: authz.CallerMatch{ClientIDs: []string{"lab-app"}, Scopes: []string{"system/*.rs", "system/*.read"}}, Allow: []string{"read"}, Instances: []string{"Condition/cb"}},
		{Name: "export", When: authz.CallerMatch{ScopeLevels: []authz.Level{"system"}}, Allow: []string{"$export", "$everything"}},
		{Name: "tenant x", Tenants: []string{"x", "default"}, Allow: []string{"all"}},
		{Name: "me", When: authz.CallerMatch{FHIRUsers: []string{"Practitioner/doc"}}, Allow: []string{"update"}, Instances: []string{"{fhirUser}"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*authz.Caller{
		{ClientID: "ehr", Scopes: []string{"user/*.cruds"}, FHIRUserType: "Practitioner", FHIRUserID: "doc"},
		{ClientID: "app", Scopes: []string{"patient/*.rs"}, Patient: "a"},
		{ClientID: "lab-app", Scopes: []string{"system/*.rs"}},
		{ClientID: "x"},
	} {
		got, gotNames := p.For(c)
		want, wantNames := same.For(c)
		if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(gotNames, wantNames) {
			t.Errorf("%s: rules from the file %v differ from Go's %v", c.ClientID, gotNames, wantNames)
		}
		if len(gotNames) == 0 {
			t.Errorf("%s: no rule selected", c.ClientID)
		}
	}
	// JSON is YAML.
	js := `{"rules": [{"name": "all", "allow": ["all"]}]}`
	if _, err := policyfile.Parse([]byte(js), "policy.json"); err != nil {
		t.Errorf("JSON: %v", err)
	}
}

// TestParseErrors checks that a bad policy is refused with the file, the
// line and the rule in the message.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"not YAML", "rules: [", []string{"policy.yaml", "line 1"}},
		{"no rules", "rules: []\n", []string{"line 1", "at least one rule"}},
		{"unknown top key", "rules:\n  - {name: a, allow: read}\nrulez: []\n", []string{"line 3", `unknown key "rulez"`}},
		{"not a mapping", "- a\n", []string{"line 1", "mapping with the key rules"}},
		{"rule not a mapping", "rules:\n  - a\n", []string{"line 2", "rule 1", "a rule is a mapping"}},
		{"unknown rule key", "rules:\n  - name: a\n    allow: read\n    typo: 1\n", []string{"line 4", `rule 1 ("a")`, `unknown key "typo"`}},
		{"unknown when key", "rules:\n  - name: a\n    when:\n      client: x\n    allow: read\n", []string{"line 4", `rule 1 ("a")`, `unknown key "client" in when`}},
		{"key twice", "rules:\n  - name: a\n    allow: read\n    allow: write\n", []string{"line 4", "allow is given twice"}},
		{"bad list", "rules:\n  - name: a\n    allow: {read: 1}\n", []string{"line 3", "a string or a list"}},
		{"missing value", "rules:\n  - name: a\n    allow:\n", []string{"line 3", "missing"}},
		{"bad permission", "rules:\n  - name: a\n    allow: read\n  - name: b\n    allow: [reed]\n", []string{"line 4", `rule 2 ("b")`, `unknown permission "reed"`}},
		{"bad type", "rules:\n  - name: a\n    allow: read\n    types: [Observation, Obsrvation]\n", []string{"line 2", `rule 1 ("a")`, `"Obsrvation" is not a resource type`}},
		{"bad where", "rules:\n  - name: a\n    allow: read\n    types: Observation\n    where: nosuch=1\n", []string{"line 2", "nosuch"}},
		{"no name", "rules:\n  - allow: read\n", []string{"line 2", "rule 1", "needs a name"}},
		{"deny in compartment", "rules:\n  - name: a\n    allow: read\n  - name: d\n    deny: read\n    compartment: Patient/x\n", []string{"line 4", `rule 2 ("d")`, "deny rule cannot"}},
		{"two documents", "rules:\n  - {name: a, allow: read}\n---\nrules: []\n", []string{"line 3", "one YAML document"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := policyfile.Parse([]byte(tc.yaml), "policy.yaml")
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range append(tc.want, "policy.yaml") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(example), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := policyfile.Load(path); err != nil {
		t.Fatal(err)
	}
	if _, err := policyfile.Load(path + ".missing"); err == nil || !strings.Contains(err.Error(), "reading the access policy") {
		t.Errorf("missing file: %v", err)
	}
}

// TestREADMEExample parses the example of the README's Access policies
// section, so that the documentation stays valid.
func TestREADMEExample(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "## Access policies")
	if !ok {
		t.Fatal("no Access policies section")
	}
	_, block, ok := strings.Cut(section, "```yaml\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal("no yaml block")
	}
	if _, err := policyfile.Parse([]byte(block), "README.md"); err != nil {
		t.Fatal(err)
	}
}
