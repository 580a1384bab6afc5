package index

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// dump renders entries as sorted one-line rows, for readable test
// expectations: "token code http://loinc.org|8302-2 text=Body Height".
func dump(e *Entries) []string {
	var out []string
	for _, r := range e.Strings {
		out = append(out, fmt.Sprintf("string %s %q norm=%q", r.Code, r.Value, r.Norm))
	}
	for _, r := range e.Tokens {
		out = append(out, "token "+r.Code+" "+tokenText(r))
	}
	for _, r := range e.References {
		out = append(out, "reference "+r.Code+" "+refText(r))
	}
	for _, r := range e.Dates {
		out = append(out, "date "+r.Code+" "+dateText(r))
	}
	for _, r := range e.Numbers {
		out = append(out, fmt.Sprintf("number %s %s [%s,%s]", r.Code, r.Value, r.Low, r.High))
	}
	for _, r := range e.Quantities {
		out = append(out, "quantity "+r.Code+" "+quantityText(r))
	}
	for _, r := range e.URIs {
		out = append(out, "uri "+r.Code+" "+r.Value)
	}
	for _, r := range e.Positions {
		out = append(out, fmt.Sprintf("position %s %s,%s", r.Code, r.Latitude, r.Longitude))
	}
	for _, r := range e.Composites {
		var parts []string
		for _, p := range r.Parts {
			switch {
			case p.Token != nil:
				parts = append(parts, p.Token.Code+"="+tokenText(*p.Token))
			case p.Quantity != nil:
				parts = append(parts, p.Quantity.Code+"="+quantityText(*p.Quantity))
			case p.Date != nil:
				parts = append(parts, p.Date.Code+"="+dateText(*p.Date))
			case p.String != nil:
				parts = append(parts, p.String.Code+"="+p.String.Value)
			case p.Reference != nil:
				parts = append(parts, p.Reference.Code+"="+refText(*p.Reference))
			case p.Number != nil:
				parts = append(parts, p.Number.Code+"="+p.Number.Value)
			case p.URI != nil:
				parts = append(parts, p.URI.Code+"="+p.URI.Value)
			}
		}
		out = append(out, "composite "+r.Code+" "+strings.Join(parts, " & "))
	}
	for _, c := range e.Compartments {
		out = append(out, "compartment "+c.Type+"/"+c.ID)
	}
	sort.Strings(out)
	return out
}

func tokenText(t Token) string {
	s := t.System + "|" + t.Value
	if t.System == "" {
		s = t.Value
	}
	if t.Text != "" {
		s += " text=" + t.Text
	}
	if t.TypeSystem != "" || t.TypeCode != "" {
		s += " type=" + t.TypeSystem + "|" + t.TypeCode
	}
	return s
}

func refText(r Reference) string {
	var parts []string
	if r.TargetType != "" || r.TargetID != "" {
		parts = append(parts, r.TargetType+"/"+r.TargetID)
	}
	if r.Version != "" {
		parts = append(parts, "v="+r.Version)
	}
	if r.URL != "" {
		parts = append(parts, "url="+r.URL)
	}
	if r.IdentifierSystem != "" || r.IdentifierValue != "" {
		parts = append(parts, "identifier="+r.IdentifierSystem+"|"+r.IdentifierValue)
	}
	return strings.Join(parts, " ")
}

func dateText(d Date) string {
	f := func(t time.Time) string {
		if t.IsZero() {
			return "*"
		}
		return t.Format(time.RFC3339Nano)
	}
	return "[" + f(d.Low) + "," + f(d.High) + ")"
}

func quantityText(q Quantity) string {
	s := fmt.Sprintf("%s%s [%s,%s]", q.Comparator, q.Value, q.Low, q.High)
	if q.System != "" || q.Unit != "" {
		s += " " + q.System + "|" + q.Unit
	}
	return s
}
