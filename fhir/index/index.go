// Package index extracts search index values from a resource at write time:
// it evaluates every search parameter of the resource's type (package fhir's
// generated registry, FHIRPath through package fhirpath) and turns the
// results into typed rows, plus the resource's compartment memberships. It
// imports only the standard library and the fhir packages.
package index

import (
	"sync"
	"time"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/fhirpath"
)

// Entries are the index rows of one resource. Every row carries the code of
// the search parameter it belongs to. Rows are unique per parameter.
type Entries struct {
	ResourceType string
	ID           string // "" when the body has no id yet

	Strings      []String
	Tokens       []Token
	References   []Reference
	Dates        []Date
	Numbers      []Number
	Quantities   []Quantity
	URIs         []URI
	Composites   []Composite
	Positions    []Position    // special: Location near
	Compartments []Compartment // sorted by type, then id

	// Narrative and Content are what _text and _content search (see
	// FullText); Extract leaves them empty, a store that implements
	// full-text search fills them.
	Narrative, Content string
}

// String is a row of a string parameter. HumanName and Address give one row
// per part (family, given, line, city, ...).
type String struct {
	Code  string
	Value string // exactly as in the resource, for :exact
	Norm  string // Normalize(Value), for the default starts-with and :contains
}

// Token is a row of a token parameter.
//
//   - Coding: System, Value = code, Text = display.
//   - CodeableConcept: one row per coding as above, plus a row with only Text
//     when CodeableConcept.text is set and differs from every display.
//   - Identifier: System, Value, and the identifier type for :of-type
//     (TypeSystem, TypeCode; one row per type coding) and :text (Text =
//     type.text).
//   - ContactPoint: System = ContactPoint.system ("phone", "email"...), Value.
//   - boolean: Value "true" or "false". code, string, uri, id: Value, no
//     System (implicit code systems of bound codes are not filled in).
type Token struct {
	Code       string
	System     string
	Value      string
	Text       string // for :text
	TextNorm   string // Normalize(Text)
	TypeSystem string // Identifier.type coding, for :of-type
	TypeCode   string
}

// Reference is a row of a reference parameter.
//
//   - "Patient/1" or "Patient/1/_history/2": TargetType, TargetID, Version;
//     URL is empty, which marks a local reference.
//   - an absolute URL: URL, plus TargetType, TargetID and Version when it
//     ends in Type/id or Type/id/_history/v.
//   - urn:uuid:, urn:oid: and other URIs: URL only.
//   - canonical (and uri) elements: URL without "|version", Version.
//   - Reference.identifier: IdentifierSystem and IdentifierValue, for
//     :identifier; Reference.type fills TargetType when the reference has
//     no type of its own.
//
// References to contained resources ("#id") are not indexed.
type Reference struct {
	Code             string
	TargetType       string
	TargetID         string
	Version          string
	URL              string
	IdentifierSystem string
	IdentifierValue  string
}

// Date is a row of a date parameter: the instants the value covers, as the
// half-open range [Low, High) in UTC. "2020" covers the whole year,
// "2020-03-05" the day, "…T10:00:00Z" one second, "…T10:00:00.123Z" one
// millisecond. A zero Low or High is unbounded (an open Period).
//
// Dates and dateTimes without a time zone are taken as UTC: predictable, and
// independent of where the server runs (the server's local zone would be the
// alternative). Period covers start to end. A Timing gives one row from its
// earliest to its latest event, widened by repeat.boundsPeriod; an open side
// of boundsPeriod leaves that side unbounded.
type Date struct {
	Code      string
	Low, High time.Time
}

// Number is a row of a number parameter. Value is the decimal as written;
// Low and High are the range it stands for by its precision (100 is
// [99.5, 100.5), 1.50 is [1.495, 1.505)), or the bounds of a Range, whose
// Value is "". An empty Low or High is unbounded.
type Number struct {
	Code      string
	Value     string
	Low, High string
}

// Quantity is a row of a quantity parameter: Quantity and its profiles (Age,
// Duration, Distance, Count, SimpleQuantity), Money (System
// urn:iso:std:iso:4217, Unit = currency) and Range (Low and High from its
// bounds, Value ""). Low and High are as for Number; a comparator (<, <=,
// >, >=) opens the range on one side. Units are not converted.
type Quantity struct {
	Code       string
	Value      string
	Low, High  string
	Comparator string
	System     string // Quantity.system
	Unit       string // Quantity.code (the coded unit)
	UnitText   string // Quantity.unit (human-readable)
}

// URI is a row of a uri parameter; the value as written.
type URI struct {
	Code  string
	Value string
}

// Position is a row of the special parameter Location near: decimal
// degrees as written.
type Position struct {
	Code                string
	Latitude, Longitude string
}

// Composite is a row of a composite parameter: one tuple of component
// values taken from the same element (for Observation code-value-quantity,
// the code and the value of the same Observation or component). Every
// combination of the components' values gives one row.
type Composite struct {
	Code  string
	Parts []Part
}

// Part is one component value of a Composite; exactly one pointer, the one
// matching Type, is set, and its Code is the component's code.
type Part struct {
	Type      fhir.SearchParamType
	String    *String
	Token     *Token
	Reference *Reference
	Date      *Date
	Number    *Number
	Quantity  *Quantity
	URI       *URI
}

// Compartment says that the resource belongs to the compartment of the
// resource Type/ID (Patient/123): through a local reference ("Patient/123",
// not an absolute URL) in one of the parameters fhir.CompartmentParams
// lists, or because it is that resource ({def}; a Patient is always in its
// own Patient compartment). Unlike the other rows it carries no parameter
// code: membership is what access rules and compartment searches need.
type Compartment struct {
	Type string
	ID   string
}

// Extractor extracts index entries. It holds, per resource type, the search
// parameters to evaluate and the compartment rules, prepared once. It is
// immutable and safe for concurrent use.
type Extractor struct {
	model fhirpath.Model
	plans map[string]*plan
}

type plan struct {
	params       []*fhir.SearchParam
	compartments []compartmentRule
}

type compartmentRule struct {
	compartment string
	params      []string // reference parameter codes; {def} handled as self
}

// NewExtractor prepares an Extractor for every resource type with the
// registry's search parameters plus extra ones (from NewSearchParam; an
// extra parameter replaces a registry one with the same base and code).
func NewExtractor(extra ...*fhir.SearchParam) *Extractor {
	x := &Extractor{model: fhir.TypeModel(), plans: map[string]*plan{}}
	for _, t := range fhir.ResourceTypes() {
		p := &plan{}
		byCode := map[string]int{}
		for _, sp := range fhir.SearchParams(t) {
			byCode[sp.Code] = len(p.params)
			p.params = append(p.params, sp)
		}
		for _, sp := range extra {
			if sp.Base != t && sp.Base != "Resource" && !(sp.Base == "DomainResource" && isDomainResource(x.model, t)) {
				continue
			}
			if i, ok := byCode[sp.Code]; ok {
				p.params[i] = sp
			} else {
				byCode[sp.Code] = len(p.params)
				p.params = append(p.params, sp)
			}
		}
		for _, c := range fhir.CompartmentTypes() {
			params := fhir.CompartmentParams(c, t)
			if len(params) > 0 || c == t {
				p.compartments = append(p.compartments, compartmentRule{compartment: c, params: params})
			}
		}
		x.plans[t] = p
	}
	return x
}

func isDomainResource(m fhirpath.Model, t string) bool {
	for ; t != ""; t = m.BaseType(t) {
		if t == "DomainResource" {
			return true
		}
	}
	return false
}

var defaultExtractor = sync.OnceValue(func() *Extractor { return NewExtractor() })

// Extract extracts the index entries of a resource with the registry's
// search parameters. See Extractor.Extract.
func Extract(resourceType string, body []byte) (*Entries, error) {
	return defaultExtractor().Extract(resourceType, body)
}
