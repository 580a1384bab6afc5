package server_test

import (
	"context"
	"net/http"
	"os"
	"slices"
	"testing"

	"github.com/fhirserver/fhirserver/server"
	"github.com/fhirserver/fhirserver/server/servertest"
	"github.com/fhirserver/fhirserver/store/postgres"
	"github.com/fhirserver/fhirserver/store/postgres/pgtest"
)

// pg is the PostgreSQL cluster of this test binary, for the scenarios that
// run on both stores (eachStore); without PostgreSQL they skip, unless it is
// required (pgtest.Required).
var pg pgtest.Harness

func TestMain(m *testing.M) { os.Exit(pg.RunMain(m)) }

// newPGHandler is newServer on a fresh PostgreSQL database.
func newPGHandler(t testing.TB, change ...func(*server.Deps)) http.Handler {
	t.Helper()
	st, err := postgres.Open(context.Background(), pg.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h, _ := routerOn(t, st, change...)
	return h
}

// eachStore runs fn with servers on SQLite and on PostgreSQL; change
// adjusts the Deps of every server made.
func eachStore(t *testing.T, fn func(t *testing.T, newHandler func(t *testing.T) http.Handler), change ...func(*server.Deps)) {
	t.Run("sqlite", func(t *testing.T) {
		fn(t, func(t *testing.T) http.Handler { return newServer(t, change...) })
	})
	t.Run("postgres", func(t *testing.T) {
		fn(t, func(t *testing.T) http.Handler { return newPGHandler(t, change...) })
	})
}

// runEachStore runs scenarios on SQLite, and those named in onPG (all when
// none is named) on PostgreSQL too: every PostgreSQL scenario costs a
// fresh database.
func runEachStore(t *testing.T, scenarios []servertest.Scenario, onPG ...string) {
	t.Run("sqlite", func(t *testing.T) { servertest.Run(t, newHandler, scenarios) })
	var pgScenarios []servertest.Scenario
	for _, sc := range scenarios {
		if len(onPG) == 0 || slices.Contains(onPG, sc.Name) {
			pgScenarios = append(pgScenarios, sc)
		}
	}
	t.Run("postgres", func(t *testing.T) {
		servertest.Run(t, func(t *testing.T) http.Handler { return newPGHandler(t) }, pgScenarios)
	})
}
