package storetest

import (
	"context"
	"database/sql"
	"slices"
	"strings"
	"testing"

	"github.com/pressly/goose/v3"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/store"
)

// PatientBackfill checks the backfill of migration 00007 (the patient
// column of token and date rows) on a database written before it: it
// writes resources with s (which has migrated to the latest version), runs
// close, migrates db down to version 6 and up again through p, and wants
// the rows the store wrote back, those of resources that refer to several
// patients included.
func PatientBackfill(t *testing.T, s store.Store, close func(), db *sql.DB, p *goose.Provider) {
	ctx := context.Background()
	const tenant = "backfill"
	for _, body := range []string{
		`{"resourceType":"Appointment","id":"a1","status":"booked","start":"2020-05-01T10:00:00Z","end":"2020-05-01T11:00:00Z","participant":[{"actor":{"reference":"Patient/pa"},"status":"accepted"},{"actor":{"reference":"Patient/pb"},"status":"accepted"},{"actor":{"reference":"Patient/pc"},"status":"accepted"},{"actor":{"reference":"Practitioner/dr"},"status":"accepted"}]}`,
		`{"resourceType":"Appointment","id":"a2","status":"booked","start":"2020-05-01T10:00:00Z","end":"2020-05-01T11:00:00Z","participant":[{"actor":{"reference":"Practitioner/dr"},"status":"accepted"}]}`,
		`{"resourceType":"Observation","id":"o1","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"1-1"}]},"subject":{"reference":"Patient/pa"},"effectiveDateTime":"2019-01-01","component":[{"code":{"coding":[{"system":"http://loinc.org","code":"2-2"}]},"valueQuantity":{"value":1}}]}`,
		`{"resourceType":"Observation","id":"o2","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"1-1"}]},"subject":{"reference":"Group/g"},"effectiveDateTime":"2019-01-01"}`,
		`{"resourceType":"Patient","id":"pa","birthDate":"1970-01-01","gender":"female"}`,
	} {
		typ, id, err := fhir.Envelope([]byte(body))
		must(t, err)
		if _, _, err := s.Update(ctx, store.Write{Tenant: tenant, Type: typ, ID: id, Body: []byte(body)}); err != nil {
			t.Fatalf("storing %s/%s: %v", typ, id, err)
		}
	}
	close()
	rows := func() []string {
		t.Helper()
		var out []string
		for _, q := range []string{
			"SELECT type || '/' || id || ' ' || param || ' ' || grp || ' ' || system || '|' || code || ' @' || patient FROM idx_token WHERE tenant = 'backfill'",
			"SELECT type || '/' || id || ' ' || param || ' ' || grp || ' ' || low || '-' || high || ' @' || patient FROM idx_date WHERE tenant = 'backfill'",
		} {
			r, err := db.QueryContext(ctx, q)
			if err != nil {
				t.Fatalf("reading index rows: %v", err)
			}
			for r.Next() {
				var s string
				if err := r.Scan(&s); err != nil {
					t.Fatal(err)
				}
				out = append(out, s)
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
		}
		slices.Sort(out)
		return out
	}
	written := rows()
	// The store wrote a1's rows once per patient, composite parts once.
	if n := countWith(written, "Appointment/a1 status 0 "); n != 3 {
		t.Fatalf("a1 has %d status rows, want one for each of its 3 patients: %v", n, written)
	}
	if n := countWith(written, "@pa"); n == 0 {
		t.Fatalf("no rows of patient pa: %v", written)
	}
	if _, err := p.DownTo(ctx, 6); err != nil {
		t.Fatalf("migrating down to 6: %v", err)
	}
	if _, err := p.UpTo(ctx, 7); err != nil {
		t.Fatalf("migrating up to 7: %v", err)
	}
	if got := rows(); !slices.Equal(got, written) {
		t.Fatalf("after the backfill:\n%s\nwritten by the store:\n%s", strings.Join(got, "\n"), strings.Join(written, "\n"))
	}
}

func countWith(rows []string, part string) int {
	n := 0
	for _, r := range rows {
		if strings.Contains(r, part) {
			n++
		}
	}
	return n
}
