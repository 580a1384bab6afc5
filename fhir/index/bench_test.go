package index

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/fhirserver/fhirserver/fhir"
)

// BenchmarkExtract measures extraction of single resources of several
// sizes, as done on every write.
func BenchmarkExtract(b *testing.B) {
	for _, c := range []struct{ name, file string }{
		{"Observation-2KB", "observation-2kb.json"},
		{"Observation-quantity-1KB", "synthea-Observation-quantity.json"},
		{"Observation-bloodpressure-1.8KB", "synthea-Observation-bp.json"},
		{"Patient-5KB", "synthea-Patient.json"},
		{"ExplanationOfBenefit-5KB", "synthea-ExplanationOfBenefit.json"},
	} {
		body, err := os.ReadFile(filepath.Join("testdata", c.file))
		if err != nil {
			b.Fatal(err)
		}
		typ, _, err := fhir.Envelope(body)
		if err != nil {
			b.Fatal(err)
		}
		x := NewExtractor()
		if _, err := x.Extract(typ, body); err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := x.Extract(typ, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkExtractSyntheaBundle extracts every resource of one Synthea
// bundle (skipped without ../shared) and reports resources per second.
func BenchmarkExtractSyntheaBundle(b *testing.B) {
	resources := syntheaResources(b, "Sherman_McGlynn_")
	x := NewExtractor()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, r := range resources {
			if _, err := x.Extract(r.typ, r.body); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*len(resources))/b.Elapsed().Seconds(), "resources/s")
}

type bundleResource struct {
	typ  string
	body []byte
}

var syntheaDir = filepath.Join("..", "..", "..", "shared", "data", "synthea-r4")

var urnUUID = regexp.MustCompile(`"urn:uuid:[0-9a-fA-F-]{36}"`)

// syntheaResources reads the resources of the Synthea bundle whose file
// name starts with prefix, with urn:uuid references rewritten to Type/id as
// a transaction would. It skips when ../shared is absent.
func syntheaResources(tb testing.TB, prefix string) []bundleResource {
	tb.Helper()
	files, _ := filepath.Glob(filepath.Join(syntheaDir, prefix+"*.json"))
	if len(files) != 1 {
		tb.Skipf("%s*.json is absent (as in a fresh clone): the Synthea data lives in ../shared", filepath.Join(syntheaDir, prefix))
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		tb.Fatal(err)
	}
	var bundle struct {
		Entry []struct {
			FullURL  string          `json:"fullUrl"`
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(raw, &bundle); err != nil {
		tb.Fatal(err)
	}
	local := map[string]string{}
	var out []bundleResource
	for _, e := range bundle.Entry {
		typ, id, err := fhir.Envelope(e.Resource)
		if err != nil {
			tb.Fatal(err)
		}
		local[`"`+e.FullURL+`"`] = `"` + typ + "/" + id + `"`
		out = append(out, bundleResource{typ: typ, body: e.Resource})
	}
	for i := range out {
		out[i].body = urnUUID.ReplaceAllFunc(out[i].body, func(m []byte) []byte {
			if r, ok := local[string(m)]; ok {
				return []byte(r)
			}
			return m
		})
	}
	return out
}

// Every resource of five Synthea bundles extracts without error.
func TestExtractSyntheaBundles(t *testing.T) {
	prefixes := []string{"Abdul_Koepp_", "Beatrice_Aufderhar_", "José_María_Casares_", "Sherman_McGlynn_", "Lourdes_Alcántar_"}
	perType := map[string]int{}
	rows := map[string]int{}
	compartments := map[string]int{}
	var took time.Duration
	n := 0
	x := NewExtractor()
	for _, p := range prefixes {
		for _, r := range syntheaResources(t, p) {
			start := time.Now()
			e, err := x.Extract(r.typ, r.body)
			took += time.Since(start)
			if err != nil {
				t.Errorf("%s %s: %v", p, r.typ, err)
				continue
			}
			n++
			perType[r.typ]++
			rows["string"] += len(e.Strings)
			rows["token"] += len(e.Tokens)
			rows["reference"] += len(e.References)
			rows["date"] += len(e.Dates)
			rows["number"] += len(e.Numbers)
			rows["quantity"] += len(e.Quantities)
			rows["uri"] += len(e.URIs)
			rows["composite"] += len(e.Composites)
			rows["position"] += len(e.Positions)
			for _, c := range e.Compartments {
				compartments[c.Type]++
			}
			if r.typ != "Organization" && r.typ != "Practitioner" && !inCompartment(e, "Patient") {
				t.Errorf("%s %s/%s is in no Patient compartment", p, r.typ, e.ID)
			}
		}
	}
	t.Logf("%d resources from %d bundles in %v (%v per resource), 0 errors", n, len(prefixes), took, took/time.Duration(max(n, 1)))
	t.Logf("resources by type: %s", counts(perType))
	t.Logf("index rows by kind: %s", counts(rows))
	t.Logf("compartment memberships: %s", counts(compartments))
}

func inCompartment(e *Entries, typ string) bool {
	for _, c := range e.Compartments {
		if c.Type == typ {
			return true
		}
	}
	return false
}

func counts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := ""
	for _, k := range keys {
		if s != "" {
			s += ", "
		}
		s += k + " " + strconv.Itoa(m[k])
	}
	return s
}
