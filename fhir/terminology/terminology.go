// Package terminology answers what the token search modifiers :in, :not-in,
// :below and :above ask of terminology, from the code systems and value
// sets of the FHIR R4 specification: the expansion of a value set, and the
// descendants or ancestors of a code in a hierarchical code system. Expand
// (expand.go) also expands the ValueSets a server stores, with the
// CodeSystems it stores, from their JSON, which a Source hands it. It has
// no outside terminology (SNOMED CT, LOINC, RxNorm...): a value set that
// needs one is reported as such, never answered with a partial expansion.
//
// The table is generated from ../shared/fhir-r4 (go generate ./fhir/terminology)
// into r4.txt.gz, embedded, and decoded on first use. It is a text file of
// lines, fields separated by tabs:
//
//	fhir-r4-terminology 1
//	S <system URL> <complete: 1|0> <number of codes>   a code system, then its codes:
//	<code>[ <parent>,<parent>...]                       sorted (bytewise); parents are
//	                                                    indices of codes of this system
//	V <value set URL> <version> <number of groups>     an expanded value set, then per system:
//	<system index> <ranges>                             code indices: 0-5,7,9-12
//	X <value set URL> <version> <reason>               a value set that cannot be expanded
//
// Code systems come first and value sets second, each sorted by URL. A
// complete code system has every concept the specification lists; any
// other has only the codes that value sets list explicitly (LOINC codes of
// an enumerated value set, say), and no hierarchy.
package terminology

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/fhirserver/fhirserver/fhir"
)

//go:generate go run ../internal/gen -terminology -spec ../../../shared/fhir-r4 -out .

//go:embed r4.txt.gz
var r4gz []byte

// r4 is the table of the specification, the package's one piece of state
// besides the embedded bytes: written once, by the first call that needs
// it (under its sync.Once), and never changed after. Decoding lazily means
// that a process that never searches with these modifiers keeps only the
// compressed 130 kB (decoded: about 1.3 MB, 40 ms).
var r4 = &Table{gz: r4gz}

// R4 returns the terminology of the FHIR R4 specification.
func R4() *Table { return r4 }

// Table is a terminology table, decoded on first use. Its methods are safe
// for concurrent use.
type Table struct {
	gz   []byte // the gzipped table
	once sync.Once
	t    *tables // set by once, then read-only
	err  error
}

// CodeSet is codes of one code system, sorted. The slice may be shared
// with the table: do not modify it.
type CodeSet struct {
	System string
	Codes  []string
}

type tables struct {
	systems   []system   // sorted by url
	valueSets []valueSet // sorted by url
}

type system struct {
	url      string
	complete bool
	codes    []string // sorted
	// parents and children are the is-a hierarchy (nil when flat).
	parents, children *adjacency
}

// adjacency lists the neighbours of each code, by index: those of code i
// are to[off[i]:off[i+1]].
type adjacency struct {
	off, to []int32
}

func (a *adjacency) of(i int32) []int32 {
	if a == nil {
		return nil
	}
	return a.to[a.off[i]:a.off[i+1]]
}

type valueSet struct {
	url, version string
	reason       string // why it cannot be expanded; "" when it can
	groups       []group
}

type group struct {
	system int32
	ranges []int32 // inclusive pairs of code indices, ascending
}

func (t *Table) load() (*tables, error) {
	t.once.Do(func() {
		zr, err := gzip.NewReader(bytes.NewReader(t.gz))
		if err == nil {
			t.t, err = decode(zr)
		}
		if err != nil {
			t.err = fhir.Internal("decoding the terminology table", err)
		}
	})
	return t.t, t.err
}

// ValueSet returns the expansion of the value set with the canonical URL
// url[|version], by code system (sorted by system). A value set that is not
// in the specification, or of another version, is an invalid error; one
// that needs an outside terminology is a not-supported error that says why.
func (t *Table) ValueSet(canonical string) ([]CodeSet, error) {
	tb, err := t.load()
	if err != nil {
		return nil, err
	}
	url, version, hasVersion := strings.Cut(canonical, "|")
	i := sort.Search(len(tb.valueSets), func(i int) bool { return tb.valueSets[i].url >= url })
	if i == len(tb.valueSets) || tb.valueSets[i].url != url {
		return nil, fhir.Errorf(fhir.KindInvalid, "value set %s is not known here (this server has the value sets of the FHIR R4 specification)", url)
	}
	vs := &tb.valueSets[i]
	if hasVersion && version != vs.version {
		return nil, fhir.Errorf(fhir.KindInvalid, "value set %s is known here in version %s, not %s", url, vs.version, version)
	}
	if vs.reason != "" {
		return nil, fhir.Errorf(fhir.KindNotSupported, "value set %s cannot be expanded without a terminology server, which this server does not have: %s", url, vs.reason)
	}
	out := make([]CodeSet, len(vs.groups))
	for j, g := range vs.groups {
		sys := &tb.systems[g.system]
		out[j].System = sys.url
		if len(g.ranges) == 2 {
			lo, hi := g.ranges[0], g.ranges[1]+1
			out[j].Codes = sys.codes[lo:hi:hi]
			continue
		}
		var codes []string
		for k := 0; k < len(g.ranges); k += 2 {
			codes = append(codes, sys.codes[g.ranges[k]:g.ranges[k+1]+1]...)
		}
		out[j].Codes = codes
	}
	return out, nil
}

// Below returns code and its descendants (is-a) in the code system, sorted.
func (t *Table) Below(systemURL, code string) ([]string, error) {
	return t.walk(systemURL, code, func(s *system) *adjacency { return s.children })
}

// Above returns code and its ancestors (is-a) in the code system, sorted.
func (t *Table) Above(systemURL, code string) ([]string, error) {
	return t.walk(systemURL, code, func(s *system) *adjacency { return s.parents })
}

func (t *Table) walk(systemURL, code string, next func(*system) *adjacency) ([]string, error) {
	tb, err := t.load()
	if err != nil {
		return nil, err
	}
	i := sort.Search(len(tb.systems), func(i int) bool { return tb.systems[i].url >= systemURL })
	if i == len(tb.systems) || tb.systems[i].url != systemURL || !tb.systems[i].complete {
		return nil, fhir.Errorf(fhir.KindNotSupported, "the concepts of code system %s are not known here (this server has the code systems whose concepts the FHIR R4 specification lists)", systemURL)
	}
	sys := &tb.systems[i]
	c := sort.SearchStrings(sys.codes, code)
	if c == len(sys.codes) || sys.codes[c] != code {
		return nil, fhir.Errorf(fhir.KindInvalid, "code system %s has no code %q", systemURL, code)
	}
	adj := next(sys)
	seen := map[int32]bool{int32(c): true}
	stack := []int32{int32(c)}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, m := range adj.of(n) {
			if !seen[m] {
				seen[m] = true
				stack = append(stack, m)
			}
		}
	}
	idx := make([]int, 0, len(seen))
	for n := range seen {
		idx = append(idx, int(n))
	}
	sort.Ints(idx)
	out := make([]string, len(idx))
	for j, n := range idx {
		out[j] = sys.codes[n]
	}
	return out, nil
}

const magic = "fhir-r4-terminology 1"

// decode reads the table format (see the package doc).
func decode(r io.Reader) (*tables, error) {
	all, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	// One string for the whole table: codes and URLs are substrings of it,
	// so that decoding allocates headers, not text.
	d := &decoder{rest: string(all)}
	if line, ok := d.next(); !ok || line != magic {
		return nil, fmt.Errorf("the table does not start with %q", magic)
	}
	tb := &tables{}
	for {
		line, ok := d.next()
		if !ok {
			break
		}
		f := strings.Split(line, "\t")
		switch {
		case f[0] == "S" && len(f) == 4 && len(tb.valueSets) == 0:
			s, err := d.system(f)
			if err != nil {
				return nil, fmt.Errorf("line %d: %v", d.line, err)
			}
			if n := len(tb.systems); n > 0 && tb.systems[n-1].url >= s.url {
				return nil, fmt.Errorf("line %d: code system %s out of order", d.line, s.url)
			}
			tb.systems = append(tb.systems, s)
		case (f[0] == "V" && len(f) == 4) || (f[0] == "X" && len(f) == 4):
			vs := valueSet{url: f[1], version: f[2]}
			if f[0] == "X" {
				vs.reason = f[3]
			} else if vs.groups, err = d.groups(f[3], len(tb.systems), tb.systems); err != nil {
				return nil, fmt.Errorf("line %d: %v", d.line, err)
			}
			if n := len(tb.valueSets); n > 0 && tb.valueSets[n-1].url >= vs.url {
				return nil, fmt.Errorf("line %d: value set %s out of order", d.line, vs.url)
			}
			tb.valueSets = append(tb.valueSets, vs)
		default:
			return nil, fmt.Errorf("line %d: unexpected %q", d.line, line)
		}
	}
	return tb, nil
}

type decoder struct {
	rest string // the text not read yet
	line int
}

// next returns the next line, a substring of the table's text.
func (d *decoder) next() (string, bool) {
	if d.rest == "" {
		return "", false
	}
	line, rest, _ := strings.Cut(d.rest, "\n")
	d.rest = rest
	d.line++
	return line, true
}

func (d *decoder) system(f []string) (system, error) {
	s := system{url: f[1], complete: f[2] == "1"}
	n, err := strconv.Atoi(f[3])
	if err != nil || n < 0 || (f[2] != "0" && f[2] != "1") {
		return s, fmt.Errorf("bad code system line for %s", f[1])
	}
	s.codes = make([]string, n)
	var parentOf [][2]int32 // child, parent
	for i := 0; i < n; i++ {
		line, ok := d.next()
		if !ok {
			return s, fmt.Errorf("code system %s: %d codes, %d given", s.url, n, i)
		}
		code, parents, hasParents := strings.Cut(line, "\t")
		if i > 0 && s.codes[i-1] >= code {
			return s, fmt.Errorf("code system %s: code %q out of order", s.url, code)
		}
		s.codes[i] = code
		if !hasParents {
			continue
		}
		for _, p := range strings.Split(parents, ",") {
			j, err := strconv.Atoi(p)
			if err != nil || j < 0 || j >= n {
				return s, fmt.Errorf("code system %s: code %q: bad parent %q", s.url, code, p)
			}
			parentOf = append(parentOf, [2]int32{int32(i), int32(j)})
		}
	}
	if len(parentOf) > 0 {
		s.parents = newAdjacency(n, parentOf, false)
		s.children = newAdjacency(n, parentOf, true)
	}
	return s, nil
}

// newAdjacency builds the lists from (child, parent) links: each code's
// parents, or with reverse each code's children.
func newAdjacency(n int, links [][2]int32, reverse bool) *adjacency {
	from, to := 0, 1
	if reverse {
		from, to = 1, 0
	}
	a := &adjacency{off: make([]int32, n+1), to: make([]int32, len(links))}
	for _, l := range links {
		a.off[l[from]+1]++
	}
	for i := 1; i <= n; i++ {
		a.off[i] += a.off[i-1]
	}
	fill := append([]int32(nil), a.off[:n]...)
	for _, l := range links {
		a.to[fill[l[from]]] = l[to]
		fill[l[from]]++
	}
	return a
}

func (d *decoder) groups(count string, nsys int, systems []system) ([]group, error) {
	n, err := strconv.Atoi(count)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("bad group count %q", count)
	}
	gs := make([]group, n)
	for i := range gs {
		line, ok := d.next()
		if !ok {
			return nil, errors.New("missing group lines")
		}
		sysField, rangesField, ok := strings.Cut(line, "\t")
		s, err := strconv.Atoi(sysField)
		if !ok || err != nil || s < 0 || s >= nsys {
			return nil, fmt.Errorf("bad group %q", line)
		}
		gs[i].system = int32(s)
		ncodes := len(systems[s].codes)
		last := -1
		for _, r := range strings.Split(rangesField, ",") {
			a, b, isRange := strings.Cut(r, "-")
			lo, err1 := strconv.Atoi(a)
			hi, err2 := lo, error(nil)
			if isRange {
				hi, err2 = strconv.Atoi(b)
			}
			if err1 != nil || err2 != nil || lo <= last || hi < lo || hi >= ncodes {
				return nil, fmt.Errorf("bad range %q in group %q", r, line)
			}
			gs[i].ranges = append(gs[i].ranges, int32(lo), int32(hi))
			last = hi
		}
	}
	return gs, nil
}
