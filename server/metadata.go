package server

import (
	"encoding/json"
	"net/http"
	"sort"

	"github.com/fhirserver/fhirserver/fhir"
)

// The CapabilityStatement types hold only what this server states; each
// statement must stay true of the handlers registered in fhirRoutes.
type capabilityStatement struct {
	ResourceType   string            `json:"resourceType"`
	Status         string            `json:"status"`
	Date           string            `json:"date"`
	Kind           string            `json:"kind"`
	Software       capSoftware       `json:"software"`
	Implementation capImplementation `json:"implementation"`
	FHIRVersion    string            `json:"fhirVersion"`
	Format         []string          `json:"format"`
	PatchFormat    []string          `json:"patchFormat"`
	Rest           []capRest         `json:"rest"`
}

type capSoftware struct {
	Name string `json:"name"`
}

type capImplementation struct {
	Description string `json:"description"`
	URL         string `json:"url"`
}

type capRest struct {
	Mode        string           `json:"mode"`
	Resource    []capResource    `json:"resource"`
	Interaction []capInteraction `json:"interaction"`
	// SearchParam lists the parameters of a system-level search: those
	// every resource type has.
	SearchParam []capSearchParam `json:"searchParam,omitempty"`
	Security    *capSecurity     `json:"security,omitempty"`
}

type capSearchParam struct {
	Name       string `json:"name"`
	Definition string `json:"definition,omitempty"`
	Type       string `json:"type"`
}

type capInteraction struct {
	Code string `json:"code"`
}

type capResource struct {
	Type              string           `json:"type"`
	Interaction       []capInteraction `json:"interaction"`
	Versioning        string           `json:"versioning"`
	ReadHistory       bool             `json:"readHistory"`
	UpdateCreate      bool             `json:"updateCreate"`
	ConditionalCreate bool             `json:"conditionalCreate"`
	ConditionalRead   string           `json:"conditionalRead"`
	ConditionalUpdate bool             `json:"conditionalUpdate"`
	ConditionalDelete string           `json:"conditionalDelete"`
	SearchInclude     []string         `json:"searchInclude,omitempty"`
	SearchRevInclude  []string         `json:"searchRevInclude,omitempty"`
	SearchParam       []capSearchParam `json:"searchParam,omitempty"`
	Operation         []capOperation   `json:"operation,omitempty"`
}

type capOperation struct {
	Name       string `json:"name"`
	Definition string `json:"definition"`
}

// operationsOf are the operations served on a resource type (everything.go).
func operationsOf(typ string) []capOperation {
	if typ == "Patient" {
		return []capOperation{{Name: "everything", Definition: "http://hl7.org/fhir/OperationDefinition/Patient-everything"}}
	}
	return nil
}

// capability builds the CapabilityStatement for a tenant's base URL.
func (h *Handler) capability(base string) []byte {
	interactions := []capInteraction{
		{"read"}, {"vread"}, {"update"}, {"patch"}, {"delete"},
		{"history-instance"}, {"history-type"}, {"create"}, {"search-type"},
	}
	// Conditional delete of several matches only when configured so.
	conditionalDelete := "single"
	if h.deleteMode == ConditionalDeleteMultiple {
		conditionalDelete = "multiple"
	}
	revIncludes := revIncludesByTarget()
	resources := make([]capResource, 0, len(h.typeList))
	for _, t := range h.typeList {
		params := searchParamsOf(t, h.fullText())
		includes := []string{"*"}
		for _, p := range params {
			if p.Type == string(fhir.SearchParamReference) {
				includes = append(includes, t+":"+p.Name)
			}
		}
		resources = append(resources, capResource{
			Type:        t,
			Interaction: interactions,
			// versionId is kept and If-Match makes updates and deletes
			// version-aware, which is what versioned-update states.
			Versioning:   "versioned-update",
			ReadHistory:  true,
			UpdateCreate: true,
			// If-None-Exist, PUT and DELETE Type?criteria (conditional.go);
			// PATCH Type?criteria too, which R4 has no element for.
			ConditionalCreate: true,
			ConditionalRead:   "not-supported",
			ConditionalUpdate: true,
			ConditionalDelete: conditionalDelete,
			SearchInclude:     includes,
			SearchRevInclude:  revIncludes[t],
			SearchParam:       params,
			Operation:         operationsOf(t),
		})
	}
	cs := capabilityStatement{
		ResourceType: "CapabilityStatement",
		Status:       "active",
		// The statement describes this running server, so it dates from
		// when the server was set up.
		Date:           fhir.FormatInstant(h.started),
		Kind:           "instance",
		Software:       capSoftware{Name: "fhirserver"},
		Implementation: capImplementation{Description: "FHIR R4 server", URL: base},
		FHIRVersion:    "4.0.1",
		Format:         []string{"json", "application/fhir+json", "application/json"},
		// JSON Patch, and FHIRPath Patch as a Parameters resource.
		PatchFormat: []string{"application/json-patch+json", "application/fhir+json"},
		Rest: []capRest{{
			Mode:        "server",
			Resource:    resources,
			Interaction: []capInteraction{{"transaction"}, {"batch"}, {"history-system"}, {"search-system"}},
			SearchParam: searchParamsOf("Resource", h.fullText()),
			Security:    h.security(),
		}},
	}
	b, err := json.Marshal(cs)
	if err != nil {
		// Only fixed types and strings go in; this cannot happen.
		panic(err)
	}
	return b
}

// metadata: GET B/fhir/metadata, public so that clients can discover the
// server before they authenticate.
func (h *Handler) metadata(w http.ResponseWriter, r *http.Request) {
	t := h.tenantFrom(r.Context())
	// The statement is large (~700 KB) and changes only with the base URL,
	// so each base's is built once.
	b, ok := h.capabilities.Load(t.base)
	if !ok {
		b, _ = h.capabilities.LoadOrStore(t.base, h.capability(t.base))
	}
	h.writeBody(w, r, formatFrom(r.Context()), http.StatusOK, b.([]byte))
}

// searchParamsOf lists the search parameters of a resource type (of every
// resource for "Resource"), from the generated registry. Left out are those
// the specification defines without an expression (_query; _text and
// _content unless the store searches full text), and special ones other
// than Location near.
func searchParamsOf(typ string, fullText bool) []capSearchParam {
	var out []capSearchParam
	for _, p := range fhir.SearchParams(typ) {
		if fullText && (p.Code == "_text" || p.Code == "_content") {
			out = append(out, capSearchParam{Name: p.Code, Definition: p.URL, Type: string(p.Type)})
			continue
		}
		if p.Expression == "" || p.Type == fhir.SearchParamSpecial && p.XPathUsage != "nearby" {
			continue
		}
		out = append(out, capSearchParam{Name: p.Code, Definition: p.URL, Type: string(p.Type)})
	}
	return out
}

// revIncludesByTarget maps each resource type to the _revinclude values
// that can reach it: Source:param for every reference parameter of Source
// that may point to the type.
func revIncludesByTarget() map[string][]string {
	out := map[string][]string{}
	for _, p := range fhir.AllSearchParams() {
		if p.Type != fhir.SearchParamReference || !fhir.IsResourceType(p.Base) {
			continue
		}
		for _, t := range p.Targets {
			out[t] = append(out[t], p.Base+":"+p.Code)
		}
	}
	for _, list := range out {
		sort.Strings(list)
	}
	return out
}
