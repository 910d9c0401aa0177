package directory

import (
	"fmt"
	"testing"
)

// TestLoadTable: every id of the index looks up to its ref, one by one and in batches of every length around
// lookupBatch; an id not in it (including prefixes and extensions of ids in it) is not found, wherever it sits
// in a batch.
func TestLoadTable(t *testing.T) {
	index := map[string]Ref{}
	var ids [][]byte
	for i := range 50_000 {
		id := fmt.Sprintf("%08x-%d", uint32(i)*2654435761, i%7)
		index[id] = Ref(i * 3)
		ids = append(ids, []byte(id))
	}
	table := newLoadTable(index)
	for id, want := range index {
		if got, ok := table.lookup([]byte(id)); !ok || got != want {
			t.Fatalf("lookup(%q) = %d, %v; want %d", id, got, ok, want)
		}
		for _, absent := range []string{id[:len(id)-1], id + "0", "x" + id[1:]} {
			if _, in := index[absent]; in {
				continue
			}
			if got, ok := table.lookup([]byte(absent)); ok {
				t.Fatalf("lookup(%q) = %d, found; want not found", absent, got)
			}
		}
	}
	for _, n := range []int{0, 1, lookupBatch - 1, lookupBatch, lookupBatch + 1, 3*lookupBatch + 5} {
		batch := ids[1000 : 1000+n]
		refs := make([]Ref, n)
		if !table.lookupAll(batch, refs) {
			t.Fatalf("lookupAll of %d ids in the table: not found", n)
		}
		for i, id := range batch {
			if refs[i] != index[string(id)] {
				t.Fatalf("lookupAll of %d: %q gave %d, want %d", n, id, refs[i], index[string(id)])
			}
		}
		for bad := range n {
			withAbsent := append([][]byte(nil), batch...)
			withAbsent[bad] = []byte("not-an-id")
			if table.lookupAll(withAbsent, make([]Ref, n)) {
				t.Fatalf("lookupAll of %d ids with an unknown one at %d: all found", n, bad)
			}
		}
	}
}
