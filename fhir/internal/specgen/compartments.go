package specgen

import (
	"fmt"
	"path/filepath"
	"sort"

	"github.com/fhirserver/fhirserver/internal/fhirspec"
)

type compartmentDefinition struct {
	ResourceType string `json:"resourceType"`
	URL          string `json:"url"`
	Code         string `json:"code"`
	Resource     []struct {
		Code  string   `json:"code"`
		Param []string `json:"param"`
	} `json:"resource"`
}

type compartmentRow struct {
	compartment, resourceType string
	params                    []string
}

func readCompartments(specDir string, m *model, params []param) ([]compartmentRow, error) {
	files, err := filepath.Glob(filepath.Join(specDir, "compartmentdefinition-*.json"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no compartmentdefinition-*.json files", specDir)
	}
	known := map[string]bool{}
	for _, p := range params {
		known[p.base+"."+p.code] = true
	}
	hasParam := func(resourceType, code string) bool {
		if known[resourceType+"."+code] || known["Resource."+code] {
			return true
		}
		return known["DomainResource."+code] && m.derives(resourceType, "DomainResource")
	}
	var rows []compartmentRow
	seen := map[string]bool{}
	for _, f := range files {
		var cd compartmentDefinition
		if err := fhirspec.ReadJSON(f, &cd); err != nil {
			return nil, err
		}
		if cd.ResourceType != "CompartmentDefinition" {
			return nil, fmt.Errorf("%s: not a CompartmentDefinition", f)
		}
		if !m.isResourceType(cd.Code) {
			return nil, fmt.Errorf("%s: compartment %q is not a resource type", f, cd.Code)
		}
		if seen[cd.Code] {
			return nil, fmt.Errorf("%s: compartment %s defined twice", f, cd.Code)
		}
		seen[cd.Code] = true
		types := map[string]bool{}
		for _, r := range cd.Resource {
			if !m.isResourceType(r.Code) {
				return nil, fmt.Errorf("%s: %q is not a resource type", f, r.Code)
			}
			if types[r.Code] {
				return nil, fmt.Errorf("%s: %s listed twice", f, r.Code)
			}
			types[r.Code] = true
			if len(r.Param) == 0 {
				continue // listed, but not a member
			}
			for _, p := range r.Param {
				if p != "{def}" && !hasParam(r.Code, p) {
					return nil, fmt.Errorf("%s: %s param %q is not a search parameter of %s", f, r.Code, p, r.Code)
				}
				if p == "{def}" && r.Code != cd.Code {
					return nil, fmt.Errorf("%s: {def} on %s, which is not the compartment type", f, r.Code)
				}
			}
			rows = append(rows, compartmentRow{compartment: cd.Code, resourceType: r.Code, params: r.Param})
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].compartment != rows[j].compartment {
			return rows[i].compartment < rows[j].compartment
		}
		return rows[i].resourceType < rows[j].resourceType
	})
	return rows, nil
}

func writeCompartments(rows []compartmentRow) string {
	var w writer
	w.f("%s", header)
	w.f("// compartmentTable lists, for each compartment (CompartmentDefinition.code)\n")
	w.f("// and each member resource type, the search parameters that link a resource\n")
	w.f("// to the compartment, as given; {def} is the compartment's own resource.\n")
	w.f("// Sorted by compartment and resource type. Types without params are not members.\n")
	w.f("func compartmentTable() []compartmentRow {\n\treturn []compartmentRow{\n")
	for _, r := range rows {
		w.f("\t{%q, %q, %s},\n", r.compartment, r.resourceType, quoteList(r.params))
	}
	w.f("\t}\n}\n")
	return w.String()
}
