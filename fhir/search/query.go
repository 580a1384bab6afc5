// Package search is the model of a parsed FHIR search: what the server
// parses from a request (package search's Parse) and what a store compiles
// into SQL. It holds no SQL and imports only the standard library, fhir,
// fhir/index (Normalize, so that parsed strings compare with index rows)
// and fhir/terminology (code hierarchies for :below and :above; the value
// sets of :in and :not-in are expanded by the store).
package search

import (
	"time"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/terminology"
)

// Query is one search: type level (one Type), system level (Types from
// _type, or none for all types) or compartment level (Compartment set).
type Query struct {
	Types       []string
	Compartment *Compartment
	// Clauses are ANDed; each clause ORs its values.
	Clauses []Clause
	Sort    []SortKey
	Count   int // page size; 0 = the server default
	// Cursor continues a previous page; it is opaque, made by the store
	// (store.SearchPage.Next), so that pages stay stable under writes.
	Cursor  string
	Total   TotalMode // _total
	Summary Summary   // _summary
	// Elements lists _elements (top-level element names); empty = all.
	Elements    []string
	Includes    []Include
	RevIncludes []Include
	// IncludeTypes, when set, narrows what Includes add to these types. No
	// parameter sets it: Patient $everything includes only referenced
	// types that it does not match, so that a match of a later page is not
	// included on an earlier one.
	IncludeTypes []string
	// Unknown lists parameters that were ignored (handling=lenient), with
	// the reason, for the Bundle's OperationOutcome.
	Unknown []Issue
}

// Compartment restricts a search to a compartment: B/fhir/Patient/123/Observation.
type Compartment struct {
	Type string // Patient, Encounter, RelatedPerson, Practitioner, Device
	// ID is the compartment's resource; "" in a Query means any compartment
	// of Type (type-level Patient/$everything: what belongs to some patient).
	// Parse never produces "", and access grants do not use it.
	ID string
}

// Issue is a warning about the request that did not stop the search.
type Issue struct {
	Param   string
	Message string
}

// Clause is one occurrence of a search parameter (name=v1,v2): its values
// are ORed. A parameter repeated in the request gives several clauses,
// which are ANDed.
type Clause struct {
	// Param is the parameter's definition for the resource type(s) searched.
	// For a system-level search over several types it is the definition for
	// the first type; Code and Type are the same for all of them.
	Param *fhir.SearchParam
	Code  string
	Type  fhir.SearchParamType
	// Modifier is the part after ':' (exact, contains, text, not, missing,
	// above, below, in, not-in, of-type, identifier, iterate...), except a
	// resource type modifier on a reference, which goes to TargetType.
	Modifier Modifier
	// TargetType restricts a reference parameter to one target type
	// (subject:Patient=123, or the type named in a chain).
	TargetType string
	// Missing is set for :missing=true|false; Values is then empty.
	Missing *bool
	// Chain is set for a chained parameter (subject:Patient.name=peter): the
	// reference Code points to a resource of TargetType (or of any of the
	// parameter's targets) that matches Chain. Values is then empty.
	Chain *Clause
	// ChainTypes is set with Chain: the resource types Chain is evaluated
	// on. It is TargetType alone when a type was given (subject:Patient.name),
	// otherwise every target type of the reference parameter (of any of the
	// searched types) on which Chain.Code is defined, sorted; Chain.Param is
	// the definition for ChainTypes[0], and Chain.Type is the same on all.
	ChainTypes []string
	// Has is set for _has:Type:param:clause (reverse chaining); Code is
	// "_has", Param is nil and Type is "". Values is then empty. _list=id is
	// parsed as _has:List:item:_id=id.
	Has    *Has
	Values []Value
}

// Clauses with Code "_text" (DomainResource) or "_content" (Resource) are
// full-text searches over the narrative or the whole resource, with
// Type string and values as for a string parameter (Str normalised). Their
// Param has no Expression, so the index holds no rows for them. Parse only
// produces them when Options.FullText says the store implements them.

// Has is reverse chaining: the resource is referenced, through the reference
// parameter RefParam of a resource of Type, by a resource matching Clause.
type Has struct {
	Type     string
	RefParam string
	Clause   Clause
}

// Modifier is a search modifier.
type Modifier string

const (
	ModNone       Modifier = ""
	ModExact      Modifier = "exact"
	ModContains   Modifier = "contains"
	ModText       Modifier = "text"
	ModNot        Modifier = "not"
	ModMissing    Modifier = "missing"
	ModAbove      Modifier = "above"
	ModBelow      Modifier = "below"
	ModIn         Modifier = "in"
	ModNotIn      Modifier = "not-in"
	ModOfType     Modifier = "of-type"
	ModIdentifier Modifier = "identifier"
)

// Prefix is a comparison prefix of number, date and quantity values.
type Prefix string

const (
	PrefixEq Prefix = "eq"
	PrefixNe Prefix = "ne"
	PrefixGt Prefix = "gt"
	PrefixLt Prefix = "lt"
	PrefixGe Prefix = "ge"
	PrefixLe Prefix = "le"
	PrefixSa Prefix = "sa"
	PrefixEb Prefix = "eb"
	PrefixAp Prefix = "ap"
)

// Value is one value of a clause, parsed for the parameter's type. Only the
// fields of that type are set.
type Value struct {
	Raw string // as in the request, unescaped (a prefix included)

	// string and uri: Str. Strings are compared on their normalised form
	// (case and accents folded, see fhir/index.Normalize) unless :exact.
	// Parse stores the normalised form for string parameters without
	// :exact (and for :contains), the value as given with :exact and for
	// uri. Token :text: Str is the normalised text (compared like a string
	// parameter with the index Token.TextNorm).
	Str string

	// token: [System|]Code. HasSystem is true when a '|' was given
	// ("|code" means no system, "system|" any code of system).
	System    string
	HasSystem bool
	Code      string
	// token :of-type (system|code|value, identifiers): the Identifier.type
	// coding in TypeSystem and TypeCode (index Token.TypeSystem, TypeCode)
	// and the identifier value in Code; System and HasSystem are unset.
	TypeSystem, TypeCode string

	// reference: a local reference Type/ID (RefType may be "" for a bare
	// id), a version, or an absolute URL (canonical, external).
	RefType    string
	RefID      string
	RefVersion string
	URL        string
	// Reference values as Parse fills them (index Reference rows match):
	//   - "123": RefID (RefType is the type modifier, subject:Patient=123,
	//     or "" for any type);
	//   - "Patient/123", "Patient/123/_history/2": RefType, RefID, RefVersion;
	//   - an absolute URL: URL as given, plus RefType, RefID and RefVersion
	//     when it ends in Type/id or Type/id/_history/v; a URL under
	//     Options.Base is made local (URL "");
	//   - a canonical "url|version": URL without the version, RefVersion;
	//   - urn:uuid:, urn:oid: and other URIs: URL only.
	// :identifier: System, HasSystem and Code as for a token.
	// token :in and :not-in: URL is the value set as given: its canonical
	// URL (url[|version]) or a reference ValueSet/id. The store expands
	// it (terminology.Table.Expand), from the value sets stored in the
	// tenant or else the specification's; Parse does not, as it does not
	// know the stored ones.

	// Expansion is set for token :below and :above: the codes the value
	// stands for, by code system, as Parse found them in the terminology
	// of the FHIR R4 specification (fhir/terminology): the code
	// (System|Code, both required) with its descendants (:below) or its
	// ancestors (:above). A token matches when its system and code are in
	// one of the sets, or when it has no system (a code element, whose
	// system is implicit in its binding) and its code is in one of them
	// (the codes of an :in value set match the same way). Shared with the
	// terminology: do not modify.
	Expansion []terminology.CodeSet

	// number, date and quantity: PrefixEq when none was given.
	Prefix Prefix
	// date: the half-open instant range [Low, High) the value stands for
	// (2020 is the whole year).
	Low, High time.Time
	// number and quantity: the decimal as written and the range it stands
	// for by its precision, as decimal strings (100 is [99.5, 100.5)).
	Number               string
	NumLow, NumHigh      string
	UnitSystem, UnitCode string // quantity: [system]|[code] after the number

	// special, Location near (lat|long[|distance[|unit]]): decimal degrees
	// as written. The distance is in Number, NumLow, NumHigh ("" when
	// absent: the store's default) and its unit in UnitCode ("km" when
	// the distance has no unit).
	Latitude, Longitude string

	// composite: one value per component, in the parameter's order.
	Parts []Value
}

// SortKey is one _sort key.
type SortKey struct {
	Param      *fhir.SearchParam // nil for _id and _lastUpdated
	Code       string
	Descending bool
}

// Include is one _include or _revinclude: resources that Source resources
// reference through Param (include), or resources of Source that reference
// the results through Param (revinclude). Param "*" means every reference
// parameter. TargetType narrows the referenced type. Source and Param are
// both "*" for a bare _include=* (_revinclude=*): any searched type (any
// type), any reference parameter. Iterate is :iterate (or R3's :recurse).
type Include struct {
	Source     string
	Param      string
	TargetType string
	Iterate    bool
}

// TotalMode is _total.
type TotalMode string

const (
	TotalDefault  TotalMode = ""
	TotalNone     TotalMode = "none"
	TotalEstimate TotalMode = "estimate"
	TotalAccurate TotalMode = "accurate"
)

// Summary is _summary.
type Summary string

const (
	SummaryNone  Summary = ""
	SummaryTrue  Summary = "true"
	SummaryText  Summary = "text"
	SummaryData  Summary = "data"
	SummaryCount Summary = "count"
	SummaryFalse Summary = "false"
)
