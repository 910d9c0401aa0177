package directory

// nodeVector is a persistent array of nodes indexed by Ref. It is split into fixed-size chunks so that a write
// copies the chunk it touches and the small top-level slice, never the whole tenant: on a 1.1M-node tenant a
// one-edge write copies two chunks (16 KiB) and 1,100 chunk pointers instead of 1.1M node pointers.
type nodeVector struct {
	chunks []*nodeChunk
	length int // refs allocated: every ref < length has a slot (nil when the object was deleted)
}

const chunkBits = 10
const chunkSize = 1 << chunkBits

type nodeChunk [chunkSize]*Node

func (v *nodeVector) get(r Ref) *Node {
	if int(r) >= v.length {
		return nil
	}
	return v.chunks[r>>chunkBits][r&(chunkSize-1)]
}

// vectorBuilder edits a copy of a nodeVector. Chunks copied once in a batch are then edited in place, so a batch
// of many changes costs one copy per touched chunk.
type vectorBuilder struct {
	v     nodeVector
	owned map[int]bool
}

func newVectorBuilder(v nodeVector) *vectorBuilder {
	chunks := make([]*nodeChunk, len(v.chunks), len(v.chunks)+1)
	copy(chunks, v.chunks)
	return &vectorBuilder{v: nodeVector{chunks: chunks, length: v.length}, owned: map[int]bool{}}
}

func (b *vectorBuilder) get(r Ref) *Node { return b.v.get(r) }

func (b *vectorBuilder) set(r Ref, n *Node) {
	ci := int(r >> chunkBits)
	if !b.owned[ci] {
		c := new(nodeChunk)
		if ci < len(b.v.chunks) && b.v.chunks[ci] != nil {
			*c = *b.v.chunks[ci]
		}
		for ci >= len(b.v.chunks) {
			b.v.chunks = append(b.v.chunks, nil)
		}
		b.v.chunks[ci] = c
		b.owned[ci] = true
	}
	b.v.chunks[ci][r&(chunkSize-1)] = n
}

// allocate reserves the next ref.
func (b *vectorBuilder) allocate() Ref {
	r := Ref(b.v.length)
	b.v.length++
	if int(r>>chunkBits) >= len(b.v.chunks) {
		b.v.chunks = append(b.v.chunks, new(nodeChunk))
		b.owned[len(b.v.chunks)-1] = true
	}
	return r
}

func (b *vectorBuilder) build() nodeVector { return b.v }

// idIndex maps object ids to refs. A large immutable base map, shared by every revision, plus a small overlay of
// ids created since the base was built; the overlay is copied on write and folded into a new base when it grows,
// which keeps both a write and a lookup cheap. Ids are never removed: a deleted object keeps its ref (its node is
// nil), and re-creating it reuses the ref.
type idIndex struct {
	base    map[string]Ref
	overlay map[string]Ref
}

// overlayLimit is the overlay size at which a write folds it into a new base. Folding copies the base map
// (~100 ms per million ids), so it happens at most once per this many object creations.
const overlayLimit = 1 << 14

func (x *idIndex) lookup(id string) (Ref, bool) {
	if r, ok := x.overlay[id]; ok {
		return r, true
	}
	r, ok := x.base[id]
	return r, ok
}

// indexBuilder adds ids to a copy of an idIndex.
type indexBuilder struct {
	x      idIndex
	copied bool
}

func (b *indexBuilder) lookup(id string) (Ref, bool) { return b.x.lookup(id) }

func (b *indexBuilder) add(id string, r Ref) {
	if !b.copied {
		overlay := make(map[string]Ref, len(b.x.overlay)+1)
		for k, v := range b.x.overlay {
			overlay[k] = v
		}
		b.x.overlay = overlay
		b.copied = true
	}
	b.x.overlay[id] = r
}

func (b *indexBuilder) build() idIndex {
	if len(b.x.overlay) < overlayLimit {
		return b.x
	}
	base := make(map[string]Ref, len(b.x.base)+len(b.x.overlay))
	for k, v := range b.x.base {
		base[k] = v
	}
	for k, v := range b.x.overlay {
		base[k] = v
	}
	return idIndex{base: base}
}
