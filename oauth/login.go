package oauth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/ory/fosite"
	"golang.org/x/crypto/bcrypt"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/store"
)

// DefaultBcryptCost is the cost of new password hashes: the OWASP minimum
// for bcrypt, about 50 ms per check on one core. Logins that repeat the
// same credentials within a few minutes skip it (see passwords).
const DefaultBcryptCost = 10

// HashPassword hashes a user password with bcrypt at the given cost
// (DefaultBcryptCost when 0).
func HashPassword(password string, cost int) (string, error) {
	if cost == 0 {
		cost = DefaultBcryptCost
	}
	if cost < bcrypt.MinCost || cost > 16 {
		return "", fhir.Errorf(fhir.KindInvalid, "bcrypt cost %d is outside %d..16", cost, bcrypt.MinCost)
	}
	if len(password) > 72 {
		return "", fhir.Errorf(fhir.KindInvalid, "passwords are limited to 72 bytes (bcrypt)")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	return string(h), err
}

// passwords checks user passwords. A successful check is remembered for a
// few minutes under an HMAC of (user, password, stored hash) keyed with the
// server's pepper, so that a client that logs in again and again with the
// same credentials (HTTP Basic) pays bcrypt once; a wrong password, an
// unknown user and a changed hash always pay it in full.
type passwords struct {
	dummy []byte        // hash checked for unknown users, so they take as long
	ttl   time.Duration // how long a check is remembered (0: not at all)

	mu    sync.Mutex
	cache map[[32]byte]time.Time
}

const (
	credentialCacheTTL = 5 * time.Minute
	credentialCacheMax = 10000
)

func newPasswords() (*passwords, error) {
	dummy, err := bcrypt.GenerateFromPassword([]byte("not a password of anyone"), DefaultBcryptCost)
	if err != nil {
		return nil, err
	}
	return &passwords{dummy: dummy, ttl: credentialCacheTTL, cache: map[[32]byte]time.Time{}}, nil
}

// check reports whether password is u's (u nil: an unknown user).
func (pw *passwords) check(pepper []byte, u *store.OAuthUser, password string, now time.Time) bool {
	if u == nil {
		_ = bcrypt.CompareHashAndPassword(pw.dummy, []byte(password))
		return false
	}
	m := hmac.New(sha256.New, pepper)
	for _, part := range []string{"credential", u.Tenant, u.Username, password, u.PasswordHash} {
		m.Write([]byte(part))
		m.Write([]byte{0})
	}
	var key [32]byte
	copy(key[:], m.Sum(nil))
	pw.mu.Lock()
	exp, ok := pw.cache[key]
	pw.mu.Unlock()
	if ok && now.Before(exp) {
		return true
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
		return false
	}
	if pw.ttl == 0 {
		return true
	}
	pw.mu.Lock()
	if len(pw.cache) >= credentialCacheMax {
		for k, e := range pw.cache {
			if !now.Before(e) {
				delete(pw.cache, k)
			}
		}
		if len(pw.cache) >= credentialCacheMax {
			clear(pw.cache)
		}
	}
	pw.cache[key] = now.Add(pw.ttl)
	pw.mu.Unlock()
	return true
}

// errThrottled means too many recent failures for the user or address.
type errThrottled struct{ retryAfter time.Duration }

func (e errThrottled) Error() string { return "too many failed logins" }

var errBadCredentials = errors.New("wrong username or password")

// clientAddress is the address failures are counted under (the peer; a
// proxy in front should pass the client address in its own way).
func clientAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// userThrottleKey is the key failed logins of a user are counted under: a
// hash, since the name is whatever the client sent.
func userThrottleKey(tenant, username string) string {
	sum := sha256.Sum256([]byte(tenant + "\x00" + strings.ToLower(username)))
	return "user:" + hex.EncodeToString(sum[:16])
}

// storable reports whether a name from a request can be looked up (text
// columns hold valid UTF-8 without NUL).
func storable(s string) bool {
	return s != "" && len(s) <= 256 && utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// authenticateUser checks a username and password with throttling: after
// MaxLoginFailures failures within the window for the user or the address,
// every attempt is refused (errThrottled) until the oldest counts no more.
// Unknown users and wrong passwords fail alike (errBadCredentials).
func (p *Provider) authenticateUser(ctx context.Context, username, password, addr string) (*store.OAuthUser, error) {
	now := p.now()
	keys := []string{userThrottleKey(p.cfg.Tenant, username), "addr:" + addr}
	since := now.Add(-p.cfg.LoginFailureWindow)
	var wait time.Duration
	for _, k := range keys {
		n, oldest, err := p.store.LoginFailures(ctx, k, since)
		if err != nil {
			return nil, err
		}
		if n >= p.cfg.MaxLoginFailures {
			wait = max(wait, oldest.Add(p.cfg.LoginFailureWindow).Sub(now))
		}
	}
	if wait > 0 {
		return nil, errThrottled{retryAfter: wait}
	}
	var u *store.OAuthUser
	if storable(username) && password != "" {
		var err error
		u, err = p.store.GetUser(ctx, p.cfg.Tenant, username)
		if err != nil && fhir.KindOf(err) != fhir.KindNotFound {
			return nil, err
		}
	}
	if p.passwords.check(p.keys.pepper(), u, password, now) {
		return u, nil
	}
	if err := p.store.RecordLoginFailure(ctx, keys, now); err != nil {
		return nil, err
	}
	return nil, errBadCredentials
}

// userCaps are the scopes a user may be granted: their registered scope,
// or by default patient/*.rs for a Patient or RelatedPerson, user/*.cruds
// for a Practitioner and user/*.rs otherwise; always with the identity and
// refresh scopes.
func userCaps(u *store.OAuthUser) []string {
	caps := strings.Fields(u.Scope)
	if len(caps) == 0 {
		switch typ, _, _ := strings.Cut(u.FHIRUser, "/"); typ {
		case "Patient", "RelatedPerson":
			caps = []string{"patient/*.rs"}
		case "Practitioner", "PractitionerRole":
			caps = []string{"user/*.cruds"}
		default:
			caps = []string{"user/*.rs"}
		}
	}
	for _, s := range []string{"openid", "fhirUser", "profile", "launch", "launch/patient", "launch/encounter", "offline_access", "online_access"} {
		caps = appendOnce(caps, s)
	}
	return caps
}

// dataScopes keeps the clinical scopes.
func dataScopes(scopes []string) []string {
	var out []string
	for _, s := range scopes {
		if _, ok := parseScope(s); ok {
			out = append(out, s)
		}
	}
	return out
}

// fhirUserURL is the absolute URL of a user's resource ("" when none).
func (p *Provider) fhirUserURL(u *store.OAuthUser) string {
	if u.FHIRUser == "" {
		return ""
	}
	if strings.HasPrefix(u.FHIRUser, "http://") || strings.HasPrefix(u.FHIRUser, "https://") {
		return u.FHIRUser
	}
	return p.fhirBase + "/" + u.FHIRUser
}

// userPatient is the patient a user is or speaks for, when known.
func (p *Provider) userPatient(ctx context.Context, u *store.OAuthUser) string {
	typ, id, _ := strings.Cut(u.FHIRUser, "/")
	switch typ {
	case "Patient":
		return id
	case "RelatedPerson":
		if p.cfg.Reader == nil {
			return ""
		}
		res, err := p.cfg.Reader.Read(ctx, p.cfg.Tenant, "RelatedPerson", id)
		if err != nil {
			return ""
		}
		var rp struct {
			Patient struct {
				Reference string `json:"reference"`
			} `json:"patient"`
		}
		if json.Unmarshal(res.Body, &rp) != nil {
			return ""
		}
		if pid, ok := strings.CutPrefix(rp.Patient.Reference, "Patient/"); ok {
			return pid
		}
	}
	return ""
}

// basicLogin serves B/fhir/login: HTTP Basic credentials in, a token
// response out (tokens of the built-in client "login"). A POST without
// credentials but with a refresh_token is a refresh for that client.
func (p *Provider) basicLogin(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		writeOutcome(w, http.StatusMethodNotAllowed, "not-supported", "use GET or POST with HTTP Basic credentials")
		return
	}
	if err := r.ParseForm(); err != nil {
		writeOutcome(w, http.StatusBadRequest, "invalid", "the body is not a form")
		return
	}
	username, password, ok := r.BasicAuth()
	if !ok && r.Method == http.MethodPost && r.PostForm.Get("refresh_token") != "" {
		p.refreshForLogin(w, r)
		return
	}
	if !ok {
		w.Header().Set("WWW-Authenticate", `Basic realm="fhir"`)
		writeOutcome(w, http.StatusUnauthorized, "login", "HTTP Basic credentials are required")
		return
	}
	ctx := r.Context()
	u, err := p.authenticateUser(ctx, username, password, clientAddress(r))
	var th errThrottled
	switch {
	case errors.As(err, &th):
		w.Header().Set("Retry-After", strconv.Itoa(int(th.retryAfter.Seconds()+0.999)))
		writeOutcome(w, http.StatusTooManyRequests, "throttled", "too many failed logins; try again later")
		return
	case errors.Is(err, errBadCredentials):
		w.Header().Set("WWW-Authenticate", `Basic realm="fhir"`)
		writeOutcome(w, http.StatusUnauthorized, "login", "wrong username or password")
		return
	case err != nil:
		p.cfg.Logger.ErrorContext(ctx, "oauth: login failed", "error", err)
		writeOutcome(w, http.StatusInternalServerError, "exception", "internal error")
		return
	}
	caps := userCaps(u)
	granted := dataScopes(caps)
	if asked := strings.Fields(r.Form.Get("scope")); len(asked) > 0 {
		granted = narrowScopes(normalizeScopes(asked), caps)
		if len(dataScopes(granted)) == 0 {
			writeOutcome(w, http.StatusBadRequest, "invalid", "none of the requested scopes is allowed for this user")
			return
		}
	} else {
		granted = normalizeScopes(granted)
	}
	granted = appendOnce(granted, "offline_access")
	sess := newSession(p.cfg.Tenant)
	sess.Subject, sess.Username = u.Username, u.Username
	sess.FHIRUser = p.fhirUserURL(u)
	if hasClinical(granted, "patient") {
		sess.Patient = p.userPatient(ctx, u)
	}
	resp, err := p.issueForUser(ctx, sess, granted)
	if err != nil {
		p.cfg.Logger.ErrorContext(ctx, "oauth: issuing login tokens", "error", err)
		writeOutcome(w, http.StatusInternalServerError, "exception", "internal error")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(resp.json())
}

// issueForUser mints an access and a refresh token of the login client for
// a user session, storing the refresh token (and the access token's jti,
// for family revocation) in one transaction.
func (p *Provider) issueForUser(ctx context.Context, sess *session, granted []string) (tokenResponse, error) {
	now := p.now()
	ar := fosite.NewAccessRequest(sess)
	ar.RequestedAt = now
	ar.Client = p.loginClient()
	ar.GrantTypes = fosite.Arguments{"login"}
	ar.SetRequestedScopes(granted)
	for _, s := range granted {
		ar.GrantScope(s)
	}
	ar.GrantAudience(p.fhirBase)
	ar.Form = url.Values{}
	sess.SetExpiresAt(fosite.AccessToken, now.Add(p.cfg.AccessTokenTTL).Round(time.Second))
	sess.SetExpiresAt(fosite.RefreshToken, now.Add(p.cfg.RefreshTokenTTL).Round(time.Second))
	access, jti, err := p.strategy.GenerateAccessToken(ctx, ar)
	if err != nil {
		return tokenResponse{}, err
	}
	refresh, rsig, err := p.strategy.GenerateRefreshToken(ctx, ar)
	if err != nil {
		return tokenResponse{}, err
	}
	txctx, _ := p.fstore.BeginTX(ctx)
	if err := p.fstore.CreateAccessTokenSession(txctx, jti, ar); err != nil {
		return tokenResponse{}, err
	}
	if err := p.fstore.CreateRefreshTokenSession(txctx, rsig, jti, ar); err != nil {
		return tokenResponse{}, err
	}
	if err := p.fstore.Commit(txctx); err != nil {
		return tokenResponse{}, err
	}
	return tokenResponse{
		AccessToken: access, TokenType: "Bearer", ExpiresIn: expiresIn(sess.GetExpiresAt(fosite.AccessToken), now),
		Scope: strings.Join(granted, " "), RefreshToken: refresh, Patient: sess.Patient,
	}, nil
}

// refreshForLogin redeems a login refresh token at B/fhir/login: the same
// as grant_type=refresh_token with client_id=login at the token endpoint.
func (p *Provider) refreshForLogin(w http.ResponseWriter, r *http.Request) {
	form := url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {r.PostForm.Get("refresh_token")},
		"client_id":     {LoginClientID},
	}
	if s := r.PostForm.Get("scope"); s != "" {
		form.Set("scope", s)
	}
	r2 := r.Clone(r.Context())
	r2.Method = http.MethodPost
	r2.Header = http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	r2.PostForm, r2.Form = form, form
	r2.MultipartForm = nil
	p.token(w, r2)
}

// logout serves B/fhir/logout: it revokes the grant of the bearer access
// token (or of a refresh_token form field), and ends the browser login
// session. It answers 204 whatever there was to revoke.
func (p *Provider) logout(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		writeOutcome(w, http.StatusMethodNotAllowed, "not-supported", "use POST")
		return
	}
	_ = r.ParseForm()
	ctx := r.Context()
	if auth := r.Header.Get("Authorization"); len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ") {
		c, err := p.parseOwnToken(ctx, strings.TrimSpace(auth[7:]))
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="fhir", error="invalid_token"`)
			writeOutcome(w, http.StatusUnauthorized, "login", "the bearer token is not valid")
			return
		}
		if err := p.revokeFamilyOf(r, c); err != nil {
			p.cfg.Logger.ErrorContext(ctx, "oauth: logout", "error", err)
			writeOutcome(w, http.StatusInternalServerError, "exception", "internal error")
			return
		}
	}
	if rt := r.PostForm.Get("refresh_token"); rt != "" {
		if t, err := p.store.GetToken(ctx, store.TokenRefresh, p.hmac.RefreshTokenSignature(ctx, rt)); err == nil && t.Tenant == p.cfg.Tenant {
			if err := p.fstore.apply(ctx, store.OAuthTokenChanges{RevokeFamilies: []string{t.RequestID}}); err != nil {
				p.cfg.Logger.ErrorContext(ctx, "oauth: logout", "error", err)
				writeOutcome(w, http.StatusInternalServerError, "exception", "internal error")
				return
			}
		}
	}
	p.endLoginSession(w, r)
	w.WriteHeader(http.StatusNoContent)
}

// writeOutcome writes a FHIR OperationOutcome with one error issue.
func writeOutcome(w http.ResponseWriter, status int, code, diagnostics string) {
	b, _ := json.Marshal(map[string]any{
		"resourceType": "OperationOutcome",
		"issue":        []map[string]string{{"severity": "error", "code": code, "diagnostics": diagnostics}},
	})
	w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
