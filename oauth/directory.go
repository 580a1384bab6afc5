package oauth

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"

	"github.com/fhirserver/fhirserver/fhir/search"
	"github.com/fhirserver/fhirserver/store"
)

// SearchDirectory is a PatientDirectory on FHIR search: the picker finds
// patients by name (the name search parameter) among all patients of the
// tenant.
func SearchDirectory(s store.Searcher) PatientDirectory { return searchDirectory{s} }

type searchDirectory struct{ s store.Searcher }

func (d searchDirectory) SearchPatients(ctx context.Context, tenant, text string, limit int) ([]PatientChoice, error) {
	params := url.Values{"_count": {strconv.Itoa(limit)}}
	if text = strings.TrimSpace(text); text != "" {
		params.Set("name", text)
	}
	q, err := search.Parse(params, search.Options{Types: []string{"Patient"}, MaxCount: limit})
	if err != nil {
		return nil, err
	}
	page, err := d.s.Search(ctx, tenant, q)
	if err != nil {
		return nil, err
	}
	out := make([]PatientChoice, 0, len(page.Matches))
	for _, r := range page.Matches {
		out = append(out, PatientChoice{ID: r.ID, Label: patientLabel(r.ID, r.Body)})
	}
	return out, nil
}

// patientLabel is "Given Family (born YYYY-MM-DD)", or the id.
func patientLabel(id string, body []byte) string {
	var p struct {
		Name []struct {
			Text   string   `json:"text"`
			Given  []string `json:"given"`
			Family string   `json:"family"`
		} `json:"name"`
		BirthDate string `json:"birthDate"`
	}
	if json.Unmarshal(body, &p) != nil || len(p.Name) == 0 {
		return "Patient/" + id
	}
	n := p.Name[0]
	label := n.Text
	if label == "" {
		label = strings.TrimSpace(strings.Join(append(n.Given, n.Family), " "))
	}
	if label == "" {
		label = "Patient/" + id
	}
	if p.BirthDate != "" {
		label += " (born " + p.BirthDate + ")"
	}
	return label
}
