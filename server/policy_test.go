package server_test

import (
	"net/http"
	"testing"

	"github.com/fhirserver/fhirserver/authz/policyfile"
	"github.com/fhirserver/fhirserver/server"
	"github.com/fhirserver/fhirserver/server/servertest"
)

// wardPolicy narrows practitioners' user/ tokens to patient a's
// compartment and takes deletes away from them; system tokens keep what
// their scopes allow.
const wardPolicy = `rules:
  - name: practitioners do not delete
    when: {fhirUserType: Practitioner}
    deny: delete
  - name: ward
    when: {fhirUserType: Practitioner}
    allow: [read, write]
    compartment: [Patient/a]
  - name: backends
    when: {scopeLevel: system}
    allow: all
`

// policyServer sets up SMART auth with policy and three tokens: "doc" (a
// practitioner's user/*.cruds), "sys" (system/*.cruds) and "ops"
// (system/*.rs, of the admin client ops).
func policyServer(t *testing.T, policy string, change ...func(*server.Deps)) func(*server.Deps) {
	t.Helper()
	p, err := policyfile.Parse([]byte(policy), "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tokens := mapVerifier{
		"doc": {ClientID: "ehr", Subject: "doc", Scopes: []string{"openid", "fhirUser", "user/*.cruds"}, FHIRUserType: "Practitioner", FHIRUserID: "doc"},
		"sys": {ClientID: "backend", Subject: "backend", Scopes: []string{"system/*.cruds"}},
		"ops": {ClientID: "ops", Subject: "ops", Scopes: []string{"system/*.rs"}},
	}
	return func(d *server.Deps) {
		d.AuthMode = server.AuthSmart
		d.TokenVerifier = tokens
		d.AccessPolicy = p
		d.AdminClients = []string{"ops"}
		for _, c := range change {
			c(d)
		}
	}
}

func as(token string, kv ...string) map[string]string {
	return hdr(append([]string{"Authorization", "Bearer " + token, "Content-Type", "application/fhir+json"}, kv...)...)
}

func obsJSON(id, patient, status string) string {
	return `{"resourceType":"Observation","id":"` + id + `","status":"` + status + `","code":{"text":"x"},"subject":{"reference":"Patient/` + patient + `"}}`
}

// TestAccessPolicyNarrowsUserToken runs a practitioner's user/*.cruds token
// (which alone may read and change everything) under wardPolicy on both
// stores: it sees, counts and changes only patient a's compartment, cannot
// delete, and a system token is not narrowed.
func TestAccessPolicyNarrowsUserToken(t *testing.T) {
	eachStore(t, func(t *testing.T, newHandler func(t *testing.T) http.Handler) {
		h := newHandler(t)
		seed := []servertest.Scenario{}
		for _, r := range []struct{ path, body string }{
			{"/fhir/Patient/a", `{"resourceType":"Patient","id":"a"}`},
			{"/fhir/Patient/b", `{"resourceType":"Patient","id":"b"}`},
			{"/fhir/Observation/oa1", obsJSON("oa1", "a", "final")},
			{"/fhir/Observation/oa2", obsJSON("oa2", "a", "final")},
			{"/fhir/Observation/ob1", obsJSON("ob1", "b", "final")},
		} {
			seed = append(seed, servertest.Scenario{Name: "seed " + r.path, Method: http.MethodPut, Path: r.path, Header: as("sys"), Body: r.body, ExpectStatus: 201})
		}
		for _, sc := range seed {
			sc.Do(t, h)
		}
		forbiddenBy := func(msg string) func(testing.TB, *servertest.Response) { return expectOutcome("forbidden", msg) }
		for _, sc := range []servertest.Scenario{
			{Name: "search: the ward only", Path: "/fhir/Observation?_total=accurate", Header: as("doc"),
				ExpectStatus: 200, ExpectContains: []string{`"total":2`, "oa1", "oa2"}, ExpectNotContains: []string{"ob1"}},
			{Name: "system search: no patient b", Path: "/fhir?_type=Patient,Observation&_total=accurate", Header: as("doc"),
				ExpectStatus: 200, ExpectContains: []string{`"total":3`}, ExpectNotContains: []string{"ob1", "Patient/b"}},
			{Name: "read another patient's", Path: "/fhir/Observation/ob1", Header: as("doc"), ExpectStatus: 404},
			{Name: "read patient b", Path: "/fhir/Patient/b", Header: as("doc"), ExpectStatus: 404},
			{Name: "read in the ward", Path: "/fhir/Observation/oa1", Header: as("doc"), ExpectStatus: 200},
			{Name: "update in the ward", Method: http.MethodPut, Path: "/fhir/Observation/oa1", Header: as("doc"), Body: obsJSON("oa1", "a", "amended"), ExpectStatus: 200},
			{Name: "update another patient's", Method: http.MethodPut, Path: "/fhir/Observation/ob1", Header: as("doc"), Body: obsJSON("ob1", "a", "amended"), ExpectStatus: 404},
			{Name: "create for another patient", Method: http.MethodPost, Path: "/fhir/Observation", Header: as("doc"), Body: obsJSON("new", "b", "final"),
				ExpectStatus: 403, Check: forbiddenBy("would be outside")},
			{Name: "move out of the ward", Method: http.MethodPut, Path: "/fhir/Observation/oa2", Header: as("doc"), Body: obsJSON("oa2", "b", "amended"), ExpectStatus: 403},
			{Name: "delete is denied by the policy", Method: http.MethodDelete, Path: "/fhir/Observation/oa2", Header: as("doc"),
				ExpectStatus: 403, Check: forbiddenBy("the server's access policy does not allow delete")},
			// Nothing of that changed anything: b has one Observation, oa2
			// is final and there.
			{Name: "system token sees all", Path: "/fhir/Observation?_total=accurate", Header: as("sys"),
				ExpectStatus: 200, ExpectContains: []string{`"total":3`, "ob1"}, ExpectNotContains: []string{"new"}},
			{Name: "oa2 unchanged", Path: "/fhir/Observation/oa2", Header: as("sys"), ExpectStatus: 200, ExpectContains: []string{`"final"`, "Patient/a"}, ExpectNotContains: []string{"amended"}},
			{Name: "system token deletes", Method: http.MethodDelete, Path: "/fhir/Observation/ob1", Header: as("sys"), ExpectStatus: 204},
		} {
			sc.Do(t, h)
		}
	}, policyServer(t, wardPolicy))
}

// TestAccessPolicyDeniesCaller: a caller no rule selects gets 403 for
// everything its scopes allow.
func TestAccessPolicyDeniesCaller(t *testing.T) {
	h := newServer(t, policyServer(t, "rules:\n  - {name: backends only, when: {scopeLevel: system}, allow: all}\n"))
	servertest.Scenario{Name: "user token", Path: "/fhir/Patient", Header: as("doc"), ExpectStatus: 403,
		Check: expectOutcome("forbidden", "the server's access policy does not allow search")}.Do(t, h)
	servertest.Scenario{Name: "system token", Path: "/fhir/Patient", Header: as("sys"), ExpectStatus: 200}.Do(t, h)
}

// TestAccessPolicyEverything: Patient $everything needs the operation
// from the policy (by name) besides read and search, and runs under the
// policy's compartment like a search.
func TestAccessPolicyEverything(t *testing.T) {
	const ward = `rules:
  - name: ward
    when: {fhirUserType: Practitioner}
    allow: [read, $everything]
    compartment: [Patient/a]
  - name: backends
    when: {scopeLevel: system}
    allow: all
`
	for _, tc := range []struct {
		name, policy string
		scenarios    []servertest.Scenario
	}{
		{"operation allowed", ward, []servertest.Scenario{
			{Name: "the ward's patient", Path: "/fhir/Patient/a/$everything", Header: as("doc"),
				ExpectStatus: 200, ExpectContains: []string{`"total":3`, "oa1", "oa2", `"Patient/a"`}, ExpectNotContains: []string{"ob1"}},
			{Name: "type level: the ward only", Method: http.MethodPost, Path: "/fhir/Patient/$everything", Header: as("doc"),
				ExpectStatus: 200, ExpectContains: []string{`"total":3`, "oa1", "oa2"}, ExpectNotContains: []string{"ob1", `"id":"b"`}},
			{Name: "another patient", Path: "/fhir/Patient/b/$everything", Header: as("doc"),
				ExpectStatus: 404, Check: expectOutcome("not-found", "Patient/b is not known")},
			{Name: "system token", Path: "/fhir/Patient/$everything", Header: as("sys"),
				ExpectStatus: 200, ExpectContains: []string{`"total":5`, "ob1"}},
		}},
		{"operation not in the policy", wardPolicy, []servertest.Scenario{
			{Name: "refused by the policy", Path: "/fhir/Patient/a/$everything", Header: as("doc"),
				ExpectStatus: 403, Check: expectOutcome("forbidden", "the server's access policy does not allow $everything of Patient")},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eachStore(t, func(t *testing.T, newHandler func(t *testing.T) http.Handler) {
				h := newHandler(t)
				for _, r := range []struct{ path, body string }{
					{"/fhir/Patient/a", `{"resourceType":"Patient","id":"a"}`},
					{"/fhir/Patient/b", `{"resourceType":"Patient","id":"b"}`},
					{"/fhir/Observation/oa1", obsJSON("oa1", "a", "final")},
					{"/fhir/Observation/oa2", obsJSON("oa2", "a", "final")},
					{"/fhir/Observation/ob1", obsJSON("ob1", "b", "final")},
				} {
					servertest.Scenario{Name: "seed " + r.path, Method: http.MethodPut, Path: r.path, Header: as("sys"), Body: r.body, ExpectStatus: 201}.Do(t, h)
				}
				for _, sc := range tc.scenarios {
					sc.Do(t, h)
				}
			}, policyServer(t, tc.policy))
		})
	}
}
