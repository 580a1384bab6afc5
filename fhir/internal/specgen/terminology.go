package specgen

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/fhirserver/fhirserver/fhir/internal/hierarchy"
	"github.com/fhirserver/fhirserver/internal/fhirspec"
)

// TerminologyFile is the terminology table, relative to the fhir/terminology
// package folder: the output of Terminology, gzipped.
const TerminologyFile = "r4.txt.gz"

// terminologySources are the spec files with CodeSystem and ValueSet
// resources.
var terminologySources = []string{"valuesets.json.gz", "v3-codesystems.json.gz", "v2-tables.json.gz"}

// Terminology reads the code systems and value sets of the spec and returns
// the terminology table that package fhir/terminology reads (see its doc
// for the format): every code system whose concepts the spec lists in full,
// with its is-a hierarchy, and every value set expanded, or the reason why
// it cannot be expanded without an outside terminology server.
//
// It stops on what it cannot map: a duplicate code system, value set or
// code, a hierarchy link to a code that does not exist, an include that
// names neither a system nor a value set, a value set listing a code that
// its (complete) code system does not have, or a tab or newline in a URL
// or code.
func Terminology(specDir string) ([]byte, error) {
	tm, err := readTerminology(specDir)
	if err != nil {
		return nil, err
	}
	for _, url := range sortedKeys(tm.valueSets) {
		tm.expand(url, nil)
	}
	return tm.encode()
}

// Gzip compresses b reproducibly (no name, no time in the header).
func Gzip(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type tsResource struct {
	ResourceType string      `json:"resourceType"`
	URL          string      `json:"url"`
	Version      string      `json:"version"`
	Content      string      `json:"content"`
	Concept      []tsConcept `json:"concept"`
	Compose      *struct {
		Include []tsInclude `json:"include"`
		Exclude []tsInclude `json:"exclude"`
	} `json:"compose"`
}

type tsConcept struct {
	Code     string      `json:"code"`
	Concept  []tsConcept `json:"concept"`
	Property []struct {
		Code      string `json:"code"`
		ValueCode string `json:"valueCode"`
	} `json:"property"`
}

type tsInclude struct {
	System  string `json:"system"`
	Concept []struct {
		Code string `json:"code"`
	} `json:"concept"`
	Filter []struct {
		Property string `json:"property"`
		Op       string `json:"op"`
		Value    string `json:"value"`
	} `json:"filter"`
	ValueSet []string `json:"valueSet"`
}

// tsSystem is a code system. A complete one has every concept of the spec's
// CodeSystem (content complete) and its hierarchy; any other one has only
// the codes that value sets list explicitly.
type tsSystem struct {
	url      string
	complete bool
	codes    map[string]bool
	parents  map[string][]string // code -> its parents (is-a)
	children map[string][]string
}

type coding struct{ system, code string }

// expansion is a value set's codes, or why it has none.
type expansion struct {
	codes  map[coding]bool
	reason string // not expandable: why ("it includes every code of ...")
}

type terminologyTables struct {
	systems   map[string]*tsSystem
	valueSets map[string]*tsResource
	expanded  map[string]*expansion
}

func readTerminology(specDir string) (*terminologyTables, error) {
	tm := &terminologyTables{systems: map[string]*tsSystem{}, valueSets: map[string]*tsResource{}, expanded: map[string]*expansion{}}
	for _, name := range terminologySources {
		var bundle struct {
			Entry []struct {
				Resource json.RawMessage `json:"resource"`
			} `json:"entry"`
		}
		path := filepath.Join(specDir, name)
		if err := fhirspec.ReadJSON(path, &bundle); err != nil {
			return nil, err
		}
		for i, e := range bundle.Entry {
			var r tsResource
			if err := json.Unmarshal(e.Resource, &r); err != nil {
				return nil, fmt.Errorf("%s entry %d: %v", name, i, err)
			}
			if err := clean(r.URL); err != nil || r.URL == "" {
				return nil, fmt.Errorf("%s entry %d: url %q: %v", name, i, r.URL, err)
			}
			switch r.ResourceType {
			case "CodeSystem":
				if tm.systems[r.URL] != nil {
					return nil, fmt.Errorf("%s: CodeSystem %s is defined twice", name, r.URL)
				}
				if r.Content == "supplement" {
					continue // adds designations and properties to another system
				}
				cs, err := readCodeSystem(&r)
				if err != nil {
					return nil, fmt.Errorf("%s: CodeSystem %s: %v", name, r.URL, err)
				}
				tm.systems[r.URL] = cs
			case "ValueSet":
				if tm.valueSets[r.URL] != nil {
					return nil, fmt.Errorf("%s: ValueSet %s is defined twice", name, r.URL)
				}
				if err := clean(r.Version); err != nil {
					return nil, fmt.Errorf("%s: ValueSet %s: version: %v", name, r.URL, err)
				}
				r := r
				tm.valueSets[r.URL] = &r
			default:
				return nil, fmt.Errorf("%s entry %d: unexpected %s", name, i, r.ResourceType)
			}
		}
	}
	return tm, nil
}

// clean refuses what the table's line format cannot hold.
func clean(s string) error {
	if strings.ContainsAny(s, "\t\n\r") {
		return fmt.Errorf("%q holds a tab or line break", s)
	}
	return nil
}

// readCodeSystem takes the concepts of a complete code system with their
// hierarchy: nesting, and the v3 "child" property for a concept's further
// parents (polyhierarchy). Other code systems keep no concepts: they are
// not the whole system.
func readCodeSystem(r *tsResource) (*tsSystem, error) {
	cs := &tsSystem{url: r.URL, codes: map[string]bool{}, parents: map[string][]string{}, children: map[string][]string{}}
	if r.Content != "complete" && r.Content != "" {
		return cs, nil
	}
	cs.complete = true
	var links [][2]string // parent, child
	var walk func(cons []tsConcept, parent string) error
	walk = func(cons []tsConcept, parent string) error {
		for _, c := range cons {
			if c.Code == "" {
				return fmt.Errorf("a concept without a code")
			}
			if err := clean(c.Code); err != nil {
				return err
			}
			if cs.codes[c.Code] {
				return fmt.Errorf("code %q is defined twice", c.Code)
			}
			cs.codes[c.Code] = true
			if parent != "" {
				links = append(links, [2]string{parent, c.Code})
			}
			for _, p := range c.Property {
				if p.Code == "child" {
					links = append(links, [2]string{c.Code, p.ValueCode})
				}
			}
			if err := walk(c.Concept, c.Code); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(r.Concept, ""); err != nil {
		return nil, err
	}
	for _, l := range links {
		if !cs.codes[l[1]] {
			return nil, fmt.Errorf("code %q has a child %q that the code system does not define", l[0], l[1])
		}
		if !containsString(cs.parents[l[1]], l[0]) {
			cs.parents[l[1]] = append(cs.parents[l[1]], l[0])
			cs.children[l[0]] = append(cs.children[l[0]], l[1])
		}
	}
	return cs, nil
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// expand expands the value set url (memoised); stack holds the value sets
// being expanded, to catch import cycles.
func (tm *terminologyTables) expand(url string, stack []string) *expansion {
	if e := tm.expanded[url]; e != nil {
		return e
	}
	vs := tm.valueSets[url]
	if vs == nil {
		return &expansion{reason: "it is not a value set of the FHIR specification"}
	}
	if containsString(stack, url) {
		return &expansion{reason: "it imports itself (through " + strings.Join(stack, ", ") + ")"}
	}
	stack = append(stack, url)
	e := &expansion{codes: map[coding]bool{}}
	switch {
	case vs.Compose == nil || len(vs.Compose.Include) == 0:
		e = &expansion{reason: "it has no compose.include to expand"}
	default:
		for _, inc := range vs.Compose.Include {
			part, reason := tm.part(inc, stack)
			if reason != "" {
				e = &expansion{reason: reason}
				break
			}
			for c := range part {
				e.codes[c] = true
			}
		}
		for _, exc := range vs.Compose.Exclude {
			if e.reason != "" {
				break
			}
			part, reason := tm.part(exc, stack)
			if reason != "" {
				e = &expansion{reason: "it excludes what cannot be expanded: " + reason}
				break
			}
			for c := range part {
				delete(e.codes, c)
			}
		}
	}
	tm.expanded[url] = e
	return e
}

// part expands one compose.include or compose.exclude: the intersection of
// its value sets and its system's selection.
func (tm *terminologyTables) part(inc tsInclude, stack []string) (map[coding]bool, string) {
	var sets []map[coding]bool
	for _, ref := range inc.ValueSet {
		url, _, _ := strings.Cut(ref, "|")
		e := tm.expand(url, stack)
		if e.reason != "" {
			return nil, "it imports " + url + ": " + e.reason
		}
		sets = append(sets, e.codes)
	}
	if inc.System != "" {
		set, reason := tm.systemPart(inc)
		if reason != "" {
			return nil, reason
		}
		sets = append(sets, set)
	}
	if len(sets) == 0 {
		return nil, "it has an include or exclude with neither a system nor a value set"
	}
	out := sets[0]
	for _, s := range sets[1:] {
		next := map[coding]bool{}
		for c := range out {
			if s[c] {
				next[c] = true
			}
		}
		out = next
	}
	return out, ""
}

// systemPart expands the system part of an include: its concept list, its
// filters (ANDed), or the whole system.
func (tm *terminologyTables) systemPart(inc tsInclude) (map[coding]bool, string) {
	sys := inc.System
	out := map[coding]bool{}
	if len(inc.Concept) > 0 {
		// An explicit list needs no code system: it is the expansion.
		for _, c := range inc.Concept {
			out[coding{sys, c.Code}] = true
		}
		return out, ""
	}
	cs := tm.systems[sys]
	notAtHand := func() string {
		if cs == nil {
			return sys + ", a code system that is not part of the FHIR specification"
		}
		return sys + ", a code system whose concepts the FHIR specification does not list"
	}
	if len(inc.Filter) == 0 {
		if cs == nil || !cs.complete {
			return nil, "it includes every code of " + notAtHand()
		}
		for code := range cs.codes {
			out[coding{sys, code}] = true
		}
		return out, ""
	}
	var sets []map[string]bool
	for _, f := range inc.Filter {
		desc := f.Property + " " + f.Op + " " + f.Value
		if cs == nil || !cs.complete {
			return nil, "its filter (" + desc + ") needs " + notAtHand()
		}
		if f.Property != "concept" {
			return nil, "its filter (" + desc + ") on " + sys + " is on a property this server does not evaluate"
		}
		if !cs.codes[f.Value] {
			return nil, "its filter (" + desc + ") names a code that " + sys + " does not have"
		}
		var set map[string]bool
		switch f.Op {
		case "is-a":
			set = hierarchy.Closure(cs.children, f.Value)
		case "descendent-of":
			set = hierarchy.Closure(cs.children, f.Value)
			delete(set, f.Value)
		case "is-not-a":
			below := hierarchy.Closure(cs.children, f.Value)
			set = map[string]bool{}
			for code := range cs.codes {
				if !below[code] {
					set[code] = true
				}
			}
		case "generalizes":
			set = hierarchy.Closure(cs.parents, f.Value)
		default:
			return nil, "its filter (" + desc + ") on " + sys + " uses an operator this server does not evaluate"
		}
		sets = append(sets, set)
	}
	for code := range sets[0] {
		in := true
		for _, s := range sets[1:] {
			in = in && s[code]
		}
		if in {
			out[coding{sys, code}] = true
		}
	}
	return out, ""
}

// encode writes the table: complete code systems with their hierarchy,
// partial ones with the codes that expansions use, then the value sets.
func (tm *terminologyTables) encode() ([]byte, error) {
	// Codes that expansions list from systems that are not complete.
	for _, url := range sortedKeys(tm.expanded) {
		for c := range tm.expanded[url].codes {
			if err := clean(c.system); err != nil {
				return nil, fmt.Errorf("ValueSet %s: system: %v", url, err)
			}
			if err := clean(c.code); err != nil {
				return nil, fmt.Errorf("ValueSet %s: code: %v", url, err)
			}
			cs := tm.systems[c.system]
			if cs == nil {
				cs = &tsSystem{url: c.system, codes: map[string]bool{}}
				tm.systems[c.system] = cs
			}
			if cs.complete && !cs.codes[c.code] {
				return nil, fmt.Errorf("ValueSet %s lists %s|%s, a code that the code system does not have", url, c.system, c.code)
			}
			cs.codes[c.code] = true
		}
	}
	var w writer
	w.f("fhir-r4-terminology 1\n")
	sysURLs := sortedKeys(tm.systems)
	sysIndex := map[string]int{}
	codeIndex := map[coding]int{}
	for i, url := range sysURLs {
		cs := tm.systems[url]
		sysIndex[url] = i
		codes := sortedKeys(cs.codes)
		for j, code := range codes {
			codeIndex[coding{url, code}] = j
		}
		complete := 0
		if cs.complete {
			complete = 1
		}
		w.f("S\t%s\t%d\t%d\n", url, complete, len(codes))
		for _, code := range codes {
			w.WriteString(code)
			if ps := cs.parents[code]; len(ps) > 0 {
				idx := make([]int, len(ps))
				for k, p := range ps {
					idx[k] = codeIndex[coding{url, p}]
				}
				sort.Ints(idx)
				w.WriteString("\t" + joinInts(idx))
			}
			w.WriteString("\n")
		}
	}
	for _, url := range sortedKeys(tm.valueSets) {
		vs, e := tm.valueSets[url], tm.expanded[url]
		if e.reason != "" {
			w.f("X\t%s\t%s\t%s\n", url, vs.Version, e.reason)
			continue
		}
		bySystem := map[int][]int{}
		for c := range e.codes {
			s := sysIndex[c.system]
			bySystem[s] = append(bySystem[s], codeIndex[c])
		}
		w.f("V\t%s\t%s\t%d\n", url, vs.Version, len(bySystem))
		var systems []int
		for s := range bySystem {
			systems = append(systems, s)
		}
		sort.Ints(systems)
		for _, s := range systems {
			idx := bySystem[s]
			sort.Ints(idx)
			w.f("%d\t%s\n", s, ranges(idx))
		}
	}
	return w.Bytes(), nil
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// ranges writes ascending numbers as runs: 0-5,7,9-12.
func ranges(ns []int) string {
	var parts []string
	for i := 0; i < len(ns); {
		j := i
		for j+1 < len(ns) && ns[j+1] == ns[j]+1 {
			j++
		}
		if j == i {
			parts = append(parts, strconv.Itoa(ns[i]))
		} else {
			parts = append(parts, strconv.Itoa(ns[i])+"-"+strconv.Itoa(ns[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}
