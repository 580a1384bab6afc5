package specgen

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/fhirserver/fhirserver/internal/fhirspec"
)

// model is the type information taken from the StructureDefinitions.
type model struct {
	// resourceTypes are the concrete resource types, sorted.
	resourceTypes []string
	// base maps every type (primitive, complex, resource, backbone path) to
	// the type it derives from; "" for Element and Resource.
	base map[string]string
	// elements maps a type to its own elements (not inherited ones).
	elements map[string][]element
}

type element struct {
	name   string   // without [x]
	choice bool     // a value[x] element
	types  []string // type codes; a backbone element's type is its path
}

func (m *model) isResourceType(t string) bool {
	i := sort.SearchStrings(m.resourceTypes, t)
	return i < len(m.resourceTypes) && m.resourceTypes[i] == t
}

// derives reports whether t is s or derives from it.
func (m *model) derives(t, s string) bool {
	for ; t != ""; t = m.base[t] {
		if t == s {
			return true
		}
	}
	return false
}

type structureDefinition struct {
	ResourceType   string `json:"resourceType"`
	ID             string `json:"id"`
	URL            string `json:"url"`
	Kind           string `json:"kind"`
	Abstract       bool   `json:"abstract"`
	Type           string `json:"type"`
	BaseDefinition string `json:"baseDefinition"`
	Derivation     string `json:"derivation"`
	Differential   struct {
		Element []elementDefinition `json:"element"`
	} `json:"differential"`
}

type elementDefinition struct {
	Path             string `json:"path"`
	ContentReference string `json:"contentReference"`
	Type             []struct {
		Code      string `json:"code"`
		Extension []struct {
			URL      string `json:"url"`
			ValueURL string `json:"valueUrl"`
		} `json:"extension"`
	} `json:"type"`
}

const sdPrefix = "http://hl7.org/fhir/StructureDefinition/"

func readModel(specDir string) (*model, error) {
	m := &model{base: map[string]string{}, elements: map[string][]element{}}
	sds, err := fhirspec.ReadBundle[structureDefinition](filepath.Join(specDir, "profiles-types.json"), "StructureDefinition")
	if err != nil {
		return nil, err
	}
	res, err := fhirspec.ReadBundle[structureDefinition](filepath.Join(specDir, "profiles-resources.json.gz"), "StructureDefinition")
	if err != nil {
		return nil, err
	}
	sds = append(sds, res...)
	for _, sd := range sds {
		switch sd.Kind {
		case "primitive-type", "complex-type", "resource":
		case "logical":
			continue // MetadataResource: not a type that occurs in instances
		default:
			return nil, fmt.Errorf("StructureDefinition %s: unknown kind %q", sd.ID, sd.Kind)
		}
		if sd.ID != sd.Type && sd.Derivation != "constraint" {
			return nil, fmt.Errorf("StructureDefinition %s: type %q differs from id", sd.ID, sd.Type)
		}
		if _, dup := m.base[sd.ID]; dup {
			return nil, fmt.Errorf("StructureDefinition %s defined twice", sd.ID)
		}
		base := ""
		if sd.BaseDefinition != "" {
			if !strings.HasPrefix(sd.BaseDefinition, sdPrefix) {
				return nil, fmt.Errorf("StructureDefinition %s: cannot map baseDefinition %q", sd.ID, sd.BaseDefinition)
			}
			base = strings.TrimPrefix(sd.BaseDefinition, sdPrefix)
		}
		m.base[sd.ID] = base
		if sd.Kind == "resource" && !sd.Abstract {
			m.resourceTypes = append(m.resourceTypes, sd.ID)
		}
		if sd.Kind == "primitive-type" || sd.Derivation == "constraint" {
			continue // no elements of their own that expressions navigate
		}
		for _, ed := range sd.Differential.Element {
			if ed.Path == sd.ID {
				continue
			}
			if err := m.addElement(sd.ID, ed); err != nil {
				return nil, fmt.Errorf("StructureDefinition %s: %v", sd.ID, err)
			}
		}
	}
	for t, b := range m.base {
		if b != "" {
			if _, ok := m.base[b]; !ok {
				return nil, fmt.Errorf("type %s derives from unknown type %s", t, b)
			}
		}
	}
	sort.Strings(m.resourceTypes)
	for _, t := range m.resourceTypes {
		if !m.derives(t, "Resource") {
			return nil, fmt.Errorf("resource type %s does not derive from Resource", t)
		}
	}
	if err := checkSchema(filepath.Join(specDir, "fhir.schema.json"), m.resourceTypes); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *model) addElement(typeName string, ed elementDefinition) error {
	path := ed.Path
	dot := strings.LastIndexByte(path, '.')
	if dot < 0 || !strings.HasPrefix(path, typeName+".") {
		return fmt.Errorf("element %q is not inside %s", path, typeName)
	}
	parent, name := path[:dot], path[dot+1:]
	el := element{name: name}
	if strings.HasSuffix(name, "[x]") {
		el.name, el.choice = strings.TrimSuffix(name, "[x]"), true
	}
	if parent != typeName {
		if _, ok := m.base[parent]; !ok {
			return fmt.Errorf("element %q: parent %s is not a backbone element seen before", path, parent)
		}
	}
	switch {
	case ed.ContentReference != "":
		if !strings.HasPrefix(ed.ContentReference, "#") || len(ed.Type) > 0 {
			return fmt.Errorf("element %q: cannot map contentReference %q", path, ed.ContentReference)
		}
		el.types = []string{strings.TrimPrefix(ed.ContentReference, "#")}
	case len(ed.Type) == 0:
		return fmt.Errorf("element %q has no type", path)
	}
	for _, t := range ed.Type {
		code := t.Code
		switch {
		case code == "BackboneElement" || code == "Element":
			if el.choice || len(ed.Type) != 1 {
				return fmt.Errorf("element %q: backbone element in a choice", path)
			}
			bb := parent + "." + el.name
			m.base[bb] = code
			code = bb
		case strings.HasPrefix(code, "http://hl7.org/fhirpath/System."):
			fhirType := ""
			for _, x := range t.Extension {
				if x.URL == "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type" {
					fhirType = x.ValueURL
				}
			}
			if fhirType == "" {
				return fmt.Errorf("element %q: cannot map type %q", path, code)
			}
			code = fhirType
		case code == "":
			return fmt.Errorf("element %q: empty type code", path)
		}
		el.types = append(el.types, code)
	}
	for _, prev := range m.elements[parent] {
		if prev.name == el.name {
			return fmt.Errorf("element %q defined twice", path)
		}
	}
	m.elements[parent] = append(m.elements[parent], el)
	return nil
}

// checkSchema compares the resource types with the resourceType
// discriminator of fhir.schema.json; the two sources must agree.
func checkSchema(path string, resourceTypes []string) error {
	var schema struct {
		Discriminator struct {
			Mapping map[string]string `json:"mapping"`
		} `json:"discriminator"`
	}
	if err := fhirspec.ReadJSON(path, &schema); err != nil {
		return err
	}
	got := sortedKeys(schema.Discriminator.Mapping)
	if strings.Join(got, ",") != strings.Join(resourceTypes, ",") {
		return fmt.Errorf("%s: the %d discriminator entries differ from the %d concrete resource StructureDefinitions", path, len(got), len(resourceTypes))
	}
	return nil
}

func writeTypes(m *model) string {
	var w writer
	w.f("%s", header)
	w.f("// resourceTypeList holds the %d concrete resource types (StructureDefinitions\n", len(m.resourceTypes))
	w.f("// of kind resource, not abstract, in profiles-resources.json.gz), sorted.\n")
	w.f("func resourceTypeList() []string {\n\treturn []string{\n")
	for _, t := range m.resourceTypes {
		w.f("\t%q,\n", t)
	}
	w.f("\t}\n}\n\n")

	w.f("// baseTypeTable maps each type to the type it derives from. Backbone\n")
	w.f("// elements are types named by their path (Observation.component).\n")
	w.f("func baseTypeTable() [][2]string {\n\treturn [][2]string{\n")
	for _, t := range sortedKeys(m.base) {
		w.f("\t{%q, %q},\n", t, m.base[t])
	}
	w.f("\t}\n}\n\n")

	w.f("// elementTable lists the elements each type defines itself (inherited\n")
	w.f("// ones come from its base types): type, element name, choice, types.\n")
	w.f("func elementTable() []elementRow {\n\treturn []elementRow{\n")
	for _, t := range sortedKeys(m.elements) {
		els := append([]element(nil), m.elements[t]...)
		sort.Slice(els, func(i, j int) bool { return els[i].name < els[j].name })
		for _, el := range els {
			w.f("\t{%q, %q, %v, %s},\n", t, el.name, el.choice, quoteList(el.types))
		}
	}
	w.f("\t}\n}\n")
	return w.String()
}
