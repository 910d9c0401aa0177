package directory_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/groupgate/groupgate/directory"
	"github.com/groupgate/groupgate/directory/demo"
	"github.com/groupgate/groupgate/internal/benchtenant"
)

func TestSearch(t *testing.T) {
	d, err := demo.Directory()
	if err != nil {
		t.Fatal(err)
	}
	groupsOnly := func(n *directory.Node) bool { return n.IsGroup() }
	tests := []struct {
		name  string
		query string
		keep  func(*directory.Node) bool
		limit int
		want  []string // ids, in order
		ranks []directory.MatchRank
		more  bool
	}{
		{"exact id first, then id prefixes by display name", "grp-finance", nil, 10,
			[]string{"grp-finance", "grp-finance-emea", "grp-finance-interns"},
			[]directory.MatchRank{directory.MatchExact, directory.MatchPrefix, directory.MatchPrefix}, false},
		{"display name, any case", "ENGINEERING", nil, 10,
			[]string{"grp-engineering", "grp-eng-contractors"},
			[]directory.MatchRank{directory.MatchExact, directory.MatchPrefix}, false},
		{"substring of a display name", "fabrikam", nil, 10, []string{"u-frank"}, []directory.MatchRank{directory.MatchSubstring}, false},
		{"limit keeps the best and reports more", "finance", nil, 1, []string{"grp-finance"}, []directory.MatchRank{directory.MatchExact}, true},
		{"kind filter", "a", groupsOnly, 2, []string{"grp-all-staff", "grp-board"}, []directory.MatchRank{directory.MatchPrefix, directory.MatchSubstring}, true},
		{"no match", "nobody-by-this-name", nil, 10, nil, nil, false},
		{"non-ASCII query", "ü", nil, 10, nil, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			found, more := d.Search(tt.query, tt.keep, tt.limit)
			var ids []string
			var ranks []directory.MatchRank
			for _, r := range found {
				ids = append(ids, r.Node.ID())
				ranks = append(ranks, r.Rank)
			}
			if !slices.Equal(ids, tt.want) || !slices.Equal(ranks, tt.ranks) || more != tt.more {
				t.Errorf("Search(%q, limit %d) = %v ranks %v more=%v; want %v ranks %v more=%v", tt.query, tt.limit, ids, ranks, more, tt.want, tt.ranks, tt.more)
			}
		})
	}
}

// TestSearchKeepsTheBestWhileScanning checks the bounded list against a full sort of every match.
func TestSearchKeepsTheBestWhileScanning(t *testing.T) {
	d, err := demo.Directory()
	if err != nil {
		t.Fatal(err)
	}
	all, _ := d.Search("e", nil, 1000)
	if len(all) < 10 {
		t.Fatalf("only %d matches for e", len(all))
	}
	for limit := 1; limit <= len(all); limit++ {
		got, more := d.Search("e", nil, limit)
		if len(got) != limit || more != (limit < len(all)) {
			t.Fatalf("limit %d: %d results, more=%v (of %d)", limit, len(got), more, len(all))
		}
		for i := range got {
			if got[i].Node != all[i].Node {
				t.Fatalf("limit %d: result %d is %s, want %s", limit, i, got[i].Node.ID(), all[i].Node.ID())
			}
		}
	}
	for i := 1; i < len(all); i++ {
		a, b := all[i-1], all[i]
		if a.Rank > b.Rank || (a.Rank == b.Rank && strings.ToLower(a.Node.DisplayName()) > strings.ToLower(b.Node.DisplayName())) {
			t.Errorf("%s (%d) before %s (%d)", a.Node.ID(), a.Rank, b.Node.ID(), b.Rank)
		}
	}
}

// BenchmarkSearch is one typeahead request on a generated tenant: a query that matches a few objects, and one
// that matches most of them (the bounded list's worst case).
//
//	go test ./directory -run '^$' -bench Search -benchmem
func BenchmarkSearch(b *testing.B) {
	for _, preset := range benchtenant.Presets() {
		d, _ := benchtenant.Load(b, preset)
		for _, q := range []string{"g-00012", "u-"} {
			b.Run(preset+"/"+q, func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					if found, _ := d.Search(q, nil, 20); len(found) == 0 {
						b.Fatal("nothing found")
					}
				}
			})
		}
	}
}
