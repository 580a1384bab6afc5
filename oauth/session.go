package oauth

import (
	"encoding/json"
	"net/url"
	"time"

	"github.com/mohae/deepcopy"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
)

// session is what a grant carries from the authorization to every token
// issued from it: the user, the SMART launch context and the id_token
// claims. It is stored (as JSON) with codes and refresh tokens.
type session struct {
	openid.DefaultSession
	Tenant string `json:"tenant,omitempty"`
	// FHIRUser is the absolute URL of the user's resource.
	FHIRUser          string `json:"fhir_user,omitempty"`
	Patient           string `json:"patient,omitempty"`
	Encounter         string `json:"encounter,omitempty"`
	NeedPatientBanner bool   `json:"need_patient_banner,omitempty"`
	SmartStyleURL     string `json:"smart_style_url,omitempty"`
	// LoginSession is the login session (its stored id) an online_access
	// grant ends with.
	LoginSession string `json:"login_session,omitempty"`
}

func newSession(tenant string) *session {
	return &session{DefaultSession: *openid.NewDefaultSession(), Tenant: tenant}
}

// Clone implements fosite.Session.
func (s *session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	return deepcopy.Copy(s).(*session)
}

// storedRequest is a fosite request as kept in the database.
type storedRequest struct {
	ID                string          `json:"id"`
	RequestedAt       time.Time       `json:"requested_at"`
	ClientID          string          `json:"client_id"`
	RequestedScope    []string        `json:"requested_scope,omitempty"`
	GrantedScope      []string        `json:"granted_scope,omitempty"`
	RequestedAudience []string        `json:"requested_audience,omitempty"`
	GrantedAudience   []string        `json:"granted_audience,omitempty"`
	Form              url.Values      `json:"form,omitempty"`
	Session           json.RawMessage `json:"session"`
}

func encodeRequest(r fosite.Requester) ([]byte, error) {
	sess, err := json.Marshal(r.GetSession())
	if err != nil {
		return nil, err
	}
	return json.Marshal(storedRequest{
		ID:                r.GetID(),
		RequestedAt:       r.GetRequestedAt(),
		ClientID:          r.GetClient().GetID(),
		RequestedScope:    r.GetRequestedScopes(),
		GrantedScope:      r.GetGrantedScopes(),
		RequestedAudience: r.GetRequestedAudience(),
		GrantedAudience:   r.GetGrantedAudience(),
		Form:              r.GetRequestForm(),
		Session:           sess,
	})
}

// sessionOf returns the request's session as ours.
func sessionOf(r fosite.Requester) *session {
	if s, ok := r.GetSession().(*session); ok && s != nil {
		return s
	}
	return newSession("")
}
