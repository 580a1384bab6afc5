package sqlstore

import "testing"

// TestAnalyzeSchedule: the first refresh after analyzeFirst written
// resources, or after as many as the statistics counted at open; then
// each time the count has grown eightfold; one at a time.
func TestAnalyzeSchedule(t *testing.T) {
	cases := []struct {
		name     string
		analyzed int64 // AnalyzedRows at open; 0: not called
		writes   []int64
		want     []bool
	}{
		{"new database", 0, []int64{999, 1, 6999, 1}, []bool{false, true, false, true}},
		{"small database", 200, []int64{999, 1}, []bool{false, true}},
		{"large database", 16000, []int64{1000, 14999, 1, 112000}, []bool{false, false, true, true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &Store{}
			if tc.analyzed > 0 {
				s.AnalyzedRows(tc.analyzed)
			}
			for i, n := range tc.writes {
				got := s.analyze.due(n)
				if got != tc.want[i] {
					t.Fatalf("write %d (%d more): due %v, want %v", i, n, got, tc.want[i])
				}
				if got {
					s.analyze.done()
				}
			}
		})
	}
	s := &Store{}
	if !s.analyze.due(analyzeFirst) || s.analyze.due(100*analyzeFirst) {
		t.Fatal("a second refresh started while one was running")
	}
}
