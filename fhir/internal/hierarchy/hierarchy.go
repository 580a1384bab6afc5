// Package hierarchy walks the concept hierarchy of a code system. The
// terminology expander (fhir/terminology) and the generator that expands
// the FHIR value sets ahead of time (fhir/internal/specgen) both take the
// codes is-a or descendent-of a code with it, so that the two agree.
package hierarchy

// Closure returns code and every code reachable from it through next
// (with next the children of each code: its descendants; with the
// parents: its ancestors). A cycle in next is walked once.
func Closure(next map[string][]string, code string) map[string]bool {
	out := map[string]bool{code: true}
	stack := []string{code}
	for len(stack) > 0 {
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, n := range next[c] {
			if !out[n] {
				out[n] = true
				stack = append(stack, n)
			}
		}
	}
	return out
}
