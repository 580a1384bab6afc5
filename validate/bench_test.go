package validate

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	"github.com/google/fhir/go/jsonformat/fhirvalidate"
)

// sampleOf returns the first resource of type typ in the test bundles,
// compact (as the importer sends it).
func sampleOf(b *testing.B, typ string) []byte {
	resources, _ := syntheaResources(b)
	for _, r := range resources {
		var h struct{ ResourceType string }
		if err := json.Unmarshal(r, &h); err == nil && h.ResourceType == typ {
			var buf bytes.Buffer
			if err := json.Compact(&buf, r); err != nil {
				b.Fatal(err)
			}
			return buf.Bytes()
		}
	}
	b.Fatalf("no %s in the test bundles", typ)
	return nil
}

// BenchmarkValidate is the cost of Validate for one typical Synthea
// Observation and Patient (with narrative); see b.SetBytes for their sizes.
func BenchmarkValidate(b *testing.B) {
	v, err := New()
	if err != nil {
		b.Fatal(err)
	}
	for _, typ := range []string{"Observation", "Patient"} {
		body := sampleOf(b, typ)
		b.Run(typ, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for i := 0; i < b.N; i++ {
				if err := v.Validate(typ, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkUnmarshallers compares the library's ways of checking a resource,
// to justify the choice made in New: "extended" (NewUnmarshaller, what we
// use), "primitives" (NewUnmarshallerWithoutValidation: no required-element
// or reference-type checks), and "primitives+fhirvalidate" (the same plus a
// separate fhirvalidate.Validate walk). Also the cost of our pre-pass alone.
func BenchmarkUnmarshallers(b *testing.B) {
	extended, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		b.Fatal(err)
	}
	primitives, err := jsonformat.NewUnmarshallerWithoutValidation("UTC", fhirversion.R4)
	if err != nil {
		b.Fatal(err)
	}
	for _, typ := range []string{"Observation", "Patient"} {
		body := sampleOf(b, typ)
		b.Run(typ+"/extended", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := extended.Unmarshal(body); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(typ+"/primitives", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := primitives.Unmarshal(body); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(typ+"/primitives+fhirvalidate", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				r, err := primitives.Unmarshal(body)
				if err != nil {
					b.Fatal(err)
				}
				if err := fhirvalidate.Validate(r); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(typ+"/prepass", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				sc := scanner{buf: body}
				sc.scan()
				if sc.syntax || len(sc.issues) > 0 {
					b.Fatal("pre-pass found problems")
				}
			}
		})
	}
}
