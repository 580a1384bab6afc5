package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/store"
)

// The transaction contract (the Tx* tests of Run): Transact is
// all-or-nothing, a Tx sees its own writes (reads and searches),
// pre-assigned ids, the reference checks, and read-modify-write inside a Tx
// that never loses a concurrent update.

var errAbort = errors.New("abort")

func testTxAtomic(t *testing.T, s store.Store) {
	ctx := context.Background()
	keep, err := s.Create(ctx, write("Patient", "", `{"resourceType":"Patient","active":true}`))
	must(t, err)
	var created []*fhir.Resource
	fails := []struct {
		name string
		last func(tx store.Tx) error
		kind fhir.Kind
	}{
		{"foreign error", func(store.Tx) error { return errAbort }, fhir.KindInternal},
		{"failed If-Match", func(tx store.Tx) error {
			w := write("Patient", keep.ID, `{"resourceType":"Patient","active":false}`)
			w.IfMatch = 7
			_, _, err := tx.Update(ctx, w)
			return err
		}, fhir.KindPreconditionFailed},
		{"invalid id", func(tx store.Tx) error {
			_, _, err := tx.Update(ctx, write("Patient", "bad id", `{"resourceType":"Patient"}`))
			return err
		}, fhir.KindInvalid},
	}
	for _, f := range fails {
		created = created[:0]
		err := s.Transact(ctx, store.DefaultTenant, func(tx store.Tx) error {
			created = created[:0]
			for i := range 3 {
				res, err := tx.Create(ctx, write("Observation", "", fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"text":"%d"}}`, i)))
				if err != nil {
					return err
				}
				created = append(created, res)
			}
			if _, _, err := tx.Update(ctx, write("Patient", keep.ID, `{"resourceType":"Patient","active":false,"gender":"other"}`)); err != nil {
				return err
			}
			if _, err := tx.Delete(ctx, store.Delete{Type: "Patient", ID: keep.ID}); err != nil {
				return err
			}
			return f.last(tx)
		})
		if f.kind == fhir.KindInternal {
			if !errors.Is(err, errAbort) {
				t.Fatalf("%s: Transact returned %v, want the error of fn", f.name, err)
			}
		} else {
			wantKind(t, err, f.kind)
		}
		if len(created) != 3 {
			t.Fatalf("%s: %d creates ran", f.name, len(created))
		}
		for _, c := range created {
			if _, err := s.Read(ctx, store.DefaultTenant, "Observation", c.ID); fhir.KindOf(err) != fhir.KindNotFound {
				t.Fatalf("%s: a failed transaction left %s/%s: %v", f.name, c.Type, c.ID, err)
			}
		}
		got, err := s.Read(ctx, store.DefaultTenant, "Patient", keep.ID)
		must(t, err)
		if got.Version != 1 {
			t.Fatalf("%s: a failed transaction changed the patient to version %d", f.name, got.Version)
		}
		page, err := s.History(ctx, store.HistoryQuery{Count: 100})
		must(t, err)
		if page.Total != 1 {
			t.Fatalf("%s: history holds %d versions after a failed transaction, want 1", f.name, page.Total)
		}
	}

	// The same work with a nil result commits all of it.
	err = s.Transact(ctx, store.DefaultTenant, func(tx store.Tx) error {
		created = created[:0]
		for range 2 {
			res, err := tx.Create(ctx, write("Observation", "", `{"resourceType":"Observation","status":"final","code":{"text":"ok"}}`))
			if err != nil {
				return err
			}
			created = append(created, res)
		}
		_, err := tx.Delete(ctx, store.Delete{Type: "Patient", ID: keep.ID, IfMatch: 1})
		return err
	})
	must(t, err)
	for _, c := range created {
		_, err := s.Read(ctx, store.DefaultTenant, "Observation", c.ID)
		must(t, err)
	}
	_, err = s.Read(ctx, store.DefaultTenant, "Patient", keep.ID)
	wantKind(t, err, fhir.KindGone)
}

func testTxSeesOwnWrites(t *testing.T, s store.Store) {
	ctx := context.Background()
	err := s.Transact(ctx, store.DefaultTenant, func(tx store.Tx) error {
		p, err := tx.Create(ctx, write("Patient", "", `{"resourceType":"Patient","identifier":[{"system":"http://tx","value":"own"}]}`))
		if err != nil {
			return err
		}
		got, err := tx.Read(ctx, "Patient", p.ID)
		if err != nil {
			return err
		}
		if got.Version != 1 || !sameJSON(got.Body, p.Body) {
			return fmt.Errorf("read in the transaction got %s, want %s", got.Body, p.Body)
		}
		page, err := tx.Search(ctx, query(t, []string{"Patient"}, nil, "identifier=http://tx|own"))
		if err != nil {
			return err
		}
		if keys := keysOf(page.Matches); len(keys) != 1 || keys[0] != "Patient/"+p.ID {
			return fmt.Errorf("search in the transaction found %v, want Patient/%s", keys, p.ID)
		}
		up, _, err := tx.Update(ctx, write("Patient", p.ID, `{"resourceType":"Patient","identifier":[{"system":"http://tx","value":"changed"}]}`))
		if err != nil {
			return err
		}
		v1, err := tx.VRead(ctx, "Patient", p.ID, 1)
		if err != nil {
			return err
		}
		if up.Version != 2 || !strings.Contains(string(v1.Body), `"own"`) {
			return fmt.Errorf("update in the transaction: version %d, version 1 %s", up.Version, v1.Body)
		}
		page, err = tx.Search(ctx, query(t, []string{"Patient"}, nil, "identifier=http://tx|own"))
		if err != nil {
			return err
		}
		if len(page.Matches) != 0 {
			return fmt.Errorf("search after the update still finds the old value: %v", keysOf(page.Matches))
		}
		if _, err := tx.Delete(ctx, store.Delete{Type: "Patient", ID: p.ID}); err != nil {
			return err
		}
		if _, err := tx.Read(ctx, "Patient", p.ID); fhir.KindOf(err) != fhir.KindGone {
			return fmt.Errorf("read after delete in the transaction: %v, want gone", err)
		}
		return nil
	})
	must(t, err)
}

func testTxCreateWithID(t *testing.T, s store.Store) {
	ctx := context.Background()
	err := s.Transact(ctx, store.DefaultTenant, func(tx store.Tx) error {
		res, err := tx.Create(ctx, write("Patient", "chosen-1", `{"resourceType":"Patient","id":"other"}`))
		if err != nil {
			return err
		}
		if res.ID != "chosen-1" || res.Version != 1 {
			return fmt.Errorf("create with an id gave %s version %d", res.ID, res.Version)
		}
		return nil
	})
	must(t, err)
	page, err := s.History(ctx, store.HistoryQuery{Type: "Patient", ID: "chosen-1", Count: 10})
	must(t, err)
	if len(page.Versions) != 1 || page.Versions[0].Op != store.OpCreate {
		t.Fatalf("a create with a chosen id is recorded as %+v, want one create", page.Versions)
	}
	// The id exists now, and after a delete it still existed once.
	for _, step := range []string{"exists", "deleted"} {
		if step == "deleted" {
			_, err := s.Delete(ctx, store.Delete{Type: "Patient", ID: "chosen-1"})
			must(t, err)
		}
		err = s.Transact(ctx, store.DefaultTenant, func(tx store.Tx) error {
			_, err := tx.Create(ctx, write("Patient", "chosen-1", `{"resourceType":"Patient"}`))
			return err
		})
		wantKind(t, err, fhir.KindConflict)
	}
	// Without an id the store picks one.
	err = s.Transact(ctx, store.DefaultTenant, func(tx store.Tx) error {
		res, err := tx.Create(ctx, write("Patient", "", `{"resourceType":"Patient"}`))
		if err == nil && !fhir.ValidID(res.ID) {
			err = fmt.Errorf("assigned id %q", res.ID)
		}
		return err
	})
	must(t, err)
}

func testTxTenant(t *testing.T, s store.Store) {
	ctx := context.Background()
	err := s.Transact(ctx, "tx-a", func(tx store.Tx) error {
		// Write.Tenant is ignored: the transaction's tenant applies.
		_, _, err := tx.Update(ctx, store.Write{Tenant: "tx-b", Type: "Patient", ID: "t1", Body: []byte(`{"resourceType":"Patient"}`)})
		return err
	})
	must(t, err)
	_, err = s.Read(ctx, "tx-a", "Patient", "t1")
	must(t, err)
	_, err = s.Read(ctx, "tx-b", "Patient", "t1")
	wantKind(t, err, fhir.KindNotFound)
	err = s.Transact(ctx, "tx-b", func(tx store.Tx) error {
		if _, err := tx.Read(ctx, "Patient", "t1"); fhir.KindOf(err) != fhir.KindNotFound {
			return fmt.Errorf("another tenant's transaction reads t1: %v", err)
		}
		missing, err := tx.Missing(ctx, []store.Ref{{Type: "Patient", ID: "t1"}})
		if err != nil {
			return err
		}
		if len(missing) != 1 {
			return fmt.Errorf("another tenant's resource counts as present: missing %v", missing)
		}
		return nil
	})
	must(t, err)
}

func testTxReferences(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, w := range []store.Write{
		write("Patient", "r-p1", `{"resourceType":"Patient"}`),
		write("Patient", "r-p2", `{"resourceType":"Patient"}`),
		write("Patient", "r-gone", `{"resourceType":"Patient"}`),
		write("Observation", "r-o1", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/r-p1"}}`),
		write("Observation", "r-o2", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/r-p1"},"performer":[{"reference":"Patient/r-p1"}]}`),
		write("Observation", "r-ext", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"http://elsewhere.org/fhir/Patient/r-p2"}}`),
		write("Patient", "r-self", `{"resourceType":"Patient","link":[{"other":{"reference":"Patient/r-self"},"type":"seealso"}]}`),
	} {
		_, _, err := s.Update(ctx, w)
		must(t, err)
	}
	_, err := s.Delete(ctx, store.Delete{Type: "Patient", ID: "r-gone"})
	must(t, err)
	err = s.Transact(ctx, store.DefaultTenant, func(tx store.Tx) error {
		if _, err := tx.Create(ctx, write("Patient", "r-new", `{"resourceType":"Patient"}`)); err != nil {
			return err
		}
		refs := []store.Ref{{Type: "Patient", ID: "r-p1"}, {Type: "Patient", ID: "r-gone"}, {Type: "Patient", ID: "r-new"}, {Type: "Patient", ID: "never"}, {Type: "Organization", ID: "r-p1"}, {Type: "Patient", ID: "r-p1"}}
		missing, err := tx.Missing(ctx, refs)
		if err != nil {
			return err
		}
		if fmt.Sprint(missing) != "[Patient/r-gone Patient/never Organization/r-p1]" {
			return fmt.Errorf("Missing(%v) = %v", refs, missing)
		}
		cases := []struct {
			typ, id string
			limit   int
			want    string
		}{
			{"Patient", "r-p1", 10, "[Observation/r-o1 Observation/r-o2]"},
			{"Patient", "r-p1", 1, "[Observation/r-o1]"},
			{"Patient", "r-p2", 10, "[]"}, // an absolute URL elsewhere is not a local reference
			{"Patient", "r-self", 10, "[]"},
			{"Patient", "never", 10, "[]"},
		}
		for _, c := range cases {
			got, err := tx.ReferencedBy(ctx, c.typ, c.id, c.limit)
			if err != nil {
				return err
			}
			if fmt.Sprint(got) != c.want && !(c.want == "[]" && len(got) == 0) {
				return fmt.Errorf("ReferencedBy(%s/%s, %d) = %v, want %s", c.typ, c.id, c.limit, got, c.want)
			}
		}
		// A referrer deleted in the transaction no longer counts.
		if _, err := tx.Delete(ctx, store.Delete{Type: "Observation", ID: "r-o1"}); err != nil {
			return err
		}
		got, err := tx.ReferencedBy(ctx, "Patient", "r-p1", 10)
		if err != nil {
			return err
		}
		if fmt.Sprint(got) != "[Observation/r-o2]" {
			return fmt.Errorf("after deleting r-o1 in the transaction, ReferencedBy = %v", got)
		}
		return errAbort
	})
	if !errors.Is(err, errAbort) {
		t.Fatal(err)
	}
}

// testTxConcurrentReadModifyWrite runs the read, change, update of a patch
// from several goroutines at once: Tx.Read locks, so every change survives.
func testTxConcurrentReadModifyWrite(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, _, err := s.Update(ctx, write("Basic", "counter", `{"resourceType":"Basic","code":{"text":"0"}}`))
	must(t, err)
	const writers, rounds = 6, 5
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				errs <- s.Transact(ctx, store.DefaultTenant, func(tx store.Tx) error {
					cur, err := tx.Read(ctx, "Basic", "counter")
					if err != nil {
						return err
					}
					n := strings.Count(string(cur.Body), "+")
					w := write("Basic", "counter", `{"resourceType":"Basic","code":{"text":"`+strings.Repeat("+", n+1)+`"}}`)
					w.IfMatch = cur.Version
					_, _, err = tx.Update(ctx, w)
					return err
				})
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err)
	}
	got, err := s.Read(ctx, store.DefaultTenant, "Basic", "counter")
	must(t, err)
	if n := strings.Count(string(got.Body), "+"); n != writers*rounds || got.Version != writers*rounds+1 {
		t.Fatalf("after %d read-modify-writes the counter is %d at version %d: an update was lost", writers*rounds, n, got.Version)
	}
}

func testTxCreateAll(t *testing.T, s store.Store) {
	ctx := context.Background()
	ws := []store.Write{
		write("Patient", "all-p", `{"resourceType":"Patient","identifier":[{"system":"http://all","value":"p"}],"extension":[{"url":"http://e","valueDecimal":176.35499866729558}]}`),
		write("Observation", "all-o1", `{"resourceType":"Observation","status":"final","code":{"text":"all"},"subject":{"reference":"Patient/all-p"}}`),
		write("Observation", "all-o2", `{"resourceType":"Observation","status":"final","code":{"text":"all"},"subject":{"reference":"Patient/all-p"}}`),
	}
	var got []*fhir.Resource
	err := s.Transact(ctx, store.DefaultTenant, func(tx store.Tx) error {
		var err error
		if got, err = tx.CreateAll(ctx, ws); err != nil {
			return err
		}
		// Searchable in the transaction at once.
		page, err := tx.Search(ctx, query(t, []string{"Observation"}, nil, "subject=Patient/all-p"))
		if err == nil && len(page.Matches) != 2 {
			err = fmt.Errorf("search in the transaction found %v", keysOf(page.Matches))
		}
		return err
	})
	must(t, err)
	if len(got) != 3 {
		t.Fatalf("CreateAll returned %d resources", len(got))
	}
	for i, r := range got {
		if r.ID != ws[i].ID || r.Type != ws[i].Type || r.Version != 1 {
			t.Fatalf("result %d is %s/%s version %d", i, r.Type, r.ID, r.Version)
		}
		stored, err := s.Read(ctx, store.DefaultTenant, r.Type, r.ID)
		must(t, err)
		if !sameJSON(stored.Body, r.Body) || !stored.LastUpdated.Equal(r.LastUpdated) {
			t.Fatalf("stored %s differs from the result %s", stored.Body, r.Body)
		}
	}
	if !strings.Contains(string(got[0].Body), "176.35499866729558") {
		t.Fatalf("decimal precision lost: %s", got[0].Body)
	}
	page, err := s.History(ctx, store.HistoryQuery{Type: "Observation", ID: "all-o1", Count: 10})
	must(t, err)
	if len(page.Versions) != 1 || page.Versions[0].Op != store.OpCreate {
		t.Fatalf("history %+v, want one create", page.Versions)
	}
	sp, err := s.Search(ctx, store.DefaultTenant, query(t, []string{"Patient"}, nil, "identifier=http://all|p"))
	must(t, err)
	if len(sp.Matches) != 1 {
		t.Fatalf("the index of CreateAll is missing: %v", keysOf(sp.Matches))
	}

	// An id that exists fails the whole call, and the transaction stores
	// nothing of it.
	_, err = s.Delete(ctx, store.Delete{Type: "Observation", ID: "all-o2"})
	must(t, err)
	for _, clash := range []string{"all-o1", "all-o2"} {
		err = s.Transact(ctx, store.DefaultTenant, func(tx store.Tx) error {
			_, err := tx.CreateAll(ctx, []store.Write{
				write("Observation", "all-new", `{"resourceType":"Observation","status":"final","code":{"text":"new"}}`),
				write("Observation", clash, `{"resourceType":"Observation","status":"final","code":{"text":"again"}}`),
			})
			return err
		})
		wantKind(t, err, fhir.KindConflict)
		if !strings.Contains(fhir.MessageOf(err), "Observation/"+clash) {
			t.Errorf("the conflict does not name Observation/%s: %v", clash, err)
		}
		if _, err := s.Read(ctx, store.DefaultTenant, "Observation", "all-new"); fhir.KindOf(err) != fhir.KindNotFound {
			t.Fatalf("a failed CreateAll stored all-new: %v", err)
		}
	}
	err = s.Transact(ctx, store.DefaultTenant, func(tx store.Tx) error {
		_, err := tx.CreateAll(ctx, []store.Write{write("Basic", "twice", `{"resourceType":"Basic"}`), write("Basic", "twice", `{"resourceType":"Basic"}`)})
		return err
	})
	wantKind(t, err, fhir.KindConflict)
}
