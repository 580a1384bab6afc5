// Package migrations holds the versioned SQL schema of each backend,
// embedded so that the binary migrates its own database.
package migrations

import (
	"embed"
	"io/fs"
)

//go:embed postgres/*.sql sqlite/*.sql
var files embed.FS

// Postgres returns the PostgreSQL migrations.
func Postgres() fs.FS { sub, _ := fs.Sub(files, "postgres"); return sub }

// SQLite returns the SQLite migrations.
func SQLite() fs.FS { sub, _ := fs.Sub(files, "sqlite"); return sub }
