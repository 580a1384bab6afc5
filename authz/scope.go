// Package authz decides what a caller may do: SMART on FHIR scopes (v1,
// v2 and granular v2), patient compartments and policy rules, evaluated by
// one rule engine into a Decision whose store.Filter confines the
// interaction in the store's SQL (never by filtering after a fetch). It
// imports store and fhir only; the server turns a verified token into a
// Caller and asks for a Decision per interaction.
package authz

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/search"
)

// Perms is a set of permissions, the letters of a SMART v2 scope plus
// patch (which SMART grants with "u").
type Perms uint8

const (
	PermCreate Perms = 1 << iota
	PermRead         // read, vread, history
	PermUpdate
	PermPatch
	PermDelete
	PermSearch

	PermNone  Perms = 0
	PermWrite       = PermCreate | PermUpdate | PermPatch | PermDelete
	PermAll         = PermWrite | PermRead | PermSearch
)

// Has reports whether p holds every permission of q.
func (p Perms) Has(q Perms) bool { return p&q == q }

func (p Perms) String() string {
	var b strings.Builder
	for _, x := range []struct {
		p Perms
		c byte
	}{{PermCreate, 'c'}, {PermRead, 'r'}, {PermUpdate, 'u'}, {PermPatch, 'p'}, {PermDelete, 'd'}, {PermSearch, 's'}} {
		if p&x.p != 0 {
			b.WriteByte(x.c)
		}
	}
	return b.String()
}

// Level is the part of a scope before '/'.
type Level string

const (
	LevelPatient Level = "patient"
	LevelUser    Level = "user"
	LevelSystem  Level = "system"
)

// Scope is one parsed SMART resource scope.
type Scope struct {
	Raw   string
	Level Level
	// Type is a resource type, or "*" for every type.
	Type  string
	Perms Perms
	// V2 is true for the c r u d s syntax, false for read/write/*.
	V2 bool
	// Where is the constraint of a granular v2 scope
	// (patient/Observation.rs?category=...), parsed for Type; nil otherwise.
	Where []search.Clause
}

// contextScopes are scopes that carry no resource permission.
func isContextScope(s string) bool {
	switch s {
	case "openid", "fhirUser", "profile", "launch", "launch/patient", "launch/encounter",
		"offline_access", "online_access":
		return true
	}
	return false
}

// ParseScope parses one SMART resource scope:
//
//	v1: patient/*.read, user/Observation.write, system/*.*
//	v2: patient/Observation.rs, user/*.cruds, system/Patient.r
//	granular v2: patient/Observation.rs?category=http://...|laboratory
//
// v2 letters are a non-empty subsequence of "cruds" (in that order, each
// once); "u" grants update and patch. A granular scope names one type and
// may use only search parameters of that type with plain values (no
// chains, _has, _include, _sort, _count...). Anything else is an error.
func ParseScope(raw string) (Scope, error) {
	s := Scope{Raw: raw}
	body, query, hasQuery := strings.Cut(raw, "?")
	level, rest, ok := strings.Cut(body, "/")
	if !ok {
		return s, fmt.Errorf("scope %q: no level/", raw)
	}
	switch Level(level) {
	case LevelPatient, LevelUser, LevelSystem:
		s.Level = Level(level)
	default:
		return s, fmt.Errorf("scope %q: unknown level %q", raw, level)
	}
	typ, perms, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(perms, ".") {
		return s, fmt.Errorf("scope %q: want Type.permissions", raw)
	}
	if typ != "*" && !fhir.IsResourceType(typ) {
		return s, fmt.Errorf("scope %q: %q is not a resource type", raw, typ)
	}
	s.Type = typ
	switch perms {
	case "read":
		s.Perms = PermRead | PermSearch
	case "write":
		s.Perms = PermWrite
	case "*":
		s.Perms = PermAll
	default:
		p, err := parseLetters(perms)
		if err != nil {
			return s, fmt.Errorf("scope %q: %v", raw, err)
		}
		s.Perms, s.V2 = p, true
	}
	if hasQuery {
		if !s.V2 {
			return s, fmt.Errorf("scope %q: only v2 scopes take a query", raw)
		}
		if typ == "*" {
			return s, fmt.Errorf("scope %q: a granular scope names one type", raw)
		}
		where, err := parseWhere(typ, query)
		if err != nil {
			return s, fmt.Errorf("scope %q: %v", raw, err)
		}
		s.Where = where
	}
	return s, nil
}

func parseLetters(perms string) (Perms, error) {
	const order = "cruds"
	bits := [...]Perms{PermCreate, PermRead, PermUpdate | PermPatch, PermDelete, PermSearch}
	if perms == "" {
		return 0, fmt.Errorf("no permissions")
	}
	var p Perms
	next := 0
	for i := 0; i < len(perms); i++ {
		k := strings.IndexByte(order[next:], perms[i])
		if k < 0 {
			return 0, fmt.Errorf("permissions %q are not a subsequence of cruds", perms)
		}
		next += k + 1
		p |= bits[next-1]
	}
	return p, nil
}

// parseWhere parses the query of a granular scope or rule as a search on
// typ, and keeps it only when it is nothing but plain clauses.
func parseWhere(typ, query string) ([]search.Clause, error) {
	vals, err := url.ParseQuery(query)
	if err != nil {
		return nil, fmt.Errorf("query: %v", err)
	}
	q, err := search.Parse(vals, search.Options{Types: []string{typ}, Strict: true})
	if err != nil {
		return nil, fmt.Errorf("query: %s", fhir.MessageOf(err))
	}
	if len(q.Clauses) == 0 || len(q.Sort) > 0 || q.Count != 0 || q.Cursor != "" || q.Total != search.TotalDefault ||
		q.Summary != "" || len(q.Elements) > 0 || len(q.Includes) > 0 || len(q.RevIncludes) > 0 || q.Compartment != nil ||
		len(q.Types) != 1 || q.Types[0] != typ {
		return nil, fmt.Errorf("query %q: only search parameters of %s may constrain it", query, typ)
	}
	for _, cl := range q.Clauses {
		if cl.Chain != nil || cl.Has != nil {
			return nil, fmt.Errorf("query %q: chains and _has cannot constrain it", query)
		}
	}
	return q.Clauses, nil
}

// ParseScopes parses a token's scopes. Context scopes (openid, fhirUser,
// launch/patient, offline_access...) carry no permission and are skipped;
// malformed or unsupported scopes are ignored (they grant nothing) and
// returned in ignored, so a caller can log them.
func ParseScopes(raw []string) (scopes []Scope, ignored []string) {
	for _, r := range raw {
		if r == "" || isContextScope(r) {
			continue
		}
		s, err := ParseScope(r)
		if err != nil {
			ignored = append(ignored, r)
			continue
		}
		scopes = append(scopes, s)
	}
	return scopes, ignored
}
