package main

import (
	"context"
	"fmt"
)

// reindexCmd rebuilds the search index of every current resource, for when
// search parameter definitions or their extraction change.
type reindexCmd struct {
	Tenant string `name:"tenant" default:"" help:"Tenant to reindex (default: the default tenant)."`
}

// reindexer is what reindexCmd needs from the store; both SQL stores have it.
type reindexer interface {
	Reindex(ctx context.Context, tenant string) (int, error)
}

func (c *reindexCmd) Run(e *env) error {
	st, err := openStore(e.ctx, e.cli.DatabaseURL, e.cli.FullText)
	if err != nil {
		return fmt.Errorf("opening the database: %w", err)
	}
	defer st.Close()
	rx, ok := st.(reindexer)
	if !ok {
		return fmt.Errorf("this store cannot reindex")
	}
	n, err := rx.Reindex(e.ctx, c.Tenant)
	if err != nil {
		return fmt.Errorf("reindexing stopped: %w", err)
	}
	fmt.Fprintf(e.stdout, "reindexed %d resources\n", n)
	return nil
}
