package server

// OAuthURIs are the authorization server's endpoints, stated in the
// CapabilityStatement so that SMART clients can find them.
type OAuthURIs struct {
	Authorize, Token, Revoke, Introspect string
}

type capSecurity struct {
	Extension   []capExtension    `json:"extension,omitempty"`
	Service     []capCodeableConc `json:"service,omitempty"`
	Description string            `json:"description,omitempty"`
}

type capExtension struct {
	URL       string         `json:"url"`
	ValueURI  string         `json:"valueUri,omitempty"`
	Extension []capExtension `json:"extension,omitempty"`
}

type capCodeableConc struct {
	Coding []capCoding `json:"coding"`
	Text   string      `json:"text,omitempty"`
}

type capCoding struct {
	System string `json:"system"`
	Code   string `json:"code"`
}

// security is rest.security: the SMART oauth-uris extension and the
// SMART-on-FHIR service, when an authorization server is configured.
func (h *Handler) security() *capSecurity {
	if h.oauthURIs == nil {
		return nil
	}
	u := h.oauthURIs
	var uris []capExtension
	for _, e := range []capExtension{{URL: "authorize", ValueURI: u.Authorize}, {URL: "token", ValueURI: u.Token}, {URL: "revoke", ValueURI: u.Revoke}, {URL: "introspect", ValueURI: u.Introspect}} {
		if e.ValueURI != "" {
			uris = append(uris, e)
		}
	}
	desc := "SMART App Launch 2.x; see .well-known/smart-configuration"
	if h.auth == AuthNone {
		desc = "authentication is OFF on this server (--auth none); tokens are issued but not required"
	}
	return &capSecurity{
		Extension: []capExtension{{URL: "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris", Extension: uris}},
		Service: []capCodeableConc{{
			Coding: []capCoding{{System: "http://terminology.hl7.org/CodeSystem/restful-security-service", Code: "SMART-on-FHIR"}},
			Text:   "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)",
		}},
		Description: desc,
	}
}
