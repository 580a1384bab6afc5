// Command gen writes the generated sources of package fhir from the FHIR R4
// definition files. It is run by go generate in the fhir folder:
//
//	go run ./internal/gen [-spec ../../shared/fhir-r4] [-out .]
//
// It reads search-parameters.json, compartmentdefinition-*.json,
// profiles-resources.json.gz, profiles-types.json and fhir.schema.json, and
// stops with an error on anything it cannot map.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/fhirserver/fhirserver/fhir/internal/specgen"
)

func main() {
	spec := flag.String("spec", filepath.Join("..", "..", "shared", "fhir-r4"), "folder with the FHIR R4 definition files")
	out := flag.String("out", ".", "folder to write the generated files to (the fhir package)")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "gen: unexpected arguments:", flag.Args())
		os.Exit(2)
	}
	files, err := specgen.Generate(*spec)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := os.WriteFile(filepath.Join(*out, name), files[name], 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
	}
}
