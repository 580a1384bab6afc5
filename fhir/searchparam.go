package fhir

import (
	"fmt"
	"sort"
	"sync"

	"github.com/fhirserver/fhirserver/fhir/fhirpath"
)

// SearchParamType is the type of a search parameter, as in SearchParameter.type.
type SearchParamType string

const (
	SearchParamNumber    SearchParamType = "number"
	SearchParamDate      SearchParamType = "date"
	SearchParamString    SearchParamType = "string"
	SearchParamToken     SearchParamType = "token"
	SearchParamReference SearchParamType = "reference"
	SearchParamComposite SearchParamType = "composite"
	SearchParamQuantity  SearchParamType = "quantity"
	SearchParamURI       SearchParamType = "uri"
	SearchParamSpecial   SearchParamType = "special"
)

// SearchParam is a search parameter for one base resource type. A
// SearchParameter with several bases (clinical-patient has 32) becomes one
// SearchParam per base, each with the expression restricted to that base.
//
// The registry's SearchParams are shared: callers must not modify them or
// the slices they hold.
type SearchParam struct {
	ID   string // SearchParameter.id, e.g. "clinical-patient"
	URL  string // canonical URL (SearchParameter.url)
	Code string // the name used in a search, e.g. "patient"
	// Base is the resource type the entry is for; "Resource" and
	// "DomainResource" mark the generic parameters (_id, _lastUpdated, _text...)
	// that apply to every resource (every DomainResource).
	Base string
	Type SearchParamType
	// Expression is the FHIRPath that selects the indexed values, restricted
	// to the union parts for Base. It is "" for _text, _content and _query,
	// which the specification defines without an expression.
	Expression string
	// XPathUsage is "normal", "phonetic" (name sounds-like) or "nearby"
	// (Location near).
	XPathUsage  string
	Targets     []string // resource types a reference parameter may point to
	Components  []SearchParamComponent
	Comparators []string // eq, ne, gt, lt, ge, le, sa, eb, ap where given
	Modifiers   []string // as given (none in R4 core)
	// MultipleOr and MultipleAnd are as given; an absent value counts as
	// true (only composites say multipleOr false in R4 core).
	MultipleOr  bool
	MultipleAnd bool

	expr *fhirpath.Expression
}

// SearchParamComponent is one part of a composite search parameter.
type SearchParamComponent struct {
	Definition string          // URL of the component's SearchParameter
	Code       string          // that parameter's code, e.g. "code"
	Type       SearchParamType // that parameter's type
	// Expression is FHIRPath relative to each item the composite's own
	// expression selects, e.g. "value.as(Quantity)".
	Expression string

	expr *fhirpath.Expression
}

// Compiled returns the compiled Expression, or nil when there is none.
// It is compiled once, when the SearchParam is built.
func (p *SearchParam) Compiled() *fhirpath.Expression { return p.expr }

// Compiled returns the compiled component Expression.
func (c *SearchParamComponent) Compiled() *fhirpath.Expression { return c.expr }

// NewSearchParam validates def and returns a copy with its expressions
// compiled, for search parameters defined outside the generated registry.
func NewSearchParam(def SearchParam) (*SearchParam, error) {
	p := def
	if p.Code == "" || p.Base == "" {
		return nil, Errorf(KindInvalid, "search parameter %q needs a code and a base", p.ID)
	}
	switch p.Type {
	case SearchParamNumber, SearchParamDate, SearchParamString, SearchParamToken, SearchParamReference,
		SearchParamComposite, SearchParamQuantity, SearchParamURI, SearchParamSpecial:
	default:
		return nil, Errorf(KindInvalid, "search parameter %s: unknown type %q", p.Code, p.Type)
	}
	if (p.Type == SearchParamComposite) != (len(p.Components) > 0) {
		return nil, Errorf(KindInvalid, "search parameter %s: a %s parameter with %d components", p.Code, p.Type, len(p.Components))
	}
	p.Targets = append([]string(nil), def.Targets...)
	p.Comparators = append([]string(nil), def.Comparators...)
	p.Modifiers = append([]string(nil), def.Modifiers...)
	p.Components = append([]SearchParamComponent(nil), def.Components...)
	if err := p.compile(); err != nil {
		return nil, err
	}
	return &p, nil
}

// compile compiles the expressions of p in place.
func (p *SearchParam) compile() error {
	p.expr = nil
	if p.Expression != "" {
		e, err := fhirpath.Compile(p.Expression)
		if err != nil {
			return Errorf(KindInvalid, "search parameter %s: %v", p.Code, err)
		}
		p.expr = e
	}
	for i := range p.Components {
		c := &p.Components[i]
		e, err := fhirpath.Compile(c.Expression)
		if err != nil {
			return Errorf(KindInvalid, "search parameter %s component %s: %v", p.Code, c.Code, err)
		}
		c.expr = e
	}
	return nil
}

// registry is built once at package initialisation from the generated
// tables and never changes afterwards.
type registry struct {
	params           []*SearchParam // every entry, by base then code
	resourceTypeList []string
	byBase           map[string]map[string]*SearchParam // base -> code -> entry, own entries only
	byType           map[string][]*SearchParam          // resource type -> all applicable entries, by code
	resourceTypes    map[string]bool
	base             map[string]string                      // type -> base type
	elements         map[string]map[string]fhirpath.Element // type -> element name -> element, inherited ones included
	compartments     map[string]map[string][]string         // compartment -> resource type -> params
	members          map[string][]string                    // compartment -> member types, sorted
}

// registryOnce builds the registry on first use, so that programs that never
// look at search parameters do not pay for it (a few milliseconds).
var registryOnce = sync.OnceValue(newRegistry)

func newRegistry() *registry {
	r := &registry{
		resourceTypeList: resourceTypeList(),
		byBase:           map[string]map[string]*SearchParam{},
		byType:           map[string][]*SearchParam{},
		resourceTypes:    map[string]bool{},
		base:             map[string]string{},
		elements:         map[string]map[string]fhirpath.Element{},
		compartments:     map[string]map[string][]string{},
		members:          map[string][]string{},
	}
	for _, t := range r.resourceTypeList {
		r.resourceTypes[t] = true
	}
	for _, b := range baseTypeTable() {
		r.base[b[0]] = b[1]
	}
	for _, row := range elementTable() {
		els := r.elements[row.typ]
		if els == nil {
			els = map[string]fhirpath.Element{}
			r.elements[row.typ] = els
		}
		el := fhirpath.Element{Types: row.types, Keys: make([]string, len(row.types))}
		for i, t := range row.types {
			el.Keys[i] = row.name
			if row.choice {
				el.Keys[i] = row.name + string(upper(t[0])) + t[1:]
			}
		}
		els[row.name] = el
	}
	// Flatten inheritance, so that a lookup is one map access: every type
	// also lists the elements of its base types (id, extension, meta...).
	flat := make(map[string]map[string]fhirpath.Element, len(r.base))
	for t := range r.base {
		els := map[string]fhirpath.Element{}
		for b := t; b != ""; b = r.base[b] {
			for name, el := range r.elements[b] {
				if _, ok := els[name]; !ok {
					els[name] = el
				}
			}
		}
		flat[t] = els
	}
	r.elements = flat

	// The generated table is private to this package; its entries are
	// compiled in place, once, and handed out as read-only pointers.
	table := searchParamTable()
	r.params = make([]*SearchParam, len(table))
	for i := range table {
		p := &table[i]
		if err := p.compile(); err != nil {
			panic(fmt.Sprintf("generated search parameter %s/%s: %v", p.Base, p.Code, err))
		}
		r.params[i] = p
		if r.byBase[p.Base] == nil {
			r.byBase[p.Base] = map[string]*SearchParam{}
		}
		r.byBase[p.Base][p.Code] = p
	}
	for _, t := range r.resourceTypeList {
		var list []*SearchParam
		for _, b := range r.applicableBases(t) {
			for _, p := range r.byBase[b] {
				list = append(list, p)
			}
		}
		sort.Slice(list, func(i, j int) bool { return list[i].Code < list[j].Code })
		r.byType[t] = list
	}

	for _, row := range compartmentTable() {
		if r.compartments[row.compartment] == nil {
			r.compartments[row.compartment] = map[string][]string{}
		}
		r.compartments[row.compartment][row.resourceType] = row.params
		r.members[row.compartment] = append(r.members[row.compartment], row.resourceType)
	}
	return r
}

func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

// applicableBases lists the bases whose parameters apply to resourceType:
// the type itself, DomainResource when it derives from it, and Resource.
func (r *registry) applicableBases(resourceType string) []string {
	bases := []string{resourceType}
	for t := r.base[resourceType]; t != ""; t = r.base[t] {
		bases = append(bases, t)
	}
	return bases
}

// LookupSearchParam returns the search parameter code of resourceType,
// falling back to the generic Resource and DomainResource parameters (_id,
// _lastUpdated, _tag, _profile, _security, _source, _text...).
func LookupSearchParam(resourceType, code string) (*SearchParam, bool) {
	reg := registryOnce()
	if !reg.resourceTypes[resourceType] && resourceType != "Resource" && resourceType != "DomainResource" {
		return nil, false
	}
	for _, b := range reg.applicableBases(resourceType) {
		if p, ok := reg.byBase[b][code]; ok {
			return p, true
		}
	}
	return nil, false
}

// SearchParams returns every search parameter that applies to resourceType,
// the generic ones included, sorted by code. It returns nil for a name that
// is not a resource type; for "Resource" or "DomainResource" it returns the
// generic parameters.
func SearchParams(resourceType string) []*SearchParam {
	reg := registryOnce()
	if list, ok := reg.byType[resourceType]; ok {
		return append([]*SearchParam(nil), list...)
	}
	if resourceType != "Resource" && resourceType != "DomainResource" {
		return nil
	}
	var list []*SearchParam
	for _, b := range reg.applicableBases(resourceType) {
		for _, p := range reg.byBase[b] {
			list = append(list, p)
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Code < list[j].Code })
	return list
}

// AllSearchParams returns every registry entry, sorted by base and code.
func AllSearchParams() []*SearchParam {
	reg := registryOnce()
	return append([]*SearchParam(nil), reg.params...)
}

// ResourceTypes returns the 146 concrete FHIR R4 resource types, sorted.
func ResourceTypes() []string {
	return append([]string(nil), registryOnce().resourceTypeList...)
}

// IsResourceType reports whether name is a concrete FHIR R4 resource type.
func IsResourceType(name string) bool { return registryOnce().resourceTypes[name] }

// TypeModel returns the FHIR R4 type model for FHIRPath evaluation: the
// elements of every resource, data type and backbone element, and the type
// hierarchy, generated from the StructureDefinitions.
func TypeModel() fhirpath.Model { return typeModel{registryOnce()} }

type typeModel struct{ reg *registry }

func (m typeModel) Element(typeName, name string) (fhirpath.Element, bool) {
	el, ok := m.reg.elements[typeName][name]
	return el, ok
}

func (m typeModel) BaseType(typeName string) string { return m.reg.base[typeName] }

// elementRow is one row of the generated elementTable.
type elementRow struct {
	typ    string
	name   string
	choice bool
	types  []string
}
