package patch

// repeating_gen.go is generated from the R4 StructureDefinitions in
// ../shared/fhir-r4 (relative to the repository root). Regenerate with
// `go generate ./fhir/patch`.
//go:generate go run ./internal/gen -spec ../../../shared/fhir-r4
