// Package policyfile reads the server's access policy (authz.AccessPolicy)
// from a YAML file; JSON, being YAML, is read too. It is the only importer
// of the YAML parser. Every error names the line and the rule.
//
// The file holds one key, rules, an ordered list:
//
//	rules:
//	  - name: no deletes
//	    deny: [delete]
//	  - name: ward practitioners see their patients
//	    when: {fhirUserType: Practitioner}
//	    allow: [read, write]
//	    compartment: [Patient/a, Patient/b]
//	  - name: patients see their own devices too
//	    when: {scopeLevel: patient}
//	    allow: read
//	    compartment: Patient/{patient}
//	    compartmentParams: [Device:patient]
//
// A rule's keys are those of authz.PolicyRule: name, when (clientId,
// fhirUserType, fhirUser, scope, scopeLevel), allow or deny, tenants,
// types, compartment, compartmentParams, instances, where. Lists may be
// written as one string.
package policyfile

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"go.yaml.in/yaml/v3"

	"github.com/fhirserver/fhirserver/authz"
)

// Load reads and checks the policy file at path.
func Load(path string) (*authz.AccessPolicy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the access policy: %w", err)
	}
	return Parse(data, path)
}

// Parse reads and checks a policy; name (the file's) starts every error.
func Parse(data []byte, name string) (*authz.AccessPolicy, error) {
	fail := func(line int, format string, a ...any) error {
		return fmt.Errorf("%s: line %d: %s", name, line, fmt.Sprintf(format, a...))
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, fail(extra.Line, "one YAML document only")
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fail(doc.Line, "the policy is a mapping with the key rules")
	}
	top := doc.Content[0]
	var rulesNode *yaml.Node
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		if k.Value != "rules" {
			return nil, fail(k.Line, "unknown key %q (the policy has one key, rules)", k.Value)
		}
		rulesNode = v
	}
	if rulesNode == nil || rulesNode.Kind != yaml.SequenceNode || len(rulesNode.Content) == 0 {
		line := top.Line
		if rulesNode != nil {
			line = rulesNode.Line
		}
		return nil, fail(line, "rules must be a list of at least one rule (an empty policy would deny every request)")
	}
	var rules []authz.PolicyRule
	var lines []int
	for i, rn := range rulesNode.Content {
		r, err := parseRule(rn)
		if err != nil {
			var le *lineError
			line := rn.Line
			if errors.As(err, &le) {
				line = le.line
			}
			label := fmt.Sprintf("rule %d", i+1)
			if r.Name != "" {
				label += fmt.Sprintf(" (%q)", r.Name)
			}
			return nil, fail(line, "%s: %v", label, err)
		}
		rules = append(rules, r)
		lines = append(lines, rn.Line)
	}
	p, err := authz.NewAccessPolicy(rules)
	if err != nil {
		var re *authz.RuleError
		if errors.As(err, &re) {
			return nil, fail(lines[re.Index], "%v", re)
		}
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	return p, nil
}

// lineError is an error at a line of the file.
type lineError struct {
	line int
	err  error
}

func (e *lineError) Error() string { return e.err.Error() }

func errAt(n *yaml.Node, format string, a ...any) error {
	return &lineError{line: n.Line, err: fmt.Errorf(format, a...)}
}

// parseRule reads one rule; its name is set as soon as it is known, so
// that errors can name it.
func parseRule(n *yaml.Node) (authz.PolicyRule, error) {
	var r authz.PolicyRule
	if n.Kind != yaml.MappingNode {
		return r, errAt(n, "a rule is a mapping (name, allow or deny, ...)")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "name" {
			if v := n.Content[i+1]; v.Kind == yaml.ScalarNode {
				r.Name = v.Value
			}
		}
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			return r, errAt(k, "%s is given twice", k.Value)
		}
		seen[k.Value] = true
		var err error
		switch k.Value {
		case "name":
			if v.Kind != yaml.ScalarNode {
				err = errAt(v, "name is a string")
			}
		case "when":
			err = parseWhen(v, &r.When)
		case "allow":
			r.Allow, err = list(v)
		case "deny":
			r.Deny, err = list(v)
		case "tenants":
			r.Tenants, err = list(v)
		case "types":
			r.Types, err = list(v)
		case "compartment":
			r.Compartment, err = list(v)
		case "compartmentParams":
			r.CompartmentParams, err = list(v)
		case "instances":
			r.Instances, err = list(v)
		case "where":
			if v.Kind != yaml.ScalarNode {
				err = errAt(v, "where is a search query string")
			}
			r.Where = v.Value
		default:
			err = errAt(k, "unknown key %q (name, when, allow, deny, tenants, types, compartment, compartmentParams, instances, where)", k.Value)
		}
		if err != nil {
			return r, err
		}
	}
	return r, nil
}

func parseWhen(n *yaml.Node, m *authz.CallerMatch) error {
	if n.Kind != yaml.MappingNode {
		return errAt(n, "when is a mapping (clientId, fhirUserType, fhirUser, scope, scopeLevel)")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		vals, err := list(v)
		if err != nil {
			return err
		}
		switch k.Value {
		case "clientId":
			m.ClientIDs = vals
		case "fhirUserType":
			m.FHIRUserTypes = vals
		case "fhirUser":
			m.FHIRUsers = vals
		case "scope":
			m.Scopes = vals
		case "scopeLevel":
			for _, l := range vals {
				m.ScopeLevels = append(m.ScopeLevels, authz.Level(l))
			}
		default:
			return errAt(k, "unknown key %q in when (clientId, fhirUserType, fhirUser, scope, scopeLevel)", k.Value)
		}
	}
	return nil
}

// list reads a string or a list of strings.
func list(n *yaml.Node) ([]string, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return nil, errAt(n, "a value is missing")
		}
		return []string{n.Value}, nil
	case yaml.SequenceNode:
		out := make([]string, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode || c.Tag == "!!null" {
				return nil, errAt(c, "a list of strings is expected here")
			}
			out = append(out, c.Value)
		}
		return out, nil
	}
	return nil, errAt(n, "a string or a list of strings is expected here")
}
