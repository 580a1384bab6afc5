package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/pressly/goose/v3"

	"github.com/fhirserver/fhirserver/migrations"
	"github.com/fhirserver/fhirserver/store"
	"github.com/fhirserver/fhirserver/store/sqlite"
	"github.com/fhirserver/fhirserver/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) func(t *testing.T) store.Store {
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

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) store.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "fhir.db"))
		if err != nil {
			b.Fatal(err)
		}
		return s
	})
}

func TestCreateIDClash(t *testing.T) {
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "fhir.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.CreateIDClash(t, s, func(f func() string) { s.Store.NewID = f })
}

func TestFullText(t *testing.T) {
	storetest.RunFullText(t, func(t *testing.T, fullText bool) store.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "fhir.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		s.Store.FullText = fullText
		return s
	})
}

func TestPatientBackfill(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fhir.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	p, err := goose.NewProvider(goose.DialectSQLite3, db, migrations.SQLite())
	if err != nil {
		t.Fatal(err)
	}
	storetest.PatientBackfill(t, s, func() { s.Close() }, db, p)
}
