package authz_test

import (
	"context"
	"testing"

	"github.com/fhirserver/fhirserver/authz"
	"github.com/fhirserver/fhirserver/store"
)

func TestVisible(t *testing.T) {
	s := seed(t)
	ctx := context.Background()
	a := authz.Caller{Scopes: []string{"patient/*.cruds"}, Patient: "a"}
	lab := authz.Caller{Scopes: []string{labScope}, Patient: "a"}
	for _, tc := range []struct {
		name    string
		c       authz.Caller
		i       authz.Interaction
		typ, id string
		want    bool
	}{
		{"own patient", a, authz.Read, "Patient", "a", true},
		{"other patient", a, authz.Read, "Patient", "b", false},
		{"own observation", a, authz.Update, "Observation", "va", true},
		{"other observation", a, authz.Delete, "Observation", "vb", false},
		{"directory", a, authz.Read, "Practitioner", "doc", true},
		{"missing", a, authz.Read, "Patient", "nobody", false},
		{"granular match", lab, authz.Read, "Observation", "la", true},
		{"granular other category", lab, authz.Read, "Observation", "va", false},
		{"granular other patient", lab, authz.Read, "Observation", "lb", false},
		{"denied type", lab, authz.Read, "Condition", "ca", false},
	} {
		d := tc.c.Decide(authz.Request{Interaction: tc.i, Type: tc.typ})
		got, err := authz.Visible(ctx, s, store.DefaultTenant, tc.typ, tc.id, d.Filter)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("%s: visible %v, want %v", tc.name, got, tc.want)
		}
	}
}
