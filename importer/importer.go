// Package importer loads FHIR data files into a store: Bundles of type
// transaction, batch or collection and single resources (.json), and NDJSON
// with one resource per line (.ndjson). Resources keep their ids; urn:uuid
// (and urn:oid) references between the entries of a Bundle are rewritten to
// Type/id. Every resource is validated; invalid ones are skipped and listed
// in Stats.Errors while the import goes on. Resources reach the store in
// batches, several at once.
package importer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/store"
)

// Loader is what the importer needs from the store; store.Store satisfies it.
type Loader interface {
	Import(ctx context.Context, tenant string, ws []store.Write) (store.ImportResult, error)
}

// Validator checks a resource body; validate.Validator satisfies it.
type Validator interface {
	Validate(resourceType string, body []byte) error
}

// DefaultBatchSize is the number of resources per Loader.Import call when
// Importer.BatchSize is zero.
const DefaultBatchSize = 500

// MaxErrors is how many problems Stats.Errors keeps; all are counted.
const MaxErrors = 1000

// maxReaders caps how many files are read (and held in memory) at once.
const maxReaders = 4

// Importer loads files into Store. The zero values of the optional fields
// give sensible defaults.
type Importer struct {
	Store Loader
	// Validator checks each resource; nil skips validation (the store still
	// gets only JSON objects with a resourceType and a valid id).
	Validator Validator
	Tenant    string
	// BatchSize is the number of resources per Store.Import call
	// (DefaultBatchSize when zero).
	BatchSize int
	// Workers is the number of batches validated and loaded at once
	// (GOMAXPROCS when zero).
	Workers int
	// Progress, when set, is called as the work advances with the number of
	// bytes of input processed so far and the total size of the input
	// files. Calls never overlap.
	Progress func(done, total int64)
}

// Stats reports what an import did.
type Stats struct {
	Files     int // files read
	Resources int // resources (bundle entries, NDJSON lines) read
	Created   int
	Updated   int
	Unchanged int
	Skipped   int // resources not loaded because they were invalid
	// FailedFiles counts files that could not be read or were not FHIR
	// data at all; resources read before the problem are still loaded.
	FailedFiles int
	// Errors lists the problems (skipped resources and failed files): the
	// first MaxErrors found, sorted in input order.
	Errors   []EntryError
	Duration time.Duration
}

// EntryError is a problem with one resource of a file, or with the whole
// file when Entry and Line are both -1.
type EntryError struct {
	File  string
	Entry int // index in Bundle.entry, or -1
	Line  int // line number (from 1) in an NDJSON file, or -1
	Err   error
}

func (e EntryError) Error() string {
	msg := fhir.MessageOf(e.Err)
	if fhir.KindOf(e.Err) == fhir.KindInternal {
		msg = e.Err.Error() // an operator's tool: show the cause
	}
	switch {
	case e.Entry >= 0:
		return fmt.Sprintf("%s: entry %d: %s", e.File, e.Entry, msg)
	case e.Line >= 0:
		return fmt.Sprintf("%s: line %d: %s", e.File, e.Line, msg)
	default:
		return fmt.Sprintf("%s: %s", e.File, msg)
	}
}

func (e EntryError) Unwrap() error { return e.Err }

// inputFile is one file to read.
type inputFile struct {
	path  string
	order int // position in the input, for sorting errors
	size  int64
}

// item is one resource ready for validation and loading.
type item struct {
	at   int // entry index or line number
	typ  string
	id   string
	body []byte
}

// batch is up to BatchSize items of one file.
type batch struct {
	file  inputFile
	items []item
	bytes int64 // input bytes this batch accounts for, for progress
}

// run is the state of one ImportPaths call.
type run struct {
	im        *Importer
	fsys      fs.FS
	batchSize int
	total     int64

	mu     sync.Mutex
	stats  Stats
	errs   []located
	done   int64
	cancel context.CancelCauseFunc
}

// located is an error with its position in the input, for sorting.
type located struct {
	order int
	at    int
	err   EntryError
}

// ImportPaths imports the given files and folders; folders are walked for
// *.json and *.ndjson files. A path that does not exist, or a file of any
// other kind named explicitly, fails before anything is imported. The error
// is non-nil only when the import stopped: the context ended or the store
// failed. Problems with single resources or files are in Stats.Errors.
func (im *Importer) ImportPaths(ctx context.Context, paths []string) (Stats, error) {
	return im.ImportFS(ctx, osFS{}, paths)
}

// osFS opens operating-system paths as they are (absolute or relative),
// which os.DirFS cannot do for an arbitrary mix of paths.
type osFS struct{}

func (osFS) Open(name string) (fs.File, error) { return os.Open(name) }

// ImportFS is ImportPaths on the files of fsys, such as data embedded in the
// binary.
func (im *Importer) ImportFS(ctx context.Context, fsys fs.FS, paths []string) (Stats, error) {
	start := time.Now()
	if im.Store == nil {
		return Stats{}, errors.New("importer: no store")
	}
	files, total, err := collectFiles(fsys, paths)
	if err != nil {
		return Stats{}, err
	}
	r := &run{im: im, fsys: fsys, batchSize: cmp.Or(im.BatchSize, DefaultBatchSize), total: total}
	workers := cmp.Or(im.Workers, runtime.GOMAXPROCS(0))
	readers := min(workers, maxReaders, max(len(files), 1))

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r.cancel = cancel

	fileCh := make(chan inputFile)
	batches := make(chan batch, workers)
	var readWG, loadWG sync.WaitGroup
	for range readers {
		readWG.Go(func() {
			for f := range fileCh {
				r.readFile(ctx, f, batches)
			}
		})
	}
	for range workers {
		loadWG.Go(func() {
			for b := range batches {
				r.load(ctx, b)
			}
		})
	}
	r.progress(0)
feed:
	for _, f := range files {
		select {
		case fileCh <- f:
		case <-ctx.Done():
			break feed
		}
	}
	close(fileCh)
	readWG.Wait()
	close(batches)
	loadWG.Wait()

	stats := r.stats
	slices.SortStableFunc(r.errs, func(a, b located) int {
		return cmp.Or(cmp.Compare(a.order, b.order), cmp.Compare(a.at, b.at))
	})
	for _, e := range r.errs {
		stats.Errors = append(stats.Errors, e.err)
	}
	stats.Duration = time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return stats, err
	}
	return stats, nil
}

// collectFiles expands paths into the files to read and their total size.
func collectFiles(fsys fs.FS, paths []string) ([]inputFile, int64, error) {
	var files []inputFile
	var total int64
	seen := map[string]bool{}
	add := func(path string, size int64) {
		if seen[path] {
			return
		}
		seen[path] = true
		files = append(files, inputFile{path: path, order: len(files), size: size})
		total += size
	}
	for _, p := range paths {
		info, err := fs.Stat(fsys, p)
		if err != nil {
			return nil, 0, fmt.Errorf("importing %s: %w", p, err)
		}
		if !info.IsDir() {
			if kindOf(p) == "" {
				return nil, 0, fmt.Errorf("importing %s: not a .json or .ndjson file", p)
			}
			add(p, info.Size())
			continue
		}
		err = fs.WalkDir(fsys, p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || kindOf(path) == "" {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			add(path, info.Size())
			return nil
		})
		if err != nil {
			return nil, 0, fmt.Errorf("importing %s: %w", p, err)
		}
	}
	return files, total, nil
}

// kindOf returns "json" or "ndjson" for the files we read, else "".
func kindOf(path string) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json":
		return "json"
	case ".ndjson":
		return "ndjson"
	}
	return ""
}

// readFile reads one file and sends its resources in batches.
func (r *run) readFile(ctx context.Context, f inputFile, out chan<- batch) {
	r.mu.Lock()
	r.stats.Files++
	r.mu.Unlock()
	var sent int64
	send := func(b batch) bool {
		b.file = f
		sent += b.bytes
		select {
		case out <- b:
			return true
		case <-ctx.Done():
			return false
		}
	}
	var err error
	if kindOf(f.path) == "ndjson" {
		err = r.readNDJSON(ctx, f, send)
	} else {
		err = r.readJSON(ctx, f, send)
	}
	if err != nil && ctx.Err() == nil {
		r.mu.Lock()
		r.stats.FailedFiles++
		r.mu.Unlock()
		r.fail(f, -1, -1, err)
	}
	// Whatever was not handed to a batch (a failed or empty file) is done.
	if rest := f.size - sent; rest > 0 {
		r.progress(rest)
	}
}

// load validates a batch and hands the valid resources to the store.
func (r *run) load(ctx context.Context, b batch) {
	if ctx.Err() != nil {
		return // draining after a failure
	}
	im := r.im
	ws := make([]store.Write, 0, len(b.items))
	skipped := 0
	ndjson := kindOf(b.file.path) == "ndjson"
	for _, it := range b.items {
		if im.Validator != nil {
			if err := im.Validator.Validate(it.typ, it.body); err != nil {
				skipped++
				if ndjson {
					r.fail(b.file, -1, it.at, err)
				} else {
					r.fail(b.file, it.at, -1, err)
				}
				continue
			}
		}
		ws = append(ws, store.Write{Tenant: im.Tenant, Type: it.typ, ID: it.id, Body: it.body})
	}
	var res store.ImportResult
	if len(ws) > 0 {
		var err error
		res, err = im.Store.Import(ctx, im.Tenant, ws)
		if err != nil {
			r.cancel(fmt.Errorf("importing %d resources from %s: %w", len(ws), b.file.path, err))
			return
		}
	}
	r.mu.Lock()
	r.stats.Resources += len(b.items)
	r.stats.Skipped += skipped
	r.stats.Created += res.Created
	r.stats.Updated += res.Updated
	r.stats.Unchanged += res.Unchanged
	r.mu.Unlock()
	r.progress(b.bytes)
}

// skip records a resource the reader already rejected.
func (r *run) skip(f inputFile, entry, line int, err error) {
	r.mu.Lock()
	r.stats.Resources++
	r.stats.Skipped++
	r.mu.Unlock()
	r.fail(f, entry, line, err)
}

// fail records a problem. NDJSON errors are placed by line, bundle errors
// by entry; whole-file errors come first within their file.
func (r *run) fail(f inputFile, entry, line int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) >= MaxErrors {
		return
	}
	r.errs = append(r.errs, located{order: f.order, at: max(entry, line), err: EntryError{File: f.path, Entry: entry, Line: line, Err: err}})
}

// progress adds n processed bytes and reports.
func (r *run) progress(n int64) {
	if r.im.Progress == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done += n
	r.im.Progress(r.done, r.total)
}
