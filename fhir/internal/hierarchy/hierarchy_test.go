package hierarchy

import (
	"maps"
	"slices"
	"testing"
)

func TestClosure(t *testing.T) {
	// a
	// ├── b ── d
	// └── c ── d (d has two parents), e
	// f ⇄ g (a cycle)
	children := map[string][]string{
		"a": {"b", "c"},
		"b": {"d"},
		"c": {"d", "e"},
		"f": {"g"},
		"g": {"f"},
	}
	parents := map[string][]string{}
	for p, cs := range children {
		for _, c := range cs {
			parents[c] = append(parents[c], p)
		}
	}
	for _, tc := range []struct {
		name string
		next map[string][]string
		code string
		want []string
	}{
		{"descendants of the root", children, "a", []string{"a", "b", "c", "d", "e"}},
		{"descendants of an inner code", children, "c", []string{"c", "d", "e"}},
		{"a leaf is only itself", children, "d", []string{"d"}},
		{"a code the hierarchy lacks is only itself", children, "zz", []string{"zz"}},
		{"ancestors through two parents", parents, "d", []string{"a", "b", "c", "d"}},
		{"a cycle ends", children, "f", []string{"f", "g"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := slices.Sorted(maps.Keys(Closure(tc.next, tc.code)))
			if !slices.Equal(got, tc.want) {
				t.Errorf("Closure(%q) = %q, want %q", tc.code, got, tc.want)
			}
		})
	}
}
