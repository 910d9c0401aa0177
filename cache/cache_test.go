package cache

import (
	"fmt"
	"testing"
)

func newCache(t *testing.T, maxBytes int64) *Cache[string] {
	t.Helper()
	c, err := New[string](maxBytes)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestEntriesAreServedOnlyWhereValid(t *testing.T) {
	const lineage, other = 1, 2
	c := newCache(t, 0)
	c.Set(lineage, 5, 10, 0, "node 10 at 5", 10)
	c.Set(lineage, 5, 11, 0, "node 11 at 5", 10)
	c.Set(lineage, 5, 10, 1, "node 10 kind 1", 10)
	c.Wait()

	cases := []struct {
		name     string
		lineage  uint64
		revision int64
		node     uint32
		kind     Kind
		want     string // "" for a miss
	}{
		{"same revision", lineage, 5, 10, 0, "node 10 at 5"},
		{"newer reader, nothing changed", lineage, 9, 10, 0, "node 10 at 5"},
		{"older reader: the entry may describe the future", lineage, 4, 10, 0, ""},
		{"other kind of the same node", lineage, 5, 10, 1, "node 10 kind 1"},
		{"other lineage (a replaced tenant)", other, 5, 10, 0, ""},
		{"never set", lineage, 5, 12, 0, ""},
	}
	for _, tc := range cases {
		got, ok := c.Get(tc.lineage, tc.revision, tc.node, tc.kind)
		if (tc.want != "") != ok || got != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.name, got, ok, tc.want)
		}
	}
}

func TestDirtyRefusesOnlyTheChangedNodes(t *testing.T) {
	c := newCache(t, 0)
	c.Set(1, 5, 10, 0, "ten", 10)
	c.Set(1, 5, 11, 0, "eleven", 10)
	c.Wait()
	c.Dirty(1, 7, []uint32{10})

	if _, ok := c.Get(1, 7, 10, 0); ok {
		t.Error("node 10 changed at revision 7, yet its revision-5 entry was served at 7")
	}
	if got, ok := c.Get(1, 7, 11, 0); !ok || got != "eleven" {
		t.Errorf("node 11 did not change, its entry should stay warm: %q, %v", got, ok)
	}
	if c.Stats().Stale != 1 {
		t.Errorf("stale %d, want 1", c.Stats().Stale)
	}

	// An answer computed by a reader still on revision 6 is right only for old readers: not kept.
	c.Set(1, 6, 10, 0, "ten at 6", 10)
	c.Wait()
	if _, ok := c.Get(1, 7, 10, 0); ok {
		t.Error("an answer computed before the node's change was kept")
	}
	c.Set(1, 7, 10, 0, "ten at 7", 10)
	c.Wait()
	if got, ok := c.Get(1, 8, 10, 0); !ok || got != "ten at 7" {
		t.Errorf("after recomputing at 7: %q, %v", got, ok)
	}
	// Dirty never goes back: a late, older invalidation does not revive older entries.
	c.Dirty(1, 6, []uint32{10})
	if got, ok := c.Get(1, 8, 10, 0); !ok || got != "ten at 7" {
		t.Errorf("an older Dirty changed what is served: %q, %v", got, ok)
	}
}

func TestForgetDropsALineage(t *testing.T) {
	c := newCache(t, 0)
	c.Dirty(3, 9, []uint32{1})
	c.Forget(3)
	// A lineage is never reused, but if it were, it would start clean rather than with old marks.
	c.Set(3, 2, 1, 0, "fresh", 10)
	c.Wait()
	if got, ok := c.Get(3, 2, 1, 0); !ok || got != "fresh" {
		t.Errorf("after Forget: %q, %v", got, ok)
	}
}

func TestCostIsBounded(t *testing.T) {
	const maxBytes = 64 << 10
	c := newCache(t, maxBytes)
	for i := range 10_000 {
		c.Set(1, 1, uint32(i), 0, "x", 1000)
		if i%100 == 0 {
			c.Wait()
		}
	}
	c.Wait()
	st := c.Stats()
	if held := st.CostAdded - st.CostEvicted; held > maxBytes {
		t.Errorf("holds %d bytes of entries, bound %d", held, maxBytes)
	}
	if st.CostAdded == 0 {
		t.Error("nothing was added")
	}
}

func TestKeysDoNotCollide(t *testing.T) {
	seen := map[uint64]string{}
	for _, l := range []uint64{1, 2, 1<<28 - 1} {
		for _, n := range []uint32{0, 1, 1<<32 - 1} {
			for _, k := range []Kind{0, 1, 15} {
				id := key(l, n, k)
				if prev, dup := seen[id]; dup {
					t.Fatalf("key(%d, %d, %d) equals %s", l, n, k, prev)
				}
				seen[id] = fmt.Sprintf("key(%d, %d, %d)", l, n, k)
			}
		}
	}
}
