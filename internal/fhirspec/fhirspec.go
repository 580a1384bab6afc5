// Package fhirspec holds what the code generators share: reading the FHIR
// R4 definition files (the spec folder, ../shared/fhir-r4 in a development
// checkout) and the command line of a generator that writes one file.
// Only generators import it; the server never reads the spec at run time.
package fhirspec

import (
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// ReadJSON decodes the JSON file at path into v, through gzip when the name
// ends in .gz (the larger definition files are shipped compressed).
func ReadJSON(path string, v any) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		defer zr.Close()
		r = zr
	}
	if err := json.NewDecoder(r).Decode(v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// ReadBundle returns the entries of the Bundle file at path whose
// resourceType is resourceType, each decoded into an R; the others (a
// profiles file mixes several kinds) are passed over.
func ReadBundle[R any](path, resourceType string) ([]R, error) {
	var b struct {
		ResourceType string `json:"resourceType"`
		Entry        []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := ReadJSON(path, &b); err != nil {
		return nil, err
	}
	if b.ResourceType != "Bundle" {
		return nil, fmt.Errorf("%s: not a Bundle", path)
	}
	var out []R
	for i, e := range b.Entry {
		var head struct {
			ResourceType string `json:"resourceType"`
		}
		if err := json.Unmarshal(e.Resource, &head); err != nil {
			return nil, fmt.Errorf("%s: entry %d: %w", path, i, err)
		}
		if head.ResourceType != resourceType {
			continue
		}
		var r R
		if err := json.Unmarshal(e.Resource, &r); err != nil {
			return nil, fmt.Errorf("%s: entry %d: %w", path, i, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// Main is the main function of a generator that writes one file: it takes
// the flags -spec (the spec folder, spec by default) and -out (the file to
// write, out by default), and writes what generate makes of the spec
// folder, or stops with the error and exit status 1 (2 for stray
// arguments).
func Main(spec, out string, generate func(spec string) ([]byte, error)) {
	specFlag := flag.String("spec", spec, "folder with the FHIR R4 definition files")
	outFlag := flag.String("out", out, "file to write")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "gen: unexpected arguments:", flag.Args())
		os.Exit(2)
	}
	src, err := generate(*specFlag)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*outFlag, src, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
