package storetest

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/fhirserver/fhirserver/fhir/search"
	"github.com/fhirserver/fhirserver/importer"
	"github.com/fhirserver/fhirserver/store"
)

// benchClients is the number of concurrent clients of the search
// benchmarks (b.SetParallelism is per GOMAXPROCS).
const benchClients = 16

// benchData returns the folder of Synthea bundles for the benchmarks: the
// full set in ../shared/data/synthea-r4 when it is there, else the two
// bundles of testdata/synthea.
func benchData(b *testing.B) string {
	_, file, _, _ := runtime.Caller(0)
	full := filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "data", "synthea-r4")
	if _, err := os.Stat(full); err == nil {
		return full
	}
	return syntheaDir(b)
}

// benchSearch loads the Synthea bundles and measures common searches with
// benchClients concurrent clients, reporting requests per second.
func benchSearch(b *testing.B, opener func(b *testing.B) store.Store) {
	ctx := context.Background()
	s := opener(b)
	defer s.Close()
	se, ok := s.(store.Searcher)
	if !ok {
		b.Skip("the store does not implement store.Searcher")
	}
	dir := benchData(b)
	stats, err := (&importer.Importer{Store: s}).ImportPaths(ctx, []string{dir})
	if err != nil || stats.Skipped > 0 {
		b.Fatalf("loading %s: %v %+v", dir, err, stats)
	}
	b.Logf("loaded %d resources from %s in %s (%.0f resources/s)", stats.Created, dir, stats.Duration, float64(stats.Created)/stats.Duration.Seconds())

	// Patients, their family names and a frequent observation code.
	page, err := se.Search(ctx, store.DefaultTenant, benchQuery(b, "Patient", "_count=1000&_sort=_id"))
	if err != nil || len(page.Matches) == 0 {
		b.Fatalf("listing patients: %v", err)
	}
	var patients, families []string
	for _, p := range page.Matches {
		patients = append(patients, p.ID)
		var m map[string]any
		if err := json.Unmarshal(p.Body, &m); err != nil {
			b.Fatal(err)
		}
		if names, _ := m["name"].([]any); len(names) > 0 {
			if fam, _ := names[0].(map[string]any)["family"].(string); len(fam) >= 3 {
				families = append(families, fam[:3])
			}
		}
	}
	cases := []struct {
		name  string
		typ   string
		query func(i int) string
	}{
		{"PatientName", "Patient", func(i int) string { return "name=" + url.QueryEscape(families[i%len(families)]) }},
		{"ObservationPatientCode", "Observation", func(i int) string {
			return "patient=" + patients[i%len(patients)] + "&code=http://loinc.org|8302-2"
		}},
		{"ObservationPatientDateSort", "Observation", func(i int) string {
			return "patient=" + patients[i%len(patients)] + "&date=ge2015-01-01&_sort=-date"
		}},
		{"PatientRevincludeEncounter", "Patient", func(i int) string {
			return "_id=" + patients[i%len(patients)] + "&_revinclude=Encounter:patient"
		}},
		{"EncounterChainPatientName", "Encounter", func(i int) string {
			return "subject:Patient.name=" + url.QueryEscape(families[i%len(families)])
		}},
	}
	for _, tc := range cases {
		queries := make([]*search.Query, 64)
		for i := range queries {
			queries[i] = benchQuery(b, tc.typ, tc.query(i))
		}
		b.Run(tc.name, func(b *testing.B) {
			var next atomic.Int64
			b.SetParallelism(max(1, benchClients/runtime.GOMAXPROCS(0)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					q := queries[next.Add(1)%int64(len(queries))]
					if _, err := se.Search(ctx, store.DefaultTenant, q); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}

// benchImportSynthea imports the Synthea bundles with the importer (its
// parallel batches, no validation) into a fresh tenant per iteration.
func benchImportSynthea(b *testing.B, opener func(b *testing.B) store.Store) {
	ctx := context.Background()
	s := opener(b)
	defer s.Close()
	dir := benchData(b)
	b.ResetTimer()
	total := 0
	for i := 0; i < b.N; i++ {
		stats, err := (&importer.Importer{Store: s, Tenant: "bench-import-" + strconv.Itoa(i)}).ImportPaths(ctx, []string{dir})
		if err != nil || stats.Skipped > 0 {
			b.Fatalf("importing: %v %+v", err, stats)
		}
		total += stats.Created + stats.Updated + stats.Unchanged
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "resources/s")
}

func benchQuery(b *testing.B, typ, raw string) *search.Query {
	vals, err := url.ParseQuery(raw)
	if err != nil {
		b.Fatal(err)
	}
	q, err := search.Parse(vals, search.Options{Types: []string{typ}, Strict: true})
	if err != nil {
		b.Fatalf("%s?%s: %v", typ, raw, err)
	}
	return q
}
