package fhir

import (
	"testing"
	"time"
)

const benchObservation = `{"resourceType":"Observation","id":"x","meta":{"tag":[{"system":"https://smarthealthit.org/tags","code":"synthea-5-2019"}]},"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs","display":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"8302-2","display":"Body Height"}],"text":"Body Height"},"subject":{"reference":"Patient/bench-patient"},"encounter":{"reference":"Encounter/bench-encounter"},"effectiveDateTime":"2012-11-17T07:10:38-05:00","issued":"2012-11-17T07:10:38.739-05:00","valueQuantity":{"value":176.35499866729558,"unit":"cm","system":"http://unitsofmeasure.org","code":"cm"}}`

func BenchmarkPrepareStamp(b *testing.B) {
	now := time.Now()
	for b.Loop() {
		p, err := Prepare([]byte(benchObservation))
		if err != nil {
			b.Fatal(err)
		}
		_ = p.Stamp("id", 2, now)
	}
}
