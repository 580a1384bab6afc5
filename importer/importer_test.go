package importer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/store"
	"github.com/fhirserver/fhirserver/validate"
)

// recorder is the importer's own Loader interface, implemented in memory: it
// keeps the last body per resource and counts as a store would.
type recorder struct {
	mu      sync.Mutex
	bodies  map[string][]byte // "Type/id" -> body
	calls   int
	largest int
	tenants []string
	fail    error
	discard bool // count only (benchmarks)
}

func (r *recorder) Import(ctx context.Context, tenant string, ws []store.Write) (store.ImportResult, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return store.ImportResult{}, r.fail
	}
	if r.bodies == nil {
		r.bodies = map[string][]byte{}
	}
	r.calls++
	r.largest = max(r.largest, len(ws))
	r.tenants = append(r.tenants, tenant)
	var res store.ImportResult
	seen := map[string]bool{}
	for _, w := range ws {
		key := w.Type + "/" + w.ID
		if seen[key] {
			return res, fmt.Errorf("%s twice in one batch", key)
		}
		seen[key] = true
		if w.Tenant != tenant {
			return res, fmt.Errorf("write for tenant %q in a batch for %q", w.Tenant, tenant)
		}
		old, ok := r.bodies[key]
		switch {
		case !ok:
			res.Created++
		case bytes.Equal(old, w.Body):
			res.Unchanged++
		default:
			res.Updated++
		}
		if r.discard {
			r.bodies[key] = nil
		} else {
			r.bodies[key] = w.Body
		}
	}
	return res, nil
}

func (r *recorder) keys() []string {
	var ks []string
	for k := range r.bodies {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func newValidator(t testing.TB) *validate.Validator {
	t.Helper()
	v, err := validate.New()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// writeFiles creates files (name -> content) under a new temp dir.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const (
	uuidP = "urn:uuid:11111111-1111-4111-8111-111111111111"
	uuidE = "urn:uuid:22222222-2222-4222-8222-222222222222"
	uuidO = "urn:uuid:33333333-3333-4333-8333-333333333333"
)

func TestImport(t *testing.T) {
	v := newValidator(t)
	tests := []struct {
		name  string
		files map[string]string
		// want maps Type/id to the exact body the store must get; "" means
		// "present, body not checked".
		want map[string]string
		// wantErrors are substrings of Stats.Errors, in order.
		wantErrors []string
		// stats: Files, Resources, Skipped and FailedFiles are compared;
		// Created stands for Created+Updated+Unchanged.
		stats     Stats
		batchSize int
		maxBatch  int // largest batch the store may see, when non-zero
	}{
		{
			name: "ids kept, from fullUrl, or generated; references rewritten",
			files: map[string]string{"b.json": `{"resourceType":"Bundle","type":"transaction","entry":[
				{"fullUrl":"` + uuidP + `","resource":{"resourceType":"Patient","id":"pat-1","active":true},"request":{"method":"POST","url":"Patient"}},
				{"fullUrl":"` + uuidE + `","resource":{"resourceType":"Encounter","status":"finished","class":{"code":"AMB"},"subject":{"reference":"` + uuidP + `"}},"request":{"method":"POST","url":"Encounter"}},
				{"fullUrl":"` + uuidO + `","resource":{"resourceType":"Observation","id":"obs-1","status":"final","code":{"text":"x"},
					"subject":{"reference":"` + uuidP + `","display":"keep"},
					"encounter":{"reference":"` + uuidE + `"},
					"valueQuantity":{"value":176.35499866729558000,"unit":"cm"},
					"extension":[{"url":"http://e","extension":[{"url":"deep","valueReference":{"reference":"` + uuidE + `"}}]}],
					"contained":[{"resourceType":"Provenance","id":"prov","target":[{"reference":"` + uuidO + `"}],"recorded":"2020-01-01T00:00:00Z","agent":[{"who":{"reference":"` + uuidP + `"}}]}],
					"note":[{"text":"mentions ` + uuidP + ` in text"}],
					"focus":[{"reference":"urn:uuid:99999999-9999-4999-8999-999999999999"}]}},
				{"resource":{"resourceType":"Organization","name":"no id, no fullUrl"}}
			]}`},
			want: map[string]string{
				"Patient/pat-1": `{"resourceType":"Patient","id":"pat-1","active":true}`,
				"Encounter/22222222-2222-4222-8222-222222222222": `{"resourceType":"Encounter","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/pat-1"}}`,
				"Observation/obs-1": `{"resourceType":"Observation","id":"obs-1","status":"final","code":{"text":"x"},` +
					`"subject":{"reference":"Patient/pat-1","display":"keep"},` +
					`"encounter":{"reference":"Encounter/22222222-2222-4222-8222-222222222222"},` +
					`"valueQuantity":{"value":176.35499866729558000,"unit":"cm"},` +
					`"extension":[{"url":"http://e","extension":[{"url":"deep","valueReference":{"reference":"Encounter/22222222-2222-4222-8222-222222222222"}}]}],` +
					`"contained":[{"resourceType":"Provenance","id":"prov","target":[{"reference":"Observation/obs-1"}],"recorded":"2020-01-01T00:00:00Z","agent":[{"who":{"reference":"Patient/pat-1"}}]}],` +
					`"note":[{"text":"mentions ` + uuidP + ` in text"}],` +
					`"focus":[{"reference":"urn:uuid:99999999-9999-4999-8999-999999999999"}]}`,
				"Organization/*": `{"resourceType":"Organization","name":"no id, no fullUrl"}`,
			},
			stats: Stats{Files: 1, Resources: 4, Created: 4},
		},
		{
			name: "PUT url gives the id; collection and batch bundles; single resource",
			files: map[string]string{
				"t.json": `{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"http://x/Patient/a","resource":{"resourceType":"Patient"},"request":{"method":"PUT","url":"Patient/a"}}]}`,
				"c.json": `{"type":"collection","resourceType":"Bundle","entry":[{"fullUrl":"http://x/Patient/b","resource":{"resourceType":"Patient","id":"b"}}]}`,
				"b.json": `{"resourceType":"Bundle","type":"batch","entry":[{"resource":{"resourceType":"Patient","id":"c"},"request":{"method":"POST","url":"Patient"}}]}`,
				"p.json": "{\n  \"resourceType\": \"Patient\",\n  \"id\": \"d\",\n  \"birthDate\": \"1990-01-01\"\n}\n",
			},
			want: map[string]string{
				"Patient/a": `{"resourceType":"Patient"}`,
				"Patient/b": `{"resourceType":"Patient","id":"b"}`,
				"Patient/c": `{"resourceType":"Patient","id":"c"}`,
				"Patient/d": `{"resourceType":"Patient","id":"d","birthDate":"1990-01-01"}`,
			},
			stats: Stats{Files: 4, Resources: 4, Created: 4},
		},
		{
			name: "invalid entries are skipped and listed",
			files: map[string]string{"b.json": `{"resourceType":"Bundle","type":"transaction","entry":[
				{"resource":{"resourceType":"Patient","id":"ok"}},
				{"resource":{"resourceType":"Patient","id":"bad","birthDate":"1990-13-01"}},
				{"request":{"method":"POST","url":"Patient"}},
				{"request":{"method":"DELETE","url":"Patient/x"}},
				{"resource":{"resourceType":"Patient","id":"has space"}},
				{"resource":{"resourceType":"Patient","id":"ok2","foo":1}},
				{"resource":{"id":"no-type"}},
				{"fullUrl":5,"resource":{"resourceType":"Patient","id":"typed"}},
				{"resource":{"resourceType":"Patient","id":"last"}}
			]}`},
			want: map[string]string{"Patient/ok": "", "Patient/last": ""},
			wantErrors: []string{
				"b.json: entry 1: expected date at Patient.birthDate",
				"b.json: entry 2: entry has no resource",
				"b.json: entry 3: DELETE entries are not imported",
				`b.json: entry 4: "has space" is not a valid id`,
				`b.json: entry 5: unknown field "foo" at Patient`,
				"b.json: entry 6: missing resourceType",
				"b.json: entry 7: entry.fullUrl must not be a JSON number",
			},
			stats: Stats{Files: 1, Resources: 9, Created: 2, Skipped: 7},
		},
		{
			name: "NDJSON, with blank lines and bad lines",
			files: map[string]string{"data/Patient.ndjson": `{"resourceType":"Patient","id":"n1","multipleBirthInteger":2}
{"resourceType":"Patient","id":"n2"}

{"resourceType":"Patient","id":"n3",
{"resourceType":"Patient","id":"n4","gender":"nope"}
   {"resourceType":"Observation","id":"n5","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/n1"},"valueQuantity":{"value":1.50}}   
[1]`},
			want: map[string]string{
				"Patient/n1":     `{"resourceType":"Patient","id":"n1","multipleBirthInteger":2}`,
				"Patient/n2":     `{"resourceType":"Patient","id":"n2"}`,
				"Observation/n5": `{"resourceType":"Observation","id":"n5","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/n1"},"valueQuantity":{"value":1.50}}`,
			},
			wantErrors: []string{
				"Patient.ndjson: line 4: not valid JSON",
				`Patient.ndjson: line 5: code "nope" at Patient.gender is not in the required value set`,
				"Patient.ndjson: line 7: a resource must be a JSON object",
			},
			stats: Stats{Files: 1, Resources: 6, Created: 3, Skipped: 3},
		},
		{
			name: "folders are walked for .json and .ndjson only; bad files are counted",
			files: map[string]string{
				"a/one.json":         `{"resourceType":"Patient","id":"f1"}`,
				"a/b/two.NDJSON":     `{"resourceType":"Patient","id":"f2"}`,
				"a/b/c/three.ndjson": `{"resourceType":"Patient","id":"f3"}` + "\n",
				"a/notes.txt":        `not FHIR`,
				"a/b/search.json":    `{"resourceType":"Bundle","type":"searchset","entry":[{"resource":{"resourceType":"Patient","id":"s"}}]}`,
				"a/broken.json":      `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":`,
				"a/array.json":       `[{"resourceType":"Patient"}]`,
				"a/empty.json":       ``,
			},
			want: map[string]string{"Patient/f1": "", "Patient/f2": "", "Patient/f3": ""},
			wantErrors: []string{
				"array.json: not a JSON object",
				`search.json: unsupported Bundle type "searchset"`,
				"broken.json: reading",
				"empty.json: the file is empty",
			},
			stats: Stats{Files: 7, Resources: 3, Created: 3, FailedFiles: 4},
		},
		{
			name:      "batches are bounded and never hold a resource twice",
			batchSize: 2,
			maxBatch:  2,
			files: map[string]string{"x.ndjson": `{"resourceType":"Patient","id":"r1"}
{"resourceType":"Patient","id":"r1","active":true}
{"resourceType":"Patient","id":"r2"}
{"resourceType":"Patient","id":"r3"}
{"resourceType":"Patient","id":"r4"}`},
			want:  map[string]string{"Patient/r1": "", "Patient/r2": "", "Patient/r3": "", "Patient/r4": ""},
			stats: Stats{Files: 1, Resources: 5, Created: 5},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, tt.files)
			rec := &recorder{}
			var last, total int64
			im := &Importer{Store: rec, Validator: v, Tenant: "t1", BatchSize: tt.batchSize,
				Progress: func(done, tot int64) {
					if done < last {
						t.Errorf("progress went back from %d to %d", last, done)
					}
					last, total = done, tot
				}}
			stats, err := im.ImportPaths(context.Background(), []string{dir})
			if err != nil {
				t.Fatalf("ImportPaths: %v", err)
			}
			if last != total {
				t.Errorf("progress ended at %d of %d", last, total)
			}
			got := Stats{Files: stats.Files, Resources: stats.Resources, Created: stats.Created + stats.Updated + stats.Unchanged,
				Skipped: stats.Skipped, FailedFiles: stats.FailedFiles}
			if !reflect.DeepEqual(got, tt.stats) {
				t.Errorf("stats = %+v, want %+v", got, tt.stats)
			}
			var msgs []string
			for _, e := range stats.Errors {
				msgs = append(msgs, e.Error())
			}
			if len(msgs) != len(tt.wantErrors) {
				t.Errorf("errors = %q, want %d", msgs, len(tt.wantErrors))
			}
			for i, w := range tt.wantErrors {
				if i < len(msgs) && !strings.Contains(msgs[i], w) {
					t.Errorf("error %d = %q, want it to contain %q", i, msgs[i], w)
				}
			}
			checkWrites(t, rec, tt.want)
			if tt.maxBatch > 0 && rec.largest > tt.maxBatch {
				t.Errorf("largest batch = %d, want at most %d", rec.largest, tt.maxBatch)
			}
			for _, tn := range rec.tenants {
				if tn != "t1" {
					t.Errorf("batch for tenant %q", tn)
				}
			}
		})
	}
}

// checkWrites compares what the store got with want; a key "Type/*" stands
// for one resource of that type with a generated UUID id.
func checkWrites(t *testing.T, rec *recorder, want map[string]string) {
	t.Helper()
	got := map[string][]byte{}
	for k, b := range rec.bodies {
		typ, id, _ := strings.Cut(k, "/")
		if _, ok := want[k]; !ok {
			if _, err := uuid.Parse(id); err == nil {
				if _, ok := want[typ+"/*"]; ok {
					k = typ + "/*"
				}
			}
		}
		got[k] = b
	}
	for k, w := range want {
		b, ok := got[k]
		if !ok {
			t.Errorf("%s not written; written: %q", k, rec.keys())
			continue
		}
		if w != "" && string(b) != w {
			t.Errorf("%s body\n got %s\nwant %s", k, b, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("written %q, want %d resources", rec.keys(), len(want))
	}
}

func TestImportTwiceIsUnchanged(t *testing.T) {
	dir := writeFiles(t, map[string]string{"b.json": `{"resourceType":"Bundle","type":"transaction","entry":[
		{"fullUrl":"` + uuidP + `","resource":{"resourceType":"Patient"}},
		{"resource":{"resourceType":"Observation","id":"o","status":"final","code":{"text":"x"},"subject":{"reference":"` + uuidP + `"}}}]}`})
	rec := &recorder{}
	im := &Importer{Store: rec, Validator: newValidator(t)}
	if _, err := im.ImportPaths(context.Background(), []string{dir}); err != nil {
		t.Fatal(err)
	}
	stats, err := im.ImportPaths(context.Background(), []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if stats.Unchanged != 2 || stats.Created != 0 || stats.Updated != 0 {
		t.Errorf("second import: %+v", stats)
	}
}

func TestImportFailures(t *testing.T) {
	dir := writeFiles(t, map[string]string{"p.json": `{"resourceType":"Patient","id":"x"}`, "notes.txt": "x"})
	boom := fhir.Internal("writing", errors.New("disk full"))
	tests := []struct {
		name  string
		paths []string
		store *recorder
		want  string
	}{
		{name: "missing path", paths: []string{filepath.Join(dir, "nope")}, store: &recorder{}, want: "no such file"},
		{name: "explicit file of another kind", paths: []string{filepath.Join(dir, "notes.txt")}, store: &recorder{}, want: "not a .json or .ndjson file"},
		{name: "store fails", paths: []string{dir}, store: &recorder{fail: boom}, want: "importing 1 resources from"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im := &Importer{Store: tt.store}
			_, err := im.ImportPaths(context.Background(), tt.paths)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ImportPaths = %v, want an error containing %q", err, tt.want)
			}
			if tt.store.fail != nil && !errors.Is(err, boom) {
				t.Errorf("error %v does not wrap the store's", err)
			}
		})
	}
}

func TestImportCancelled(t *testing.T) {
	dir := writeFiles(t, map[string]string{"p.json": `{"resourceType":"Patient","id":"x"}`})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := (&Importer{Store: &recorder{}}).ImportPaths(ctx, []string{dir})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("ImportPaths = %v, want context.Canceled", err)
	}
}

func TestRewriteReferences(t *testing.T) {
	refs := map[string]string{"urn:uuid:a": "Patient/1", "urn:oid:1.2": "Organization/o"}
	tests := []struct{ in, want string }{
		{`{"reference":"urn:uuid:a"}`, `{"reference":"Patient/1"}`},
		{`{"a":[{"b":{"reference":"urn:uuid:a","display":"urn:uuid:a"}}],"reference":"urn:oid:1.2"}`, `{"a":[{"b":{"reference":"Patient/1","display":"urn:uuid:a"}}],"reference":"Organization/o"}`},
		{`{"text":"\"reference\":\"urn:uuid:a\""}`, `{"text":"\"reference\":\"urn:uuid:a\""}`},
		{`{"reference":"urn:uuid:b"}`, `{"reference":"urn:uuid:b"}`},
		{`{"reference":"urn:uuid:\u0061"}`, `{"reference":"Patient/1"}`},
		{`{"reference":{"reference":"urn:uuid:a"}}`, `{"reference":{"reference":"Patient/1"}}`},
		{`{"x":1.000000000000000000001,"reference":"urn:uuid:a"}`, `{"x":1.000000000000000000001,"reference":"Patient/1"}`},
	}
	for _, tt := range tests {
		if got := rewriteReferences([]byte(tt.in), refs); string(got) != tt.want {
			t.Errorf("rewriteReferences(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestEnvelope(t *testing.T) {
	tests := []struct{ in, typ, id, err string }{
		{`{"resourceType":"Patient","id":"a"}`, "Patient", "a", ""},
		{`{"contained":[{"resourceType":"Organization","id":"o"}],"id":"p","resourceType":"Patient"}`, "Patient", "p", ""},
		{`{"meta":{"id":"m"},"resourceType":"Patient"}`, "Patient", "", ""},
		{`{"resourceType":"Pat\u0069ent"}`, "Patient", "", ""},
		{`{"resourceType":"Patient","id":7}`, "", "", "id must be a string"},
	}
	for _, tt := range tests {
		typ, id, err := envelope([]byte(tt.in))
		if typ != tt.typ || id != tt.id || (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
			t.Errorf("envelope(%s) = %q, %q, %v; want %q, %q, %q", tt.in, typ, id, err, tt.typ, tt.id, tt.err)
		}
	}
}

func TestProgressBar(t *testing.T) {
	var buf bytes.Buffer
	progress, finish := ProgressBar(&buf, false)
	progress(5, 10)
	finish()
	if buf.Len() != 0 {
		t.Errorf("not a terminal, but wrote %q", buf.String())
	}
	progress, finish = ProgressBar(&buf, true)
	progress(0, 1000)
	progress(1000, 1000)
	finish()
	if !strings.Contains(buf.String(), "importing") || !strings.Contains(buf.String(), "100%") {
		t.Errorf("terminal bar wrote %q", buf.String())
	}
}
