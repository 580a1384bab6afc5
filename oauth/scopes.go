package oauth

import (
	"slices"
	"strings"
)

// SMART clinical scopes, v1 (patient/Observation.read) and v2
// (patient/Observation.rs?category=...), are compared by meaning: a scope
// covers another when its context is at least as wide (user covers
// patient), its resource type is the same or *, its permissions include the
// other's, and its query (if any) is the same. Other scopes (openid,
// fhirUser, launch/patient, offline_access, ...) match by name.

// scope is a parsed clinical scope.
type scope struct {
	context  string // patient, user, system
	resource string // a resource type or *
	perms    string // a subset of "cruds" in that order
	query    string // v2 query without the "?", or ""
	v1       bool   // written as .read, .write or .*
}

const allPerms = "cruds"

// parseScope parses a clinical scope; ok is false for any other scope.
func parseScope(s string) (scope, bool) {
	ctx, rest, found := strings.Cut(s, "/")
	if !found || (ctx != "patient" && ctx != "user" && ctx != "system") {
		return scope{}, false
	}
	rest, query, _ := strings.Cut(rest, "?")
	dot := strings.LastIndexByte(rest, '.')
	if dot <= 0 {
		return scope{}, false
	}
	res, p := rest[:dot], rest[dot+1:]
	if res != "*" && !validTypeName(res) {
		return scope{}, false
	}
	sc := scope{context: ctx, resource: res, query: query}
	switch p {
	case "read":
		sc.perms, sc.v1 = "rs", true
	case "write":
		sc.perms, sc.v1 = "cud", true
	case "*":
		sc.perms, sc.v1 = allPerms, true
	default:
		if p == "" {
			return scope{}, false
		}
		// v2 permissions: letters of "cruds", each once, in that order.
		last := -1
		for i := 0; i < len(p); i++ {
			at := strings.IndexByte(allPerms, p[i])
			if at <= last {
				return scope{}, false
			}
			last = at
		}
		sc.perms = p
	}
	if sc.v1 && query != "" {
		return scope{}, false
	}
	return sc, true
}

func validTypeName(s string) bool {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

// v2 renders a clinical scope in SMART v2 syntax.
func (s scope) v2() string {
	out := s.context + "/" + s.resource + "." + s.perms
	if s.query != "" {
		out += "?" + s.query
	}
	return out
}

// covers reports whether s grants at least what o asks for.
func (s scope) covers(o scope) bool {
	if s.context != o.context && !(s.context == "user" && o.context == "patient") {
		return false
	}
	if s.resource != "*" && s.resource != o.resource {
		return false
	}
	for i := 0; i < len(o.perms); i++ {
		if !strings.Contains(s.perms, o.perms[i:i+1]) {
			return false
		}
	}
	return s.query == "" || s.query == o.query
}

// intersect returns what o asks for that s grants, if anything: the
// narrower resource type, the common permissions, the query of either.
func (s scope) intersect(o scope) (scope, bool) {
	if s.context != o.context && !(s.context == "user" && o.context == "patient") {
		return scope{}, false
	}
	out := scope{context: o.context, resource: o.resource}
	switch {
	case s.resource == "*":
	case o.resource == "*" || o.resource == s.resource:
		out.resource = s.resource
	default:
		return scope{}, false
	}
	for i := 0; i < len(allPerms); i++ {
		c := allPerms[i : i+1]
		if strings.Contains(s.perms, c) && strings.Contains(o.perms, c) {
			out.perms += c
		}
	}
	if out.perms == "" {
		return scope{}, false
	}
	switch {
	case s.query == "" || s.query == o.query:
		out.query = o.query
	case o.query == "":
		out.query = s.query
	default:
		return scope{}, false
	}
	return out, true
}

// scopeCovered is fosite's scope strategy: does the registered set
// (haystack) allow the requested scope (needle)?
func scopeCovered(haystack []string, needle string) bool {
	want, clinical := parseScope(needle)
	for _, h := range haystack {
		if h == needle {
			return true
		}
		if !clinical {
			continue
		}
		if have, ok := parseScope(h); ok && have.covers(want) {
			return true
		}
	}
	return false
}

// normalizeScopes returns the scopes with the SMART v2 form of every v1
// scope added after it (patient/*.read → patient/*.read patient/*.rs), once
// each.
func normalizeScopes(scopes []string) []string {
	out := make([]string, 0, len(scopes))
	for _, s := range scopes {
		out = appendOnce(out, s)
		if sc, ok := parseScope(s); ok && sc.v1 {
			out = appendOnce(out, sc.v2())
		}
	}
	return out
}

func appendOnce(list []string, s string) []string {
	if s == "" || slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// narrowScopes returns what of requested the caps allow: clinical scopes
// are cut down to what some cap grants (possibly several narrower scopes),
// others must appear in caps. v1 scopes that are wholly covered are kept
// with their v2 form; partly covered ones become v2 scopes.
func narrowScopes(requested, caps []string) []string {
	var out []string
	for _, r := range requested {
		want, clinical := parseScope(r)
		if !clinical {
			if slices.Contains(caps, r) {
				out = appendOnce(out, r)
			}
			continue
		}
		if scopeCovered(caps, r) {
			out = appendOnce(out, r)
			if want.v1 {
				out = appendOnce(out, want.v2())
			}
			continue
		}
		for _, c := range caps {
			have, ok := parseScope(c)
			if !ok {
				continue
			}
			if got, ok := have.intersect(want); ok {
				out = appendOnce(out, got.v2())
			}
		}
	}
	return out
}

// contextScopes are the scopes that ask for identity or launch context
// rather than data; clients with the authorization_code grant may always
// ask for them (offline_access also needs the refresh_token grant).
var contextScopes = []string{"openid", "fhirUser", "profile", "launch", "launch/patient", "launch/encounter", "online_access"}

// hasClinical reports whether any scope is a clinical scope of the context.
func hasClinical(scopes []string, context string) bool {
	for _, s := range scopes {
		if sc, ok := parseScope(s); ok && sc.context == context {
			return true
		}
	}
	return false
}

// describeScope puts a scope in plain words for the consent page.
func describeScope(s string) string {
	switch s {
	case "openid":
		return "Confirm your identity to the app"
	case "fhirUser", "profile":
		return "Tell the app who you are (your user record)"
	case "launch":
		return "Use the context the app was launched from"
	case "launch/patient":
		return "Know which patient is selected"
	case "launch/encounter":
		return "Know which encounter is selected"
	case "offline_access":
		return "Keep access when you are not using the app (until you revoke it)"
	case "online_access":
		return "Keep access while you stay logged in"
	}
	sc, ok := parseScope(s)
	if !ok {
		return s
	}
	var verbs []string
	for _, p := range []struct{ c, word string }{{"c", "create"}, {"r", "read"}, {"u", "update"}, {"d", "delete"}, {"s", "search"}} {
		if strings.Contains(sc.perms, p.c) {
			verbs = append(verbs, p.word)
		}
	}
	what := "all kinds of records"
	if sc.resource != "*" {
		what = sc.resource + " records"
	}
	whose := map[string]string{"patient": "of the selected patient", "user": "that you may access", "system": "on the whole server"}[sc.context]
	out := strings.Join(verbs, ", ") + " " + what + " " + whose
	if sc.query != "" {
		out += " (only those matching " + sc.query + ")"
	}
	return strings.ToUpper(out[:1]) + out[1:]
}
