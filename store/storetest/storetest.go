// Package storetest is the contract suite every store.Store backend passes.
// A backend's tests call Run with a function that opens its store; the
// function may be called again to reopen the same database.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/store"
)

// Opener returns a function that opens a store on one fresh database; each
// call of the returned function opens the same database again.
type Opener func(t *testing.T) (open func(t *testing.T) store.Store)

// Run runs the contract suite.
func Run(t *testing.T, opener Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"CreateRead", testCreateRead},
		{"UpdateVersions", testUpdateVersions},
		{"UpdateAsCreate", testUpdateAsCreate},
		{"UpdateUnchangedKeepsVersion", testUpdateUnchanged},
		{"IfMatch", testIfMatch},
		{"Delete", testDelete},
		{"NotFound", testNotFound},
		{"History", testHistory},
		{"HistoryPaging", testHistoryPaging},
		{"HistorySinceAndAt", testHistorySinceAndAt},
		{"ConcurrentIfMatch", testConcurrentIfMatch},
		{"ConcurrentUpdateAsCreate", testConcurrentUpdateAsCreate},
		{"Import", testImport},
		{"TenantIsolation", testTenants},
		{"Search", runSearch},
		{"TxAtomic", testTxAtomic},
		{"TxSeesOwnWrites", testTxSeesOwnWrites},
		{"TxCreateWithID", testTxCreateWithID},
		{"TxCreateAll", testTxCreateAll},
		{"TxTenant", testTxTenant},
		{"TxReferences", testTxReferences},
		{"TxConcurrentReadModifyWrite", testTxConcurrentReadModifyWrite},
		{"ConditionalMatch", testConditionalMatch},
		{"ConcurrentConditionalCreate", testConcurrentConditionalCreate},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			open := opener(t)
			s := open(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
	t.Run("PersistsAcrossReopen", func(t *testing.T) {
		open := opener(t)
		ctx := context.Background()
		s := open(t)
		res, err := s.Create(ctx, write("Patient", "", `{"resourceType":"Patient","active":true}`))
		must(t, err)
		up, _, err := s.Update(ctx, store.Write{Type: "Patient", ID: res.ID, Body: []byte(`{"resourceType":"Patient","id":"` + res.ID + `","active":false}`)})
		must(t, err)
		must(t, s.Close())
		s2 := open(t)
		defer s2.Close()
		got, err := s2.Read(ctx, store.DefaultTenant, "Patient", res.ID)
		must(t, err)
		if got.Version != 2 || !sameJSON(got.Body, up.Body) {
			t.Fatalf("after reopen got version %d body %s, want 2 %s", got.Version, got.Body, up.Body)
		}
		if _, err := s2.VRead(ctx, store.DefaultTenant, "Patient", res.ID, 1); err != nil {
			t.Fatalf("version 1 lost after reopen: %v", err)
		}
	})
}

func write(typ, id, body string) store.Write {
	return store.Write{Type: typ, ID: id, Body: []byte(body)}
}

// sameJSON compares two JSON documents by value: a backend may store JSON
// in a normalised form (PostgreSQL's jsonb reorders members).
func sameJSON(a, b []byte) bool {
	var x, y any
	da, db := json.NewDecoder(bytes.NewReader(a)), json.NewDecoder(bytes.NewReader(b))
	da.UseNumber()
	db.UseNumber()
	if da.Decode(&x) != nil || db.Decode(&y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantKind(t *testing.T, err error, kind fhir.Kind) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", kind)
	}
	if got := fhir.KindOf(err); got != kind {
		t.Fatalf("got error kind %s (%v), want %s", got, err, kind)
	}
}

// decode reads the members the suite checks out of a stored body.
func decode(t *testing.T, body []byte) (id, versionID, lastUpdated string, m map[string]any) {
	t.Helper()
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("stored body is not JSON: %v: %s", err, body)
	}
	id, _ = m["id"].(string)
	meta, _ := m["meta"].(map[string]any)
	versionID, _ = meta["versionId"].(string)
	lastUpdated, _ = meta["lastUpdated"].(string)
	return id, versionID, lastUpdated, m
}

func testCreateRead(t *testing.T, s store.Store) {
	ctx := context.Background()
	res, err := s.Create(ctx, write("Patient", "ignored", `{"resourceType":"Patient","id":"client-id","meta":{"versionId":"7","tag":[{"code":"x"}]},"gender":"female","extension":[{"url":"http://e","valueDecimal":176.35499866729558}]}`))
	must(t, err)
	if res.ID == "" || res.ID == "client-id" || res.ID == "ignored" || !fhir.ValidID(res.ID) {
		t.Fatalf("create must assign a fresh valid id, got %q", res.ID)
	}
	if res.Version != 1 || res.Deleted {
		t.Fatalf("got version %d deleted %v, want 1 false", res.Version, res.Deleted)
	}
	got, err := s.Read(ctx, store.DefaultTenant, "Patient", res.ID)
	must(t, err)
	id, vid, lu, m := decode(t, got.Body)
	if id != res.ID || vid != "1" || lu != fhir.FormatInstant(res.LastUpdated) {
		t.Fatalf("stored body has id %q versionId %q lastUpdated %q; want %q 1 %q", id, vid, lu, res.ID, fhir.FormatInstant(res.LastUpdated))
	}
	if m["gender"] != "female" {
		t.Fatalf("content lost: %s", got.Body)
	}
	if !strings.Contains(string(got.Body), "176.35499866729558") {
		t.Fatalf("decimal precision lost: %s", got.Body)
	}
	if tags, _ := m["meta"].(map[string]any)["tag"].([]any); len(tags) != 1 {
		t.Fatalf("meta.tag lost: %s", got.Body)
	}
	if !got.LastUpdated.Equal(res.LastUpdated) || got.Version != 1 {
		t.Fatalf("read metadata %v/%d differs from create %v/%d", got.LastUpdated, got.Version, res.LastUpdated, res.Version)
	}
}

func testUpdateVersions(t *testing.T, s store.Store) {
	ctx := context.Background()
	res, err := s.Create(ctx, write("Observation", "", `{"resourceType":"Observation","status":"preliminary"}`))
	must(t, err)
	up, created, err := s.Update(ctx, write("Observation", res.ID, `{"resourceType":"Observation","id":"`+res.ID+`","status":"final"}`))
	must(t, err)
	if created || up.Version != 2 {
		t.Fatalf("update: created %v version %d, want false 2", created, up.Version)
	}
	v1, err := s.VRead(ctx, store.DefaultTenant, "Observation", res.ID, 1)
	must(t, err)
	if !strings.Contains(string(v1.Body), "preliminary") {
		t.Fatalf("version 1 changed: %s", v1.Body)
	}
	v2, err := s.VRead(ctx, store.DefaultTenant, "Observation", res.ID, 2)
	must(t, err)
	_, vid, _, _ := decode(t, v2.Body)
	if vid != "2" || !strings.Contains(string(v2.Body), "final") {
		t.Fatalf("version 2 wrong: %s", v2.Body)
	}
	if up.LastUpdated.Before(res.LastUpdated) {
		t.Fatalf("lastUpdated went backwards: %v then %v", res.LastUpdated, up.LastUpdated)
	}
}

func testUpdateAsCreate(t *testing.T, s store.Store) {
	ctx := context.Background()
	res, created, err := s.Update(ctx, write("Patient", "pat-1", `{"resourceType":"Patient","id":"pat-1"}`))
	must(t, err)
	if !created || res.Version != 1 || res.ID != "pat-1" {
		t.Fatalf("update-as-create: created %v version %d id %s", created, res.Version, res.ID)
	}
	_, err = s.Read(ctx, store.DefaultTenant, "Patient", "pat-1")
	must(t, err)
	page, err := s.History(ctx, store.HistoryQuery{Type: "Patient", ID: "pat-1", Count: 10})
	must(t, err)
	if len(page.Versions) != 1 || page.Versions[0].Op != store.OpUpdate {
		t.Fatalf("update-as-create must be recorded as an update (a PUT): %+v", page.Versions)
	}
	_, _, err = s.Update(ctx, write("Patient", "bad id!", `{"resourceType":"Patient"}`))
	wantKind(t, err, fhir.KindInvalid)
}

func testUpdateUnchanged(t *testing.T, s store.Store) {
	ctx := context.Background()
	body := `{"resourceType":"Patient","id":"same","active":true}`
	first, _, err := s.Update(ctx, write("Patient", "same", body))
	must(t, err)
	// Same content with different server-managed meta is still unchanged.
	again, created, err := s.Update(ctx, write("Patient", "same", `{"resourceType":"Patient","id":"same","meta":{"versionId":"9","lastUpdated":"2001-01-01T00:00:00Z"},"active":true}`))
	must(t, err)
	if created || again.Version != 1 || !sameJSON(again.Body, first.Body) {
		t.Fatalf("no-op update made version %d created %v", again.Version, created)
	}
	page, err := s.History(ctx, store.HistoryQuery{Type: "Patient", ID: "same", Count: 10})
	must(t, err)
	if page.Total != 1 {
		t.Fatalf("no-op update added history: total %d", page.Total)
	}
}

func testIfMatch(t *testing.T, s store.Store) {
	ctx := context.Background()
	res, err := s.Create(ctx, write("Patient", "", `{"resourceType":"Patient","active":true}`))
	must(t, err)
	w := write("Patient", res.ID, `{"resourceType":"Patient","active":false}`)
	w.IfMatch = 2
	_, _, err = s.Update(ctx, w)
	wantKind(t, err, fhir.KindPreconditionFailed)
	w.IfMatch = 1
	up, _, err := s.Update(ctx, w)
	must(t, err)
	if up.Version != 2 {
		t.Fatalf("got version %d, want 2", up.Version)
	}
	_, err = s.Delete(ctx, store.Delete{Type: "Patient", ID: res.ID, IfMatch: 1})
	wantKind(t, err, fhir.KindPreconditionFailed)
	w = write("Patient", "missing", `{"resourceType":"Patient"}`)
	w.IfMatch = 1
	_, _, err = s.Update(ctx, w)
	wantKind(t, err, fhir.KindPreconditionFailed)
	if _, err := s.Read(ctx, store.DefaultTenant, "Patient", "missing"); fhir.KindOf(err) != fhir.KindNotFound {
		t.Fatalf("failed conditional update stored something: %v", err)
	}
}

func testDelete(t *testing.T, s store.Store) {
	ctx := context.Background()
	res, err := s.Create(ctx, write("Patient", "", `{"resourceType":"Patient"}`))
	must(t, err)
	del, err := s.Delete(ctx, store.Delete{Type: "Patient", ID: res.ID})
	must(t, err)
	if del == nil || del.Version != 2 || !del.Deleted {
		t.Fatalf("delete returned %+v, want version 2 deleted", del)
	}
	_, err = s.Read(ctx, store.DefaultTenant, "Patient", res.ID)
	wantKind(t, err, fhir.KindGone)
	var gone *store.GoneError
	if !errors.As(err, &gone) || gone.Resource.Version != 2 {
		t.Fatalf("gone error does not carry the deleted version: %v", err)
	}
	_, err = s.VRead(ctx, store.DefaultTenant, "Patient", res.ID, 2)
	wantKind(t, err, fhir.KindGone)
	if _, err := s.VRead(ctx, store.DefaultTenant, "Patient", res.ID, 1); err != nil {
		t.Fatalf("history lost the version before the delete: %v", err)
	}
	again, err := s.Delete(ctx, store.Delete{Type: "Patient", ID: res.ID})
	must(t, err)
	if again != nil {
		t.Fatalf("deleting a deleted resource made a version: %+v", again)
	}
	missing, err := s.Delete(ctx, store.Delete{Type: "Patient", ID: "never-was"})
	must(t, err)
	if missing != nil {
		t.Fatalf("deleting a missing resource returned %+v", missing)
	}
	back, created, err := s.Update(ctx, write("Patient", res.ID, `{"resourceType":"Patient","active":true}`))
	must(t, err)
	if !created || back.Version != 3 {
		t.Fatalf("update after delete: created %v version %d, want true 3", created, back.Version)
	}
	page, err := s.History(ctx, store.HistoryQuery{Type: "Patient", ID: res.ID, Count: 10})
	must(t, err)
	ops := []store.Op{}
	for _, v := range page.Versions {
		ops = append(ops, v.Op)
	}
	if fmt.Sprint(ops) != fmt.Sprint([]store.Op{store.OpUpdate, store.OpDelete, store.OpCreate}) {
		t.Fatalf("history ops %v", ops)
	}
	if len(page.Versions[1].Body) != 0 {
		t.Fatalf("deleted version has a body: %s", page.Versions[1].Body)
	}
}

func testNotFound(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.Read(ctx, store.DefaultTenant, "Patient", "nope")
	wantKind(t, err, fhir.KindNotFound)
	res, err := s.Create(ctx, write("Patient", "", `{"resourceType":"Patient"}`))
	must(t, err)
	_, err = s.VRead(ctx, store.DefaultTenant, "Patient", res.ID, 5)
	wantKind(t, err, fhir.KindNotFound)
	_, err = s.Read(ctx, store.DefaultTenant, "Observation", res.ID)
	wantKind(t, err, fhir.KindNotFound)
}

func testHistory(t *testing.T, s store.Store) {
	ctx := context.Background()
	p, err := s.Create(ctx, write("Patient", "", `{"resourceType":"Patient"}`))
	must(t, err)
	_, _, err = s.Update(ctx, write("Patient", p.ID, `{"resourceType":"Patient","active":true}`))
	must(t, err)
	o, err := s.Create(ctx, write("Observation", "", `{"resourceType":"Observation","status":"final"}`))
	must(t, err)
	cases := []struct {
		q    store.HistoryQuery
		want []string
	}{
		{store.HistoryQuery{Type: "Patient", ID: p.ID}, []string{"Patient/" + p.ID + "/2", "Patient/" + p.ID + "/1"}},
		{store.HistoryQuery{Type: "Patient"}, []string{"Patient/" + p.ID + "/2", "Patient/" + p.ID + "/1"}},
		{store.HistoryQuery{Type: "Observation"}, []string{"Observation/" + o.ID + "/1"}},
		{store.HistoryQuery{}, []string{"Observation/" + o.ID + "/1", "Patient/" + p.ID + "/2", "Patient/" + p.ID + "/1"}},
		{store.HistoryQuery{Type: "Encounter"}, nil},
	}
	for _, c := range cases {
		c.q.Count = 10
		page, err := s.History(ctx, c.q)
		must(t, err)
		var got []string
		for _, v := range page.Versions {
			got = append(got, fmt.Sprintf("%s/%s/%d", v.Type, v.ID, v.Version))
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) || page.Total != int64(len(c.want)) || page.Next != 0 {
			t.Errorf("history %+v = %v (total %d, next %d), want %v", c.q, got, page.Total, page.Next, c.want)
		}
	}
}

func testHistoryPaging(t *testing.T, s store.Store) {
	ctx := context.Background()
	res, err := s.Create(ctx, write("Patient", "", `{"resourceType":"Patient","birthDate":"2000-01-01"}`))
	must(t, err)
	for i := 2; i <= 7; i++ {
		_, _, err := s.Update(ctx, write("Patient", res.ID, fmt.Sprintf(`{"resourceType":"Patient","birthDate":"2000-01-%02d"}`, i)))
		must(t, err)
	}
	seen := map[int64]bool{}
	q := store.HistoryQuery{Type: "Patient", ID: res.ID, Count: 3}
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		page, err := s.History(ctx, q)
		must(t, err)
		if pages == 0 && page.Total != 7 {
			t.Fatalf("total %d, want 7", page.Total)
		}
		for _, v := range page.Versions {
			if seen[v.Version] {
				t.Fatalf("version %d on two pages", v.Version)
			}
			seen[v.Version] = true
		}
		// A write between pages must not shift the pages already handed out.
		if pages == 0 {
			_, _, err := s.Update(ctx, write("Patient", res.ID, `{"resourceType":"Patient","birthDate":"2001-01-01"}`))
			must(t, err)
		}
		if page.Next == 0 {
			break
		}
		q.Cursor = page.Next
	}
	for v := int64(1); v <= 7; v++ {
		if !seen[v] {
			t.Fatalf("version %d never listed; seen %v", v, seen)
		}
	}
	if seen[8] {
		t.Fatal("a version written after the first page appeared on a later page")
	}
}

func testHistorySinceAndAt(t *testing.T, s store.Store) {
	ctx := context.Background()
	res, err := s.Create(ctx, write("Patient", "", `{"resourceType":"Patient","active":true}`))
	must(t, err)
	time.Sleep(2 * time.Millisecond)
	up, _, err := s.Update(ctx, write("Patient", res.ID, `{"resourceType":"Patient","active":false}`))
	must(t, err)
	page, err := s.History(ctx, store.HistoryQuery{Type: "Patient", ID: res.ID, Since: up.LastUpdated, Count: 10})
	must(t, err)
	if len(page.Versions) != 1 || page.Versions[0].Version != 2 {
		t.Fatalf("_since gave %d versions", len(page.Versions))
	}
	page, err = s.History(ctx, store.HistoryQuery{Type: "Patient", At: up.LastUpdated.Add(-time.Microsecond), Count: 10})
	must(t, err)
	if len(page.Versions) != 1 || page.Versions[0].Version != 1 {
		t.Fatalf("_at before the update gave %+v", page.Versions)
	}
}

func testConcurrentIfMatch(t *testing.T, s store.Store) {
	ctx := context.Background()
	res, err := s.Create(ctx, write("Patient", "", `{"resourceType":"Patient"}`))
	must(t, err)
	const writers = 8
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := write("Patient", res.ID, fmt.Sprintf(`{"resourceType":"Patient","birthDate":"19%02d-01-01"}`, 10+i))
			w.IfMatch = 1
			_, _, errs[i] = s.Update(ctx, w)
		}()
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		if err == nil {
			wins++
		} else if fhir.KindOf(err) != fhir.KindPreconditionFailed {
			t.Fatalf("loser got %v, want precondition-failed", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d writers won with the same If-Match, want exactly 1", wins)
	}
	cur, err := s.Read(ctx, store.DefaultTenant, "Patient", res.ID)
	must(t, err)
	if cur.Version != 2 {
		t.Fatalf("current version %d, want 2", cur.Version)
	}
}

func testConcurrentUpdateAsCreate(t *testing.T, s store.Store) {
	ctx := context.Background()
	const writers = 8
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, errs[i] = s.Update(ctx, write("Patient", "racer", fmt.Sprintf(`{"resourceType":"Patient","birthDate":"19%02d-01-01"}`, 10+i)))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		must(t, err)
	}
	page, err := s.History(ctx, store.HistoryQuery{Type: "Patient", ID: "racer", Count: 100})
	must(t, err)
	if page.Total != writers {
		t.Fatalf("%d versions for %d unconditional writers; an update was lost", page.Total, writers)
	}
}

func testImport(t *testing.T, s store.Store) {
	ctx := context.Background()
	ws := []store.Write{
		write("Patient", "p1", `{"resourceType":"Patient","id":"p1"}`),
		write("Organization", "o1", `{"resourceType":"Organization","id":"o1","name":"A"}`),
		write("Observation", "ob1", `{"resourceType":"Observation","id":"ob1","status":"final","subject":{"reference":"Patient/p1"}}`),
	}
	r, err := s.Import(ctx, store.DefaultTenant, ws)
	must(t, err)
	if r != (store.ImportResult{Created: 3}) {
		t.Fatalf("first import %+v", r)
	}
	ws[1] = write("Organization", "o1", `{"resourceType":"Organization","id":"o1","name":"B"}`)
	r, err = s.Import(ctx, store.DefaultTenant, ws)
	must(t, err)
	if r != (store.ImportResult{Updated: 1, Unchanged: 2}) {
		t.Fatalf("second import %+v", r)
	}
	got, err := s.Read(ctx, store.DefaultTenant, "Organization", "o1")
	must(t, err)
	if got.Version != 2 || !strings.Contains(string(got.Body), `"B"`) {
		t.Fatalf("import update not applied: %s", got.Body)
	}
	_, err = s.Import(ctx, store.DefaultTenant, []store.Write{write("Patient", "p2", `{"resourceType":"Patient"}`), write("Patient", "bad id", `{"resourceType":"Patient"}`)})
	wantKind(t, err, fhir.KindInvalid)
	if _, err := s.Read(ctx, store.DefaultTenant, "Patient", "p2"); fhir.KindOf(err) != fhir.KindNotFound {
		t.Fatalf("a failed import batch stored part of itself: %v", err)
	}
}

func testTenants(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, _, err := s.Update(ctx, store.Write{Tenant: "a", Type: "Patient", ID: "x", Body: []byte(`{"resourceType":"Patient","active":true}`)})
	must(t, err)
	_, err = s.Read(ctx, "b", "Patient", "x")
	wantKind(t, err, fhir.KindNotFound)
	_, err = s.Read(ctx, store.DefaultTenant, "Patient", "x")
	wantKind(t, err, fhir.KindNotFound)
	page, err := s.History(ctx, store.HistoryQuery{Tenant: "b", Count: 10})
	must(t, err)
	if page.Total != 0 {
		t.Fatalf("tenant b sees %d versions of tenant a", page.Total)
	}
	_, created, err := s.Update(ctx, store.Write{Tenant: "b", Type: "Patient", ID: "x", Body: []byte(`{"resourceType":"Patient","active":false}`)})
	must(t, err)
	if !created {
		t.Fatal("same id in another tenant must be a separate resource")
	}
}
