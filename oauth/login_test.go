package oauth_test

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fhirserver/fhirserver/oauth"
)

func TestBasicLogin(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.user("alice", "correct horse", "Patient/p1", "")
	e.user("doc", "stethoscope", "Practitioner/d1", "user/*.rs")

	r := e.get("/fhir/login", "Authorization", rawBasic("alice", "correct horse"))
	wantStatus(t, r, 200)
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", r.header.Get("Cache-Control"))
	}
	if r.str("token_type") != "Bearer" || r.str("refresh_token") == "" || r.str("patient") != "p1" || r.json["expires_in"] == nil {
		t.Fatalf("login response %s", r.body)
	}
	if !strings.Contains(r.str("scope"), "patient/*.rs") {
		t.Fatalf("scope %q", r.str("scope"))
	}
	claims, err := e.p.Verifier().Verify(ctx, r.str("access_token"))
	if err != nil {
		t.Fatal(err)
	}
	if claims.ClientID != oauth.LoginClientID || claims.Subject != "alice" || claims.FHIRUser != e.base+"/fhir/Patient/p1" || claims.Patient != "p1" {
		t.Fatalf("claims %+v", claims)
	}

	// POST works too, and scope narrows (v1 accepted, recorded in v2).
	r = e.post("/fhir/login", url.Values{"scope": {"patient/Observation.read"}}, "Authorization", rawBasic("alice", "correct horse"))
	wantStatus(t, r, 200)
	if got := strings.Fields(r.str("scope")); !slices.Contains(got, "patient/Observation.read") || !slices.Contains(got, "patient/Observation.rs") || slices.Contains(got, "patient/*.rs") {
		t.Fatalf("narrowed scope %q", r.str("scope"))
	}
	// Narrowing cannot widen: a Practitioner capped at user/*.rs asking for
	// write gets read.
	r = e.get("/fhir/login?scope="+url.QueryEscape("user/Patient.cruds"), "Authorization", rawBasic("doc", "stethoscope"))
	wantStatus(t, r, 200)
	if got := strings.Fields(r.str("scope")); !slices.Contains(got, "user/Patient.rs") || slices.Contains(got, "user/Patient.cruds") {
		t.Fatalf("capped scope %q", r.str("scope"))
	}
	if r.str("patient") != "" {
		t.Fatalf("practitioner got a patient: %s", r.body)
	}

	// Refresh at the token endpoint for client "login", rotating.
	login := e.get("/fhir/login", "Authorization", rawBasic("alice", "correct horse"))
	rt := login.str("refresh_token")
	// A client registered with scope introspect sees the refresh token.
	auditor := e.confidential("auditor", "system/*.rs introspect")
	in := e.post("/oauth/introspect", url.Values{"token": {rt}}, "Authorization", basic("auditor", auditor))
	if in.json["active"] != true || in.str("token_type") != "refresh_token" || in.str("client_id") != "login" || in.str("sub") != "alice" || in.str("patient") != "p1" {
		t.Fatalf("refresh token introspection: %s", in.body)
	}
	r1 := e.post("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"login"}})
	wantStatus(t, r1, 200)
	if r1.str("refresh_token") == "" || r1.str("refresh_token") == rt || r1.str("patient") != "p1" {
		t.Fatalf("refresh %s", r1.body)
	}
	// ... also at B/fhir/login, narrowing.
	r2 := e.post("/fhir/login", url.Values{"refresh_token": {r1.str("refresh_token")}, "scope": {"patient/Observation.rs"}})
	wantStatus(t, r2, 200)
	if got := strings.Fields(r2.str("scope")); slices.Contains(got, "patient/*.rs") || !slices.Contains(got, "patient/Observation.rs") {
		t.Fatalf("refresh narrowing %q", r2.str("scope"))
	}
	// Reusing a rotated refresh token fails and revokes the whole family.
	r3 := e.post("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"login"}})
	if r3.status != 400 || r3.str("error") != "invalid_grant" {
		t.Fatalf("reuse: %d %s", r3.status, r3.body)
	}
	r4 := e.post("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r2.str("refresh_token")}, "client_id": {"login"}})
	if r4.status != 400 || r4.str("error") != "invalid_grant" {
		t.Fatalf("family member after reuse: %d %s", r4.status, r4.body)
	}
	for i, tok := range []string{login.str("access_token"), r1.str("access_token"), r2.str("access_token")} {
		if _, err := e.p.Verifier().Verify(ctx, tok); !errors.Is(err, oauth.ErrInvalidToken) {
			t.Fatalf("access token %d of a revoked family verifies: %v", i, err)
		}
	}
	if in := e.post("/oauth/introspect", url.Values{"token": {rt}}, "Authorization", basic("auditor", auditor)); in.json["active"] != false {
		t.Fatalf("a used refresh token is active: %s", in.body)
	}
	// Other logins are untouched.
	if _, err := e.p.Verifier().Verify(ctx, claimsToken(r)); err != nil {
		t.Fatalf("an unrelated token was revoked: %v", err)
	}

	// Logout revokes the grant of the bearer token.
	l2 := e.get("/fhir/login", "Authorization", rawBasic("alice", "correct horse"))
	out := e.post("/fhir/logout", nil, "Authorization", "Bearer "+l2.str("access_token"))
	wantStatus(t, out, 204)
	if _, err := e.p.Verifier().Verify(ctx, l2.str("access_token")); !errors.Is(err, oauth.ErrInvalidToken) {
		t.Fatalf("token verifies after logout: %v", err)
	}
	r5 := e.post("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {l2.str("refresh_token")}, "client_id": {"login"}})
	if r5.status != 400 {
		t.Fatalf("refresh after logout: %d %s", r5.status, r5.body)
	}
}

func claimsToken(r result) string { return r.str("access_token") }

func TestBasicLoginFailures(t *testing.T) {
	e := newEnv(t)
	e.user("bob", "right password", "", "")
	wrong := e.get("/fhir/login", "Authorization", rawBasic("bob", "wrong"))
	unknown := e.get("/fhir/login", "Authorization", rawBasic("nobody", "wrong"))
	none := e.get("/fhir/login")
	for name, r := range map[string]result{"wrong password": wrong, "unknown user": unknown, "no credentials": none} {
		wantStatus(t, r, 401)
		if r.header.Get("WWW-Authenticate") != `Basic realm="fhir"` || r.str("resourceType") != "OperationOutcome" {
			t.Fatalf("%s: %v %s", name, r.header, r.body)
		}
	}
	if string(wrong.body) != string(unknown.body) || wrong.header.Get("Content-Type") != unknown.header.Get("Content-Type") {
		t.Fatalf("unknown user and wrong password differ:\n%s\n%s", wrong.body, unknown.body)
	}

	// 5 failures in 15 minutes throttle, even with the right password.
	for range 3 {
		wantStatus(t, e.get("/fhir/login", "Authorization", rawBasic("bob", "wrong")), 401)
	}
	r := e.get("/fhir/login", "Authorization", rawBasic("bob", "right password"))
	wantStatus(t, r, 429)
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 || s > 15*60 {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	if r.str("resourceType") != "OperationOutcome" {
		t.Fatalf("429 body %s", r.body)
	}
	// After the window the user may log in again.
	e.advance(16 * 60e9)
	wantStatus(t, e.get("/fhir/login", "Authorization", rawBasic("bob", "right password")), 200)
}

func TestBasicLoginThrottlesAddress(t *testing.T) {
	e := newEnv(t)
	e.user("carol", "right password", "", "")
	// Different (unknown) users from one address.
	for i := range 5 {
		wantStatus(t, e.get("/fhir/login", "Authorization", rawBasic("u"+strconv.Itoa(i), "x")), 401)
	}
	wantStatus(t, e.get("/fhir/login", "Authorization", rawBasic("carol", "right password")), 429)
}

func TestBasicLoginThrottlesUser(t *testing.T) {
	e := newEnv(t)
	e.user("dave", "right password", "", "")
	// Failures for dave recorded from other addresses.
	for range 5 {
		if err := e.st.RecordLoginFailure(context.Background(), []string{oauth.UserThrottleKey("", "Dave")}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	wantStatus(t, e.get("/fhir/login", "Authorization", rawBasic("dave", "right password")), 429)
	e.user("erin", "right password", "", "")
	wantStatus(t, e.get("/fhir/login", "Authorization", rawBasic("erin", "right password")), 200)
}
