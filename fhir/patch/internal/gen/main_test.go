package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// specDir is where the FHIR R4 definition files live in a development
// checkout: ../shared/fhir-r4 next to the repository.
var specDir = filepath.Join("..", "..", "..", "..", "..", "shared", "fhir-r4")

// The committed file is exactly what the generator makes now.
func TestGeneratedFileUpToDate(t *testing.T) {
	if _, err := os.Stat(filepath.Join(specDir, "profiles-resources.json.gz")); err != nil {
		t.Skipf("%s is absent (as in a fresh clone), so the generated file cannot be checked against the spec: %v", specDir, err)
	}
	want, err := generate(specDir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join("..", "..", OutFile))
	if err != nil {
		t.Fatalf("%v (run go generate ./fhir/patch)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is stale: run go generate ./fhir/patch", OutFile)
	}
}
