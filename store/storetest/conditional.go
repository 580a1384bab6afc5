package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/search"
	"github.com/fhirserver/fhirserver/store"
)

// criteria parses the criteria of a conditional interaction as the server
// does.
func criteria(t *testing.T, typ, rawQuery string) store.Criteria {
	return store.Criteria{Type: typ, Query: query(t, []string{typ}, nil, rawQuery)}
}

func testConditionalMatch(t *testing.T, s store.Store) {
	ctx := context.Background()
	for i, ident := range []string{"one", "two", "two", "gone"} {
		_, _, err := s.Update(ctx, write("Patient", fmt.Sprintf("c%d", i), `{"resourceType":"Patient","identifier":[{"system":"http://c","value":"`+ident+`"}]}`))
		must(t, err)
	}
	_, err := s.Delete(ctx, store.Delete{Type: "Patient", ID: "c3"})
	must(t, err)
	for i := range 7 {
		_, _, err := s.Update(ctx, write("Observation", fmt.Sprintf("m%d", i), `{"resourceType":"Observation","status":"final","code":{"text":"many"}}`))
		must(t, err)
	}
	err = s.Transact(ctx, store.DefaultTenant, func(tx store.Tx) error {
		cases := []struct {
			c       store.Criteria
			limit   int
			want    int
			one     string // MatchOne: id, "" for none, "412" for several
			oneKind fhir.Kind
		}{
			{criteria(t, "Patient", "identifier=http://c|none"), 5, 0, "", ""},
			{criteria(t, "Patient", "identifier=http://c|one"), 5, 1, "c0", ""},
			{criteria(t, "Patient", "identifier=http://c|two"), 5, 2, "", fhir.KindPreconditionFailed},
			{criteria(t, "Patient", "identifier=http://c|gone"), 5, 0, "", ""},
			{criteria(t, "Observation", "code:text=many"), 3, 4, "", fhir.KindPreconditionFailed},
			{criteria(t, "Observation", "code:text=many"), 10, 7, "", fhir.KindPreconditionFailed},
			{criteria(t, "Observation", "code:text=many&_count=1&_sort=-_id"), 10, 7, "", fhir.KindPreconditionFailed},
		}
		for _, c := range cases {
			got, err := store.Match(ctx, tx, c.c, c.limit)
			if err != nil {
				return err
			}
			if len(got) != c.want {
				return fmt.Errorf("Match(%s, %d) found %v, want %d", c.c.Key(), c.limit, keysOf(got), c.want)
			}
			one, err := store.MatchOne(ctx, tx, c.c)
			switch {
			case c.oneKind != "":
				if fhir.KindOf(err) != c.oneKind {
					return fmt.Errorf("MatchOne(%s) = %v, %v; want %s", c.c.Key(), one, err, c.oneKind)
				}
			case err != nil:
				return err
			case c.one == "" && one != nil, c.one != "" && (one == nil || one.ID != c.one):
				return fmt.Errorf("MatchOne(%s) = %+v, want %q", c.c.Key(), one, c.one)
			}
		}
		return nil
	})
	must(t, err)

	// Criteria.Access: the criteria match only what the filter admits, and
	// what it hides is not counted either (no "several" because of it).
	for i, subject := range []string{"a", "a", "b", "b"} {
		_, _, err := s.Update(ctx, write("Observation", fmt.Sprintf("f%d", i), `{"resourceType":"Observation","status":"final","code":{"text":"filtered"},"subject":{"reference":"Patient/`+subject+`"}}`))
		must(t, err)
	}
	onlyA := store.Filter{Grants: []store.Grant{{Compartment: &search.Compartment{Type: "Patient", ID: "a"}}}}
	all, none := store.AllowAll(), store.Filter{}
	err = s.Transact(ctx, store.DefaultTenant, func(tx store.Tx) error {
		for _, c := range []struct {
			query  string
			access *store.Filter
			want   []string
		}{
			{"code:text=filtered", nil, []string{"Observation/f0", "Observation/f1", "Observation/f2", "Observation/f3"}},
			{"code:text=filtered", &onlyA, []string{"Observation/f0", "Observation/f1"}},
			{"code:text=filtered&subject=Patient/b", &onlyA, nil},
			{"_id=f3", &onlyA, nil},
			{"_id=f3", &none, nil},
			{"_id=f3", &all, []string{"Observation/f3"}},
		} {
			cr := criteria(t, "Observation", c.query)
			cr.Access = c.access
			got, err := store.Match(ctx, tx, cr, 10)
			if err != nil {
				return err
			}
			if !sameSet(keysOf(got), c.want) {
				return fmt.Errorf("Match(%s) under %v found %v, want %v", c.query, c.access, keysOf(got), c.want)
			}
		}
		cr := criteria(t, "Observation", "code:text=filtered&subject=Patient/b")
		cr.Access = &onlyA
		if one, err := store.MatchOne(ctx, tx, cr); err != nil || one != nil {
			return fmt.Errorf("MatchOne of hidden resources = %v, %v; want none", one, err)
		}
		return nil
	})
	must(t, err)

	// The lock key depends on what the criteria mean, not how they are
	// written.
	a, b := criteria(t, "Patient", "identifier=http://c%7Cone&_count=3"), criteria(t, "Patient", "identifier=http://c|one")
	if a.Key() != b.Key() {
		t.Errorf("keys differ: %q and %q", a.Key(), b.Key())
	}
	if c := criteria(t, "Observation", "identifier=http://c|one"); c.Key() == b.Key() {
		t.Errorf("the key does not name the type: %q", c.Key())
	}
}

// testConcurrentConditionalCreate is the race of conditional create: many
// transactions with the same criteria at once store exactly one resource,
// and every one of them ends up with it.
func testConcurrentConditionalCreate(t *testing.T, s store.Store) {
	ctx := context.Background()
	const writers = 8
	for round := range 3 {
		ident := fmt.Sprintf("race-%d", round)
		c := criteria(t, "Patient", "identifier=http://race|"+ident)
		var wg sync.WaitGroup
		ids := make([]string, writers)
		created := make([]bool, writers)
		errs := make([]error, writers)
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = s.Transact(ctx, store.DefaultTenant, func(tx store.Tx) error {
					ids[i], created[i] = "", false
					found, err := store.MatchOne(ctx, tx, c)
					if err != nil {
						return err
					}
					if found != nil {
						ids[i] = found.ID
						return nil
					}
					res, err := tx.Create(ctx, write("Patient", "", `{"resourceType":"Patient","identifier":[{"system":"http://race","value":"`+ident+`"}]}`))
					if err != nil {
						return err
					}
					ids[i], created[i] = res.ID, true
					return nil
				})
			}()
		}
		wg.Wait()
		n := 0
		for i := range writers {
			must(t, errs[i])
			if created[i] {
				n++
			}
			if ids[i] != ids[0] {
				t.Fatalf("round %d: writers ended up with different resources: %v", round, ids)
			}
		}
		page, err := s.Search(ctx, store.DefaultTenant, query(t, []string{"Patient"}, nil, "identifier=http://race|"+ident))
		must(t, err)
		if n != 1 || len(page.Matches) != 1 {
			t.Fatalf("round %d: %d writers created, %d resources stored; want exactly 1", round, n, len(page.Matches))
		}
	}
}
