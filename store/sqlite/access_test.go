package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/fhirserver/fhirserver/store"
	"github.com/fhirserver/fhirserver/store/sqlite"
	"github.com/fhirserver/fhirserver/store/storetest"
)

func TestAccessContract(t *testing.T) {
	storetest.RunAccess(t, func(t *testing.T) func(t *testing.T) store.Store {
		path := filepath.Join(t.TempDir(), "fhir.db")
		return func(t *testing.T) store.Store {
			s, err := sqlite.Open(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	})
}
