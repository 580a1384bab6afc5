package search_test

import (
	"fmt"
	"net/url"

	"github.com/fhirserver/fhirserver/fhir/search"
)

func ExampleParse() {
	params, _ := url.ParseQuery("subject:Patient.name=peter&date=ge2020-03&code=http://loinc.org|8480-6,8462-4&_count=0&foo=1")
	q, err := search.Parse(params, search.Options{Types: []string{"Observation"}, DefaultCount: 20, MaxCount: 100})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, c := range q.Clauses {
		fmt.Println(c.Code, c.TargetType, len(c.Values), c.Chain != nil)
	}
	fmt.Println(q.Clauses[1].Values[0].Low, q.Clauses[1].Values[0].High)
	fmt.Println(q.Summary, q.Count, q.Unknown)
	p := q.Params()
	p.Del("_type") // the type is in the path of a type-level search
	fmt.Println(p.Encode())
	// Output:
	// code  2 false
	// date  1 false
	// subject Patient 0 true
	// 2020-03-01 00:00:00 +0000 UTC 2020-04-01 00:00:00 +0000 UTC
	// count 0 [{foo Observation has no search parameter foo}]
	// _summary=count&code=http%3A%2F%2Floinc.org%7C8480-6%2C8462-4&date=ge2020-03&subject%3APatient.name=peter
}
