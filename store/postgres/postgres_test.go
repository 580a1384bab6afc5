package postgres_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

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

// TestWritesRefreshStatistics: after analyzeFirst (1,000) resources written
// by plain creates, the store runs ANALYZE itself (in the background)
// rather than leaving the planner on statistics of nearly empty tables
// until autovacuum's next round.
func TestWritesRefreshStatistics(t *testing.T) {
	ctx := context.Background()
	url := pg.NewDatabase(t)
	s, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	analyzed := func() bool {
		var at *time.Time
		if err := conn.QueryRow(ctx, `SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'resources'`).Scan(&at); err != nil {
			t.Fatal(err)
		}
		return at != nil
	}
	for i := 0; i < 999; i++ {
		if _, err := s.Create(ctx, store.Write{Type: "Basic", Body: []byte(`{"resourceType":"Basic","code":{"text":"x"}}`)}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if analyzed() {
		t.Fatal("analyzed before 1,000 writes")
	}
	if _, err := s.Create(ctx, store.Write{Type: "Basic", Body: []byte(`{"resourceType":"Basic","code":{"text":"x"}}`)}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !analyzed(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("resources not analyzed 10 s after the 1,000th write")
		}
	}
}
