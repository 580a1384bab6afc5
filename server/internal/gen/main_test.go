package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// specDir is where the FHIR R4 definition files live in a development
// checkout: ../shared/fhir-r4 next to the repository.
var specDir = filepath.Join("..", "..", "..", "..", "shared", "fhir-r4")

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
		t.Fatalf("%v (run go generate ./server)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is stale (run go generate ./server): %s", OutFile, firstDiff(got, want))
	}
}

func firstDiff(a, b []byte) string {
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := 0; i < len(al) && i < len(bl); i++ {
		if al[i] != bl[i] {
			return "line " + strconv.Itoa(i+1) + ": committed " + al[i] + " | generated " + bl[i]
		}
	}
	return "lengths differ: " + strconv.Itoa(len(al)) + " vs " + strconv.Itoa(len(bl)) + " lines"
}

// The generator refuses what it cannot map.
func TestAddResourceRefuses(t *testing.T) {
	yes, no := true, false
	el := func(path string, summary *bool, typ ...string) elementDefinition {
		ed := elementDefinition{Path: path, IsSummary: summary}
		for _, c := range typ {
			ed.Type = append(ed.Type, struct {
				Code string `json:"code"`
			}{c})
		}
		return ed
	}
	cases := map[string][]elementDefinition{
		"no root":           {el("X.a", &yes)},
		"orphan":            {el("X", nil), el("X.a.b", &yes)},
		"no isSummary":      {el("X", nil), el("X.a", nil)},
		"slice":             {el("X", nil), {Path: "X.a", IsSummary: &yes, SliceName: "s"}},
		"bad reference":     {el("X", nil), {Path: "X.a", IsSummary: &yes, ContentReference: "#X.zz"}},
		"typed parent":      {el("X", nil), el("X.a", &yes, "Quantity"), el("X.a.b", &yes)},
		"duplicate element": {el("X", nil), el("X.a", &no), el("X.a", &no)},
	}
	for name, els := range cases {
		sd := structureDefinition{ID: "X", Type: "X"}
		sd.Snapshot.Element = els
		if err := addResource(map[string][]element{}, sd); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
