package search

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/fhirserver/fhirserver/fhir"
)

// Params re-encodes q as canonical search parameters: what the search
// actually applies (ignored parameters are left out), normalised (one
// spelling per value: no eq prefix, escapes only where needed, _list as
// _has), for the Bundle's self link and, with _cursor set, its next link.
// Parse(q.Params(), same Options) gives the same Query.
//
// _type is included whenever Types is set; a caller that puts the type in
// the URL's path (type-level and compartment searches) deletes it. The
// compartment is never a parameter. url.Values.Encode sorts the names.
func (q *Query) Params() url.Values {
	v := url.Values{}
	if len(q.Types) > 0 {
		v.Set("_type", strings.Join(q.Types, ","))
	}
	for i := range q.Clauses {
		c := &q.Clauses[i]
		v.Add(clauseKey(c), clauseValue(leafOf(c)))
	}
	if len(q.Sort) > 0 {
		keys := make([]string, len(q.Sort))
		for i, k := range q.Sort {
			keys[i] = k.Code
			if k.Descending {
				keys[i] = "-" + k.Code
			}
		}
		v.Set("_sort", strings.Join(keys, ","))
	}
	if q.Count > 0 {
		v.Set("_count", strconv.Itoa(q.Count))
	}
	if q.Total != TotalDefault {
		v.Set("_total", string(q.Total))
	}
	if q.Summary != SummaryNone {
		v.Set("_summary", string(q.Summary))
	}
	if len(q.Elements) > 0 {
		v.Set("_elements", strings.Join(q.Elements, ","))
	}
	addIncludes(v, "_include", q.Includes)
	addIncludes(v, "_revinclude", q.RevIncludes)
	if q.Cursor != "" {
		v.Set("_cursor", q.Cursor)
	}
	return v
}

// String is q.Params().Encode(): the canonical query string.
func (q *Query) String() string { return q.Params().Encode() }

func addIncludes(v url.Values, name string, incs []Include) {
	for _, inc := range incs {
		key := name
		if inc.Iterate {
			key += ":iterate"
		}
		val := inc.Source + ":" + inc.Param
		if inc.Source == "*" && inc.Param == "*" {
			val = "*"
		}
		if inc.TargetType != "" {
			val += ":" + inc.TargetType
		}
		v.Add(key, val)
	}
}

// clauseKey is the parameter name of c: code, modifier, chain and _has.
func clauseKey(c *Clause) string {
	switch {
	case c.Has != nil:
		return "_has:" + c.Has.Type + ":" + c.Has.RefParam + ":" + clauseKey(&c.Has.Clause)
	case c.Chain != nil:
		key := c.Code
		if c.TargetType != "" {
			key += ":" + c.TargetType
		}
		return key + "." + clauseKey(c.Chain)
	case c.Missing != nil:
		return c.Code + ":missing"
	case c.TargetType != "":
		return c.Code + ":" + c.TargetType
	case c.Modifier != ModNone:
		return c.Code + ":" + string(c.Modifier)
	}
	return c.Code
}

// clauseValue is the value of a leaf clause: its values, comma-separated.
func clauseValue(c *Clause) string {
	if c.Missing != nil {
		return strconv.FormatBool(*c.Missing)
	}
	vals := make([]string, len(c.Values))
	for i := range c.Values {
		vals[i] = encodeValue(c.Type, c.Modifier, c.Param, &c.Values[i])
	}
	return strings.Join(vals, ",")
}

// encodeValue writes one value of a parameter of type t.
func encodeValue(t fhir.SearchParamType, mod Modifier, def *fhir.SearchParam, v *Value) string {
	prefix := ""
	if v.Prefix != PrefixEq {
		prefix = string(v.Prefix)
	}
	switch t {
	case fhir.SearchParamToken:
		switch mod {
		case ModText:
			return escape(v.Raw)
		case ModIn, ModNotIn:
			return escape(v.URL)
		case ModOfType:
			return escape(v.TypeSystem) + "|" + escape(v.TypeCode) + "|" + escape(v.Code)
		}
		return encodeToken(v)
	case fhir.SearchParamReference:
		switch {
		case mod == ModIdentifier:
			return encodeToken(v)
		case v.URL != "":
			if v.RefVersion != "" && !strings.HasSuffix(v.URL, "/_history/"+v.RefVersion) {
				return escape(v.URL) + "|" + escape(v.RefVersion)
			}
			return escape(v.URL)
		case v.RefType == "":
			return escape(v.RefID)
		case v.RefVersion != "":
			return escape(v.RefType + "/" + v.RefID + "/_history/" + v.RefVersion)
		}
		return escape(v.RefType + "/" + v.RefID)
	case fhir.SearchParamDate:
		date := v.Raw
		if len(date) >= 2 && date[0] >= 'a' && date[0] <= 'z' {
			date = date[2:]
		}
		return prefix + escape(date)
	case fhir.SearchParamNumber:
		return prefix + v.Number
	case fhir.SearchParamQuantity:
		s := prefix + v.Number
		if v.UnitSystem != "" || v.UnitCode != "" {
			s += "|" + escape(v.UnitSystem) + "|" + escape(v.UnitCode)
		}
		return s
	case fhir.SearchParamURI:
		return escape(v.Str)
	case fhir.SearchParamComposite:
		if def == nil || len(def.Components) != len(v.Parts) {
			return escape(v.Raw)
		}
		parts := make([]string, len(v.Parts))
		for i := range v.Parts {
			parts[i] = encodeValue(def.Components[i].Type, ModNone, nil, &v.Parts[i])
		}
		return strings.Join(parts, "$")
	case fhir.SearchParamSpecial:
		s := escape(v.Latitude) + "|" + escape(v.Longitude)
		if v.Number != "" {
			s += "|" + v.Number + "|" + escape(v.UnitCode)
		}
		return s
	}
	return escape(v.Raw) // string, _text, _content
}

func encodeToken(v *Value) string {
	if v.HasSystem {
		return escape(v.System) + "|" + escape(v.Code)
	}
	return escape(v.Code)
}
