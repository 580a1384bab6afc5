package integration

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"
)

// chromiumPath finds a Chromium: the Debian chromium package, or another
// Chrome on PATH. Without one the browser test is skipped, except in CI
// (CI=true), where a missing browser fails it (.ci/run installs chromium).
func chromiumPath(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium on PATH (CI=true): install the Debian chromium package")
	}
	t.Skip("no chromium on PATH; install the Debian chromium package to run the browser test")
	return ""
}

// TestBrowserLoginAndConsent drives the login and consent pages in a real
// headless Chromium: it types the credentials, unticks a scope, approves,
// and the app's redirect carries a code whose token lacks that scope; a
// second run denies.
func TestBrowserLoginAndConsent(t *testing.T) {
	chrome := chromiumPath(t)
	s := startSMART(t, "sqlite:"+t.TempDir()+"/fhir.db")
	conf := s.discover()

	type callback struct{ q url.Values }
	got := make(chan callback, 4)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" { // the browser also asks for /favicon.ico
			http.NotFound(w, r)
			return
		}
		got <- callback{r.URL.Query()}
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<!DOCTYPE html><title>app</title><p id=done>done</p>"))
	}))
	defer app.Close()
	redirect := app.URL + "/callback"
	s.run("client", "create", "--id", "browser-app", "--public", "--redirect-uri", redirect, "--scope", "launch/patient openid fhirUser patient/*.rs offline_access")
	s.run("user", "create", "--username", "alice", "--password", "alice-password", "--fhir-user", "Patient/p1")
	cfg := oauth2.Config{ClientID: "browser-app", RedirectURL: redirect, Scopes: []string{"launch/patient", "openid", "fhirUser", "patient/*.rs", "offline_access"},
		Endpoint: oauth2.Endpoint{AuthURL: conf["authorization_endpoint"].(string), TokenURL: conf["token_endpoint"].(string), AuthStyle: oauth2.AuthStyleInParams}}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	// The first action starts the browser, which lives as long as bctx.
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting %s: %v", chrome, err)
	}
	ctx, cancelTimeout := context.WithTimeout(bctx, 90*time.Second)
	defer cancelTimeout()
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	csrfJS := `document.querySelector('form input[type=hidden][name=csrf_token]').value.length > 20`

	verifier := oauth2.GenerateVerifier()
	start := cfg.AuthCodeURL("state-browser-01", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", s.base+"/fhir"))
	if err := chromedp.Do(ctx, chromedp.Navigate(start), chromedp.WaitVisible(css(`input[name="username"]`))); err != nil {
		t.Fatalf("login page: %v", err)
	}
	title, err1 := chromedp.Run(ctx, chromedp.Title())
	loginLabel, err2 := chromedp.Run(ctx, chromedp.Text(css(`label[for="username"]`)))
	hasCSRF, err3 := chromedp.Run(ctx, chromedp.Evaluate[bool](csrfJS))
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(title, "Log in") || strings.TrimSpace(loginLabel) != "Username" || !hasCSRF {
		t.Fatalf("login page: title %q, label %q, csrf %v", title, loginLabel, hasCSRF)
	}
	err := chromedp.Do(ctx,
		chromedp.SendKeys(css(`input[name="username"]`), "alice"),
		chromedp.SendKeys(css(`input[name="password"]`), "alice-password"),
		chromedp.Click(css(`button[type="submit"]`)),
		chromedp.WaitVisible(css(`button[name="action"][value="approve"]`)),
	)
	if err != nil {
		t.Fatalf("logging in: %v", err)
	}
	allTicked, err1 := chromedp.Run(ctx, chromedp.Evaluate[bool](`Array.from(document.querySelectorAll('input[type=checkbox][name=scope]')).every(e => e.checked)`))
	scopeCount, err2 := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('input[type=checkbox][name=scope]').length`))
	hasCSRF, err3 = chromedp.Run(ctx, chromedp.Evaluate[bool](csrfJS))
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatal(err)
	}
	if !allTicked || scopeCount < 4 || !hasCSRF {
		t.Fatalf("consent page: %d scope checkboxes, all ticked %v, csrf %v", scopeCount, allTicked, hasCSRF)
	}
	// Untick offline_access, approve.
	err = chromedp.Do(ctx,
		chromedp.Click(css(`input[name="scope"][value="offline_access"]`)),
		chromedp.Click(css(`button[name="action"][value="approve"]`)),
		chromedp.WaitVisible(chromedp.ID("done")),
	)
	if err != nil {
		t.Fatalf("consent: %v", err)
	}
	var cb callback
	select {
	case cb = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the app was not called back")
	}
	if cb.q.Get("state") != "state-browser-01" || cb.q.Get("code") == "" {
		t.Fatalf("callback %v", cb.q)
	}
	tok, err := cfg.Exchange(context.Background(), cb.q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	scope, _ := tok.Extra("scope").(string)
	if strings.Contains(scope, "offline_access") || tok.RefreshToken != "" || !strings.Contains(scope, "patient/*.rs") || tok.Extra("patient") != "p1" {
		t.Fatalf("token after unticking offline_access: scope %q refresh %q patient %v", scope, tok.RefreshToken, tok.Extra("patient"))
	}

	// Logged in now: the next authorization shows the consent page at
	// once; deny.
	verifier = oauth2.GenerateVerifier()
	err = chromedp.Do(ctx,
		chromedp.Navigate(cfg.AuthCodeURL("state-browser-02", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", s.base+"/fhir"))),
		chromedp.WaitVisible(css(`button[name="action"][value="deny"]`)),
		chromedp.Click(css(`button[name="action"][value="deny"]`)),
		chromedp.WaitVisible(chromedp.ID("done")),
	)
	if err != nil {
		t.Fatalf("deny: %v", err)
	}
	select {
	case cb = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the app was not called back after deny")
	}
	if cb.q.Get("error") != "access_denied" || cb.q.Get("state") != "state-browser-02" || cb.q.Get("code") != "" {
		t.Fatalf("deny callback %v", cb.q)
	}
}
