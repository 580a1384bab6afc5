package oauth_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fhirserver/fhirserver/oauth"
	"github.com/fhirserver/fhirserver/store/postgres"
)

// benchClients is how many clients call at once.
const benchClients = 16

// benchEnv is newEnv, or a provider on the PostgreSQL database named by
// OAUTH_BENCH_POSTGRES (a throwaway database: the benchmark adds rows).
func benchEnv(b *testing.B) *env {
	pgURL := os.Getenv("OAUTH_BENCH_POSTGRES")
	if pgURL == "" {
		return newEnv(b)
	}
	e := newEnv(b)
	st, err := postgres.Open(context.Background(), pgURL)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	p, err := oauth.New(oauth.Config{BaseURL: e.base}, st)
	if err != nil {
		b.Fatal(err)
	}
	e.p = p
	e.adminStore = st
	e.swap(p.Routes())
	return e
}

// hammer runs n requests from benchClients goroutines, each with its own
// keep-alive connection, and reports requests per second.
func hammer(b *testing.B, unit string, do func(c *http.Client, worker int) error) {
	var next atomic.Int64
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range benchClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			for next.Add(1) <= int64(b.N) {
				if err := do(c, w); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d requests failed; first: %v", n, b.N, firstErr.Load())
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), unit)
}

func post(c *http.Client, u string, form url.Values, auth string) error {
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return expect200(c.Do(req))
}

func expect200(resp *http.Response, err error) error {
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var buf [4096]byte
	for {
		if _, err := resp.Body.Read(buf[:]); err != nil {
			break
		}
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// BenchmarkTokenEndpoint: client_credentials with client_secret_basic, 16
// clients calling at once.
func BenchmarkTokenEndpoint(b *testing.B) {
	e := benchEnv(b)
	auths := make([]string, benchClients)
	for i := range benchClients {
		id := fmt.Sprintf("backend-%d-%d", time.Now().UnixNano(), i)
		secret, err := oauth.RegisterClient(context.Background(), e.admin(), oauth.ClientSpec{ID: id, GenerateSecret: true, Scope: "system/*.rs", GrantTypes: []string{"client_credentials"}})
		if err != nil {
			b.Fatal(err)
		}
		auths[i] = basic(id, secret)
	}
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"system/*.rs"}}
	hammer(b, "tokens/s", func(c *http.Client, w int) error {
		return post(c, e.base+"/oauth/token", form, auths[w])
	})
}

// BenchmarkLogin: B/fhir/login with HTTP Basic, 16 clients at once, each
// its own user with a bcrypt cost-10 password. "repeat" is clients logging
// in again and again (the credential cache applies); "bcrypt" checks every
// password with bcrypt.
func BenchmarkLogin(b *testing.B) {
	for _, mode := range []string{"repeat", "bcrypt"} {
		b.Run(mode, func(b *testing.B) {
			e := benchEnv(b)
			if mode == "bcrypt" {
				oauth.DisableCredentialCache(e.p)
			}
			auths := make([]string, benchClients)
			for i := range benchClients {
				name := fmt.Sprintf("user-%d-%d", time.Now().UnixNano(), i)
				if err := oauth.RegisterUser(context.Background(), e.admin(), oauth.UserSpec{Username: name, Password: "password-" + name, FHIRUser: "Patient/p" + fmt.Sprint(i)}); err != nil {
					b.Fatal(err)
				}
				auths[i] = rawBasic(name, "password-"+name)
			}
			hammer(b, "logins/s", func(c *http.Client, w int) error {
				req, _ := http.NewRequest("GET", e.base+"/fhir/login", nil)
				req.Header.Set("Authorization", auths[w])
				return expect200(c.Do(req))
			})
		})
	}
}

// BenchmarkVerify: the resource server's check of one access token.
func BenchmarkVerify(b *testing.B) {
	e := benchEnv(b)
	id := fmt.Sprint("c-", time.Now().UnixNano())
	secret, err := oauth.RegisterClient(context.Background(), e.admin(), oauth.ClientSpec{ID: id, GenerateSecret: true, Scope: "system/*.rs", GrantTypes: []string{"client_credentials"}})
	if err != nil {
		b.Fatal(err)
	}
	tok := e.clientCredentials(id, secret, "").str("access_token")
	v := e.p.Verifier()
	ctx := context.Background()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(ctx, tok); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
