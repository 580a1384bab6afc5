// Command gen writes the generated sources of package fhir from the FHIR R4
// definition files. It is run by go generate in the fhir folder:
//
//	go run ./internal/gen [-spec ../../shared/fhir-r4] [-out .]
//
// It reads search-parameters.json, compartmentdefinition-*.json,
// profiles-resources.json.gz, profiles-types.json and fhir.schema.json, and
// stops with an error on anything it cannot map.
//
// With -terminology (go generate in fhir/terminology) it writes the
// terminology table instead, from valuesets.json.gz, v3-codesystems.json.gz
// and v2-tables.json.gz:
//
//	go run ../internal/gen -terminology [-spec ../../../shared/fhir-r4] [-out .]
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
	term := flag.Bool("terminology", false, "write the terminology table (for fhir/terminology) instead")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "gen: unexpected arguments:", flag.Args())
		os.Exit(2)
	}
	if *term {
		table, err := specgen.Terminology(*spec)
		if err == nil {
			table, err = specgen.Gzip(table)
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(*out, specgen.TerminologyFile), table, 0o644)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
		return
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
