package fhir

// The search-parameter registry, the compartment definitions and the type
// model are generated from the FHIR R4 definition files in ../shared/fhir-r4
// (relative to the repository root). Regenerate with `go generate ./fhir`.
//go:generate go run ./internal/gen -spec ../../shared/fhir-r4
