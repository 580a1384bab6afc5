package postgres_test

import (
	"context"
	"os"
	"testing"

	"github.com/fhirserver/fhirserver/store"
	"github.com/fhirserver/fhirserver/store/postgres"
	"github.com/fhirserver/fhirserver/store/postgres/pgtest"
	"github.com/fhirserver/fhirserver/store/storetest"
)

var pg pgtest.Harness

func TestMain(m *testing.M) { os.Exit(pg.RunMain(m)) }

func opener(t *testing.T) func(t *testing.T) store.Store {
	url := pg.NewDatabase(t)
	return func(t *testing.T) store.Store {
		s, err := postgres.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

func TestContract(t *testing.T) { storetest.Run(t, opener) }

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) store.Store {
		s, err := postgres.Open(context.Background(), pg.NewDatabase(b))
		if err != nil {
			b.Fatal(err)
		}
		return s
	})
}

func TestCreateIDClash(t *testing.T) {
	s, err := postgres.Open(context.Background(), pg.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.CreateIDClash(t, s, func(f func() string) { s.Store.NewID = f })
}

func TestFullText(t *testing.T) {
	storetest.RunFullText(t, func(t *testing.T, fullText bool) store.Store {
		s, err := postgres.Open(context.Background(), pg.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		s.Store.FullText = fullText
		return s
	})
}
