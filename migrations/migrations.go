// Package migrations holds the versioned SQL schema of each backend,
// embedded so that the binary migrates its own database.
//
// A migration whose SQL is the same for both backends is written once, in
// common/; each backend sees it beside its own files under the same name,
// so goose applies and records exactly the versions it would if the file
// were written twice. The older migrations stay in the backend folders:
// their SQL differs by dialect and they are applied on existing databases.
package migrations

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
)

//go:embed common/*.sql postgres/*.sql sqlite/*.sql
var files embed.FS

// Postgres returns the PostgreSQL migrations.
func Postgres() fs.FS { return dialect(files, "postgres") }

// SQLite returns the SQLite migrations.
func SQLite() fs.FS { return dialect(files, "sqlite") }

// dialect returns the migrations of the backend folder dir of fsys with
// the folder common laid under it.
func dialect(fsys fs.FS, dir string) fs.FS {
	own, _ := fs.Sub(fsys, dir)
	common, _ := fs.Sub(fsys, "common")
	return merged{name: dir, own: own, common: common}
}

// merged shows the files of two folders as one. A version present in both
// is an error of ReadDir (and Glob, which goose lists the migrations with),
// so that a migration added to common/ and to a backend folder by mistake
// stops the server from migrating rather than one copy silently winning.
type merged struct {
	name        string // the backend folder, for errors
	own, common fs.FS
}

func (m merged) Open(name string) (fs.File, error) {
	f, err := m.own.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return m.common.Open(name)
	}
	return f, err
}

func (m merged) ReadDir(name string) ([]fs.DirEntry, error) {
	own, err := fs.ReadDir(m.own, name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading the %s migrations: %w", m.name, err)
	}
	common, cerr := fs.ReadDir(m.common, name)
	if cerr != nil && !errors.Is(cerr, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading the common migrations: %w", cerr)
	}
	if err != nil && cerr != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	versions := make(map[string]string, len(own))
	for _, e := range own {
		versions[version(e.Name())] = e.Name()
	}
	for _, e := range common {
		if o, ok := versions[version(e.Name())]; ok {
			return nil, fmt.Errorf("migration version %s is both in common (%s) and in %s (%s)",
				version(e.Name()), e.Name(), m.name, o)
		}
	}
	all := append(own, common...)
	slices.SortFunc(all, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return all, nil
}

// Glob is fs.Glob over the merged folders, but returns the error of a
// version present in both where fs.Glob would drop it and list nothing.
func (m merged) Glob(pattern string) ([]string, error) {
	if _, err := m.ReadDir("."); err != nil {
		return nil, err
	}
	return fs.Glob(struct{ fs.ReadDirFS }{m}, pattern)
}

// version is what goose takes for the version of a migration file: the
// number before the first '_' (so 00008_a.sql and 8_b.sql collide), or for
// a file that has none, its name.
func version(file string) string {
	v, _, _ := strings.Cut(file, "_")
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return strconv.FormatInt(n, 10)
	}
	return file
}
