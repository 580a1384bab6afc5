package oauth_test

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/fhirserver/fhirserver/oauth"
	"github.com/fhirserver/fhirserver/store"
)

const redirectURI = "http://127.0.0.1:9/callback"

// browser is a cookie-keeping client that does not follow redirects.
type browser struct {
	t testing.TB
	e *env
	c *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: e.t, e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type page struct {
	status   int
	location *url.URL
	header   http.Header
	body     string
}

func (b *browser) do(method, rawURL string, form url.Values) page {
	b.t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		b.t.Fatal(err)
	}
	if !u.IsAbs() {
		u = mustParse(b.e.base + "/oauth/").ResolveReference(u)
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, u.String(), body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	bb, _ := io.ReadAll(resp.Body)
	p := page{status: resp.StatusCode, header: resp.Header, body: string(bb)}
	if loc := resp.Header.Get("Location"); loc != "" {
		p.location = u.ResolveReference(mustParse(loc))
	}
	return p
}

func mustParse(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func (p page) csrf(t testing.TB) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no csrf_token in page (%d):\n%s", p.status, p.body)
	}
	return html.UnescapeString(m[1])
}

// pkcePair returns a verifier and its S256 challenge.
func pkcePair() (string, string) {
	v := oauth.NewJTIForTest() + oauth.NewJTIForTest()
	sum := sha256.Sum256([]byte(v))
	return v, base64.RawURLEncoding.EncodeToString(sum[:])
}

type authz struct {
	client, scope, state, nonce, challenge, method, aud, launch, redirect string
}

func (e *env) authorizeURL(a authz) string {
	q := url.Values{"response_type": {"code"}, "client_id": {a.client}, "redirect_uri": {a.redirect}, "state": {a.state}}
	if a.redirect == "" {
		q.Set("redirect_uri", redirectURI)
	}
	if a.state == "" {
		q.Set("state", "state-12345678")
	}
	for k, v := range map[string]string{"scope": a.scope, "nonce": a.nonce, "code_challenge": a.challenge, "code_challenge_method": a.method, "launch": a.launch} {
		if v != "" {
			q.Set(k, v)
		}
	}
	switch a.aud {
	case "":
		q.Set("aud", e.base+"/fhir")
	case "-":
	default:
		q.Set("aud", a.aud)
	}
	return e.base + "/oauth/authorize?" + q.Encode()
}

// login completes the login form the browser was sent to.
func (b *browser) login(p page, user, password string) page {
	b.t.Helper()
	if p.status != http.StatusSeeOther || p.location.Path != "/oauth/login" {
		b.t.Fatalf("expected a redirect to the login page, got %d %v\n%s", p.status, p.location, p.body)
	}
	form := b.do("GET", p.location.String(), nil)
	if form.status != 200 || !strings.Contains(form.body, `name="username"`) || !strings.Contains(form.body, `name="password"`) {
		b.t.Fatalf("login page %d:\n%s", form.status, form.body)
	}
	return b.do("POST", "login", url.Values{"username": {user}, "password": {password},
		"csrf_token": {form.csrf(b.t)}, "req": {p.location.Query().Get("req")}})
}

// consent approves (or denies) the consent page the browser was sent to,
// ticking the given scopes (all offered ones when nil).
func (b *browser) consent(p page, action string, scopes []string) page {
	b.t.Helper()
	if p.status != http.StatusSeeOther || p.location.Path != "/oauth/consent" {
		b.t.Fatalf("expected a redirect to the consent page, got %d %v\n%s", p.status, p.location, p.body)
	}
	form := b.do("GET", p.location.String(), nil)
	if form.status != 200 {
		b.t.Fatalf("consent page %d:\n%s", form.status, form.body)
	}
	if form.header.Get("X-Frame-Options") != "DENY" || !strings.Contains(form.header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		b.t.Fatalf("consent page headers %v", form.header)
	}
	if scopes == nil {
		for _, m := range regexp.MustCompile(`name="scope" value="([^"]+)" checked`).FindAllStringSubmatch(form.body, -1) {
			scopes = append(scopes, html.UnescapeString(m[1]))
		}
	}
	values := url.Values{"csrf_token": {form.csrf(b.t)}, "req": {p.location.Query().Get("req")}, "action": {action}, "scope": scopes}
	if m := regexp.MustCompile(`name="patient" value="([^"]+)" checked`).FindStringSubmatch(form.body); m != nil {
		values.Set("patient", m[1])
	}
	return b.do("POST", "consent", values)
}

// code takes the code out of the final redirect to the client.
func code(t *testing.T, p page, state string) string {
	t.Helper()
	if p.status != http.StatusSeeOther && p.status != http.StatusFound || p.location == nil || !strings.HasPrefix(p.location.String(), redirectURI) {
		t.Fatalf("expected a redirect to the client, got %d %v\n%s", p.status, p.location, p.body)
	}
	q := p.location.Query()
	if q.Get("error") != "" {
		t.Fatalf("authorization error %s: %s", q.Get("error"), q.Get("error_description"))
	}
	if q.Get("state") != state {
		t.Fatalf("state %q, want %q", q.Get("state"), state)
	}
	return q.Get("code")
}

func (e *env) exchange(client, code, verifier string, extra ...string) result {
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}, "client_id": {client}}
	if verifier != "" {
		form.Set("code_verifier", verifier)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		form.Set(extra[i], extra[i+1])
	}
	return e.post("/oauth/token", form)
}

func (e *env) publicApp(id string) {
	e.t.Helper()
	if _, err := oauth.RegisterClient(context.Background(), e.st, oauth.ClientSpec{ID: id, Public: true, RedirectURIs: []string{redirectURI}}); err != nil {
		e.t.Fatal(err)
	}
}

func TestAuthorizationCodeStandalonePatient(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.publicApp("app")
	e.user("alice", "correct horse", "Patient/p1", "")
	b := e.browser()
	verifier, challenge := pkcePair()
	start := b.do("GET", e.authorizeURL(authz{client: "app", scope: "launch/patient openid fhirUser patient/*.read offline_access", nonce: "nonce-123",
		challenge: challenge, method: "S256", state: "state-abcdefgh"}), nil)
	c := code(t, b.consent(b.login(start, "alice", "correct horse"), "approve", nil), "state-abcdefgh")

	r := e.exchange("app", c, verifier)
	wantStatus(t, r, 200)
	if r.header.Get("Cache-Control") != "no-store" || r.str("token_type") != "Bearer" || r.str("patient") != "p1" ||
		r.json["need_patient_banner"] != true || r.str("refresh_token") == "" || r.str("id_token") == "" {
		t.Fatalf("token response %s", r.body)
	}
	scopes := strings.Fields(r.str("scope"))
	for _, s := range []string{"launch/patient", "openid", "fhirUser", "patient/*.read", "patient/*.rs", "offline_access"} {
		if !slices.Contains(scopes, s) {
			t.Errorf("scope %s missing from %v", s, scopes)
		}
	}
	claims, err := e.p.Verifier().Verify(ctx, r.str("access_token"))
	if err != nil {
		t.Fatal(err)
	}
	if claims.Patient != "p1" || claims.FHIRUser != e.base+"/fhir/Patient/p1" || claims.Subject != "alice" || claims.ClientID != "app" {
		t.Fatalf("access claims %+v", claims)
	}
	// id_token: RS256 by a published key, aud = client, nonce, fhirUser.
	var set jose.JSONWebKeySet
	_ = json.Unmarshal(e.get("/oauth/jwks").body, &set)
	var idc jwt.MapClaims
	_, err = jwt.ParseWithClaims(r.str("id_token"), &idc, func(tk *jwt.Token) (any, error) {
		keys := set.Key(tk.Header["kid"].(string))
		if len(keys) != 1 {
			return nil, errors.New("kid not in JWKS")
		}
		return keys[0].Key.(*rsa.PublicKey), nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithAudience("app"), jwt.WithIssuer(e.base))
	if err != nil {
		t.Fatalf("id_token: %v", err)
	}
	if idc["nonce"] != "nonce-123" || idc["fhirUser"] != e.base+"/fhir/Patient/p1" || idc["sub"] != "alice" {
		t.Fatalf("id_token claims %v", idc)
	}

	// The code cannot be used twice; reuse revokes what it issued.
	r2 := e.exchange("app", c, verifier)
	if r2.status != 400 || r2.str("error") != "invalid_grant" {
		t.Fatalf("code reuse: %d %s", r2.status, r2.body)
	}
	if _, err := e.p.Verifier().Verify(ctx, r.str("access_token")); !errors.Is(err, oauth.ErrInvalidToken) {
		t.Fatalf("access token of a reused code still verifies: %v", err)
	}
	r3 := e.post("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r.str("refresh_token")}, "client_id": {"app"}})
	if r3.status != 400 {
		t.Fatalf("refresh token of a reused code: %d %s", r3.status, r3.body)
	}

	// Logged in already: a second authorization goes straight to consent,
	// and a refresh issues a new id_token.
	verifier2, challenge2 := pkcePair()
	start = b.do("GET", e.authorizeURL(authz{client: "app", scope: "openid fhirUser patient/Observation.rs offline_access", challenge: challenge2, method: "S256"}), nil)
	c = code(t, b.consent(start, "approve", nil), "state-12345678")
	r = e.exchange("app", c, verifier2)
	wantStatus(t, r, 200)
	if r.str("patient") != "p1" {
		t.Fatalf("a patient user's own patient applies to patient/ scopes: %s", r.body)
	}
	r4 := e.post("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r.str("refresh_token")}, "client_id": {"app"}})
	wantStatus(t, r4, 200)
	if r4.str("id_token") == "" || r4.str("patient") != "p1" {
		t.Fatalf("refresh response %s", r4.body)
	}
}

func TestAuthorizationCodeNegative(t *testing.T) {
	e := newEnv(t)
	e.publicApp("app")
	e.user("alice", "correct horse", "Patient/p1", "")
	b := e.browser()
	verifier, challenge := pkcePair()

	// Errors that go back to the client.
	for name, a := range map[string]authz{
		"plain PKCE":      {client: "app", scope: "patient/*.rs", challenge: verifier, method: "plain"},
		"PKCE no method":  {client: "app", scope: "patient/*.rs", challenge: challenge},
		"no PKCE":         {client: "app", scope: "patient/*.rs"},
		"bad aud":         {client: "app", scope: "patient/*.rs", challenge: challenge, method: "S256", aud: "https://elsewhere/fhir"},
		"no aud":          {client: "app", scope: "patient/*.rs", challenge: challenge, method: "S256", aud: "-"},
		"unknown scope":   {client: "app", scope: "system/*.rs", challenge: challenge, method: "S256"},
		"unknown launch":  {client: "app", scope: "launch patient/*.rs", challenge: challenge, method: "S256", launch: "nope"},
		"launch no value": {client: "app", scope: "launch patient/*.rs", challenge: challenge, method: "S256"},
	} {
		p := b.do("GET", e.authorizeURL(a), nil)
		if p.location == nil || !strings.HasPrefix(p.location.String(), redirectURI) || p.location.Query().Get("error") == "" {
			t.Errorf("%s: %d %v %s", name, p.status, p.location, p.body)
			continue
		}
		want := map[string]string{"unknown scope": "invalid_scope"}[name]
		if want == "" {
			want = "invalid_request"
		}
		if got := p.location.Query().Get("error"); got != want {
			t.Errorf("%s: error %s, want %s", name, got, want)
		}
	}
	// Errors that must not redirect: an unregistered redirect URI, an
	// unknown client.
	for name, a := range map[string]authz{
		"redirect mismatch": {client: "app", scope: "patient/*.rs", challenge: challenge, method: "S256", redirect: "http://127.0.0.1:9/other"},
		"unknown client":    {client: "nobody", scope: "patient/*.rs", challenge: challenge, method: "S256"},
	} {
		p := b.do("GET", e.authorizeURL(a), nil)
		if p.status < 400 || (p.location != nil && strings.HasPrefix(p.location.String(), "http://127.0.0.1:9/")) {
			t.Errorf("%s: %d %v", name, p.status, p.location)
		}
	}

	// Deny.
	p := b.do("GET", e.authorizeURL(authz{client: "app", scope: "patient/*.rs", challenge: challenge, method: "S256"}), nil)
	p = b.consent(b.login(p, "alice", "correct horse"), "deny", nil)
	if p.location == nil || p.location.Query().Get("error") != "access_denied" || p.location.Query().Get("state") != "state-12345678" {
		t.Fatalf("deny: %d %v", p.status, p.location)
	}

	// Wrong verifier, no verifier, redirect_uri mismatch at the token endpoint.
	get := func() string {
		p := b.do("GET", e.authorizeURL(authz{client: "app", scope: "patient/*.rs", challenge: challenge, method: "S256"}), nil)
		return code(t, b.consent(p, "approve", nil), "state-12345678")
	}
	other, _ := pkcePair()
	for name, r := range map[string]result{
		"wrong verifier":   e.exchange("app", get(), other),
		"no verifier":      e.exchange("app", get(), ""),
		"redirect differs": e.exchange("app", get(), verifier, "redirect_uri", "http://127.0.0.1:9/other"),
		"other client":     e.exchange("other", get(), verifier),
	} {
		if r.status < 400 || (r.str("error") != "invalid_grant" && r.str("error") != "invalid_client" && r.str("error") != "invalid_request") {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	wantStatus(t, e.exchange("app", get(), verifier), 200)

	// A consent POST without the CSRF token is refused.
	p = b.do("GET", e.authorizeURL(authz{client: "app", scope: "patient/*.rs", challenge: challenge, method: "S256"}), nil)
	forged := b.do("POST", "consent", url.Values{"req": {p.location.Query().Get("req")}, "action": {"approve"}, "scope": {"patient/*.rs"}})
	if forged.status != 403 {
		t.Fatalf("consent without csrf_token: %d", forged.status)
	}
	// A wrong password on the login page.
	b2 := e.browser()
	p = b2.login(b2.do("GET", e.authorizeURL(authz{client: "app", scope: "patient/*.rs", challenge: challenge, method: "S256"}), nil), "alice", "wrong")
	if p.status != 401 || !strings.Contains(p.body, "Wrong username or password") {
		t.Fatalf("wrong password: %d %s", p.status, p.body)
	}
}

func TestEHRLaunchAndPicker(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.publicApp("app")
	secret, err := oauth.RegisterClient(ctx, e.st, oauth.ClientSpec{ID: "web", GenerateSecret: true, RedirectURIs: []string{redirectURI}, Scope: "launch openid fhirUser user/*.rs patient/*.rs online_access"})
	if err != nil {
		t.Fatal(err)
	}
	e.user("doc", "stethoscope", "Practitioner/d1", "")
	launch, err := oauth.CreateLaunch(ctx, e.st, oauth.LaunchSpec{Patient: "p9", Encounter: "e9", Username: "doc"})
	if err != nil {
		t.Fatal(err)
	}
	// EHR launch, confidential client without PKCE.
	b := e.browser()
	p := b.do("GET", e.authorizeURL(authz{client: "web", scope: "launch openid fhirUser patient/*.rs", launch: launch}), nil)
	c := code(t, b.consent(b.login(p, "doc", "stethoscope"), "approve", nil), "state-12345678")
	r := e.post("/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {redirectURI}}, "Authorization", basic("web", secret))
	wantStatus(t, r, 200)
	if r.str("patient") != "p9" || r.str("encounter") != "e9" || r.json["need_patient_banner"] != false {
		t.Fatalf("EHR launch context: %s", r.body)
	}
	claims, err := e.p.Verifier().Verify(ctx, r.str("access_token"))
	if err != nil || claims.Patient != "p9" || claims.Encounter != "e9" || claims.FHIRUser != e.base+"/fhir/Practitioner/d1" {
		t.Fatalf("claims %+v %v", claims, err)
	}
	// The launch was made for doc: another user must log in as doc.
	e.user("nurse", "thermometer", "Practitioner/n1", "")
	b2 := e.browser()
	p = b2.login(b2.do("GET", e.authorizeURL(authz{client: "web", scope: "launch patient/*.rs", launch: launch}), nil), "nurse", "thermometer")
	if p.status != http.StatusSeeOther || p.location.Path != "/oauth/login" {
		t.Fatalf("launch for another user: %d %v", p.status, p.location)
	}

	// Standalone: a practitioner picks the patient.
	verifier, challenge := pkcePair()
	p = b.do("GET", e.authorizeURL(authz{client: "app", scope: "launch/patient openid fhirUser patient/*.rs", challenge: challenge, method: "S256"}), nil)
	if p.status != http.StatusSeeOther || p.location.Path != "/oauth/patient" {
		t.Fatalf("expected the patient picker, got %d %v", p.status, p.location)
	}
	picker := b.do("GET", p.location.String(), nil)
	if picker.status != 200 || !strings.Contains(picker.body, `name="patient_id"`) {
		t.Fatalf("picker %d %s", picker.status, picker.body)
	}
	p = b.do("POST", "patient", url.Values{"csrf_token": {picker.csrf(t)}, "req": {p.location.Query().Get("req")}, "patient_id": {"p5"}})
	consentPage := b.do("GET", p.location.String(), nil)
	if !strings.Contains(consentPage.body, `name="patient" value="p5" checked`) {
		t.Fatalf("consent page lacks the patient choice:\n%s", consentPage.body)
	}
	c = code(t, b.consent(p, "approve", nil), "state-12345678")
	r = e.exchange("app", c, verifier)
	wantStatus(t, r, 200)
	if r.str("patient") != "p5" || r.json["need_patient_banner"] != true {
		t.Fatalf("picked patient: %s", r.body)
	}

	// Unticking scopes narrows the grant.
	verifier, challenge = pkcePair()
	p = b.do("GET", e.authorizeURL(authz{client: "app", scope: "openid fhirUser user/*.rs user/Observation.rs", challenge: challenge, method: "S256"}), nil)
	c = code(t, b.consent(p, "approve", []string{"openid", "user/Observation.rs"}), "state-12345678")
	r = e.exchange("app", c, verifier)
	wantStatus(t, r, 200)
	if r.str("scope") != "openid user/Observation.rs" {
		t.Fatalf("unticked scopes granted: %q", r.str("scope"))
	}

	// online_access ends with the login session.
	p = b.do("GET", e.authorizeURL(authz{client: "web", scope: "launch patient/*.rs online_access", launch: launch}), nil)
	c = code(t, b.consent(p, "approve", nil), "state-12345678")
	r = e.post("/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {redirectURI}}, "Authorization", basic("web", secret))
	wantStatus(t, r, 200)
	rt := r.str("refresh_token")
	r = e.post("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, "Authorization", basic("web", secret))
	wantStatus(t, r, 200)
	b.do("POST", e.base+"/fhir/logout", url.Values{})
	r = e.post("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r.str("refresh_token")}}, "Authorization", basic("web", secret))
	if r.status != 400 || r.str("error") != "invalid_grant" {
		t.Fatalf("online_access refresh after logout: %d %s", r.status, r.body)
	}
}

func TestPatientPickerSearch(t *testing.T) {
	e := newEnv(t)
	// A second provider with the directory and reader on the same store.
	p, err := oauth.New(oauth.Config{BaseURL: e.base, Patients: oauth.SearchDirectory(e.st), Reader: e.st}, e.st)
	if err != nil {
		t.Fatal(err)
	}
	e.p = p
	e.swap(p.Routes())
	ctx := context.Background()
	for _, body := range []string{
		`{"resourceType":"Patient","id":"smith1","name":[{"given":["Anna"],"family":"Smith"}],"birthDate":"1970-01-02"}`,
		`{"resourceType":"Patient","id":"jones1","name":[{"given":["Bob"],"family":"Jones"}]}`,
	} {
		var m map[string]any
		_ = json.Unmarshal([]byte(body), &m)
		if _, _, err := e.st.Update(ctx, store.Write{Type: "Patient", ID: m["id"].(string), Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	e.publicApp("app")
	e.user("doc", "stethoscope", "Practitioner/d1", "")
	b := e.browser()
	verifier, challenge := pkcePair()
	p1 := b.login(b.do("GET", e.authorizeURL(authz{client: "app", scope: "launch/patient patient/*.rs", challenge: challenge, method: "S256"}), nil), "doc", "stethoscope")
	picker := b.do("GET", p1.location.String()+"&q=smith", nil)
	if !strings.Contains(picker.body, "Anna Smith (born 1970-01-02)") || strings.Contains(picker.body, "Jones") {
		t.Fatalf("picker search:\n%s", picker.body)
	}
	// An unknown id is refused; a listed patient is taken.
	bad := b.do("POST", "patient", url.Values{"csrf_token": {picker.csrf(t)}, "req": {p1.location.Query().Get("req")}, "patient_id": {"nobody"}})
	if bad.status != 400 || !strings.Contains(bad.body, "No such patient") {
		t.Fatalf("unknown patient: %d %s", bad.status, bad.body)
	}
	ok := b.do("POST", "patient", url.Values{"csrf_token": {picker.csrf(t)}, "req": {p1.location.Query().Get("req")}, "patient": {"smith1"}})
	c := code(t, b.consent(ok, "approve", nil), "state-12345678")
	r := e.exchange("app", c, verifier)
	if r.status != 200 || r.str("patient") != "smith1" {
		t.Fatalf("picked: %d %s", r.status, r.body)
	}
}
