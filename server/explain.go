package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/fhirserver/fhirserver/authz"
	"github.com/fhirserver/fhirserver/fhir"
)

// The access explanation: GET or POST B/fhir/$explain-access, for
// administrators only (clients in Deps.AdminClients). It answers how the
// server decides a request (method and URL below B/fhir) for a caller:
// the calling token, or a token or claims given in a POST body. The
// answer is a plain JSON document (application/json), not a FHIR
// resource: a decision is nested (scopes, policy, filters) in a way a
// Parameters resource renders poorly.

// explainInput is the POST body (GET takes method and url as query
// parameters and explains the calling token).
type explainInput struct {
	Method string `json:"method"`
	URL    string `json:"url"`
	// Needs are the permissions an operation needs, as v2 scope letters
	// ("rs"); the handler of each operation declares its own.
	Needs string `json:"needs"`
	// Token is an access token to explain for; Claims are a token's claims
	// (client_id, sub, scope, patient, fhirUser). At most one of them;
	// neither means the calling token.
	Token  string         `json:"token"`
	Claims *explainClaims `json:"claims"`
}

type explainClaims struct {
	ClientID string `json:"client_id"`
	Subject  string `json:"sub"`
	Scope    string `json:"scope"`
	Patient  string `json:"patient"`
	FHIRUser string `json:"fhirUser"`
}

// explanation is the answer.
type explanation struct {
	Request struct {
		Method string `json:"method"`
		URL    string `json:"url"`
	} `json:"request"`
	Caller       explainCaller       `json:"caller"`
	Decision     string              `json:"decision"`
	Rule         string              `json:"rule"`
	Rules        []string            `json:"rules"`
	Filter       []string            `json:"filter"`
	Interactions []explainedDecision `json:"interactions"`
	// PolicyRules are the access policy's rules that apply to the caller.
	PolicyRules   []string `json:"policyRules,omitempty"`
	IgnoredScopes []string `json:"ignoredScopes,omitempty"`
	Note          string   `json:"note,omitempty"`
}

type explainCaller struct {
	ClientID string   `json:"client_id,omitempty"`
	Subject  string   `json:"sub,omitempty"`
	FHIRUser string   `json:"fhirUser,omitempty"`
	Patient  string   `json:"patient,omitempty"`
	Scopes   []string `json:"scopes"`
	Tenant   string   `json:"tenant"`
	Policy   bool     `json:"accessPolicy"`
}

type explainedDecision struct {
	Interaction string `json:"interaction"`
	Operation   string `json:"operation,omitempty"`
	Type        string `json:"type,omitempty"`
	layerDecision
	// Match is what the criteria of a conditional interaction may match.
	Match  []string       `json:"match,omitempty"`
	Scopes layerDecision  `json:"scopes"`
	Policy *layerDecision `json:"policy,omitempty"`
}

type layerDecision struct {
	Decision string   `json:"decision"`
	Rule     string   `json:"rule"`
	Rules    []string `json:"rules"`
	Filter   []string `json:"filter"`
}

func layer(d authz.Decision) layerDecision {
	out := layerDecision{Decision: "deny", Rule: d.Rule, Rules: d.Rules, Filter: authz.DescribeFilter(d.Filter)}
	if d.Allow {
		out.Decision = "allow"
	}
	if out.Rules == nil {
		out.Rules = []string{}
	}
	return out
}

// adminOnly lets only administrators through: with AuthSmart, callers
// whose client is in Deps.AdminClients (anyone else gets 403); with
// AuthNone, everyone, as for every other path.
func (h *Handler) adminOnly(next http.Handler) http.Handler {
	if h.auth != AuthSmart {
		return next
	}
	return h.bearer(h.verifier)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := CallerFrom(r.Context())
		if !ok || !h.admins[c.ClientID] {
			h.writeError(w, r, fhir.Errorf(fhir.KindForbidden,
				"$explain-access is for administrators: tokens of the clients the server lists as admin clients (--admin-clients)"))
			return
		}
		next.ServeHTTP(w, r)
	}))
}

// explainAccess answers GET and POST B/fhir/$explain-access.
func (h *Handler) explainAccess(w http.ResponseWriter, r *http.Request) {
	in, err := h.explainRequest(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	caller, err := h.explainCaller(r, in)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	reqs, note, err := h.explainTargets(in)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	var ex explanation
	ex.Request.Method, ex.Request.URL = in.Method, in.URL
	ex.Caller = explainCaller{ClientID: caller.ClientID, Subject: caller.Subject, FHIRUser: caller.FHIRUser(), Patient: caller.Patient,
		Scopes: caller.Scopes, Tenant: caller.Tenant, Policy: caller.Access != nil}
	if ex.Caller.Scopes == nil {
		ex.Caller.Scopes = []string{}
	}
	ex.Note = note
	// A Bundle passes the access check in front of the handlers (its
	// entries are decided one by one); any other request that may perform
	// every interaction needs each unrestricted.
	bundle := strings.Trim(in.URL, "/") == "" || strings.Trim(strings.TrimPrefix(in.URL, h.base+"/fhir"), "/") == ""
	bundle = bundle && in.Method == http.MethodPost
	unknown := len(reqs) == len(everything) && !bundle
	primary := -1
	for _, req := range reqs {
		e := caller.Explain(req)
		d := explainedDecision{Interaction: string(req.Interaction), Operation: req.Operation, Type: req.Type,
			layerDecision: layer(e.Decision), Scopes: layer(e.Scopes)}
		if e.Policy != nil {
			p := layer(*e.Policy)
			d.Policy = &p
		}
		if len(e.Decision.Match.Grants) > 0 {
			d.Match = authz.DescribeFilter(e.Decision.Match)
		}
		// As requireUnrestricted decides in front of the handlers (on every
		// type): some interactions are served only with unrestricted
		// access.
		if req.Interaction != authz.Operation {
			g := caller.Decide(authz.Request{Interaction: req.Interaction})
			switch {
			case !g.Allow:
				d.Decision, d.Rule = "deny", g.Rule
			case bundle:
			case (!enforced[req.Interaction] || unknown) && !g.Filter.IsAllowAll():
				d.Decision = "deny"
				d.Rule = "server: " + string(req.Interaction) + " is served only to tokens whose access to it is unrestricted"
			}
		}
		ex.PolicyRules, ex.IgnoredScopes = e.Selected, e.Ignored
		ex.Interactions = append(ex.Interactions, d)
		if primary < 0 && d.Decision == "deny" {
			primary = len(ex.Interactions) - 1
		}
	}
	if bundle {
		// A Bundle is let through when any of its interactions may be
		// allowed; its entries are decided one by one.
		for i, d := range ex.Interactions {
			if d.Decision == "allow" {
				primary = i
				break
			}
		}
	}
	if primary < 0 {
		primary = 0
	}
	p := ex.Interactions[primary]
	ex.Decision, ex.Rule, ex.Rules, ex.Filter = p.Decision, p.Rule, p.Rules, p.Filter
	body, err := json.Marshal(ex)
	if err != nil {
		h.writeError(w, r, fhir.Internal("writing the explanation", err))
		return
	}
	f := formatFrom(r.Context())
	f.contentType = ctJSON
	h.writeBody(w, r, f, http.StatusOK, body)
}

// explainRequest reads what to explain from the query (GET) or the JSON
// body (POST).
func (h *Handler) explainRequest(r *http.Request) (explainInput, error) {
	var in explainInput
	if r.Method == http.MethodPost {
		if err := checkContentType(r); err != nil {
			return in, err
		}
		raw, err := readBody(r)
		if err != nil {
			return in, err
		}
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			return in, fhir.Errorf(fhir.KindInvalid, "the body must be a JSON object with method, url and optionally needs, and token or claims: %v", err)
		}
	} else {
		q := r.URL.Query()
		in.Method, in.URL, in.Needs = q.Get("method"), q.Get("url"), q.Get("needs")
	}
	if in.Method == "" {
		in.Method = http.MethodGet
	}
	in.Method = strings.ToUpper(in.Method)
	switch in.Method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
	default:
		return in, fhir.Errorf(fhir.KindInvalid, "method %q is not one of GET, HEAD, POST, PUT, PATCH, DELETE", in.Method)
	}
	if in.URL == "" {
		return in, fhir.Errorf(fhir.KindInvalid, "url is missing: give the request's URL below B/fhir, e.g. Observation?patient=123 (URL-encoded in a query string)")
	}
	if in.Token != "" && in.Claims != nil {
		return in, fhir.Errorf(fhir.KindInvalid, "give token or claims, not both")
	}
	return in, nil
}

// explainCaller is who the explanation is for, with the access policy and
// the tenant the server gives every caller.
func (h *Handler) explainCaller(r *http.Request, in explainInput) (*authz.Caller, error) {
	var c authz.Caller
	switch {
	case in.Claims != nil:
		cl := in.Claims
		c = authz.Caller{ClientID: cl.ClientID, Subject: cl.Subject, Scopes: strings.Fields(cl.Scope), Patient: cl.Patient}
		if cl.FHIRUser != "" {
			var ok bool
			if c.FHIRUserType, c.FHIRUserID, ok = authz.ParseFHIRUser(cl.FHIRUser); !ok {
				return nil, fhir.Errorf(fhir.KindInvalid, "claims.fhirUser %q is not a reference to a resource (Type/id or an absolute URL)", cl.FHIRUser)
			}
		}
	case in.Token != "":
		if h.verifier == nil {
			return nil, fhir.Errorf(fhir.KindInvalid, "this server verifies no tokens (--auth none); give claims instead")
		}
		v, err := h.verifier.Verify(r.Context(), in.Token)
		switch {
		case err == nil && v != nil:
			c = *v
		case err == nil || errors.Is(err, ErrInvalidToken) || fhir.KindOf(err) == fhir.KindUnauthorized:
			return nil, fhir.Errorf(fhir.KindInvalid, "the token to explain is invalid or expired")
		default:
			return nil, err
		}
	default:
		v, ok := CallerFrom(r.Context())
		if !ok {
			return nil, fhir.Errorf(fhir.KindInvalid, "there is no calling token to explain (--auth none); give claims in a POST body")
		}
		c = *v
	}
	c.Access = h.policy
	c.Tenant = h.tenantFrom(r.Context()).name
	return &c, nil
}

// explainTargets turns the method and URL into the decisions the server
// asks for it, as interactionsOf (the access check in front of the
// handlers) and the handlers do.
func (h *Handler) explainTargets(in explainInput) ([]authz.Request, string, error) {
	raw := in.URL
	t := h.base + "/fhir"
	if rest, ok := strings.CutPrefix(raw, t); ok {
		raw = rest
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return nil, "", fhir.Errorf(fhir.KindInvalid, "url %q is not a URL below B/fhir (Observation?patient=123, or %s/Observation...)", in.URL, t)
	}
	p := strings.Trim(u.Path, "/")
	var seg []string
	if p != "" {
		seg = strings.Split(p, "/")
	}
	typeAt := func(i int) (string, error) {
		if i >= len(seg) || seg[i] == "*" {
			return "", nil
		}
		if !h.types[seg[i]] {
			return "", fhir.Errorf(fhir.KindInvalid, "url: %q is not a resource type this server serves", seg[i])
		}
		return seg[i], nil
	}
	if op := operationOf(seg); op != "" && (operationNeeds[op] != 0 || in.Needs != "") {
		req := authz.Request{Interaction: authz.Operation, Operation: op}
		if len(seg) > 1 {
			if req.Type, err = typeAt(0); err != nil {
				return nil, "", err
			}
		}
		if req.Needs, err = parseNeeds(in.Needs); err != nil {
			return nil, "", err
		}
		if in.Needs == "" {
			// What the server's handler declares ($everything).
			req.Needs = operationNeeds[op]
			return []authz.Request{req}, "", nil
		}
		return []authz.Request{req}, "the operation's permissions are those given as needs", nil
	}
	is := interactionsOf(in.Method, seg)
	typ := ""
	note := ""
	switch {
	case len(seg) == 0 || seg[0] == "_search" || seg[0] == "_history":
	case len(seg) == 0 && in.Method == http.MethodPost:
		note = "a batch or transaction Bundle: each entry is decided on its own, for its interaction and type, and confined as the plain interaction is (a transaction with a denied entry fails whole); explain an entry by giving its method and url; shown here: each interaction at the system level"
	case slices.Equal(is, everything):
		note = "the server does not know this URL as an interaction (an operation it serves only to tokens unrestricted on every interaction): each interaction is shown at the system level"
	case len(seg) == 3 && seg[2] != "_history":
		// Compartment search: the decision is on the target type.
		if _, err := typeAt(0); err != nil {
			return nil, "", err
		}
		if typ, err = typeAt(2); err != nil {
			return nil, "", err
		}
	default:
		if typ, err = typeAt(0); err != nil {
			return nil, "", err
		}
	}
	var reqs []authz.Request
	for _, i := range is {
		r := authz.Request{Interaction: i}
		if !slices.Equal(is, everything) {
			r.Type = typ
		}
		reqs = append(reqs, r)
	}
	return reqs, note, nil
}

// parseNeeds reads v2 scope letters ("rs") as permissions.
func parseNeeds(s string) (authz.Perms, error) {
	if s == "" {
		return 0, nil
	}
	sc, err := authz.ParseScope("system/*." + s)
	if err != nil || !sc.V2 {
		return 0, fhir.Errorf(fhir.KindInvalid, "needs %q: give SMART v2 letters in the order cruds (e.g. rs)", s)
	}
	return sc.Perms, nil
}
