package directory

import (
	"strings"
	"testing"
)

// TestKeyLess compares keyLess with building the key, on ASCII and non-ASCII names and on prefixes.
func TestKeyLess(t *testing.T) {
	names := []string{"", "a", "A", "ab", "Ab", "b", "Zoë", "zoe", "Émile", "emile", "a\x00"}
	ids := []string{"", "u1", "u2", "u10"}
	for _, n1 := range names {
		for _, i1 := range ids {
			for _, n2 := range names {
				for _, i2 := range ids {
					key := strings.ToLower(n2) + "\x00" + i2
					want := strings.ToLower(n1)+"\x00"+i1 < key
					if got := keyLess(n1, i1, key); got != want {
						t.Errorf("keyLess(%q, %q, %q) = %v, want %v", n1, i1, key, got, want)
					}
				}
			}
		}
	}
}
