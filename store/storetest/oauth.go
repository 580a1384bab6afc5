package storetest

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/store"
)

// RunOAuth runs the contract of the authorization server's tables
// (store.OAuthStore) on a backend. The stores the opener returns must
// implement store.OAuthStore.
func RunOAuth(t *testing.T, opener Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.OAuthStore)
	}{
		{"Clients", testOAuthClients},
		{"Users", testOAuthUsers},
		{"Keys", testOAuthKeys},
		{"ConcurrentInitKey", testOAuthConcurrentInitKey},
		{"Tokens", testOAuthTokens},
		{"TokenUseIsAtomic", testOAuthTokenUseAtomic},
		{"ConcurrentTokenUse", testOAuthConcurrentUse},
		{"RevokeFamily", testOAuthRevokeFamily},
		{"Assertions", testOAuthAssertions},
		{"Launches", testOAuthLaunches},
		{"Sessions", testOAuthSessions},
		{"LoginFailures", testOAuthLoginFailures},
		{"Purge", testOAuthPurge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			open := opener(t)
			s := open(t)
			t.Cleanup(func() { s.Close() })
			os, ok := s.(store.OAuthStore)
			if !ok {
				t.Fatalf("%T does not implement store.OAuthStore", s)
			}
			tc.fn(t, os)
		})
	}
}

func oauthMust(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func oauthWantKind(t *testing.T, err error, kind fhir.Kind) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", kind)
	}
	if got := fhir.KindOf(err); got != kind {
		t.Fatalf("got error kind %s (%v), want %s", got, err, kind)
	}
}

// sec truncates to seconds so that stored times compare equal.
func sec(t time.Time) time.Time { return t.UTC().Truncate(time.Second) }

func testOAuthClients(t *testing.T, s store.OAuthStore) {
	ctx := context.Background()
	now := sec(time.Now())
	conf := store.OAuthClient{ID: "backend", SecretHash: []byte{1, 2, 3}, Scope: "system/*.rs", GrantTypes: []string{"client_credentials"}, CreatedAt: now}
	pub := store.OAuthClient{ID: "app", Public: true, RedirectURIs: []string{"http://localhost/cb", "https://app.example/cb"},
		Scope: "launch/patient patient/*.rs openid fhirUser offline_access", GrantTypes: []string{"authorization_code", "refresh_token"}, CreatedAt: now}
	jwks := store.OAuthClient{ID: "bulk", JWKS: `{"keys":[]}`, JWKSURL: "", Scope: "system/*.rs", GrantTypes: []string{"client_credentials"}, CreatedAt: now}
	other := store.OAuthClient{Tenant: "other", ID: "app", Public: true, Scope: "x", CreatedAt: now}
	for _, c := range []store.OAuthClient{conf, pub, jwks, other} {
		oauthMust(t, s.CreateClient(ctx, c))
	}
	oauthWantKind(t, s.CreateClient(ctx, pub), fhir.KindConflict)

	for _, want := range []store.OAuthClient{conf, pub, jwks, other} {
		got, err := s.GetClient(ctx, want.Tenant, want.ID)
		oauthMust(t, err)
		if len(want.RedirectURIs) == 0 {
			want.RedirectURIs = nil
		}
		if len(want.GrantTypes) == 0 {
			want.GrantTypes = nil
		}
		if len(got.SecretHash) == 0 {
			got.SecretHash = nil
		}
		if !reflect.DeepEqual(*got, want) {
			t.Fatalf("client round trip:\n got %+v\nwant %+v", *got, want)
		}
	}
	_, err := s.GetClient(ctx, "", "nobody")
	oauthWantKind(t, err, fhir.KindNotFound)

	list, err := s.ListClients(ctx, store.DefaultTenant)
	oauthMust(t, err)
	if len(list) != 3 || list[0].ID != "app" || list[1].ID != "backend" || list[2].ID != "bulk" {
		t.Fatalf("list: %+v", list)
	}

	oauthMust(t, s.SetClientSecret(ctx, "", "backend", []byte{9}))
	got, err := s.GetClient(ctx, "", "backend")
	oauthMust(t, err)
	if !bytes.Equal(got.SecretHash, []byte{9}) {
		t.Fatalf("secret not replaced: %v", got.SecretHash)
	}
	oauthWantKind(t, s.SetClientSecret(ctx, "", "app", []byte{9}), fhir.KindNotFound) // public

	oauthMust(t, s.DeleteClient(ctx, "", "app"))
	oauthWantKind(t, s.DeleteClient(ctx, "", "app"), fhir.KindNotFound)
	if _, err := s.GetClient(ctx, "other", "app"); err != nil {
		t.Fatalf("deleting in one tenant touched another: %v", err)
	}
}

func testOAuthUsers(t *testing.T, s store.OAuthStore) {
	ctx := context.Background()
	now := sec(time.Now())
	u := store.OAuthUser{Username: "alice", PasswordHash: "$2a$10$x", FHIRUser: "Patient/p1", Scope: "patient/*.rs", CreatedAt: now}
	oauthMust(t, s.CreateUser(ctx, u))
	oauthMust(t, s.CreateUser(ctx, store.OAuthUser{Username: "bob", PasswordHash: "h", CreatedAt: now}))
	oauthWantKind(t, s.CreateUser(ctx, u), fhir.KindConflict)
	got, err := s.GetUser(ctx, "", "alice")
	oauthMust(t, err)
	if *got != u {
		t.Fatalf("user round trip: got %+v want %+v", *got, u)
	}
	_, err = s.GetUser(ctx, "other", "alice")
	oauthWantKind(t, err, fhir.KindNotFound)
	list, err := s.ListUsers(ctx, "")
	oauthMust(t, err)
	if len(list) != 2 || list[0].Username != "alice" || list[1].Username != "bob" {
		t.Fatalf("list: %+v", list)
	}
	oauthMust(t, s.DeleteUser(ctx, "", "bob"))
	oauthWantKind(t, s.DeleteUser(ctx, "", "bob"), fhir.KindNotFound)
}

func testOAuthKeys(t *testing.T, s store.OAuthStore) {
	ctx := context.Background()
	now := sec(time.Now())
	k1 := store.SigningKey{ID: "k1", Use: "access", Alg: "ES256", Private: []byte("one"), CreatedAt: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}
	cur, err := s.InitKey(ctx, k1)
	oauthMust(t, err)
	if !reflect.DeepEqual(*cur, k1) {
		t.Fatalf("InitKey stored %+v, want %+v", *cur, k1)
	}
	// A second start keeps the first key.
	cur, err = s.InitKey(ctx, store.SigningKey{ID: "k1b", Use: "access", Alg: "ES256", Private: []byte("x"), NotAfter: now})
	oauthMust(t, err)
	if cur.ID != "k1" {
		t.Fatalf("InitKey replaced the current key: %+v", cur)
	}
	_, err = s.InitKey(ctx, store.SigningKey{ID: "i1", Use: "id", Alg: "RS256", Private: []byte("rsa"), NotAfter: now.Add(time.Hour)})
	oauthMust(t, err)

	k2 := store.SigningKey{ID: "k2", Use: "access", Alg: "ES256", Private: []byte("two"), CreatedAt: now, NotAfter: now.Add(time.Hour)}
	oauthMust(t, s.RotateKey(ctx, k2))
	keys, err := s.ListKeys(ctx, now)
	oauthMust(t, err)
	ids := func(keys []store.SigningKey) []string {
		var out []string
		for _, k := range keys {
			out = append(out, k.ID)
		}
		return out
	}
	if got := ids(keys); !reflect.DeepEqual(got, []string{"k2", "k1", "i1"}) {
		t.Fatalf("keys after rotation: %v, want [k2 k1 i1]", got)
	}
	if !keys[1].RetiredAt.Equal(now) || !keys[0].RetiredAt.IsZero() {
		t.Fatalf("retired: %+v", keys[:2])
	}
	// The retired key is dropped once its tokens have expired...
	keys, err = s.ListKeys(ctx, now.Add(2*time.Hour))
	oauthMust(t, err)
	if got := ids(keys); !reflect.DeepEqual(got, []string{"k2", "i1"}) {
		t.Fatalf("keys later: %v", got)
	}
	// ...which ExtendKey postpones, and never brings forward.
	oauthMust(t, s.ExtendKey(ctx, "k1", now.Add(3*time.Hour)))
	oauthMust(t, s.ExtendKey(ctx, "k1", now))
	keys, err = s.ListKeys(ctx, now.Add(2*time.Hour))
	oauthMust(t, err)
	if got := ids(keys); !reflect.DeepEqual(got, []string{"k2", "k1", "i1"}) {
		t.Fatalf("keys after extension: %v", got)
	}
	if cur, err = s.InitKey(ctx, store.SigningKey{ID: "k3", Use: "access", Alg: "ES256", Private: []byte("3"), NotAfter: now}); err != nil || cur.ID != "k2" {
		t.Fatalf("InitKey after rotation: %+v %v", cur, err)
	}
}

func testOAuthConcurrentInitKey(t *testing.T, s store.OAuthStore) {
	ctx := context.Background()
	const n = 8
	got := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := s.InitKey(ctx, store.SigningKey{ID: fmt.Sprint("k", i), Use: "hmac", Alg: "HS256", Private: []byte{byte(i)}, NotAfter: time.Now().Add(time.Hour)})
			errs[i] = err
			if err == nil {
				got[i] = k.ID
			}
		}()
	}
	wg.Wait()
	for i := range n {
		oauthMust(t, errs[i])
		if got[i] != got[0] {
			t.Fatalf("concurrent InitKey disagree: %v", got)
		}
	}
}

func token(kind store.OAuthTokenKind, sig, req string, exp time.Time) store.OAuthToken {
	return store.OAuthToken{Kind: kind, Signature: sig, RequestID: req, ClientID: "app", Subject: "alice", Active: true,
		CreatedAt: sec(time.Now()), ExpiresAt: sec(exp), Data: []byte(`{"r":"` + req + `"}`)}
}

func testOAuthTokens(t *testing.T, s store.OAuthStore) {
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	code := token(store.TokenCode, "c1", "r1", exp)
	pkce := token(store.TokenPKCE, "c1", "r1", exp) // same signature, other kind
	code.SessionID, code.AccessSignature = "sess", "jti0"
	oauthMust(t, s.ApplyTokenChanges(ctx, store.OAuthTokenChanges{Create: []store.OAuthToken{code, pkce}}))
	got, err := s.GetToken(ctx, store.TokenCode, "c1")
	oauthMust(t, err)
	if !reflect.DeepEqual(*got, code) {
		t.Fatalf("token round trip:\n got %+v\nwant %+v", *got, code)
	}
	_, err = s.GetToken(ctx, store.TokenRefresh, "c1")
	oauthWantKind(t, err, fhir.KindNotFound)

	// Redeeming the code: used, PKCE row deleted, tokens created.
	access := token(store.TokenAccess, "jti1", "r1", exp)
	refresh := token(store.TokenRefresh, "rt1", "r1", exp.Add(time.Hour))
	refresh.AccessSignature = "jti1"
	oauthMust(t, s.ApplyTokenChanges(ctx, store.OAuthTokenChanges{
		Use:    []store.OAuthTokenKey{{Kind: store.TokenCode, Signature: "c1"}},
		Delete: []store.OAuthTokenKey{{Kind: store.TokenPKCE, Signature: "c1"}, {Kind: store.TokenOIDC, Signature: "missing"}},
		Create: []store.OAuthToken{access, refresh},
	}))
	got, err = s.GetToken(ctx, store.TokenCode, "c1")
	oauthMust(t, err)
	if got.Active {
		t.Fatal("used code still active")
	}
	_, err = s.GetToken(ctx, store.TokenPKCE, "c1")
	oauthWantKind(t, err, fhir.KindNotFound)
	got, err = s.GetToken(ctx, store.TokenRefresh, "rt1")
	oauthMust(t, err)
	if !got.Active || got.AccessSignature != "jti1" {
		t.Fatalf("refresh: %+v", got)
	}
	// A second redemption fails.
	oauthWantKind(t, s.ApplyTokenChanges(ctx, store.OAuthTokenChanges{Use: []store.OAuthTokenKey{{Kind: store.TokenCode, Signature: "c1"}}}), fhir.KindConflict)
	oauthWantKind(t, s.ApplyTokenChanges(ctx, store.OAuthTokenChanges{Use: []store.OAuthTokenKey{{Kind: store.TokenCode, Signature: "nope"}}}), fhir.KindConflict)
}

func testOAuthTokenUseAtomic(t *testing.T, s store.OAuthStore) {
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	oauthMust(t, s.ApplyTokenChanges(ctx, store.OAuthTokenChanges{Create: []store.OAuthToken{token(store.TokenRefresh, "a", "r", exp), token(store.TokenRefresh, "b", "r", exp)}}))
	oauthMust(t, s.ApplyTokenChanges(ctx, store.OAuthTokenChanges{Use: []store.OAuthTokenKey{{Kind: store.TokenRefresh, Signature: "b"}}}))
	// "a" is active, "b" is not: nothing of the batch may be applied.
	err := s.ApplyTokenChanges(ctx, store.OAuthTokenChanges{
		Use:    []store.OAuthTokenKey{{Kind: store.TokenRefresh, Signature: "a"}, {Kind: store.TokenRefresh, Signature: "b"}},
		Create: []store.OAuthToken{token(store.TokenRefresh, "c", "r", exp)},
		Revoke: []store.Revocation{{JTI: "x", ExpiresAt: exp}},
	})
	oauthWantKind(t, err, fhir.KindConflict)
	got, err := s.GetToken(ctx, store.TokenRefresh, "a")
	oauthMust(t, err)
	if !got.Active {
		t.Fatal("a failed batch deactivated a token")
	}
	if _, err := s.GetToken(ctx, store.TokenRefresh, "c"); fhir.KindOf(err) != fhir.KindNotFound {
		t.Fatalf("a failed batch created a token: %v", err)
	}
	revs, err := s.RevokedSince(ctx, time.Time{}, time.Now())
	oauthMust(t, err)
	if len(revs) != 0 {
		t.Fatalf("a failed batch revoked: %+v", revs)
	}
}

func testOAuthConcurrentUse(t *testing.T, s store.OAuthStore) {
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	oauthMust(t, s.ApplyTokenChanges(ctx, store.OAuthTokenChanges{Create: []store.OAuthToken{token(store.TokenRefresh, "rt", "r", exp)}}))
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.ApplyTokenChanges(ctx, store.OAuthTokenChanges{
				Use:    []store.OAuthTokenKey{{Kind: store.TokenRefresh, Signature: "rt"}},
				Create: []store.OAuthToken{token(store.TokenRefresh, fmt.Sprint("rt", i), "r", exp)},
			})
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case fhir.KindOf(err) != fhir.KindConflict:
			t.Fatalf("concurrent rotation: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d concurrent rotations of one refresh token succeeded, want 1", ok)
	}
}

func testOAuthRevokeFamily(t *testing.T, s store.OAuthStore) {
	ctx := context.Background()
	before := time.Now().Add(-time.Second)
	exp := time.Now().Add(time.Hour)
	old := token(store.TokenAccess, "old-jti", "fam", time.Now().Add(-time.Minute)) // already expired
	oauthMust(t, s.ApplyTokenChanges(ctx, store.OAuthTokenChanges{Create: []store.OAuthToken{
		token(store.TokenRefresh, "rt1", "fam", exp), token(store.TokenRefresh, "rt2", "fam", exp),
		token(store.TokenAccess, "jti1", "fam", exp), token(store.TokenAccess, "jti2", "fam", exp), old,
		token(store.TokenRefresh, "other-rt", "other", exp), token(store.TokenAccess, "other-jti", "other", exp),
	}}))
	oauthMust(t, s.ApplyTokenChanges(ctx, store.OAuthTokenChanges{Use: []store.OAuthTokenKey{{Kind: store.TokenRefresh, Signature: "rt1"}}}))
	oauthMust(t, s.ApplyTokenChanges(ctx, store.OAuthTokenChanges{
		RevokeFamilies: []string{"fam"},
		Revoke:         []store.Revocation{{JTI: "single", ExpiresAt: exp}},
	}))
	for sig, want := range map[string]bool{"rt1": false, "rt2": false, "other-rt": true} {
		got, err := s.GetToken(ctx, store.TokenRefresh, sig)
		oauthMust(t, err)
		if got.Active != want {
			t.Fatalf("%s active %v, want %v", sig, got.Active, want)
		}
	}
	revs, err := s.RevokedSince(ctx, before, time.Now())
	oauthMust(t, err)
	got := map[string]bool{}
	for _, r := range revs {
		got[r.JTI] = true
		if r.ExpiresAt.Before(time.Now()) || r.RevokedAt.Before(before) {
			t.Fatalf("revocation %+v", r)
		}
	}
	if !reflect.DeepEqual(got, map[string]bool{"jti1": true, "jti2": true, "single": true}) {
		t.Fatalf("revoked %v, want jti1 jti2 single", got)
	}
	// Revoking again is harmless; later polls see nothing older.
	oauthMust(t, s.ApplyTokenChanges(ctx, store.OAuthTokenChanges{RevokeFamilies: []string{"fam"}, Revoke: []store.Revocation{{JTI: "single", ExpiresAt: exp}}}))
	revs, err = s.RevokedSince(ctx, time.Now().Add(time.Minute), time.Now())
	oauthMust(t, err)
	if len(revs) != 0 {
		t.Fatalf("RevokedSince(future): %+v", revs)
	}
	// Expired revocations are not listed.
	revs, err = s.RevokedSince(ctx, before, exp.Add(time.Second))
	oauthMust(t, err)
	if len(revs) != 0 {
		t.Fatalf("expired revocations listed: %+v", revs)
	}
}

func testOAuthAssertions(t *testing.T, s store.OAuthStore) {
	ctx := context.Background()
	oauthMust(t, s.UseAssertion(ctx, "client:jti1", time.Now().Add(time.Minute)))
	oauthWantKind(t, s.UseAssertion(ctx, "client:jti1", time.Now().Add(time.Minute)), fhir.KindConflict)
	oauthMust(t, s.UseAssertion(ctx, "client:jti2", time.Now().Add(-time.Second)))
	// An expired id may be used again (its assertion has expired anyway).
	oauthMust(t, s.UseAssertion(ctx, "client:jti2", time.Now().Add(time.Minute)))
	oauthWantKind(t, s.UseAssertion(ctx, "client:jti2", time.Now().Add(time.Minute)), fhir.KindConflict)
}

func testOAuthLaunches(t *testing.T, s store.OAuthStore) {
	ctx := context.Background()
	now := sec(time.Now())
	l := store.LaunchContext{ID: "h1", Patient: "p1", Encounter: "e1", Username: "doc", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	oauthMust(t, s.CreateLaunch(ctx, l))
	oauthWantKind(t, s.CreateLaunch(ctx, l), fhir.KindConflict)
	got, err := s.GetLaunch(ctx, "", "h1")
	oauthMust(t, err)
	if *got != l {
		t.Fatalf("launch round trip: %+v want %+v", *got, l)
	}
	_, err = s.GetLaunch(ctx, "other", "h1")
	oauthWantKind(t, err, fhir.KindNotFound)
	oauthMust(t, s.CreateLaunch(ctx, store.LaunchContext{ID: "h2", Patient: "p", CreatedAt: now, ExpiresAt: now.Add(-time.Second)}))
	_, err = s.GetLaunch(ctx, "", "h2")
	oauthWantKind(t, err, fhir.KindNotFound)
}

func testOAuthSessions(t *testing.T, s store.OAuthStore) {
	ctx := context.Background()
	now := sec(time.Now())
	o := store.OAuthSession{ID: "s1", Kind: "login", Username: "alice", Data: []byte("d"), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	oauthMust(t, s.PutSession(ctx, o))
	got, err := s.GetSession(ctx, "s1")
	oauthMust(t, err)
	if !reflect.DeepEqual(*got, o) {
		t.Fatalf("session round trip: %+v want %+v", *got, o)
	}
	o.Data = []byte("changed")
	oauthMust(t, s.PutSession(ctx, o))
	got, err = s.GetSession(ctx, "s1")
	oauthMust(t, err)
	if string(got.Data) != "changed" {
		t.Fatalf("PutSession did not replace: %q", got.Data)
	}
	oauthMust(t, s.DeleteSession(ctx, "s1"))
	oauthMust(t, s.DeleteSession(ctx, "s1"))
	_, err = s.GetSession(ctx, "s1")
	oauthWantKind(t, err, fhir.KindNotFound)
	oauthMust(t, s.PutSession(ctx, store.OAuthSession{ID: "s2", Kind: "login", CreatedAt: now, ExpiresAt: now.Add(-time.Second)}))
	_, err = s.GetSession(ctx, "s2")
	oauthWantKind(t, err, fhir.KindNotFound)
}

func testOAuthLoginFailures(t *testing.T, s store.OAuthStore) {
	ctx := context.Background()
	now := sec(time.Now())
	n, oldest, err := s.LoginFailures(ctx, "user:alice", now.Add(-time.Hour))
	oauthMust(t, err)
	if n != 0 || !oldest.IsZero() {
		t.Fatalf("no failures yet: %d %v", n, oldest)
	}
	for i := range 3 {
		oauthMust(t, s.RecordLoginFailure(ctx, []string{"user:alice", "addr:10.0.0.1"}, now.Add(time.Duration(i-2)*time.Minute)))
	}
	oauthMust(t, s.RecordLoginFailure(ctx, []string{"addr:10.0.0.1"}, now))
	n, oldest, err = s.LoginFailures(ctx, "user:alice", now.Add(-90*time.Second))
	oauthMust(t, err)
	if n != 2 || !oldest.Equal(now.Add(-time.Minute)) {
		t.Fatalf("user failures: %d oldest %v", n, oldest)
	}
	n, _, err = s.LoginFailures(ctx, "addr:10.0.0.1", now.Add(-time.Hour))
	oauthMust(t, err)
	if n != 4 {
		t.Fatalf("address failures: %d", n)
	}
}

func testOAuthPurge(t *testing.T, s store.OAuthStore) {
	ctx := context.Background()
	now := time.Now()
	oauthMust(t, s.ApplyTokenChanges(ctx, store.OAuthTokenChanges{
		Create: []store.OAuthToken{token(store.TokenRefresh, "gone", "r", now.Add(-time.Second)), token(store.TokenRefresh, "kept", "r", now.Add(time.Hour))},
		Revoke: []store.Revocation{{JTI: "gone", ExpiresAt: now.Add(-time.Second)}, {JTI: "kept", ExpiresAt: now.Add(time.Hour)}},
	}))
	oauthMust(t, s.RecordLoginFailure(ctx, []string{"user:x"}, now.Add(-48*time.Hour)))
	oauthMust(t, s.RecordLoginFailure(ctx, []string{"user:x"}, now))
	oauthMust(t, s.PurgeOAuth(ctx, now))
	if _, err := s.GetToken(ctx, store.TokenRefresh, "gone"); fhir.KindOf(err) != fhir.KindNotFound {
		t.Fatalf("expired token not purged: %v", err)
	}
	if _, err := s.GetToken(ctx, store.TokenRefresh, "kept"); err != nil {
		t.Fatalf("live token purged: %v", err)
	}
	revs, err := s.RevokedSince(ctx, time.Time{}, now.Add(-time.Hour))
	oauthMust(t, err)
	if len(revs) != 1 || revs[0].JTI != "kept" {
		t.Fatalf("revocations after purge: %+v", revs)
	}
	n, _, err := s.LoginFailures(ctx, "user:x", time.Time{})
	oauthMust(t, err)
	if n != 1 {
		t.Fatalf("old login failures not purged: %d left", n)
	}
}
