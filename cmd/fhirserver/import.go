package main

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/term"

	"github.com/fhirserver/fhirserver/importer"
	"github.com/fhirserver/fhirserver/store"
	"github.com/fhirserver/fhirserver/validate"
)

type importCmd struct {
	Paths     []string `arg:"" name:"path" help:"Bundle (.json) or NDJSON (.ndjson) files, or folders of them." type:"path"`
	BatchSize int      `name:"batch-size" env:"FHIR_IMPORT_BATCH" default:"500" help:"Resources per database transaction."`
	Workers   int      `name:"workers" env:"FHIR_IMPORT_WORKERS" help:"Batches validated and loaded at once (default: 2 per CPU, so that validation overlaps database waits)."`
	NoVerify  bool     `name:"no-validate" help:"Skip R4 validation (faster; only for trusted data)."`
}

func (c *importCmd) Run(e *env) error {
	st, err := openStore(e.ctx, e.cli.DatabaseURL, e.cli.FullText)
	if err != nil {
		return fmt.Errorf("opening the database: %w", err)
	}
	defer st.Close()
	workers := c.Workers
	if workers <= 0 {
		workers = 2 * runtime.GOMAXPROCS(0)
	}
	im := &importer.Importer{Store: st, Tenant: store.DefaultTenant, BatchSize: c.BatchSize, Workers: workers}
	if !c.NoVerify {
		v, err := validate.New()
		if err != nil {
			return fmt.Errorf("loading the R4 validator: %w", err)
		}
		im.Validator = v
	}
	isTTY := false
	if f, ok := e.stderr.(*os.File); ok {
		isTTY = term.IsTerminal(int(f.Fd()))
	}
	progress, finish := importer.ProgressBar(e.stderr, isTTY)
	im.Progress = progress
	stats, err := im.ImportPaths(e.ctx, c.Paths)
	finish()
	printStats(e, stats)
	if err != nil {
		return fmt.Errorf("import stopped: %w", err)
	}
	if stats.Skipped > 0 || stats.FailedFiles > 0 {
		return fmt.Errorf("%d resources skipped and %d files failed; see the errors above", stats.Skipped, stats.FailedFiles)
	}
	return nil
}

func printStats(e *env, s importer.Stats) {
	for _, err := range s.Errors {
		fmt.Fprintln(e.stderr, "error:", err.Error())
	}
	rate := 0.0
	if s.Duration > 0 {
		rate = float64(s.Resources) / s.Duration.Seconds()
	}
	fmt.Fprintf(e.stdout, "files %d, resources %d: created %d, updated %d, unchanged %d, skipped %d, failed files %d in %s (%.0f resources/s)\n",
		s.Files, s.Resources, s.Created, s.Updated, s.Unchanged, s.Skipped, s.FailedFiles, s.Duration.Round(1e6), rate)
}
