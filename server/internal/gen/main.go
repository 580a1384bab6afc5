// Command gen writes search_elements_gen.go of package server from the FHIR
// R4 StructureDefinitions of the resources (profiles-resources.json.gz): for
// every resource type its top-level elements, which of them are summary
// elements (isSummary) and which are mandatory (min > 0), and for every
// backbone element that a summary keeps, its own summary elements. The
// server uses the table for _summary and _elements. It is run by go
// generate in the server folder:
//
//	go run ./internal/gen [-spec ../../shared/fhir-r4] [-out search_elements_gen.go]
//
// It stops with an error on anything it cannot map.
package main

import (
	"bytes"
	"fmt"
	"go/format"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/fhirserver/fhirserver/internal/fhirspec"
)

// OutFile is the generated file, relative to the server package folder.
const OutFile = "search_elements_gen.go"

func main() {
	fhirspec.Main(filepath.Join("..", "..", "shared", "fhir-r4"), OutFile, generate)
}

type structureDefinition struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Kind         string `json:"kind"`
	Abstract     bool   `json:"abstract"`
	Type         string `json:"type"`
	Snapshot     struct {
		Element []elementDefinition `json:"element"`
	} `json:"snapshot"`
}

type elementDefinition struct {
	Path             string `json:"path"`
	Min              int    `json:"min"`
	IsSummary        *bool  `json:"isSummary"`
	ContentReference string `json:"contentReference"`
	SliceName        string `json:"sliceName"`
	Type             []struct {
		Code string `json:"code"`
	} `json:"type"`
}

// element is one element as the generated table states it.
type element struct {
	name      string // without [x]
	choice    bool
	summary   bool
	mandatory bool
	backbone  string // path of the backbone element whose elements apply inside
}

// generate reads the resource StructureDefinitions in specDir and returns
// the gofmt-ed source of the table.
func generate(specDir string) ([]byte, error) {
	sds, err := readResources(filepath.Join(specDir, "profiles-resources.json.gz"))
	if err != nil {
		return nil, err
	}
	table := map[string][]element{}
	for _, sd := range sds {
		if err := addResource(table, sd); err != nil {
			return nil, fmt.Errorf("StructureDefinition %s: %v", sd.ID, err)
		}
	}
	return write(table)
}

// readResources returns the StructureDefinitions of the concrete resource
// types in the Bundle file at path.
func readResources(path string) ([]structureDefinition, error) {
	sds, err := fhirspec.ReadBundle[structureDefinition](path, "StructureDefinition")
	if err != nil {
		return nil, err
	}
	var out []structureDefinition
	for _, sd := range sds {
		if sd.Kind != "resource" || sd.Abstract {
			continue
		}
		out = append(out, sd)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no resource StructureDefinitions", path)
	}
	return out, nil
}

// addResource adds the top-level elements of sd, and the summary elements
// of the backbone elements that summaries reach, to table.
func addResource(table map[string][]element, sd structureDefinition) error {
	if sd.Type != sd.ID {
		return fmt.Errorf("type %q differs from id", sd.Type)
	}
	els := sd.Snapshot.Element
	if len(els) == 0 || els[0].Path != sd.ID {
		return fmt.Errorf("the snapshot does not start with the root element")
	}
	// Children by parent path, in snapshot order.
	children := map[string][]elementDefinition{}
	known := map[string]bool{sd.ID: true}
	for _, ed := range els[1:] {
		if ed.SliceName != "" {
			return fmt.Errorf("element %s: slices cannot be mapped", ed.Path)
		}
		dot := strings.LastIndexByte(ed.Path, '.')
		if dot < 0 || !known[ed.Path[:dot]] {
			return fmt.Errorf("element %s: its parent comes later or not at all", ed.Path)
		}
		if known[ed.Path] {
			return fmt.Errorf("element %s appears twice", ed.Path)
		}
		known[ed.Path] = true
		children[ed.Path[:dot]] = append(children[ed.Path[:dot]], ed)
	}
	var visit func(path string, top bool) error
	visit = func(path string, top bool) error {
		if _, done := table[path]; done {
			return nil
		}
		table[path] = nil // mark, so that content references cannot loop
		var list []element
		for _, ed := range children[path] {
			if ed.IsSummary == nil {
				return fmt.Errorf("element %s has no isSummary", ed.Path)
			}
			name := ed.Path[len(path)+1:]
			el := element{name: name, summary: *ed.IsSummary, mandatory: top && ed.Min > 0}
			if strings.HasSuffix(name, "[x]") {
				el.name, el.choice = strings.TrimSuffix(name, "[x]"), true
			}
			if strings.ContainsAny(el.name, "[].") || el.name == "" {
				return fmt.Errorf("element %s: cannot map its name", ed.Path)
			}
			switch {
			case ed.ContentReference != "":
				ref := strings.TrimPrefix(ed.ContentReference, "#")
				if ref == ed.ContentReference || !known[ref] || len(children[ref]) == 0 {
					return fmt.Errorf("element %s: cannot map contentReference %q", ed.Path, ed.ContentReference)
				}
				el.backbone = ref
			case len(children[ed.Path]) > 0:
				if len(ed.Type) != 1 || ed.Type[0].Code != "BackboneElement" {
					return fmt.Errorf("element %s has children but is no BackboneElement", ed.Path)
				}
				el.backbone = ed.Path
			}
			if !top && !el.summary {
				continue // inside a backbone element only summaries matter
			}
			if el.backbone != "" && el.summary {
				if err := visit(el.backbone, false); err != nil {
					return err
				}
			} else {
				el.backbone = ""
			}
			list = append(list, el)
		}
		table[path] = list
		return nil
	}
	return visit(sd.ID, true)
}

const header = `// Code generated by go run ./internal/gen from ../shared/fhir-r4 (FHIR R4 4.0.1); DO NOT EDIT.

package server

// elementTable lists, for each resource type, its top-level elements, and,
// for each backbone element that a summary (_summary=true) keeps, the
// summary elements inside it. Keys are resource types and backbone paths.
func elementTable() map[string][]elementDef {
	return map[string][]elementDef{
`

func write(table map[string][]element) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(header)
	keys := make([]string, 0, len(table))
	for k := range table {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: {\n", strconv.Quote(k))
		for _, el := range table[k] {
			var flags []string
			if el.choice {
				flags = append(flags, "elChoice")
			}
			if el.summary {
				flags = append(flags, "elSummary")
			}
			if el.mandatory {
				flags = append(flags, "elMandatory")
			}
			f := "0"
			if len(flags) > 0 {
				f = strings.Join(flags, "|")
			}
			fmt.Fprintf(&b, "{%s, %s, %s},\n", strconv.Quote(el.name), f, strconv.Quote(el.backbone))
		}
		b.WriteString("},\n")
	}
	b.WriteString("}\n}\n")
	src, err := format.Source(b.Bytes())
	if err != nil {
		return nil, fmt.Errorf("gofmt: %v", err)
	}
	return src, nil
}
