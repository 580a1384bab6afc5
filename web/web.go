// Package web holds the authorization server's pages: HTML templates for
// login, consent, the patient picker and messages, and their static files,
// embedded in the binary. Package oauth renders them.
//
// Every page template is a named template ("login", "consent", "patient",
// "message") built on "head" and "foot"; each form carries a hidden
// csrf_token.
package web

import (
	"embed"
	"html/template"
	"io/fs"
)

//go:embed templates/*.html static/*
var files embed.FS

// Templates parses the page templates.
func Templates() (*template.Template, error) {
	return template.New("pages").ParseFS(files, "templates/*.html")
}

// Static returns the static files (style sheet), served under a path of
// the caller's choosing.
func Static() fs.FS {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the folder is embedded above
	}
	return sub
}
