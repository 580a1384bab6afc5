package migrations

import (
	"io/fs"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// The file names goose has applied on existing databases: a backend must
// list exactly these, in order, whichever folder each one lives in.
var applied = []string{
	"00001_resources.sql",
	"00002_search_index.sql",
	"00003_oauth.sql",
	"00004_covering_indexes.sql",
	"00005_full_text.sql",
	"00006_position.sql",
	"00007_patient_index.sql",
}

func TestBackendsListTheAppliedVersions(t *testing.T) {
	for _, tc := range []struct {
		name string
		fsys fs.FS
	}{
		{"postgres", Postgres()},
		{"sqlite", SQLite()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// goose lists the migrations with fs.Glob and reads each with Open.
			got, err := fs.Glob(tc.fsys, "*.sql")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, applied) {
				t.Fatalf("migrations = %q, want %q", got, applied)
			}
			for _, name := range got {
				b, err := fs.ReadFile(tc.fsys, name)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(string(b), "-- +goose Up") {
					t.Errorf("%s does not start with -- +goose Up", name)
				}
				// A file of the backend's own folder is read from there, not
				// from the other backend's or from common/.
				if own, err := fs.ReadFile(files, tc.name+"/"+name); err == nil && string(own) != string(b) {
					t.Errorf("%s is not the %s file", name, tc.name)
				}
			}
		})
	}
}

func TestMergedVersionInBothFolders(t *testing.T) {
	up := &fstest.MapFile{Data: []byte("-- +goose Up\nSELECT 1;\n")}
	for _, tc := range []struct {
		name    string
		fsys    fstest.MapFS
		want    []string // the listing, when there is no error
		wantErr string
	}{
		{
			name: "apart",
			fsys: fstest.MapFS{"common/00002_b.sql": up, "postgres/00001_a.sql": up, "postgres/00003_c.sql": up},
			want: []string{"00001_a.sql", "00002_b.sql", "00003_c.sql"},
		},
		{
			name:    "same name",
			fsys:    fstest.MapFS{"common/00002_b.sql": up, "postgres/00001_a.sql": up, "postgres/00002_b.sql": up},
			wantErr: "migration version 2 is both in common (00002_b.sql) and in postgres (00002_b.sql)",
		},
		{
			name:    "same version, other name",
			fsys:    fstest.MapFS{"common/00002_b.sql": up, "postgres/2_other.sql": up},
			wantErr: "migration version 2 is both in common (00002_b.sql) and in postgres (2_other.sql)",
		},
		{
			name: "no common folder",
			fsys: fstest.MapFS{"postgres/00001_a.sql": up},
			want: []string{"00001_a.sql"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := dialect(tc.fsys, "postgres")
			got, err := fs.Glob(m, "*.sql")
			_, rerr := fs.ReadDir(m, ".")
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("Glob: err = %v, want %q", err, tc.wantErr)
				}
				if rerr == nil || rerr.Error() != tc.wantErr {
					t.Fatalf("ReadDir: err = %v, want %q", rerr, tc.wantErr)
				}
				return
			}
			if err != nil || rerr != nil {
				t.Fatalf("Glob: %v, ReadDir: %v", err, rerr)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Glob = %q, want %q", got, tc.want)
			}
			for _, name := range got {
				if _, err := fs.ReadFile(m, name); err != nil {
					t.Errorf("reading %s: %v", name, err)
				}
			}
		})
	}
}
