package server_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/fhirserver/fhirserver/server"
	"github.com/fhirserver/fhirserver/server/servertest"
)

// explained is the answer of $explain-access as a client reads it.
type explained struct {
	Decision     string   `json:"decision"`
	Rule         string   `json:"rule"`
	Rules        []string `json:"rules"`
	Filter       []string `json:"filter"`
	PolicyRules  []string `json:"policyRules"`
	Interactions []struct {
		Interaction string   `json:"interaction"`
		Type        string   `json:"type"`
		Decision    string   `json:"decision"`
		Rule        string   `json:"rule"`
		Match       []string `json:"match"`
		Scopes      struct {
			Decision string `json:"decision"`
		} `json:"scopes"`
		Policy *struct {
			Decision string `json:"decision"`
			Rule     string `json:"rule"`
		} `json:"policy"`
	} `json:"interactions"`
	Caller struct {
		ClientID string `json:"client_id"`
		FHIRUser string `json:"fhirUser"`
	} `json:"caller"`
}

func explain(t testing.TB, res *servertest.Response) explained {
	t.Helper()
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type %q", ct)
	}
	var e explained
	if err := json.Unmarshal([]byte(res.Body), &e); err != nil {
		t.Fatalf("%v: %s", err, res.Body)
	}
	return e
}

const docClaims = `"claims":{"client_id":"ehr","sub":"doc","scope":"openid fhirUser user/*.cruds","fhirUser":"https://fhir.test/fhir/Practitioner/doc"}`

// TestExplainAccess asks $explain-access about requests under wardPolicy:
// its decisions and rules are those the server applies (each case also
// sends the request itself as the practitioner and compares), and only
// admin clients may ask.
func TestExplainAccess(t *testing.T) {
	h := newServer(t, policyServer(t, wardPolicy))
	post := func(body string) servertest.Scenario {
		return servertest.Scenario{Name: body, Method: http.MethodPost, Path: "/fhir/$explain-access", Header: as("ops", "Content-Type", "application/json"), Body: body, ExpectStatus: 200}
	}
	for _, tc := range []struct {
		method, url, body string
		status            int // of the request itself, as doc
		decision, rule    string
		filter            []string
	}{
		{"GET", "Observation?patient=a", "", 200, "allow", "policy: ward", []string{"every type in compartment Patient/a"}},
		{"DELETE", "Observation/x", "", 403, "deny", "policy: practitioners do not delete", []string{"nothing"}},
		{"PUT", "Observation/x", obsJSON("x", "a", "final"), 201, "allow", "policy: ward", []string{"Observation in compartment Patient/a"}},
		{"PUT", "Observation?status=final", obsJSON("x", "a", "final"), 200, "allow", "policy: ward", []string{"Observation in compartment Patient/a"}},
		{"GET", "Patient/a/Observation", "", 200, "allow", "policy: ward", []string{"every type in compartment Patient/a"}},
		// A Bundle passes; its entries are decided one by one.
		{"POST", "/", `{"resourceType":"Bundle","type":"batch","entry":[{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/a"}},"request":{"method":"POST","url":"Observation"}}]}`,
			200, "allow", "policy: ward", []string{"every type in compartment Patient/a"}},
		// $everything needs what its handler declares (read and search),
		// and the policy must allow the operation by name.
		{"GET", "Patient/a/$everything", "", 403, "deny", "policy: default deny", []string{"nothing"}},
	} {
		t.Run(tc.method+" "+tc.url, func(t *testing.T) {
			body, _ := json.Marshal(map[string]string{"method": tc.method, "url": tc.url})
			res := post(strings.Replace(string(body), "{", "{"+docClaims+",", 1)).Do(t, h)
			e := explain(t, res)
			if e.Decision != tc.decision || e.Rule != tc.rule || !slices.Equal(e.Filter, tc.filter) {
				t.Errorf("%s by %q, filter %q; want %s by %q, %q", e.Decision, e.Rule, e.Filter, tc.decision, tc.rule, tc.filter)
			}
			if e.Caller.FHIRUser != "Practitioner/doc" || !slices.Equal(e.PolicyRules, []string{"practitioners do not delete", "ward"}) {
				t.Errorf("caller %+v, policy rules %v", e.Caller, e.PolicyRules)
			}
			if e.Decision == "allow" && (!slices.Contains(e.Rules, "scopes: user/*.cruds") || !slices.Contains(e.Rules, "policy: ward")) {
				t.Errorf("rules %v", e.Rules)
			}
			got := do(t, h, tc.method, strings.TrimSuffix("/fhir/"+tc.url, "/"), tc.body, "Authorization", "Bearer doc", "Content-Type", "application/fhir+json")
			if got.Code != tc.status {
				t.Errorf("the request itself: %d, want %d: %s", got.Code, tc.status, got.Body)
			}
		})
	}

	t.Run("conditional delete shows the match filter", func(t *testing.T) {
		res := post(`{"method":"DELETE","url":"Observation?status=final","claims":{"client_id":"b","scope":"system/*.cruds"}}`).Do(t, h)
		e := explain(t, res)
		if e.Decision != "allow" || e.Rule != "policy: backends" || len(e.Interactions) != 1 || !slices.Equal(e.Interactions[0].Match, []string{"Observation"}) {
			t.Errorf("%+v", e)
		}
	})
	t.Run("the calling token (GET)", func(t *testing.T) {
		res := servertest.Scenario{Path: "/fhir/$explain-access?method=GET&url=Observation%3Fpatient%3Da", Header: as("ops"), ExpectStatus: 200}.Do(t, h)
		e := explain(t, res)
		if e.Caller.ClientID != "ops" || e.Decision != "allow" || e.Rule != "policy: backends" || !slices.Equal(e.Filter, []string{"everything"}) {
			t.Errorf("%+v", e)
		}
	})
	t.Run("a token in the body", func(t *testing.T) {
		e := explain(t, post(`{"method":"DELETE","url":"Observation/x","token":"doc"}`).Do(t, h))
		if e.Decision != "deny" || e.Rule != "policy: practitioners do not delete" || e.Interactions[0].Scopes.Decision != "allow" {
			t.Errorf("%+v", e)
		}
	})
	t.Run("an operation", func(t *testing.T) {
		e := explain(t, post(`{"method":"GET","url":"Patient/a/$everything","needs":"rs",`+docClaims+`}`).Do(t, h))
		if e.Decision != "deny" || e.Rule != "policy: default deny" || e.Interactions[0].Interaction != "operation" {
			t.Errorf("%+v", e)
		}
		e = explain(t, post(`{"method":"GET","url":"$export","needs":"rs","claims":{"client_id":"b","scope":"system/*.rs"}}`).Do(t, h))
		if e.Decision != "allow" || e.Rule != "policy: backends" {
			t.Errorf("%+v", e)
		}
	})

	bad := expectOutcome("invalid", "")
	for _, sc := range []servertest.Scenario{
		{Name: "no token", Path: "/fhir/$explain-access?url=Patient", ExpectStatus: 401},
		{Name: "other methods", Method: http.MethodPut, Path: "/fhir/$explain-access", Header: as("ops"), ExpectStatus: 405, ExpectHeader: map[string]string{"Allow": "GET, HEAD, POST"}},
		{Name: "not an admin", Path: "/fhir/$explain-access?url=Patient", Header: as("sys"), ExpectStatus: 403, Check: expectOutcome("forbidden", "for administrators")},
		{Name: "not an admin, POST", Method: http.MethodPost, Path: "/fhir/$explain-access", Header: as("doc", "Content-Type", "application/json"), Body: `{"url":"Patient"}`, ExpectStatus: 403},
		{Name: "no url", Path: "/fhir/$explain-access", Header: as("ops"), ExpectStatus: 400, Check: expectOutcome("invalid", "url is missing")},
		{Name: "unknown type", Path: "/fhir/$explain-access?url=Nope/1", Header: as("ops"), ExpectStatus: 400, Check: expectOutcome("invalid", `"Nope" is not a resource type`)},
		{Name: "bad method", Path: "/fhir/$explain-access?url=Patient&method=BREW", Header: as("ops"), ExpectStatus: 400, Check: bad},
		{Name: "foreign URL", Path: "/fhir/$explain-access?url=https://elsewhere/fhir/Patient", Header: as("ops"), ExpectStatus: 400, Check: bad},
		{Name: "unknown field", Method: http.MethodPost, Path: "/fhir/$explain-access", Header: as("ops", "Content-Type", "application/json"), Body: `{"url":"Patient","scope":"x"}`, ExpectStatus: 400, Check: bad},
		{Name: "token and claims", Method: http.MethodPost, Path: "/fhir/$explain-access", Header: as("ops", "Content-Type", "application/json"), Body: `{"url":"Patient","token":"doc",` + docClaims + `}`, ExpectStatus: 400, Check: bad},
		{Name: "invalid token", Method: http.MethodPost, Path: "/fhir/$explain-access", Header: as("ops", "Content-Type", "application/json"), Body: `{"url":"Patient","token":"forged"}`, ExpectStatus: 400, Check: expectOutcome("invalid", "invalid or expired")},
		{Name: "bad needs", Method: http.MethodPost, Path: "/fhir/$explain-access", Header: as("ops", "Content-Type", "application/json"), Body: `{"url":"$export","needs":"sr"}`, ExpectStatus: 400, Check: bad},
		{Name: "bad fhirUser", Method: http.MethodPost, Path: "/fhir/$explain-access", Header: as("ops", "Content-Type", "application/json"), Body: `{"url":"Patient","claims":{"fhirUser":"nobody"}}`, ExpectStatus: 400, Check: bad},
	} {
		sc.Do(t, h)
	}
}

// TestExplainAccessWithoutAuth: with --auth none everyone may ask, for
// given claims (there is no calling token).
func TestExplainAccessWithoutAuth(t *testing.T) {
	h := newServer(t, func(d *server.Deps) {})
	servertest.Scenario{Name: "claims", Method: http.MethodPost, Path: "/fhir/$explain-access", Header: hdr("Content-Type", "application/json"),
		Body: `{"url":"Observation","claims":{"scope":"patient/*.rs","patient":"a"}}`, ExpectStatus: 200,
		ExpectContains: []string{`"decision":"allow"`, `"rule":"scopes: patient/*.rs"`, "every type in compartment Patient/a"}}.Do(t, h)
	servertest.Scenario{Name: "no calling token", Path: "/fhir/$explain-access?url=Observation", ExpectStatus: 400,
		Check: expectOutcome("invalid", "no calling token")}.Do(t, h)
}
