// Package server is the HTTP face of the FHIR server: the chi router, the
// middleware every request passes through (request id, access log, panic
// recovery, body limit), and the FHIR REST interactions on B/fhir. Responses
// are written from the stored bytes of each resource; the only place that
// turns an error into a status and an OperationOutcome is writeError.
//
// server is the only package that imports chi.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/fhirserver/fhirserver/authz"
	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/search"
	"github.com/fhirserver/fhirserver/store"
)

// Store is the part of store.Store the REST interactions use. It is declared
// here, by its consumer, so that tests and later decorators (access rules,
// metrics) only need these methods.
type Store interface {
	Create(ctx context.Context, w store.Write) (*fhir.Resource, error)
	Update(ctx context.Context, w store.Write) (res *fhir.Resource, created bool, err error)
	Delete(ctx context.Context, d store.Delete) (*fhir.Resource, error)
	Read(ctx context.Context, tenant, typ, id string) (*fhir.Resource, error)
	VRead(ctx context.Context, tenant, typ, id string, version int64) (*fhir.Resource, error)
	History(ctx context.Context, q store.HistoryQuery) (*store.HistoryPage, error)
	Search(ctx context.Context, tenant string, q *search.Query) (*store.SearchPage, error)
	// SearchAccess is Search as a caller with filter f sees it (in SQL:
	// matches, includes, chains, _has and totals); see store.FilteredSearcher.
	SearchAccess(ctx context.Context, tenant string, q *search.Query, f store.Filter) (*store.SearchPage, error)
	Transact(ctx context.Context, tenant string, fn func(tx store.Tx) error) error
	Ping(ctx context.Context) error
}

// Validator checks a resource body against the FHIR R4 definitions before it
// is stored. It returns a *fhir.Error of KindInvalid that names the problem.
type Validator interface {
	Validate(resourceType string, body []byte) error
}

// AuthMode says how requests to B/fhir are authenticated.
type AuthMode string

const (
	// AuthNone serves every request without credentials, for local
	// development only.
	AuthNone AuthMode = "none"
	// AuthSmart requires a SMART access token (Deps.TokenVerifier) on every
	// request to B/fhir except the CapabilityStatement and discovery.
	AuthSmart AuthMode = "smart"
)

// DefaultMaxBody is the request body limit when Deps.MaxBody is zero.
const DefaultMaxBody int64 = 32 << 20

// DefaultMaxBundleEntries is the entry limit of a batch or transaction
// Bundle when Deps.MaxBundleEntries is zero.
const DefaultMaxBundleEntries = 10000

// ReferencePolicy says what a transaction may do with references to local
// resources that do not exist.
type ReferencePolicy string

const (
	// ReferencesStrict (the default) refuses, with 400, a transaction
	// whose resources refer to a local resource (Type/id, or an absolute
	// URL under B/fhir) that does not exist when it would commit, or to a
	// urn:uuid: that no entry of the Bundle has as its fullUrl.
	ReferencesStrict ReferencePolicy = "strict"
	// ReferencesLenient stores such references as they are.
	ReferencesLenient ReferencePolicy = "lenient"
)

// DeletePolicy says whether a resource that others refer to may be deleted.
type DeletePolicy string

const (
	// DeleteAllow (the default) deletes it; the references dangle.
	DeleteAllow DeletePolicy = "allow"
	// DeleteRefuse answers 409 while a current resource refers to it
	// through a reference that a search parameter indexes.
	DeleteRefuse DeletePolicy = "refuse"
)

// ConditionalDeleteMode says what DELETE B/fhir/Type?criteria does when
// several resources match.
type ConditionalDeleteMode string

const (
	// ConditionalDeleteSingle (the default) answers 412.
	ConditionalDeleteSingle ConditionalDeleteMode = "single"
	// ConditionalDeleteMultiple deletes them all (up to 1,000; more is 412).
	ConditionalDeleteMultiple ConditionalDeleteMode = "multiple"
)

// Deps is everything the router needs. Store, BaseURL and AuthMode are
// required; the rest have defaults.
type Deps struct {
	// Store holds the resources.
	Store Store
	// Validator checks bodies of create and update. Nil means structure
	// checks only (valid JSON object, resourceType and id).
	Validator Validator
	// Logger receives the access log and internal errors. Nil discards.
	Logger *slog.Logger
	// BaseURL is the public base B (scheme, host, optional path, no query),
	// e.g. http://localhost:8080. Location headers and Bundle links are
	// absolute URLs under B/fhir.
	BaseURL string
	// MaxBody limits request bodies in bytes; larger bodies get 413.
	// Zero means DefaultMaxBody.
	MaxBody int64
	// AuthMode selects authentication on B/fhir and must be given: an open
	// server is never the result of a forgotten field. AuthSmart needs
	// TokenVerifier.
	AuthMode AuthMode
	// TokenVerifier checks bearer tokens (AuthSmart).
	TokenVerifier TokenVerifier
	// AccessPolicy, when set, narrows what every token's scopes allow by
	// who the caller is (a policy file; see authz.AccessPolicy). Without
	// one the scopes alone decide.
	AccessPolicy *authz.AccessPolicy
	// AuditEvents, when set, stores an AuditEvent resource per write
	// (allowed or denied) besides the audit log line every write gets.
	AuditEvents bool
	// AuditLogger receives the audit lines (message "audit"); nil means
	// Logger.
	AuditLogger *slog.Logger
	// AdminClients are the OAuth client ids whose tokens are
	// administrators' (B/fhir/$explain-access); none when empty.
	AdminClients []string
	// AuthServer, when set, serves the SMART authorization server's paths:
	// B/oauth/..., B/.well-known/openid-configuration,
	// B/fhir/.well-known/smart-configuration, B/fhir/login and
	// B/fhir/logout. They need no bearer token.
	AuthServer http.Handler
	// OAuthURIs, when set, are stated in the CapabilityStatement's
	// rest.security (the SMART oauth-uris extension).
	OAuthURIs *OAuthURIs
	// ResourceTypes are the resource types served at B/fhir/{type}; any other
	// type in a URL is answered with 404. Nil means all of R4
	// (fhir.ResourceTypes, generated from the spec).
	ResourceTypes []string
	// MaxBundleEntries caps the entries of a batch or transaction Bundle;
	// a larger one is refused with 413. Zero means DefaultMaxBundleEntries.
	MaxBundleEntries int
	// References is the policy for references to missing local resources
	// in a transaction; "" means ReferencesStrict.
	References ReferencePolicy
	// DeleteReferenced is the policy for deleting a resource that others
	// refer to; "" means DeleteAllow.
	DeleteReferenced DeletePolicy
	// ConditionalDelete is the mode of conditional delete; "" means
	// ConditionalDeleteSingle.
	ConditionalDelete ConditionalDeleteMode
}

// Handler holds the dependencies of the REST interactions; its methods are
// the HTTP handlers. Build one with NewRouter.
type Handler struct {
	store     Store
	validator Validator
	log       *slog.Logger
	base      string // BaseURL without a trailing slash
	maxBody   int64
	auth      AuthMode
	verifier  TokenVerifier
	policy    *authz.AccessPolicy
	admins    map[string]bool
	// auditLog receives the audit lines; auditEvents stores AuditEvents.
	auditLog    *slog.Logger
	auditEvents bool
	authSrv     http.Handler
	oauthURIs   *OAuthURIs
	types       map[string]bool
	typeList    []string // served types in the order given, for metadata
	started     time.Time
	root        *chi.Mux // to compute Allow for 405 answers
	// elements is the generated element table for _summary and _elements.
	elements     elementIndex
	capabilities sync.Map // base URL -> CapabilityStatement JSON

	maxEntries       int
	references       ReferencePolicy
	deleteReferenced DeletePolicy
	deleteMode       ConditionalDeleteMode
}

// NewRouter checks deps and returns the HTTP handler for the whole server:
// /healthz, /readyz and the FHIR API under /fhir.
func NewRouter(deps Deps) (http.Handler, error) {
	h, err := newHandler(deps)
	if err != nil {
		return nil, err
	}
	return h.routes(), nil
}

func newHandler(deps Deps) (*Handler, error) {
	if deps.Store == nil {
		return nil, errors.New("server: Deps.Store is required")
	}
	base, err := parseBaseURL(deps.BaseURL)
	if err != nil {
		return nil, err
	}
	auth := deps.AuthMode
	switch auth {
	case AuthNone:
	case AuthSmart:
		if deps.TokenVerifier == nil {
			return nil, errors.New("server: AuthSmart needs Deps.TokenVerifier")
		}
	case "":
		return nil, errors.New("server: Deps.AuthMode is required")
	default:
		return nil, fmt.Errorf("server: auth mode %q is not implemented", auth)
	}
	maxBody := deps.MaxBody
	if maxBody == 0 {
		maxBody = DefaultMaxBody
	}
	if maxBody < 0 {
		return nil, fmt.Errorf("server: MaxBody %d is negative", maxBody)
	}
	logger := deps.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	auditLog := deps.AuditLogger
	if auditLog == nil {
		auditLog = logger
	}
	served := deps.ResourceTypes
	if served == nil {
		served = fhir.ResourceTypes()
	}
	maxEntries := deps.MaxBundleEntries
	if maxEntries == 0 {
		maxEntries = DefaultMaxBundleEntries
	}
	if maxEntries < 0 {
		return nil, fmt.Errorf("server: MaxBundleEntries %d is negative", maxEntries)
	}
	refs := deps.References
	switch refs {
	case "":
		refs = ReferencesStrict
	case ReferencesStrict, ReferencesLenient:
	default:
		return nil, fmt.Errorf("server: reference policy %q is not strict or lenient", refs)
	}
	del := deps.DeleteReferenced
	switch del {
	case "":
		del = DeleteAllow
	case DeleteAllow, DeleteRefuse:
	default:
		return nil, fmt.Errorf("server: delete policy %q is not allow or refuse", del)
	}
	cd := deps.ConditionalDelete
	switch cd {
	case "":
		cd = ConditionalDeleteSingle
	case ConditionalDeleteSingle, ConditionalDeleteMultiple:
	default:
		return nil, fmt.Errorf("server: conditional delete mode %q is not single or multiple", cd)
	}
	admins := map[string]bool{}
	for _, id := range deps.AdminClients {
		if id == "" {
			return nil, errors.New("server: an admin client id is empty")
		}
		admins[id] = true
	}
	types := make(map[string]bool, len(served))
	var list []string
	for _, t := range served {
		if !fhir.IsResourceType(t) {
			return nil, fmt.Errorf("server: %q is not an R4 resource type", t)
		}
		if !types[t] {
			types[t] = true
			list = append(list, t)
		}
	}
	return &Handler{
		store:     deps.Store,
		validator: deps.Validator,
		log:       logger,
		base:      base,
		maxBody:   maxBody,
		auth:      auth,
		verifier:  deps.TokenVerifier,
		policy:    deps.AccessPolicy,
		admins:    admins,

		auditLog:    auditLog,
		auditEvents: deps.AuditEvents,
		authSrv:     deps.AuthServer,
		oauthURIs:   deps.OAuthURIs,
		types:       types,
		typeList:    list,
		started:     time.Now().UTC(),
		elements:    elementTable(),

		maxEntries:       maxEntries,
		references:       refs,
		deleteReferenced: del,
		deleteMode:       cd,
	}, nil
}

func parseBaseURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("server: base URL %q must be an absolute http(s) URL", s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("server: base URL %q must not have credentials, a query or a fragment", s)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// routes registers every route. Groups follow who may call them: health
// checks and metadata are public; the REST interactions sit behind
// h.authenticate. The FHIR routes are registered by fhirRoutes on a
// sub-router whose middleware fixes the tenant, so that a tenant mount
// (/fhir/{tenant}) can reuse them with a different tenant resolver.
func (h *Handler) routes() http.Handler {
	r := chi.NewRouter()
	h.root = r
	r.Use(h.requestID, h.logAndRecover, h.limitBody, middleware.GetHead)
	r.NotFound(h.notFound)
	r.MethodNotAllowed(h.methodNotAllowed)

	if h.authSrv != nil {
		for _, p := range []string{"/oauth/*", "/.well-known/openid-configuration", "/fhir/.well-known/smart-configuration", "/fhir/login", "/fhir/logout"} {
			r.Handle(p, h.authSrv)
		}
	}
	r.Get("/healthz", h.healthz)
	r.Get("/readyz", h.readyz)

	r.Route("/fhir", func(r chi.Router) {
		r.Use(h.withTenant(store.DefaultTenant, h.base+"/fhir"))
		h.fhirRoutes(r)
	})
	return r
}

// fhirRoutes registers the FHIR REST API relative to a tenant's base.
func (h *Handler) fhirRoutes(r chi.Router) {
	r.Use(h.negotiate)
	// Public: a client reads the CapabilityStatement before it has a token.
	r.Get("/metadata", h.metadata)
	// Administrators only, outside the interactions' access checks.
	r.Group(func(r chi.Router) {
		r.Use(h.adminOnly)
		r.Get("/$explain-access", h.explainAccess)
		r.Post("/$explain-access", h.explainAccess)
	})
	// Everything else needs a caller once authentication exists.
	r.Group(func(r chi.Router) {
		r.Use(h.authenticate)
		r.Get("/", h.searchSystem)
		r.Post("/", h.bundle)
		r.Post("/_search", h.searchSystem)
		r.Get("/_history", h.historySystem)
		r.Get("/{type}", h.searchType)
		r.Post("/{type}", h.create)
		// Conditional update, patch and delete. The pattern keeps paths
		// that are not resource types (metadata, _search, _history) out, so
		// that those still answer 405 with their own Allow.
		r.Put("/{type:[A-Z][A-Za-z]+}", h.conditionalUpdate)
		r.Patch("/{type:[A-Z][A-Za-z]+}", h.conditionalPatch)
		r.Delete("/{type:[A-Z][A-Za-z]+}", h.conditionalDelete)
		r.Post("/{type}/_search", h.searchType)
		r.Get("/{type}/_history", h.historyType)
		r.Get("/{type}/{id}", h.read)
		r.Put("/{type}/{id}", h.update)
		r.Patch("/{type}/{id}", h.patch)
		r.Delete("/{type}/{id}", h.delete)
		r.Get("/{type}/{id}/_history", h.historyInstance)
		r.Get("/{type}/{id}/_history/{vid}", h.vread)
		// Compartment search: {type} is the compartment, {target} a member
		// type or "*".
		r.Get("/{type}/{id}/{target}", h.searchCompartment)
		r.Post("/{type}/{id}/{target}/_search", h.searchCompartment)
		// Patient $everything (everything.go); the static segments win over
		// {type}/{id} and {type}/{id}/{target}.
		r.Get("/Patient/$everything", h.everythingType)
		r.Post("/Patient/$everything", h.everythingType)
		r.Get("/Patient/{id}/$everything", h.everythingInstance)
		r.Post("/Patient/{id}/$everything", h.everythingInstance)
	})
}

// authenticate is the bearer-token validation (AuthMode smart): it
// resolves the caller and puts it in the context, or answers 401; then the
// audit of writes (audit.go) and the access check in front of the
// handlers. With AuthNone every request passes, writes audited.
func (h *Handler) authenticate(next http.Handler) http.Handler {
	if h.auth != AuthSmart {
		return h.audit(next)
	}
	return h.bearer(h.verifier)(h.audit(h.requireUnrestricted(next)))
}

func (h *Handler) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok\n")
}

// readyz answers 503 while the database does not answer, so that a load
// balancer stops sending traffic; the cause goes to the log only.
func (h *Handler) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := h.store.Ping(ctx); err != nil {
		h.log.WarnContext(r.Context(), "readiness check failed",
			"request_id", requestIDFrom(r.Context()), "error", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "database unavailable\n")
		return
	}
	_, _ = io.WriteString(w, "ok\n")
}

// NewHTTPServer wraps h in an http.Server with timeouts, so that slow or idle
// clients cannot hold connections forever. Shutdown is the caller's: nothing
// here starts goroutines or holds connections beyond a request.
func NewHTTPServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		// A full 32 MiB body needs about 2.3 Mbit/s to arrive in two minutes.
		ReadTimeout: 2 * time.Minute,
		// Large history pages and (later) exports take a while to write.
		WriteTimeout: 5 * time.Minute,
		IdleTimeout:  2 * time.Minute,
	}
}
