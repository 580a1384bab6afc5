package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/fhirserver/fhirserver/authz"
	"github.com/fhirserver/fhirserver/authz/policyfile"
	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/server"
	"github.com/fhirserver/fhirserver/validate"
)

type serveCmd struct {
	Addr              string        `name:"addr" env:"FHIR_ADDR" default:":8080" help:"Address to listen on."`
	BaseURL           string        `name:"base-url" env:"FHIR_BASE_URL" default:"http://localhost:8080" help:"Public base URL B; the FHIR API is at B/fhir."`
	Auth              string        `name:"auth" env:"FHIR_AUTH" default:"smart" enum:"smart,none" help:"smart (bearer tokens required) or none (local development only)."`
	Demo              bool          `name:"demo" env:"FHIR_DEMO" help:"Load sample patients at start."`
	MaxBody           int64         `name:"max-body" env:"FHIR_MAX_BODY" default:"33554432" help:"Largest request body in bytes; larger gets 413."`
	Drain             time.Duration `name:"drain" env:"FHIR_DRAIN" default:"30s" help:"How long SIGTERM waits for in-flight requests."`
	TokenTTL          time.Duration `name:"token-ttl" env:"FHIR_TOKEN_TTL" default:"1h" help:"Lifetime of access tokens."`
	BundleMaxEntries  int           `name:"bundle-max-entries" env:"FHIR_BUNDLE_MAX_ENTRIES" default:"10000" help:"Entries in one batch or transaction Bundle; more gets 413."`
	References        string        `name:"references" env:"FHIR_REFERENCES" default:"strict" enum:"strict,lenient" help:"strict: a transaction referring to a missing local resource gets 400; lenient stores it."`
	DeleteReferenced  string        `name:"delete-referenced" env:"FHIR_DELETE_REFERENCED" default:"allow" enum:"allow,refuse" help:"allow, or refuse (409) deleting a resource that current resources refer to."`
	SlowQuery         time.Duration `name:"slow-query" env:"FHIR_SLOW_QUERY" default:"500ms" help:"Log the SQL of search statements that take at least this long (0 turns it off); their bind values at --log-level debug."`
	DebugAddr         string        `name:"debug-addr" env:"FHIR_DEBUG_ADDR" help:"Serve Go's profiler (net/http/pprof) on this address, e.g. 127.0.0.1:6060; off when empty. Never expose it publicly."`
	ConditionalDelete string        `name:"conditional-delete" env:"FHIR_CONDITIONAL_DELETE" default:"single" enum:"single,multiple" help:"single: a conditional delete matching several resources gets 412; multiple deletes them all."`
	AuditEvents       bool          `name:"audit-events" env:"FHIR_AUDIT_EVENTS" help:"Also store an AuditEvent resource per write (allowed or denied); every write is logged (msg audit) either way."`
	AdminClients      []string      `name:"admin-clients" env:"FHIR_ADMIN_CLIENTS" sep:"," placeholder:"ID" help:"OAuth client ids whose tokens are administrators' (B/fhir/$explain-access); register them for client_credentials."`
	Policy            string        `name:"policy" env:"FHIR_POLICY" placeholder:"FILE" help:"Access policy file (YAML or JSON): rules per caller that narrow what tokens' scopes allow; see README, Access policies."`
	TrustedIssuers    []string      `name:"trusted-issuer" env:"FHIR_TRUSTED_ISSUERS" sep:"," placeholder:"ISSUER=JWKS_URL" help:"Also accept access tokens of this external issuer, verified against its JWKS (repeatable; the variable takes a comma-separated list)."`
}

func (c *serveCmd) Run(e *env) error {
	if c.Auth == string(server.AuthNone) {
		e.log.Warn("AUTHENTICATION IS OFF (--auth none): anyone who can reach this server can read and change all data; use only for local development")
	}

	// The policy first: a bad one stops the start before anything opens.
	var policy *authz.AccessPolicy
	if c.Policy != "" {
		if c.Auth != string(server.AuthSmart) {
			return usageError{errors.New("--policy needs --auth smart: without tokens there is no caller to apply it to")}
		}
		var err error
		if policy, err = policyfile.Load(c.Policy); err != nil {
			return usageError{fmt.Errorf("the access policy is invalid: %w", err)}
		}
		e.log.Info("access policy loaded", "file", c.Policy, "rules", policy.Len())
	}

	st, err := openStore(e.ctx, e.cli.DatabaseURL, e.cli.FullText)
	if err != nil {
		return fmt.Errorf("opening the database: %w", err)
	}
	defer st.Close()
	logSlowQueries(e, st, c.SlowQuery)
	v, err := validate.New()
	if err != nil {
		return fmt.Errorf("loading the R4 validator: %w", err)
	}
	if c.Demo {
		if err := loadDemo(e, st, v); err != nil {
			return err
		}
	}
	auth, err := newAuthServer(e, c, st)
	if err != nil {
		return err
	}
	ext, err := newExternalVerifier(e, c)
	if err != nil {
		return err
	}
	ep := auth.Endpoints()
	h, err := server.NewRouter(server.Deps{
		TokenVerifier: tokenVerifier{own: auth.Verifier(), ext: ext},
		AccessPolicy:  policy,
		AuditEvents:   c.AuditEvents,
		AdminClients:  slices.DeleteFunc(c.AdminClients, func(id string) bool { return strings.TrimSpace(id) == "" }),
		AuthServer:    auth.Routes(),
		OAuthURIs:     &server.OAuthURIs{Authorize: ep.Authorize, Token: ep.Token, Revoke: ep.Revoke, Introspect: ep.Introspect},
		Store:         st,
		Validator:     v,
		Logger:        e.log,
		BaseURL:       c.BaseURL,
		MaxBody:       c.MaxBody,
		AuthMode:      server.AuthMode(c.Auth),
		ResourceTypes: fhir.ResourceTypes(),

		MaxBundleEntries:  c.BundleMaxEntries,
		References:        server.ReferencePolicy(c.References),
		DeleteReferenced:  server.DeletePolicy(c.DeleteReferenced),
		ConditionalDelete: server.ConditionalDeleteMode(c.ConditionalDelete),
	})
	if err != nil {
		return usageError{err}
	}
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", c.Addr, err)
	}
	srv := server.NewHTTPServer(c.Addr, h)
	e.log.Info("serving FHIR R4", "addr", ln.Addr().String(), "fhir_base", c.BaseURL+"/fhir", "database", redactURL(e.cli.DatabaseURL))
	fmt.Fprintf(e.stdout, "FHIR server listening on %s; API at %s/fhir\n", ln.Addr(), c.BaseURL)

	// Start-up garbage (the R4 descriptors decoded by the validator, the
	// demo import) is freed now rather than left resident until scavenged.
	debug.FreeOSMemory()
	if c.DebugAddr != "" {
		if err := serveDebug(e, c.DebugAddr); err != nil {
			return err
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-e.ctx.Done():
	}
	e.log.Info("shutting down: draining in-flight requests", "drain", c.Drain.String())
	ctx, cancel := context.WithTimeout(context.Background(), c.Drain)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("draining requests: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving: %w", err)
	}
	e.log.Info("stopped")
	return nil
}

// serveDebug serves the profiler on its own listener, so that it is never
// reachable through the public address.
func serveDebug(e *env, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on the debug address %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	e.log.Warn("profiler listening (--debug-addr); keep it private", "addr", ln.Addr().String())
	go func() {
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		if err := srv.Serve(ln); err != nil {
			e.log.Error("debug listener stopped", "err", err)
		}
	}()
	return nil
}

// logSlowQueries logs the search statements that take at least after, with
// their SQL, so that they can be run under EXPLAIN. Bind values may hold
// patient data: they are logged only at debug level.
func logSlowQueries(e *env, st any, after time.Duration) {
	sq, ok := st.(interface {
		LogSlowQueries(after time.Duration, f func(sql string, args []any, d time.Duration))
	})
	if !ok || after <= 0 {
		return
	}
	debug := e.log.Enabled(e.ctx, slog.LevelDebug)
	sq.LogSlowQueries(after, func(sql string, args []any, d time.Duration) {
		attrs := []any{"duration_ms", float64(d.Microseconds()) / 1000, "sql", sql, "bind_values", len(args)}
		if debug {
			attrs = append(attrs, "args", args)
		}
		e.log.Warn("slow search statement", attrs...)
	})
}
