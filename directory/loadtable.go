package directory

import (
	"hash/maphash"
	"math/bits"
	"sync/atomic"
)

// loadTable is a read-only id → ref table for the wire decoder's member and owner look-ups: ten million of
// them on the large preset, each from a random place in the snapshot to a random id, so each one misses the CPU's
// caches. In the index's Go map a look-up touches a group's control word, then its slot, then the key's bytes
// (three misses, and as many page-table walks, which cost the most under virtualisation); here a slot holds the
// hash's high bits, the ref and where the key's bytes are, so a look-up costs the slot and the key, both in memory
// the kernel is asked to back with huge pages (no walk). Built once the index is complete; dropped after the load.
type loadTable struct {
	seed  maphash.Seed
	mask  uint64
	slots []uint64 // two words a slot: tag<<32 | ref, then offset<<32 | length of the key in keys; tag 0 is empty
	keys  []byte

	touched uint64 // see lookupAll
}

// newLoadTable copies index into a loadTable.
func newLoadTable(index map[string]Ref) *loadTable {
	size := uint64(1) << bits.Len(uint(len(index)*3/2+1)) // load factor ≤ 2/3
	keyBytes := 0
	for id := range index {
		keyBytes += len(id)
	}
	t := &loadTable{seed: maphash.MakeSeed(), mask: size - 1, slots: make([]uint64, 2*size), keys: make([]byte, 0, keyBytes)}
	adviseHugePages(wordBytes(t.slots))
	adviseHugePages(t.keys[:cap(t.keys)])
	for id, r := range index {
		h := maphash.String(t.seed, id)
		i := h & t.mask
		for t.slots[2*i] != 0 {
			i = (i + 1) & t.mask
		}
		t.slots[2*i] = uint64(tagOf(h))<<32 | uint64(r)
		t.slots[2*i+1] = uint64(len(t.keys))<<32 | uint64(len(id))
		t.keys = append(t.keys, id...)
	}
	return t
}

func tagOf(h uint64) uint32 { return uint32(h>>32) | 1 }

func (t *loadTable) lookup(id []byte) (Ref, bool) {
	return t.lookupHashed(id, maphash.Bytes(t.seed, id))
}

// lookupBatch is how many look-ups lookupAll overlaps.
const lookupBatch = 16

// lookupAll looks every id up into refs (as long as ids), reporting false when one is not in the table. It
// looks them up a batch at a time, first touching each one's slot and then each one's key in loops of loads
// that do not depend on one another, so that the processor waits for their cache misses together rather than
// one after the other; the look-ups proper then find both in the cache.
func (t *loadTable) lookupAll(ids [][]byte, refs []Ref) bool {
	var hashes, at [lookupBatch]uint64
	var touched uint64
	for len(ids) > 0 {
		n := min(lookupBatch, len(ids))
		for j := range n {
			hashes[j] = maphash.Bytes(t.seed, ids[j])
			at[j] = 2 * (hashes[j] & t.mask)
		}
		for j := range n {
			touched += t.slots[at[j]+1]
		}
		for j := range n {
			if k := t.slots[at[j]+1]; k != 0 {
				touched += uint64(t.keys[k>>32])
			}
		}
		for j := range n {
			r, ok := t.lookupHashed(ids[j], hashes[j])
			if !ok {
				return false
			}
			refs[j] = r
		}
		ids, refs = ids[n:], refs[n:]
	}
	atomic.AddUint64(&t.touched, touched) // used, so that the compiler keeps the loads
	return true
}

func (t *loadTable) lookupHashed(id []byte, h uint64) (Ref, bool) {
	tag := tagOf(h)
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		s := t.slots[2*i]
		if s == 0 {
			return 0, false
		}
		if uint32(s>>32) != tag {
			continue
		}
		k := t.slots[2*i+1]
		off, n := k>>32, k&(1<<32-1)
		if string(t.keys[off:off+n]) == string(id) {
			return Ref(uint32(s)), true
		}
	}
}
