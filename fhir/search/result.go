package search

import (
	"slices"
	"strconv"
	"strings"

	"github.com/fhirserver/fhirserver/fhir"
)

// resultSpec is how a parameter that is not a search parameter is parsed:
// the result parameters (_count, _sort, _include...), the server's (_format,
// _pretty) and the special ones (_list, _query, _filter, _cursor).
type resultSpec struct {
	repeat  bool // may be given several times (else a second one is an error)
	iterate bool // takes :iterate (and :recurse)
	parse   func(p *parser, mod, value string) error
}

func resultParam(name string) (resultSpec, bool) {
	switch name {
	case "_format", "_pretty":
		return resultSpec{repeat: true, parse: func(*parser, string, string) error { return nil }}, true
	case "_type":
		// resolveTypes has read it.
		return resultSpec{repeat: true, parse: func(*parser, string, string) error { return nil }}, true
	case "_count":
		return resultSpec{parse: (*parser).count}, true
	case "_sort":
		return resultSpec{parse: (*parser).sort}, true
	case "_total":
		return resultSpec{parse: (*parser).total}, true
	case "_summary":
		return resultSpec{parse: (*parser).summary}, true
	case "_elements":
		return resultSpec{repeat: true, parse: (*parser).elements}, true
	case "_include":
		return resultSpec{repeat: true, iterate: true, parse: func(p *parser, mod, v string) error { return p.include(false, mod, v) }}, true
	case "_revinclude":
		return resultSpec{repeat: true, iterate: true, parse: func(p *parser, mod, v string) error { return p.include(true, mod, v) }}, true
	case "_contained":
		return resultSpec{parse: (*parser).contained}, true
	case "_containedType":
		return resultSpec{parse: (*parser).containedType}, true
	case "_cursor":
		return resultSpec{parse: func(p *parser, _, v string) error { p.q.Cursor = v; return nil }}, true
	case "_list":
		return resultSpec{repeat: true, parse: (*parser).list}, true
	case "_query":
		return resultSpec{repeat: true, parse: func(p *parser, _, _ string) error {
			return p.skip("named queries (_query) are not supported")
		}}, true
	case "_filter":
		return resultSpec{repeat: true, parse: func(p *parser, _, _ string) error {
			return p.skip("_filter is not supported")
		}}, true
	}
	return resultSpec{}, false
}

// count parses _count: a page size, capped at Options.MaxCount; 0 asks for
// the count only.
func (p *parser) count(_, v string) error {
	for _, c := range []byte(v) {
		if c < '0' || c > '9' {
			return p.errf("%q is not a count: a whole number, 0 or more", v)
		}
	}
	n, err := strconv.Atoi(v)
	if err != nil { // too many digits for an int: capped below
		n = int(^uint(0) >> 1)
	}
	p.countGiven = true
	if n == 0 {
		p.countZero = true
	}
	p.q.Count = n
	return nil
}

// finish applies the defaults and limits that depend on several parameters.
func (p *parser) finish() {
	if !p.countGiven {
		p.q.Count = p.opt.DefaultCount
	}
	if p.opt.MaxCount > 0 && p.q.Count > p.opt.MaxCount {
		p.q.Count = p.opt.MaxCount
	}
	if p.countZero {
		p.q.Summary = SummaryCount
	}
	if p.q.Summary == SummaryCount {
		p.q.Count = 0 // no entries: a page size means nothing
	}
}

func (p *parser) sort(_, v string) error {
	for _, item := range strings.Split(v, ",") {
		if item == "" {
			continue
		}
		code, desc := strings.CutPrefix(item, "-")
		if slices.ContainsFunc(p.q.Sort, func(k SortKey) bool { return k.Code == code }) {
			continue
		}
		switch code {
		case "":
			return p.errf("%q: a sort key is a parameter name, - before it for descending order", item)
		case "_id", "_lastUpdated":
			p.q.Sort = append(p.q.Sort, SortKey{Code: code, Descending: desc})
			continue
		}
		defs, err := p.defs(p.scope, code, 0)
		if err != nil {
			if u, ok := err.(*unsupportedError); ok {
				if err := p.skip("cannot sort by %s: %s", code, u.msg); err != nil {
					return err
				}
				continue
			}
			return err
		}
		switch defs[0].Type {
		case fhir.SearchParamComposite, fhir.SearchParamSpecial:
			return p.errf("cannot sort by %s, a %s parameter", code, defs[0].Type)
		}
		if defs[0].Expression == "" {
			return p.errf("cannot sort by %s", code)
		}
		p.q.Sort = append(p.q.Sort, SortKey{Param: defs[0], Code: code, Descending: desc})
	}
	return nil
}

func (p *parser) total(_, v string) error {
	switch t := TotalMode(v); t {
	case TotalNone, TotalEstimate, TotalAccurate:
		p.q.Total = t
		return nil
	}
	return p.errf("%q is not none, estimate or accurate", v)
}

func (p *parser) summary(_, v string) error {
	switch s := Summary(v); s {
	case SummaryTrue, SummaryText, SummaryData, SummaryCount, SummaryFalse:
		p.q.Summary = s
		return nil
	}
	return p.errf("%q is not true, text, data, count or false", v)
}

// elements parses _elements: top-level element names, optionally prefixed
// with the resource type (Patient.name). With known searched types, a name
// none of them has is an unknown parameter value (ignored and reported, or
// an error in strict mode).
func (p *parser) elements(_, v string) error {
	model := fhir.TypeModel()
	// hasElement reports whether type t has the element name, a choice
	// element by its base name (value) or a typed name (valueQuantity).
	hasElement := func(t, name string) bool {
		if _, ok := model.Element(t, name); ok {
			return true
		}
		for i := len(name) - 1; i > 0; i-- {
			if name[i] >= 'A' && name[i] <= 'Z' {
				if el, ok := model.Element(t, name[:i]); ok && slices.Contains(el.Keys, name) {
					return true
				}
			}
		}
		return false
	}
	for _, name := range strings.Split(v, ",") {
		if name == "" {
			continue
		}
		types := p.scope
		if t, rest, ok := strings.Cut(name, "."); ok && fhir.IsResourceType(t) {
			if len(p.scope) > 0 && !slices.Contains(p.scope, t) {
				if err := p.skip("%s is not a searched type", t); err != nil {
					return err
				}
				continue
			}
			types, name = []string{t}, rest
		}
		if !isElementName(name) {
			return p.errf("%q is not a top-level element name", name)
		}
		if len(types) > 0 && !slices.ContainsFunc(types, func(t string) bool { return hasElement(t, name) }) {
			if err := p.skip("%s has no element %s", strings.Join(types, " or "), name); err != nil {
				return err
			}
			continue
		}
		if !slices.Contains(p.q.Elements, name) {
			p.q.Elements = append(p.q.Elements, name)
		}
	}
	return nil
}

func isElementName(s string) bool {
	if s == "" || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// include parses one _include or _revinclude (rev) value:
// Source:param[:TargetType], Source:* or *.
func (p *parser) include(rev bool, mod, v string) error {
	inc := Include{Iterate: mod != ""}
	if v == "*" {
		inc.Source, inc.Param = "*", "*"
	} else {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || len(parts) > 3 {
			return p.errf("%q is not Type:parameter[:TargetType] or *", v)
		}
		inc.Source, inc.Param = parts[0], parts[1]
		if !fhir.IsResourceType(inc.Source) {
			return p.errf("%q is not a resource type", inc.Source)
		}
		var targets []string
		if inc.Param != "*" {
			def, ok := fhir.LookupSearchParam(inc.Source, inc.Param)
			if !ok || def.Type != fhir.SearchParamReference {
				return p.errf("%s has no reference parameter %s", inc.Source, inc.Param)
			}
			targets = def.Targets
		}
		if len(parts) == 3 {
			inc.TargetType = parts[2]
			if !fhir.IsResourceType(inc.TargetType) {
				return p.errf("%q is not a resource type", inc.TargetType)
			}
			if inc.Param != "*" && !slices.Contains(targets, inc.TargetType) {
				return p.errf("%s is not a target type of %s:%s (%s)", inc.TargetType, inc.Source, inc.Param, listOr(targets))
			}
		}
		// Without :iterate, an include applies to the matches only: one
		// that cannot apply to the searched types includes nothing.
		if !inc.Iterate && len(p.scope) > 0 {
			switch {
			case !rev && !slices.Contains(p.scope, inc.Source):
				return p.skip("%s is not a searched type, so %s includes nothing (:iterate follows included resources)", inc.Source, v)
			case rev && inc.Param != "*":
				reach := targets
				if inc.TargetType != "" {
					reach = []string{inc.TargetType}
				}
				if !slices.ContainsFunc(p.scope, func(t string) bool { return slices.Contains(reach, t) }) {
					return p.skip("%s:%s does not refer to the searched types, so it includes nothing", inc.Source, inc.Param)
				}
			}
		}
	}
	list := &p.q.Includes
	if rev {
		list = &p.q.RevIncludes
	}
	if !slices.Contains(*list, inc) {
		*list = append(*list, inc)
	}
	return nil
}

// contained parses _contained: only false (the default: contained
// resources are not searched) is supported.
func (p *parser) contained(_, v string) error {
	switch v {
	case "false":
		return nil
	case "true", "both":
		return p.skip("searching contained resources (_contained=%s) is not supported", v)
	}
	return p.errf("%q is not true, false or both", v)
}

// containedType parses _containedType: only container (the default) is
// supported.
func (p *parser) containedType(_, v string) error {
	switch v {
	case "container":
		return nil
	case "contained":
		return p.skip("returning contained resources (_containedType=contained) is not supported")
	}
	return p.errf("%q is not container or contained", v)
}

// list parses _list=id[,id]: the resources a List refers to through item,
// which is _has:List:item:_id=id. Functional lists ($current-allergies...)
// are not supported.
func (p *parser) list(_, v string) error {
	idDef, _ := fhir.LookupSearchParam("List", "_id")
	c := Clause{Param: idDef, Code: "_id", Type: idDef.Type}
	for _, id := range splitEscaped(v, ',') {
		id = unescape(id)
		switch {
		case id == "":
			continue
		case strings.HasPrefix(id, "$"):
			return p.skip("functional lists (%s) are not supported", id)
		case !fhir.ValidID(id):
			return p.errf("%q is not a List id", id)
		}
		c.Values = append(c.Values, Value{Raw: id, Code: id})
	}
	if len(c.Values) > 0 {
		p.q.Clauses = append(p.q.Clauses, Clause{Code: "_has", Has: &Has{Type: "List", RefParam: "item", Clause: c}})
	}
	return nil
}
