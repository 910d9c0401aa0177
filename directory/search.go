package directory

import (
	"cmp"
	"slices"
	"strings"
	"unicode/utf8"
)

// MatchRank says how well a principal matched a search: lower is better.
type MatchRank uint8

const (
	// MatchExact: the id, or the whole display name, equals the query (case-insensitively).
	MatchExact MatchRank = iota
	// MatchPrefix: the id or the display name starts with the query.
	MatchPrefix
	// MatchSubstring: the id or the display name contains the query elsewhere.
	MatchSubstring
)

// SearchResult is one principal found by Search.
type SearchResult struct {
	Node *Node
	Rank MatchRank
	key  string // lower-cased display name, then id: the order within a rank
}

// Search returns at most limit principals whose id or display name contains query, compared case-insensitively,
// best first: exact matches, then prefixes, then substrings, each by display name. keep, when not nil, filters
// the principals considered. more reports that more principals matched than were returned.
//
// It scans the tenant (a fraction of a microsecond a principal: BenchmarkSearch, figures in docs/explorer.md)
// rather than keeping a second index of every name, which would cost more memory than a rare look-up by a person
// is worth to a decision point. Only the best limit matches are kept while scanning.
func (d *Directory) Search(query string, keep func(*Node) bool, limit int) (found []SearchResult, more bool) {
	if query == "" || limit <= 0 {
		return nil, false
	}
	q := strings.ToLower(query)
	matched := 0
	for n := range d.Nodes() {
		if keep != nil && !keep(n) {
			continue
		}
		rank, ok := matchRank(n.id, n.DisplayName(), q)
		if !ok {
			continue
		}
		matched++
		if len(found) == limit {
			// Most matches of a short query cannot enter a full list: tell without building their key.
			if worst := found[limit-1]; rank > worst.Rank || (rank == worst.Rank && !keyLess(n.DisplayName(), n.id, worst.key)) {
				continue
			}
		}
		r := SearchResult{Node: n, Rank: rank, key: strings.ToLower(n.DisplayName()) + "\x00" + n.id}
		i, _ := slices.BinarySearchFunc(found, r, compareResults)
		if i == limit {
			continue
		}
		if len(found) == limit {
			found = found[:limit-1]
		}
		found = slices.Insert(found, i, r)
	}
	return found, matched > len(found)
}

func compareResults(a, b SearchResult) int {
	return cmp.Or(cmp.Compare(a.Rank, b.Rank), strings.Compare(a.key, b.key))
}

// matchRank ranks how id and name match the lower-cased query q.
func matchRank(id, name, q string) (MatchRank, bool) {
	best, ok := MatchSubstring, false
	for _, s := range [2]string{id, name} {
		switch i := indexFold(s, q); {
		case i < 0:
		case i == 0 && len(s) == len(q) && isASCII(s):
			return MatchExact, true
		case i == 0 && strings.ToLower(s) == q:
			return MatchExact, true
		case i == 0:
			best, ok = MatchPrefix, true
		default:
			ok = true
		}
	}
	return best, ok
}

// indexFold is strings.Index(strings.ToLower(s), q) for a lower-cased q, without allocating when s is ASCII (ids
// always are, display names nearly always).
func indexFold(s, q string) int {
	if !isASCII(s) {
		return strings.Index(strings.ToLower(s), q)
	}
	n := len(q)
	if n > len(s) {
		return -1
	}
	first := q[0]
outer:
	for i := 0; i+n <= len(s); i++ {
		if lowerASCII(s[i]) != first {
			continue
		}
		for j := 1; j < n; j++ {
			if lowerASCII(s[i+j]) != q[j] {
				continue outer
			}
		}
		return i
	}
	return -1
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// keyLess reports whether lower(name)+"\x00"+id sorts before key, without building the string when name is
// ASCII.
func keyLess(name, id, key string) bool {
	if !isASCII(name) {
		return strings.ToLower(name)+"\x00"+id < key
	}
	n := len(name) + 1 + len(id)
	for i := 0; i < n && i < len(key); i++ {
		var c byte
		switch {
		case i < len(name):
			c = lowerASCII(name[i])
		case i == len(name):
			c = 0
		default:
			c = id[i-len(name)-1]
		}
		if c != key[i] {
			return c < key[i]
		}
	}
	return n < len(key)
}
