// Package demo holds the sample data that `serve --demo` loads: a few
// synthetic Synthea patients, embedded so that the binary needs no files.
package demo

import (
	"embed"
	"io/fs"
)

//go:embed synthea/*.json
var bundles embed.FS

// Bundles returns the demo transaction Bundles; paths are synthea/NAME.json.
func Bundles() fs.FS { return bundles }
