package oauth

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/store"
	"github.com/fhirserver/fhirserver/web"
)

// The browser side of the authorization code flow:
//
//	/oauth/authorize  checks the request (fosite, then SMART: aud, PKCE,
//	                  launch), stores it as a pending authorization and
//	                  sends the browser on
//	/oauth/login      username and password (throttled like B/fhir/login)
//	/oauth/patient    the patient picker of a standalone launch/patient
//	/oauth/consent    scopes to untick, the patient, approve or deny; on
//	                  approve fosite issues the code and redirects
//
// The pending authorization is named by an opaque "req" value in the URL;
// every form carries a csrf_token bound to an HttpOnly cookie.

const (
	sessionCookie   = "fhir_session"
	csrfCookie      = "fhir_csrf"
	pendingTTL      = 15 * time.Minute
	kindLogin       = "login"
	kindPending     = "authz"
	maxPickPatients = 20
)

// pending is a stored authorization request.
type pending struct {
	Form      url.Values `json:"form"`
	Patient   string     `json:"patient,omitempty"`  // chosen in the picker
	Launch    *launch    `json:"launch,omitempty"`   // the EHR launch context
	DefaultSc bool       `json:"default_scope"`      // no scope asked: the client's registered scopes
	Username  string     `json:"username,omitempty"` // the EHR launch's user
}

type launch struct {
	Patient   string `json:"patient,omitempty"`
	Encounter string `json:"encounter,omitempty"`
}

// loginState is the data of a login session.
type loginState struct {
	AuthTime time.Time `json:"auth_time"`
}

func randomValue() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// storedID is how an opaque value (cookie, req, launch) is stored: hashed,
// so the table does not hold usable handles.
func storedID(kind, value string) string {
	sum := sha256.Sum256([]byte(kind + "\x00" + value))
	return kind + ":" + hex.EncodeToString(sum[:])
}

// LaunchID is the stored id of an EHR launch value.
func LaunchID(value string) string { return storedID("launch", value) }

// pageHeaders are sent with every page.
func pageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

type scopeItem struct{ Name, Text string }

type patientItem struct {
	ID, Label string
	Selected  bool
}

type pageData struct {
	Title, Error, Message string
	Static, Action        string
	CSRF, Req             string
	ClientID, Username    string
	Scopes                []scopeItem
	Patients              []patientItem
	Patient               string
	PickURL               string
	Searchable            bool
	Query                 string
}

func (p *Provider) render(w http.ResponseWriter, status int, name string, d pageData) {
	d.Static = "static"
	var buf bytes.Buffer
	if err := p.pages.ExecuteTemplate(&buf, name, d); err != nil {
		p.cfg.Logger.Error("oauth: rendering a page", "page", name, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	pageHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (p *Provider) message(w http.ResponseWriter, status int, title, msg string) {
	p.render(w, status, "message", pageData{Title: title, Message: msg})
}

func (p *Provider) cookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteLaxMode}
}

// csrf returns the csrf_token for the browser's CSRF cookie, setting the
// cookie first if the browser has none.
func (p *Provider) csrf(w http.ResponseWriter, r *http.Request) string {
	v := ""
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) == 43 {
		v = c.Value
	} else {
		v = randomValue()
		http.SetCookie(w, p.cookie(csrfCookie, v, 0))
	}
	return p.csrfFor(v)
}

func (p *Provider) csrfFor(cookie string) string {
	m := hmac.New(sha256.New, p.keys.pepper())
	m.Write([]byte("csrf\x00" + cookie))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// csrfOK checks a form's csrf_token against the cookie.
func (p *Provider) csrfOK(r *http.Request) bool {
	c, err := r.Cookie(csrfCookie)
	if err != nil || c.Value == "" {
		return false
	}
	return hmac.Equal([]byte(r.PostForm.Get("csrf_token")), []byte(p.csrfFor(c.Value)))
}

// loggedIn returns the user of the browser's login session, if any.
func (p *Provider) loggedIn(ctx context.Context, r *http.Request) (*store.OAuthUser, *store.OAuthSession, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil, nil, nil
	}
	s, err := p.store.GetSession(ctx, storedID(kindLogin, c.Value))
	if fhir.KindOf(err) == fhir.KindNotFound || (err == nil && (s.Kind != kindLogin || s.Tenant != p.cfg.Tenant)) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	u, err := p.store.GetUser(ctx, p.cfg.Tenant, s.Username)
	if fhir.KindOf(err) == fhir.KindNotFound {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	return u, s, nil
}

// startLoginSession logs the browser in as u.
func (p *Provider) startLoginSession(ctx context.Context, w http.ResponseWriter, u *store.OAuthUser) error {
	v := randomValue()
	now := p.now()
	data, _ := json.Marshal(loginState{AuthTime: now.UTC()})
	err := p.store.PutSession(ctx, store.OAuthSession{
		ID: storedID(kindLogin, v), Tenant: p.cfg.Tenant, Kind: kindLogin, Username: u.Username,
		Data: data, CreatedAt: now, ExpiresAt: now.Add(p.cfg.LoginSessionTTL),
	})
	if err != nil {
		return err
	}
	http.SetCookie(w, p.cookie(sessionCookie, v, int(p.cfg.LoginSessionTTL/time.Second)))
	return nil
}

// endLoginSession logs the browser out (online_access grants end with it).
func (p *Provider) endLoginSession(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return
	}
	if err := p.store.DeleteSession(r.Context(), storedID(kindLogin, c.Value)); err != nil {
		p.cfg.Logger.ErrorContext(r.Context(), "oauth: ending a login session", "error", err)
	}
	http.SetCookie(w, p.cookie(sessionCookie, "", -1))
}

// loadPending reads the pending authorization named by req.
func (p *Provider) loadPending(ctx context.Context, req string) (*pending, error) {
	if req == "" {
		return nil, nil
	}
	s, err := p.store.GetSession(ctx, storedID(kindPending, req))
	if fhir.KindOf(err) == fhir.KindNotFound || (err == nil && s.Kind != kindPending) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var pd pending
	if err := json.Unmarshal(s.Data, &pd); err != nil {
		return nil, err
	}
	return &pd, nil
}

func (p *Provider) savePending(ctx context.Context, req string, pd *pending) error {
	data, err := json.Marshal(pd)
	if err != nil {
		return err
	}
	now := p.now()
	return p.store.PutSession(ctx, store.OAuthSession{
		ID: storedID(kindPending, req), Tenant: p.cfg.Tenant, Kind: kindPending,
		Data: data, CreatedAt: now, ExpiresAt: now.Add(pendingTTL),
	})
}

// authorize is the authorization endpoint (GET, or POST: authorize-post).
func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		p.message(w, http.StatusMethodNotAllowed, "Method not allowed", "Use GET or POST.")
		return
	}
	ar, err := p.fosite.NewAuthorizeRequest(ctx, r)
	if err != nil {
		p.authorizeError(w, r, ar, err)
		return
	}
	pd, err := p.smartAuthorize(ctx, ar)
	if err != nil {
		p.authorizeError(w, r, ar, err)
		return
	}
	u, _, err := p.loggedIn(ctx, r)
	if err != nil {
		p.pageInternal(w, r, "reading the login session", err)
		return
	}
	if ar.GetRequestForm().Get("prompt") == "none" && u == nil {
		p.authorizeError(w, r, ar, fosite.ErrLoginRequired)
		return
	}
	req := randomValue()
	if err := p.savePending(ctx, req, pd); err != nil {
		p.pageInternal(w, r, "storing the authorization request", err)
		return
	}
	p.next(w, r, req, pd, u)
}

// smartAuthorize applies the SMART rules fosite does not know: aud must be
// B/fhir; PKCE S256 (plain refused; required for public clients); a launch
// value must name a live launch context.
func (p *Provider) smartAuthorize(ctx context.Context, ar fosite.AuthorizeRequester) (*pending, error) {
	form := ar.GetRequestForm()
	if aud := strings.TrimRight(form.Get("aud"), "/"); aud != p.fhirBase {
		if aud == "" {
			return nil, fosite.ErrInvalidRequest.WithHintf("The aud parameter is required and must be %s.", p.fhirBase)
		}
		return nil, fosite.ErrInvalidRequest.WithHintf("The aud parameter must be %s.", p.fhirBase)
	}
	challenge, method := form.Get("code_challenge"), form.Get("code_challenge_method")
	switch {
	case challenge == "" && method != "":
		return nil, fosite.ErrInvalidRequest.WithHint("code_challenge_method without code_challenge.")
	case challenge == "" && ar.GetClient().IsPublic():
		return nil, fosite.ErrInvalidRequest.WithHint("Public clients must use PKCE (code_challenge with code_challenge_method=S256).")
	case challenge != "" && method != "S256":
		return nil, fosite.ErrInvalidRequest.WithHint("code_challenge_method must be S256; plain is not allowed.")
	}
	pd := &pending{Form: form, DefaultSc: len(ar.GetRequestedScopes()) == 0}
	if v := form.Get("launch"); v != "" || ar.GetRequestedScopes().Has("launch") {
		if v == "" {
			return nil, fosite.ErrInvalidRequest.WithHint("The launch scope needs a launch parameter (EHR launch).")
		}
		l, err := p.store.GetLaunch(ctx, p.cfg.Tenant, LaunchID(v))
		if fhir.KindOf(err) == fhir.KindNotFound {
			return nil, fosite.ErrInvalidRequest.WithHint("The launch parameter is unknown or expired.")
		}
		if err != nil {
			return nil, fosite.ErrServerError.WithWrap(err)
		}
		pd.Launch = &launch{Patient: l.Patient, Encounter: l.Encounter}
		pd.Username = l.Username
	}
	return pd, nil
}

func (p *Provider) authorizeError(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, err error) {
	if rfc := fosite.ErrorToRFC6749Error(err); rfc.CodeField >= 500 {
		p.cfg.Logger.ErrorContext(r.Context(), "oauth: authorize", "error", err, "cause", errors.Unwrap(rfc))
	}
	if ar == nil {
		ar = fosite.NewAuthorizeRequest()
	}
	pageHeaders(w)
	p.fosite.WriteAuthorizeError(r.Context(), w, ar, err)
}

func (p *Provider) pageInternal(w http.ResponseWriter, r *http.Request, doing string, err error) {
	p.cfg.Logger.ErrorContext(r.Context(), "oauth: "+doing, "error", err)
	p.message(w, http.StatusInternalServerError, "Something went wrong", "Please try again later.")
}

// next sends the browser to the step the pending authorization needs.
func (p *Provider) next(w http.ResponseWriter, r *http.Request, req string, pd *pending, u *store.OAuthUser) {
	q := "?req=" + url.QueryEscape(req)
	switch {
	case u == nil || (pd.Username != "" && !strings.EqualFold(pd.Username, u.Username)):
		http.Redirect(w, r, "login"+q, http.StatusSeeOther)
	case p.needsPick(r.Context(), pd, u):
		http.Redirect(w, r, "patient"+q, http.StatusSeeOther)
	default:
		http.Redirect(w, r, "consent"+q, http.StatusSeeOther)
	}
}

// wantsPatient reports whether the request asks for a patient context
// (launch/patient, or patient/ scopes, in a standalone launch).
func (pd *pending) wantsPatient(scopes []string) bool {
	return pd.Launch == nil && (slices.Contains(scopes, "launch/patient") || hasClinical(scopes, "patient"))
}

func (p *Provider) needsPick(ctx context.Context, pd *pending, u *store.OAuthUser) bool {
	return pd.wantsPatient(strings.Fields(pd.Form.Get("scope"))) && pd.Patient == "" && p.userPatient(ctx, u) == ""
}

// loginPage is the login form.
func (p *Provider) loginPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	req := r.FormValue("req")
	d := pageData{Title: "Log in", Action: "login", Req: req}
	pd, err := p.loadPending(ctx, req)
	if err != nil {
		p.pageInternal(w, r, "reading the authorization request", err)
		return
	}
	if pd != nil {
		d.ClientID = pd.Form.Get("client_id")
		d.Username = pd.Username
	} else {
		d.Req = ""
	}
	switch r.Method {
	case http.MethodGet:
		d.CSRF = p.csrf(w, r)
		p.render(w, http.StatusOK, "login", d)
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, POST")
		p.message(w, http.StatusMethodNotAllowed, "Method not allowed", "Use GET or POST.")
		return
	}
	d.CSRF = p.csrf(w, r)
	if !p.csrfOK(r) {
		d.Error = "Your session expired. Please log in again."
		p.render(w, http.StatusForbidden, "login", d)
		return
	}
	d.Username = r.PostForm.Get("username")
	u, err := p.authenticateUser(ctx, d.Username, r.PostForm.Get("password"), clientAddress(r))
	var th errThrottled
	switch {
	case errors.As(err, &th):
		w.Header().Set("Retry-After", strconv.Itoa(int(th.retryAfter.Seconds()+0.999)))
		d.Error = "Too many failed logins. Please try again later."
		p.render(w, http.StatusTooManyRequests, "login", d)
		return
	case errors.Is(err, errBadCredentials):
		d.Error = "Wrong username or password."
		p.render(w, http.StatusUnauthorized, "login", d)
		return
	case err != nil:
		p.pageInternal(w, r, "checking a login", err)
		return
	}
	if err := p.startLoginSession(ctx, w, u); err != nil {
		p.pageInternal(w, r, "starting a login session", err)
		return
	}
	if pd == nil {
		p.message(w, http.StatusOK, "Logged in", "You are logged in as "+u.Username+".")
		return
	}
	p.next(w, r, req, pd, u)
}

// offered are the scopes the consent page offers: those asked for (or the
// client's registered ones), narrowed to what the user may be granted.
func (p *Provider) offered(c *client, pd *pending, u *store.OAuthUser) []string {
	asked := strings.Fields(pd.Form.Get("scope"))
	if pd.DefaultSc {
		asked = strings.Fields(c.c.Scope)
	}
	out := narrowScopes(normalizeScopes(asked), userCaps(u))
	if pd.Launch == nil {
		out = slices.DeleteFunc(out, func(s string) bool { return s == "launch" || s == "launch/encounter" })
	}
	return slices.DeleteFunc(out, func(s string) bool { return !scopeCovered(c.scopes, s) })
}

// consentContext is what the consent page shows and approves.
type consentContext struct {
	pd       *pending
	req      string
	user     *store.OAuthUser
	login    *store.OAuthSession
	client   *client
	scopes   []string
	patient  string // "" when none applies
	pickable bool   // the user chose the patient and may choose another
}

// consentSetup loads what the consent and patient pages need, answering the
// request itself (and returning nil) when something is missing.
func (p *Provider) consentSetup(w http.ResponseWriter, r *http.Request) *consentContext {
	ctx := r.Context()
	req := r.FormValue("req")
	pd, err := p.loadPending(ctx, req)
	if err != nil {
		p.pageInternal(w, r, "reading the authorization request", err)
		return nil
	}
	if pd == nil {
		p.message(w, http.StatusBadRequest, "Request expired", "This authorization request is unknown or has expired. Please start again from the app.")
		return nil
	}
	u, login, err := p.loggedIn(ctx, r)
	if err != nil {
		p.pageInternal(w, r, "reading the login session", err)
		return nil
	}
	if u == nil || (pd.Username != "" && !strings.EqualFold(pd.Username, u.Username)) {
		http.Redirect(w, r, "login?req="+url.QueryEscape(req), http.StatusSeeOther)
		return nil
	}
	c, err := p.client(ctx, pd.Form.Get("client_id"))
	if err != nil {
		p.message(w, http.StatusBadRequest, "Unknown app", "The app of this request is no longer registered.")
		return nil
	}
	cc := &consentContext{pd: pd, req: req, user: u, login: login, client: c, scopes: p.offered(c, pd, u)}
	switch {
	case pd.Launch != nil:
		cc.patient = pd.Launch.Patient
	case p.userPatient(ctx, u) != "":
		cc.patient = p.userPatient(ctx, u)
	case pd.Patient != "":
		cc.patient, cc.pickable = pd.Patient, true
	}
	return cc
}

// consentPage shows and handles the consent form.
func (p *Provider) consentPage(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		p.message(w, http.StatusMethodNotAllowed, "Method not allowed", "Use GET or POST.")
		return
	}
	if r.Method == http.MethodPost {
		_ = r.ParseForm()
	}
	cc := p.consentSetup(w, r)
	if cc == nil {
		return
	}
	if cc.pd.wantsPatient(cc.scopes) && cc.patient == "" {
		http.Redirect(w, r, "patient?req="+url.QueryEscape(cc.req), http.StatusSeeOther)
		return
	}
	d := pageData{Title: "Allow access?", Action: "consent", Req: cc.req, ClientID: cc.client.GetID(), Username: cc.user.Username, Patient: cc.patient}
	for _, s := range cc.scopes {
		d.Scopes = append(d.Scopes, scopeItem{Name: s, Text: describeScope(s)})
	}
	if cc.pickable {
		d.Patients = []patientItem{{ID: cc.patient, Label: p.patientLabel(r.Context(), cc.patient), Selected: true}}
		d.PickURL = "patient?req=" + url.QueryEscape(cc.req)
	}
	if r.Method == http.MethodGet {
		d.CSRF = p.csrf(w, r)
		p.render(w, http.StatusOK, "consent", d)
		return
	}
	d.CSRF = p.csrf(w, r)
	if !p.csrfOK(r) {
		d.Error = "Your session expired. Please confirm again."
		p.render(w, http.StatusForbidden, "consent", d)
		return
	}
	switch r.PostForm.Get("action") {
	case "approve":
		p.approve(w, r, cc)
	case "deny":
		p.finish(w, r, cc, nil)
	default:
		d.Error = "Choose Allow or Deny."
		p.render(w, http.StatusBadRequest, "consent", d)
	}
}

// approve grants the ticked scopes and issues the code.
func (p *Provider) approve(w http.ResponseWriter, r *http.Request, cc *consentContext) {
	var granted []string
	for _, s := range r.PostForm["scope"] {
		if slices.Contains(cc.scopes, s) {
			granted = appendOnce(granted, s)
		}
	}
	if cc.pickable {
		if chosen := r.PostForm.Get("patient"); chosen != "" && chosen != cc.patient {
			p.message(w, http.StatusBadRequest, "Patient changed", "Choose the patient with the patient picker.")
			return
		}
	}
	p.finish(w, r, cc, granted)
}

// finish ends the pending authorization: with granted nil it is denied;
// otherwise fosite issues the code (stored in one transaction with its PKCE
// and OpenID Connect rows) and redirects to the client.
func (p *Provider) finish(w http.ResponseWriter, r *http.Request, cc *consentContext, granted []string) {
	ctx := r.Context()
	replay, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+"/oauth/authorize?"+cc.pd.Form.Encode(), nil)
	if err != nil {
		p.pageInternal(w, r, "replaying the authorization request", err)
		return
	}
	ar, err := p.fosite.NewAuthorizeRequest(ctx, replay)
	if err != nil {
		p.authorizeError(w, r, ar, err)
		return
	}
	if err := p.store.DeleteSession(ctx, storedID(kindPending, cc.req)); err != nil {
		p.pageInternal(w, r, "ending the authorization request", err)
		return
	}
	if granted == nil {
		p.authorizeError(w, r, ar, fosite.ErrAccessDenied.WithHint("The user denied the request."))
		return
	}
	for _, s := range granted {
		ar.GrantScope(s)
	}
	ar.GrantAudience(p.fhirBase)
	now := p.now()
	sess := newSession(p.cfg.Tenant)
	sess.Subject, sess.Username = cc.user.Username, cc.user.Username
	sess.FHIRUser = p.fhirUserURL(cc.user)
	sess.SmartStyleURL = p.cfg.SmartStyleURL
	if cc.patient != "" && (slices.Contains(granted, "launch/patient") || slices.Contains(granted, "launch") || hasClinical(granted, "patient")) {
		sess.Patient = cc.patient
		sess.NeedPatientBanner = cc.pd.Launch == nil
	}
	if cc.pd.Launch != nil && slices.Contains(granted, "launch") {
		sess.Encounter = cc.pd.Launch.Encounter
	}
	if slices.Contains(granted, "online_access") && !slices.Contains(granted, "offline_access") && cc.login != nil {
		sess.LoginSession = cc.login.ID
	}
	authTime := now
	var ls loginState
	if cc.login != nil && json.Unmarshal(cc.login.Data, &ls) == nil && !ls.AuthTime.IsZero() {
		authTime = ls.AuthTime
	}
	sess.Claims.Subject = cc.user.Username
	sess.Claims.Issuer = p.base
	sess.Claims.AuthTime = authTime.UTC()
	sess.Claims.RequestedAt = now.UTC()
	if sess.FHIRUser != "" && slices.Contains(granted, "fhirUser") {
		sess.Claims.Add("fhirUser", sess.FHIRUser)
	}
	txctx, _ := p.fstore.BeginTX(ctx)
	resp, err := p.fosite.NewAuthorizeResponse(txctx, ar, sess)
	if err != nil {
		_ = p.fstore.Rollback(txctx)
		p.authorizeError(w, r, ar, err)
		return
	}
	if err := p.fstore.Commit(txctx); err != nil {
		p.authorizeError(w, r, ar, fosite.ErrServerError.WithWrap(err))
		return
	}
	p.fosite.WriteAuthorizeResponse(ctx, w, ar, resp)
}

// patientPage is the patient picker of a standalone launch.
func (p *Provider) patientPage(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		p.message(w, http.StatusMethodNotAllowed, "Method not allowed", "Use GET or POST.")
		return
	}
	if r.Method == http.MethodPost {
		_ = r.ParseForm()
	}
	cc := p.consentSetup(w, r)
	if cc == nil {
		return
	}
	ctx := r.Context()
	if cc.patient != "" && !cc.pickable {
		http.Redirect(w, r, "consent?req="+url.QueryEscape(cc.req), http.StatusSeeOther)
		return
	}
	d := pageData{Title: "Choose a patient", Action: "patient", Req: cc.req, ClientID: cc.client.GetID(),
		Searchable: p.cfg.Patients != nil, Query: r.URL.Query().Get("q")}
	if r.Method == http.MethodPost {
		if !p.csrfOK(r) {
			d.Error = "Your session expired. Please choose again."
		} else {
			chosen := strings.TrimSpace(r.PostForm.Get("patient_id"))
			if chosen == "" {
				chosen = r.PostForm.Get("patient")
			}
			switch ok, err := p.patientExists(ctx, chosen); {
			case err != nil:
				p.pageInternal(w, r, "checking a patient", err)
				return
			case !ok:
				d.Error = "No such patient."
			default:
				cc.pd.Patient = chosen
				if err := p.savePending(ctx, cc.req, cc.pd); err != nil {
					p.pageInternal(w, r, "storing the patient choice", err)
					return
				}
				http.Redirect(w, r, "consent?req="+url.QueryEscape(cc.req), http.StatusSeeOther)
				return
			}
		}
	}
	if p.cfg.Patients != nil {
		list, err := p.cfg.Patients.SearchPatients(ctx, p.cfg.Tenant, d.Query, maxPickPatients)
		if err != nil {
			p.pageInternal(w, r, "listing patients", err)
			return
		}
		for _, pc := range list {
			d.Patients = append(d.Patients, patientItem{ID: pc.ID, Label: pc.Label, Selected: pc.ID == cc.patient})
		}
	}
	d.CSRF = p.csrf(w, r)
	status := http.StatusOK
	if d.Error != "" {
		status = http.StatusBadRequest
	}
	p.render(w, status, "patient", d)
}

// patientExists checks a picked id (any valid id when there is no reader).
func (p *Provider) patientExists(ctx context.Context, id string) (bool, error) {
	if !fhir.ValidID(id) {
		return false, nil
	}
	if p.cfg.Reader == nil {
		return true, nil
	}
	_, err := p.cfg.Reader.Read(ctx, p.cfg.Tenant, "Patient", id)
	switch fhir.KindOf(err) {
	case fhir.KindNotFound, fhir.KindGone:
		return false, nil
	}
	return err == nil, err
}

// patientLabel names a patient for the consent page.
func (p *Provider) patientLabel(ctx context.Context, id string) string {
	if p.cfg.Reader != nil {
		if res, err := p.cfg.Reader.Read(ctx, p.cfg.Tenant, "Patient", id); err == nil {
			return patientLabel(id, res.Body)
		}
	}
	return "Patient/" + id
}

func staticFiles() http.Handler {
	fs := http.FileServerFS(web.Static())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		fs.ServeHTTP(w, r)
	})
}
