package main

import (
	"fmt"

	"github.com/fhirserver/fhirserver/demo"
	"github.com/fhirserver/fhirserver/importer"
	"github.com/fhirserver/fhirserver/store"
)

// loadDemo loads the embedded sample patients. Ids are kept and unchanged
// resources are skipped, so starting with --demo again adds nothing.
func loadDemo(e *env, st store.Store, v importer.Validator) error {
	im := &importer.Importer{Store: st, Validator: v, Tenant: store.DefaultTenant}
	stats, err := im.ImportFS(e.ctx, demo.Bundles(), []string{"synthea"})
	if err != nil {
		return fmt.Errorf("loading the demo data: %w", err)
	}
	if len(stats.Errors) > 0 {
		return fmt.Errorf("loading the demo data: %v", stats.Errors[0])
	}
	e.log.Info("demo data loaded", "resources", stats.Resources, "created", stats.Created, "unchanged", stats.Unchanged)
	return nil
}
