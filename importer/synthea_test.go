package importer

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// TestSynthea imports the two bundles in ../testdata/synthea with the real
// validator.
func TestSynthea(t *testing.T) {
	rec := &recorder{}
	im := &Importer{Store: rec, Validator: newValidator(t)}
	stats, err := im.ImportPaths(context.Background(), []string{"../testdata/synthea"})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range stats.Errors {
		t.Errorf("import error: %v", e)
	}
	// Entry counts from testdata/synthea/README.md.
	if stats.Files != 2 || stats.Resources != 71+73 || stats.Created != 144 || stats.Skipped != 0 {
		t.Errorf("stats = %+v", stats)
	}
	// The resources of each file, by type, as the files have them.
	wantTypes := map[string]int{}
	files, _ := filepath.Glob("../testdata/synthea/*.json")
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var b struct {
			Entry []struct {
				Resource struct{ ResourceType, ID string }
			}
		}
		if err := json.Unmarshal(raw, &b); err != nil {
			t.Fatal(err)
		}
		for _, e := range b.Entry {
			wantTypes[e.Resource.ResourceType]++
			if _, ok := rec.bodies[e.Resource.ResourceType+"/"+e.Resource.ID]; !ok {
				t.Errorf("%s/%s not written with its own id", e.Resource.ResourceType, e.Resource.ID)
			}
		}
	}
	gotTypes := map[string]int{}
	ref := regexp.MustCompile(`"reference":"([^"]*)"`)
	refs := 0
	for key, body := range rec.bodies {
		typ, _, _ := strings.Cut(key, "/")
		gotTypes[typ]++
		if strings.Contains(string(body), "urn:uuid") {
			t.Errorf("%s still has a urn:uuid: %.200s", key, body)
		}
		// Every reference now names a written resource or a contained one.
		for _, m := range ref.FindAllStringSubmatch(string(body), -1) {
			refs++
			if r := m[1]; !strings.HasPrefix(r, "#") && rec.bodies[r] == nil {
				t.Errorf("%s: reference %q does not resolve", key, r)
			}
		}
	}
	if len(gotTypes) != len(wantTypes) {
		t.Errorf("types = %v, want %v", gotTypes, wantTypes)
	}
	for typ, n := range wantTypes {
		if gotTypes[typ] != n {
			t.Errorf("%s: %d written, want %d", typ, gotTypes[typ], n)
		}
	}
	if refs < 300 {
		t.Errorf("only %d references checked", refs)
	}
}

// BenchmarkImportSynthea imports the shared Synthea set (80 bundles, 16,391
// resources) when it is there, else the two test bundles, into the
// recording loader, and reports resources per second.
func BenchmarkImportSynthea(b *testing.B) {
	dir := "../../shared/data/synthea-r4"
	if _, err := os.Stat(dir); err != nil {
		dir = "../testdata/synthea"
	}
	v := newValidator(b)
	for _, bc := range []struct {
		name      string
		validator Validator
	}{{"validated", v}, {"unvalidated", nil}} {
		b.Run(bc.name, func(b *testing.B) {
			var resources int
			for i := 0; i < b.N; i++ {
				im := &Importer{Store: &recorder{discard: true}}
				if bc.validator != nil {
					im.Validator = bc.validator
				}
				stats, err := im.ImportPaths(context.Background(), []string{dir})
				if err != nil {
					b.Fatal(err)
				}
				if len(stats.Errors) > 0 {
					b.Fatal(stats.Errors[0])
				}
				resources += stats.Resources
			}
			b.ReportMetric(float64(resources)/b.Elapsed().Seconds(), "resources/s")
			b.ReportMetric(float64(runtime.GOMAXPROCS(0)), "procs")
		})
	}
}
