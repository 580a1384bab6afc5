package sqlstore

import (
	"context"
	"fmt"
)

// reindexBatch is the number of resources re-extracted per transaction.
const reindexBatch = 500

// Reindex extracts the index rows of every current resource of tenant
// again and replaces the stored ones, in batches of reindexBatch resources,
// one transaction each (for when search parameter definitions or the
// extraction change). It locks each batch's resources while it rewrites
// them, so a concurrent write is never overwritten with stale rows, and it
// returns how many resources it reindexed. A resource that can no longer be
// indexed stops it with the error (KindInvalid), naming the resource.
func (s *Store) Reindex(ctx context.Context, tenant string) (int, error) {
	n, err := s.reindex(ctx, tenant)
	return n, wrap(err, "reindexing")
}

func (s *Store) reindex(ctx context.Context, tenant string) (int, error) {
	total := 0
	afterType, afterID := "", ""
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var done int
		var last resourceKey
		err := s.inTx(ctx, func(tx Querier) error {
			done = 0
			rows, err := tx.Query(ctx, `SELECT type, id, body FROM resources WHERE tenant = $1 AND NOT deleted AND (type > $2 OR (type = $2 AND id > $3)) ORDER BY type, id LIMIT $4`+s.Driver.ForUpdate(),
				tenant, afterType, afterID, int64(reindexBatch))
			if err != nil {
				return fmt.Errorf("reading resources to reindex: %w", err)
			}
			type item struct {
				key  resourceKey
				body []byte
			}
			var items []item
			for rows.Next() {
				var it item
				if err := rows.Scan(&it.key.typ, &it.key.id, &it.body); err != nil {
					rows.Close()
					return fmt.Errorf("reading resources to reindex: %w", err)
				}
				items = append(items, it)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("reading resources to reindex: %w", err)
			}
			if len(items) == 0 {
				return nil
			}
			b := newIndexBatch(tenant)
			keys := make([]resourceKey, len(items))
			for i, it := range items {
				e, err := s.extract(it.key.typ, it.body)
				if err != nil {
					return err
				}
				b.addEntries(it.key.typ, it.key.id, e)
				keys[i] = it.key
			}
			if err := s.writeIndex(ctx, tx, tenant, keys, b); err != nil {
				return err
			}
			done = len(items)
			last = items[len(items)-1].key
			return nil
		})
		if err != nil {
			return total, err
		}
		afterType, afterID = last.typ, last.id
		total += done
		if done < reindexBatch {
			return total, nil
		}
	}
}
