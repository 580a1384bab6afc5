package server_test

import (
	"net/http"
	"testing"

	"github.com/fhirserver/fhirserver/server"
	"github.com/fhirserver/fhirserver/server/servertest"
)

// Bodies that are well-formed JSON with the right resourceType but not valid
// R4 are refused by the validator with 400 and an OperationOutcome naming
// the problem; nothing is stored.
func TestValidation(t *testing.T) {
	v1 := []servertest.Scenario{put("/fhir/Patient/p1", patientP1)}
	unchanged := []servertest.Scenario{{
		Name: "unchanged", Path: "/fhir/Patient/p1/_history", ExpectStatus: 200,
		ExpectContains: []string{`"total":1`}, ExpectNotContains: []string{"1970"},
	}}
	servertest.Run(t, newHandler, []servertest.Scenario{
		{
			Name: "unknown element on create", Method: http.MethodPost, Path: "/fhir/Patient", Header: fhirJSON,
			Body:         `{"resourceType":"Patient","favouriteColour":"blue"}`,
			ExpectStatus: 400, Check: expectOutcome("invalid", "favouriteColour"), After: nothingStored(),
		},
		{
			Name: "unknown element on update", Method: http.MethodPut, Path: "/fhir/Patient/p1", Header: fhirJSON, Before: v1,
			Body:         `{"resourceType":"Patient","id":"p1","birthDate":"1970-01-01","favouriteColour":"blue"}`,
			ExpectStatus: 400, Check: expectOutcome("invalid", "favouriteColour"), After: unchanged,
		},
		{
			Name: "unknown element on update-as-create", Method: http.MethodPut, Path: "/fhir/Patient/p1", Header: fhirJSON,
			Body:         `{"resourceType":"Patient","id":"p1","favouriteColour":"blue"}`,
			ExpectStatus: 400, Check: expectOutcome("invalid", "favouriteColour"), After: nothingStored(),
		},
		{
			Name: "bad primitive", Method: http.MethodPost, Path: "/fhir/Patient", Header: fhirJSON,
			Body:         `{"resourceType":"Patient","birthDate":"yesterday"}`,
			ExpectStatus: 400, Check: expectOutcome("invalid", "birthDate"), After: nothingStored(),
		},
		{
			Name: "wrong JSON type", Method: http.MethodPost, Path: "/fhir/Patient", Header: fhirJSON,
			Body:         `{"resourceType":"Patient","active":"yes"}`,
			ExpectStatus: 400, Check: expectOutcome("invalid", "active"), After: nothingStored(),
		},
		{
			Name: "missing required element", Method: http.MethodPost, Path: "/fhir/Observation", Header: fhirJSON,
			Body:         `{"resourceType":"Observation","code":{"text":"x"}}`,
			ExpectStatus: 400, Check: expectOutcome("invalid", "status"), After: nothingStored(),
		},
		{
			Name: "valid resource", Method: http.MethodPost, Path: "/fhir/Patient", Header: fhirJSON,
			Body:         `{"resourceType":"Patient","birthDate":"1970-01-01","active":true,"name":[{"family":"Ok","given":["A"]}]}`,
			ExpectStatus: 201,
		},
	})
}

// Without a validator only the structure is checked: an unknown element is
// stored as sent. This is the documented meaning of a nil Validator.
func TestNilValidatorChecksStructureOnly(t *testing.T) {
	s := newServer(t, func(d *server.Deps) { d.Validator = nil })
	servertest.Scenario{
		Name: "unknown element accepted", Method: http.MethodPut, Path: "/fhir/Patient/p1", Header: fhirJSON,
		Body:         `{"resourceType":"Patient","id":"p1","favouriteColour":"blue"}`,
		ExpectStatus: 201, ExpectContains: []string{`"favouriteColour":"blue"`},
	}.Do(t, s)
	servertest.Scenario{
		Name: "structure still checked", Method: http.MethodPost, Path: "/fhir/Patient", Header: fhirJSON,
		Body:         `{"resourceType":"Observation"}`,
		ExpectStatus: 400, Check: expectOutcome("invalid", "does not match"),
	}.Do(t, s)
}
