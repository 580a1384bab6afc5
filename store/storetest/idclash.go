package storetest

import (
	"context"
	"net/url"
	"testing"

	"github.com/fhirserver/fhirserver/fhir/search"
	"github.com/fhirserver/fhirserver/store"
)

// CreateIDClash checks that a create whose generated id exists already
// leaves the existing resource and its index alone and stores the new one
// under another id. setNewID replaces the store's id generator.
func CreateIDClash(t *testing.T, s store.Store, setNewID func(func() string)) {
	ctx := context.Background()
	if _, _, err := s.Update(ctx, store.Write{Type: "Patient", ID: "taken", Body: []byte(`{"resourceType":"Patient","id":"taken","name":[{"family":"Original"}]}`)}); err != nil {
		t.Fatal(err)
	}
	ids := []string{"taken", "fresh"}
	setNewID(func() string {
		id := ids[0]
		if len(ids) > 1 {
			ids = ids[1:]
		}
		return id
	})
	res, err := s.Create(ctx, store.Write{Type: "Patient", Body: []byte(`{"resourceType":"Patient","name":[{"family":"Second"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	if res.ID != "fresh" || res.Version != 1 {
		t.Fatalf("created %s version %d, want fresh version 1", res.ID, res.Version)
	}
	old, err := s.Read(ctx, store.DefaultTenant, "Patient", "taken")
	if err != nil || old.Version != 1 {
		t.Fatalf("the existing resource: %v, %v; want version 1 unchanged", old, err)
	}
	for family, want := range map[string]string{"Original": "taken", "Second": "fresh"} {
		q, err := search.Parse(url.Values{"family": {family}}, search.Options{Types: []string{"Patient"}, Strict: true})
		if err != nil {
			t.Fatal(err)
		}
		page, err := s.Search(ctx, store.DefaultTenant, q)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range page.Matches {
			got = append(got, m.ID)
		}
		if len(got) != 1 || got[0] != want {
			t.Errorf("family=%s found %v, want only %s", family, got, want)
		}
	}
}
