package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	neturl "net/url"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/fhirserver/fhirserver/store"
	"github.com/fhirserver/fhirserver/store/postgres"
	"github.com/fhirserver/fhirserver/store/sqlite"
)

// cli is the command line; every flag also reads an environment variable.
type cli struct {
	DatabaseURL string `name:"database-url" env:"DATABASE_URL" default:"sqlite:data/fhir.db" help:"sqlite:PATH or postgres://..."`
	LogLevel    string `name:"log-level" env:"FHIR_LOG_LEVEL" default:"info" enum:"debug,info,warn,error" help:"debug, info, warn or error"`
	FullText    bool   `name:"full-text" env:"FHIR_FULL_TEXT" help:"Index the text of resources for _text and _content searches (costs write time; run reindex after turning it on)."`

	Serve   serveCmd   `cmd:"" default:"withargs" help:"Run the FHIR server (the default command)."`
	Migrate migrateCmd `cmd:"" help:"Apply pending database migrations and exit."`
	Import  importCmd  `cmd:"" help:"Load Bundles (.json) and NDJSON (.ndjson) files or folders."`
	Reindex reindexCmd `cmd:"" help:"Rebuild the search index of every current resource (after search definitions change)."`
	User    userCmd    `cmd:"" help:"Manage the users who can log in."`
	Client  clientCmd  `cmd:"" help:"Manage OAuth clients."`
	Launch  launchCmd  `cmd:"" help:"Create EHR launch contexts."`
	Token   tokenCmd   `cmd:"" help:"Mint an access token for operators and scripts."`
	Keys    keysCmd    `cmd:"" help:"Rotate the signing keys."`
}

// env is what every command gets: where to write and how to log.
type env struct {
	ctx    context.Context
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger
	cli    *cli
}

// usageError makes run exit with status 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }

// run parses args and runs the command: 0 on success, 2 on a usage error,
// 1 on any other failure.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var c cli
	exit := -1
	parser, err := kong.New(&c,
		kong.Name("fhirserver"),
		kong.Description("A FHIR R4 server with a SMART on FHIR authorization server."),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { exit = code }),
		kong.UsageOnError(),
	)
	if err != nil {
		fmt.Fprintln(stderr, "fhirserver:", err)
		return 1
	}
	kctx, err := parser.Parse(args)
	if exit >= 0 { // --help
		return exit
	}
	if err != nil {
		fmt.Fprintln(stderr, "fhirserver:", err)
		return 2
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.LogLevel))
	e := &env{ctx: ctx, stdout: stdout, stderr: stderr, cli: &c,
		log: slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))}
	if err := kctx.Run(e); err != nil {
		fmt.Fprintln(stderr, "fhirserver:", err)
		var u usageError
		if errors.As(err, &u) {
			return 2
		}
		return 1
	}
	return 0
}

// openStore opens (and migrates) the database named by a URL.
func openStore(ctx context.Context, url string, fullText bool) (store.Store, error) {
	switch {
	case strings.HasPrefix(url, "sqlite:"):
		s, err := sqlite.Open(ctx, strings.TrimPrefix(strings.TrimPrefix(url, "sqlite:"), "//"))
		if err != nil {
			return nil, err
		}
		s.Store.FullText = fullText
		return s, nil
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		s, err := postgres.Open(ctx, url)
		if err != nil {
			return nil, err
		}
		s.Store.FullText = fullText
		return s, nil
	default:
		return nil, usageError{fmt.Errorf("--database-url must start with sqlite: or postgres://")}
	}
}

type migrateCmd struct{}

func (migrateCmd) Run(e *env) error {
	s, err := openStore(e.ctx, e.cli.DatabaseURL, e.cli.FullText)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "migrations applied")
	return s.Close()
}

// redactURL hides a password in a database URL before it is logged.
func redactURL(s string) string {
	u, err := neturl.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = neturl.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
