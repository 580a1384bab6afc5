package specgen

import (
	"fmt"
	"sort"
	"strings"

	"github.com/fhirserver/fhirserver/fhir/fhirpath"
	"github.com/fhirserver/fhirserver/internal/fhirspec"
)

type searchParameter struct {
	ResourceType string   `json:"resourceType"`
	ID           string   `json:"id"`
	URL          string   `json:"url"`
	Code         string   `json:"code"`
	Base         []string `json:"base"`
	Type         string   `json:"type"`
	Expression   string   `json:"expression"`
	XPathUsage   string   `json:"xpathUsage"`
	Target       []string `json:"target"`
	MultipleOr   *bool    `json:"multipleOr"`
	MultipleAnd  *bool    `json:"multipleAnd"`
	Comparator   []string `json:"comparator"`
	Modifier     []string `json:"modifier"`
	Chain        []string `json:"chain"`
	Component    []struct {
		Definition string `json:"definition"`
		Expression string `json:"expression"`
	} `json:"component"`
}

// param is one generated registry entry: a search parameter for one base.
type param struct {
	id, url, code, base, typ, expression, xpathUsage string
	targets, comparators, modifiers                  []string
	multipleOr, multipleAnd                          bool
	components                                       []component
}

type component struct {
	definition, code, typ, expression string
}

// isGeneric reports the abstract bases whose parameters apply to every
// resource (DomainResource: every resource but Binary, Bundle, Parameters).
func isGeneric(base string) bool { return base == "Resource" || base == "DomainResource" }

func readSearchParams(path string, m *model) ([]param, error) {
	all, err := fhirspec.ReadBundle[searchParameter](path, "SearchParameter")
	if err != nil {
		return nil, err
	}
	byURL := map[string]*searchParameter{}
	var sps []*searchParameter
	for i := range all {
		sp := &all[i]
		if byURL[sp.URL] != nil {
			return nil, fmt.Errorf("SearchParameter %s: url %s used twice", sp.ID, sp.URL)
		}
		byURL[sp.URL] = sp
		sps = append(sps, sp)
	}
	seen := map[string]string{}
	var out []param
	for _, sp := range sps {
		ps, err := expand(sp, m, byURL)
		if err != nil {
			return nil, fmt.Errorf("SearchParameter %s: %v", sp.ID, err)
		}
		for _, p := range ps {
			key := p.base + "." + p.code
			if other, dup := seen[key]; dup {
				return nil, fmt.Errorf("SearchParameter %s: %s/%s is also defined by %s", sp.ID, p.base, p.code, other)
			}
			seen[key] = sp.ID
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].base != out[j].base {
			return out[i].base < out[j].base
		}
		return out[i].code < out[j].code
	})
	return out, nil
}

// expand maps one SearchParameter to one entry per base, each with the
// expression restricted to the union parts that apply to that base.
func expand(sp *searchParameter, m *model, byURL map[string]*searchParameter) ([]param, error) {
	if sp.Code == "" || len(sp.Base) == 0 || sp.URL == "" {
		return nil, fmt.Errorf("missing code, base or url")
	}
	if typeConst(sp.Type) == "" {
		return nil, fmt.Errorf("unknown type %q", sp.Type)
	}
	if len(sp.Chain) > 0 {
		return nil, fmt.Errorf("chain is not supported")
	}
	switch sp.XPathUsage {
	case "normal", "phonetic", "nearby":
	default:
		return nil, fmt.Errorf("unknown xpathUsage %q", sp.XPathUsage)
	}
	for _, t := range sp.Target {
		if !m.isResourceType(t) {
			return nil, fmt.Errorf("target %q is not a resource type", t)
		}
	}
	if (sp.Type == "composite") != (len(sp.Component) > 0) {
		return nil, fmt.Errorf("a %s parameter with %d components", sp.Type, len(sp.Component))
	}
	if len(sp.Target) > 0 && sp.Type != "reference" {
		return nil, fmt.Errorf("a %s parameter with targets", sp.Type)
	}
	var comps []component
	for _, c := range sp.Component {
		def := byURL[c.Definition]
		if def == nil {
			return nil, fmt.Errorf("component %s is not a known SearchParameter", c.Definition)
		}
		if def.Type == "composite" {
			return nil, fmt.Errorf("component %s is itself composite", c.Definition)
		}
		if _, err := fhirpath.Compile(c.Expression); err != nil {
			return nil, fmt.Errorf("component %s: %v", c.Definition, err)
		}
		comps = append(comps, component{definition: c.Definition, code: def.Code, typ: def.Type, expression: c.Expression})
	}
	parts, err := splitUnion(sp.Expression)
	if err != nil {
		return nil, err
	}
	bases := map[string]bool{}
	for _, b := range sp.Base {
		if !m.isResourceType(b) && !isGeneric(b) {
			return nil, fmt.Errorf("base %q is not a resource type", b)
		}
		if bases[b] {
			return nil, fmt.Errorf("base %q listed twice", b)
		}
		bases[b] = true
	}
	// Each union part starts with the type it applies to, or with an element
	// name (relative to the resource) when there is only one base.
	leads := make([]string, len(parts))
	for i, part := range parts {
		lead := leadingName(part)
		switch {
		case lead == "":
			return nil, fmt.Errorf("cannot tell which resource %q applies to", part)
		case lead[0] >= 'A' && lead[0] <= 'Z':
			if !bases[lead] {
				return nil, fmt.Errorf("expression part %q is for %s, which is not a base", part, lead)
			}
		case len(sp.Base) > 1:
			return nil, fmt.Errorf("relative expression part %q in a parameter with several bases", part)
		}
		leads[i] = lead
	}
	var out []param
	for _, b := range sp.Base {
		if isGeneric(b) && len(sp.Base) > 1 {
			return nil, fmt.Errorf("generic base %s mixed with others", b)
		}
		expr := sp.Expression
		if len(sp.Base) > 1 {
			var keep []string
			for i, part := range parts {
				if leads[i] == b {
					keep = append(keep, part)
				}
			}
			if len(keep) == 0 {
				return nil, fmt.Errorf("no expression part for base %s", b)
			}
			if len(keep) < len(parts) {
				expr = strings.Join(keep, " | ")
			}
		}
		if expr == "" && !isGeneric(b) {
			return nil, fmt.Errorf("no expression")
		}
		if expr != "" {
			if _, err := fhirpath.Compile(expr); err != nil {
				return nil, err
			}
		}
		out = append(out, param{
			id: sp.ID, url: sp.URL, code: sp.Code, base: b, typ: sp.Type,
			expression: expr, xpathUsage: sp.XPathUsage,
			targets: sp.Target, comparators: sp.Comparator, modifiers: sp.Modifier,
			multipleOr:  sp.MultipleOr == nil || *sp.MultipleOr,
			multipleAnd: sp.MultipleAnd == nil || *sp.MultipleAnd,
			components:  comps,
		})
	}
	return out, nil
}

// splitUnion splits an expression at its top-level | operators (outside
// parentheses, brackets and string literals) and trims the parts.
func splitUnion(expr string) ([]string, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, nil
	}
	var parts []string
	depth, start := 0, 0
	for i := 0; i < len(expr); i++ {
		switch c := expr[i]; c {
		case '\'', '`':
			j := i + 1
			for j < len(expr) && expr[j] != c {
				if expr[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(expr) {
				return nil, fmt.Errorf("unterminated literal in %q", expr)
			}
			i = j
		case '(', '[':
			depth++
		case ')', ']':
			depth--
			if depth < 0 {
				return nil, fmt.Errorf("unbalanced parentheses in %q", expr)
			}
		case '|':
			if depth == 0 {
				parts = append(parts, strings.TrimSpace(expr[start:i]))
				start = i + 1
			}
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("unbalanced parentheses in %q", expr)
	}
	return append(parts, strings.TrimSpace(expr[start:])), nil
}

// leadingName returns the first name of an expression part, skipping
// opening parentheses: "(Observation.value as Quantity)" gives Observation.
func leadingName(part string) string {
	s := strings.TrimLeft(part, "( \t\n")
	i := 0
	for i < len(s) && (s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z' || s[i] >= '0' && s[i] <= '9' || s[i] == '_') {
		i++
	}
	if i == 0 || s[0] >= '0' && s[0] <= '9' {
		return ""
	}
	return s[:i]
}

// typeConst names the Go constant of a search parameter type, "" for an
// unknown type.
func typeConst(typ string) string {
	switch typ {
	case "number", "date", "string", "token", "reference", "composite", "quantity", "special":
		return "SearchParam" + strings.ToUpper(typ[:1]) + typ[1:]
	case "uri":
		return "SearchParamURI"
	}
	return ""
}

func writeSearchParams(params []param) string {
	var w writer
	w.f("%s", header)
	ids := map[string]bool{}
	for _, p := range params {
		ids[p.id] = true
	}
	w.f("// searchParamTable holds the %d SearchParameters of search-parameters.json as\n", len(ids))
	w.f("// %d entries, one per (base, code), sorted by base and code. Expressions\n", len(params))
	w.f("// are restricted to the union parts for the entry's base.\n")
	w.f("func searchParamTable() []SearchParam {\n\treturn []SearchParam{\n")
	for _, p := range params {
		w.f("\t{\n")
		w.f("\t\tID: %q,\n\t\tURL: %q,\n\t\tCode: %q,\n\t\tBase: %q,\n\t\tType: %s,\n", p.id, p.url, p.code, p.base, typeConst(p.typ))
		if p.expression != "" {
			w.f("\t\tExpression: %q,\n", p.expression)
		}
		w.f("\t\tXPathUsage: %q,\n", p.xpathUsage)
		if len(p.targets) > 0 {
			w.f("\t\tTargets: %s,\n", quoteList(p.targets))
		}
		if len(p.components) > 0 {
			w.f("\t\tComponents: []SearchParamComponent{\n")
			for _, c := range p.components {
				w.f("\t\t\t{Definition: %q, Code: %q, Type: %s, Expression: %q},\n", c.definition, c.code, typeConst(c.typ), c.expression)
			}
			w.f("\t\t},\n")
		}
		if len(p.comparators) > 0 {
			w.f("\t\tComparators: %s,\n", quoteList(p.comparators))
		}
		if len(p.modifiers) > 0 {
			w.f("\t\tModifiers: %s,\n", quoteList(p.modifiers))
		}
		w.f("\t\tMultipleOr: %v,\n\t\tMultipleAnd: %v,\n", p.multipleOr, p.multipleAnd)
		w.f("\t},\n")
	}
	w.f("\t}\n}\n")
	return w.String()
}
