package pgtest

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

var pg Harness

func TestMain(m *testing.M) { os.Exit(pg.RunMain(m)) }

// start starts a cluster of the test's own, skipping the test when
// PostgreSQL is missing and not required.
func start(t *testing.T) *Cluster {
	t.Helper()
	c, err := Start()
	if err != nil {
		if Required() {
			t.Fatal(err)
		}
		t.Skipf("PostgreSQL not available: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Error(err)
		}
	})
	return c
}

// queryDB connects to dbURL and returns current_database() after checking
// that SELECT 1 answers 1.
func queryDB(t *testing.T, ctx context.Context, dbURL string) string {
	t.Helper()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connecting to %s: %v", dbURL, err)
	}
	defer conn.Close(ctx)
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1 on %s: got %d, %v", dbURL, one, err)
	}
	var name string
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&name); err != nil {
		t.Fatalf("current_database() on %s: %v", dbURL, err)
	}
	return name
}

func TestClusterLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := start(t)

	if got := queryDB(t, ctx, c.URL()); got != "postgres" {
		t.Errorf("URL() connects to database %q, want postgres", got)
	}
	var names []string
	for range 2 {
		dbURL, err := c.NewDatabase(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(dbURL, "postgres://postgres@127.0.0.1:") || !strings.HasSuffix(dbURL, "?sslmode=disable") {
			t.Errorf("NewDatabase URL = %q, want postgres://postgres@127.0.0.1:PORT/NAME?sslmode=disable", dbURL)
		}
		names = append(names, queryDB(t, ctx, dbURL))
	}
	if names[0] == names[1] || names[0] == "postgres" || names[1] == "postgres" {
		t.Errorf("NewDatabase gave databases %q, want two new distinct ones", names)
	}

	dir, dbURL := c.dir, c.URL()
	if err := c.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after Stop, stat %s: %v, want not exist", dir, err)
	}
	if err := ping(ctx, dbURL); err == nil {
		t.Errorf("after Stop, %s still accepts connections", dbURL)
	}
	if err := c.Stop(); err != nil {
		t.Errorf("second Stop: %v, want nil", err)
	}
}

func TestHarnessNewDatabase(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := pg.Cluster(t)
	var dbURL string
	t.Run("use", func(t *testing.T) {
		dbURL = pg.NewDatabase(t)
		queryDB(t, ctx, dbURL)
	})
	// The subtest's cleanup dropped its database.
	if err := ping(ctx, dbURL); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("after the test, connecting to %s: %v, want database does not exist", dbURL, err)
	}
	if err := ping(ctx, c.URL()); err != nil {
		t.Errorf("cluster unusable after dropping a database: %v", err)
	}
}

func TestRequired(t *testing.T) {
	tests := []struct {
		ci, require string
		want        bool
	}{
		{"", "", false},
		{"true", "", true},
		{"", "1", true},
		{"false", "0", false},
		{"1", "", false},
		{"true", "1", true},
	}
	for _, tt := range tests {
		t.Setenv("CI", tt.ci)
		t.Setenv("FHIR_REQUIRE_POSTGRES", tt.require)
		if got := Required(); got != tt.want {
			t.Errorf("CI=%q FHIR_REQUIRE_POSTGRES=%q: Required() = %v, want %v", tt.ci, tt.require, got, tt.want)
		}
	}
}

func TestTail(t *testing.T) {
	short := "a\nb\n"
	if got := tail([]byte(short)); got != "a\nb" {
		t.Errorf("tail(%q) = %q", short, got)
	}
	long := strings.Repeat("x", logTail) + "\nlast line\n"
	if got := tail([]byte(long)); got != "last line" {
		t.Errorf("tail(long) = %q, want the last line only", got)
	}
}
