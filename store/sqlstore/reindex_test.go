package sqlstore_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/index"
	"github.com/fhirserver/fhirserver/fhir/search"
	"github.com/fhirserver/fhirserver/store"
	"github.com/fhirserver/fhirserver/store/sqlite"
)

// TestReindexUsesExtract checks that the Extract hook is what writes see
// and that Reindex applies a changed extraction to stored resources.
func TestReindexUsesExtract(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "fhir.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	nickname, err := fhir.NewSearchParam(fhir.SearchParam{Code: "nickname", Base: "Patient", Type: fhir.SearchParamString,
		Expression: "Patient.name.where(use = 'nickname').given"})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := s.Create(ctx, store.Write{Type: "Patient", Body: []byte(`{"resourceType":"Patient","name":[{"use":"nickname","given":["Bobby"]}]}`)}); err != nil {
			t.Fatal(err)
		}
	}
	q := &search.Query{Types: []string{"Patient"}, Clauses: []search.Clause{{Param: nickname, Code: "nickname", Type: fhir.SearchParamString, Values: []search.Value{{Raw: "bob", Str: "bob"}}}}}
	count := func() int {
		page, err := s.Search(ctx, store.DefaultTenant, q)
		if err != nil {
			t.Fatal(err)
		}
		return len(page.Matches)
	}
	if n := count(); n != 0 {
		t.Fatalf("found %d by an unknown parameter before reindexing", n)
	}
	s.Store.Extract = index.NewExtractor(nickname).Extract
	n, err := s.Reindex(ctx, store.DefaultTenant)
	if err != nil || n != 3 {
		t.Fatalf("Reindex = %d, %v; want 3", n, err)
	}
	if n := count(); n != 3 {
		t.Fatalf("found %d after reindexing, want 3", n)
	}
}
