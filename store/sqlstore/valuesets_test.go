package sqlstore

import "testing"

func TestCompareVersions(t *testing.T) {
	// Each version comes after the one before it (text before numbers).
	order := []string{"", "a", "b", "0.9", "1", "1.0", "1.0.1", "1.2", "1.9", "1.10", "1.10a", "2", "10", "2024-01-01", "2024-01-02"}
	for i := range order {
		for j := range order {
			got := compareVersions(order[i], order[j])
			want := 0
			switch {
			case i < j:
				want = -1
			case i > j:
				want = 1
			}
			if got != want {
				t.Errorf("compareVersions(%q, %q) = %d, want %d", order[i], order[j], got, want)
			}
		}
	}
	if compareVersions("01.2", "1.2") != 0 {
		t.Errorf("leading zeros count: 01.2 and 1.2 differ")
	}
}
