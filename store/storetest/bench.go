package storetest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/fhirserver/fhirserver/store"
)

// observation is a typical ~1 KB Synthea Observation.
const observation = `{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs","display":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"8302-2","display":"Body Height"}],"text":"Body Height"},"subject":{"reference":"Patient/bench-patient"},"encounter":{"reference":"Encounter/bench-encounter"},"effectiveDateTime":"2012-11-17T07:10:38-05:00","issued":"2012-11-17T07:10:38.739-05:00","valueQuantity":{"value":176.35499866729558,"unit":"cm","system":"http://unitsofmeasure.org","code":"cm"}}`

// Bench runs the store benchmarks with parallel clients; resources per
// second are reported as a metric.
func Bench(b *testing.B, opener func(b *testing.B) store.Store) {
	ctx := context.Background()
	b.Run("Create", func(b *testing.B) {
		s := opener(b)
		defer s.Close()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.Create(ctx, store.Write{Type: "Observation", Body: []byte(observation)}); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "resources/s")
	})
	b.Run("Read", func(b *testing.B) {
		s := opener(b)
		defer s.Close()
		const n = 1000
		ids := make([]string, n)
		for i := range ids {
			res, err := s.Create(ctx, store.Write{Type: "Observation", Body: []byte(observation)})
			if err != nil {
				b.Fatal(err)
			}
			ids[i] = res.ID
		}
		var next atomic.Int64
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				id := ids[next.Add(1)%n]
				if _, err := s.Read(ctx, store.DefaultTenant, "Observation", id); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
	})
	b.Run("ImportSynthea", func(b *testing.B) { benchImportSynthea(b, opener) })
	b.Run("Search", func(b *testing.B) { benchSearch(b, opener) })
	b.Run("Import500", func(b *testing.B) {
		s := opener(b)
		defer s.Close()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			ws := make([]store.Write, 500)
			for j := range ws {
				ws[j] = store.Write{Type: "Observation", ID: fmt.Sprintf("imp-%d-%d", i, j), Body: []byte(observation)}
			}
			if _, err := s.Import(ctx, store.DefaultTenant, ws); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "resources/s")
	})
}
