package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

var countsLine = regexp.MustCompile(`files (\d+), resources (\d+): created (\d+), updated (\d+), unchanged (\d+), skipped (\d+), failed files (\d+)`)

// importCounts runs `fhirserver import` and returns its counts.
func importCounts(t *testing.T, dbURL string, paths ...string) (files, resources, created, updated, unchanged, skipped int) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"import", "--database-url", dbURL}, paths...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("import failed: %v\n%s", err, out)
	}
	m := countsLine.FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no counts in the output:\n%s", out)
	}
	n := func(i int) int { v, _ := strconv.Atoi(m[i]); return v }
	if n(7) != 0 {
		t.Fatalf("failed files: %s", out)
	}
	return n(1), n(2), n(3), n(4), n(5), n(6)
}

func TestImportCommand(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			db := b.url(t)
			files, resources, created, _, _, skipped := importCounts(t, db, "../testdata/synthea")
			if files != 2 || resources != 144 || created != 144 || skipped != 0 {
				t.Fatalf("first import: files %d resources %d created %d skipped %d; want 2 144 144 0", files, resources, created, skipped)
			}
			_, _, created, updated, unchanged, _ := importCounts(t, db, "../testdata/synthea")
			if created != 0 || updated != 0 || unchanged != 144 {
				t.Fatalf("second import: created %d updated %d unchanged %d; want 0 0 144", created, updated, unchanged)
			}
			// The imported data is served with the ids of the bundle and
			// references rewritten from urn:uuid.
			p := start(t, db)
			resp, body := do(t, "GET", p.base+"/fhir/Patient/616eaeb2-a67a-44e5-a7e6-9bbd85e47c5c", "", nil)
			if resp.StatusCode != 200 {
				t.Fatalf("imported patient: %d %s", resp.StatusCode, body)
			}
			resp, body = do(t, "GET", p.base+"/fhir/Observation/8736ab58-eb0d-4437-b24b-db376cd7a986", "", nil)
			if resp.StatusCode != 200 || field(t, body, "subject", "reference") != "Patient/616eaeb2-a67a-44e5-a7e6-9bbd85e47c5c" {
				t.Fatalf("imported observation: %d %s", resp.StatusCode, body)
			}
		})
	}
}

// TestImportAllSynthea loads the whole shared Synthea set (80 bundles,
// 16,391 entries) and requires zero errors. The data lives outside the
// repository, so a clone without ../shared skips this test.
func TestImportAllSynthea(t *testing.T) {
	dir := "../../shared/data/synthea-r4"
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("%s not present (only the full workspace has it): %v", dir, err)
	}
	dir, _ = filepath.Abs(dir)
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			files, resources, created, updated, unchanged, skipped := importCounts(t, b.url(t), dir)
			if files != 80 || resources != 16391 || skipped != 0 {
				t.Fatalf("files %d resources %d skipped %d; want 80 16391 0", files, resources, skipped)
			}
			// Organization and Practitioner repeat across bundles with the
			// same ids: 59 distinct of each, the rest unchanged repeats.
			if created != 16391-2*(121-59) || created+updated+unchanged != 16391 {
				t.Fatalf("created %d updated %d unchanged %d", created, updated, unchanged)
			}
		})
	}
}
