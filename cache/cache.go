// Package cache is the resolver's cache: a ristretto cache bounded in bytes, whose entries can never be served
// for a revision they were not valid on, and which a write invalidates only where it changed something.
//
// Validity works per node: the cache keeps, for each tenant lineage, the revision at which something that affects
// a node's answers last changed ("dirty"). An entry remembers the revision it was computed on; it is served to a
// reader on revision R only if the node has not been dirtied since the entry was computed and R is not older than
// that. A write (Invalidate) dirties only the nodes whose answers it can change, so the rest stay warm. Readers on
// an older revision than a node's last change simply compute afresh.
package cache

import (
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/groupgate/groupgate/internal/cowmap"
)

// Kind tells apart the answers cached for one node.
type Kind uint8

// Entry is a cached answer and the revision it was computed on.
type Entry[V any] struct {
	Revision int64
	Value    V
}

// Cache caches answers of type V per (lineage, node, kind).
type Cache[V any] struct {
	c *ristretto.Cache[uint64, *Entry[V]]

	lineages cowmap.Map[uint64, *dirtyMap] // Get, on every decision, takes no lock

	hits, misses, stale atomic.Uint64
}

// DefaultMaxBytes bounds the cache when no bound is given.
const DefaultMaxBytes = 256 << 20

// New returns a cache that holds at most maxBytes of answers (as costed by Set).
func New[V any](maxBytes int64) (*Cache[V], error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	c, err := ristretto.NewCache(&ristretto.Config[uint64, *Entry[V]]{
		// Ten counters per expected entry (ristretto's advice), expecting ~1 KiB per entry: answers are paths
		// of a few refs plus bookkeeping, but there are at most a few per group, and the counters (a count-min
		// sketch and a bloom filter) cost memory of their own: sized for 100-byte entries they took 192 MB of a
		// 256 MiB cache.
		NumCounters: max(1000, maxBytes/1024*10),
		MaxCost:     maxBytes,
		BufferItems: 64,
		Metrics:     true,
		// Keys are exact (see key), so ristretto's second hash for conflicts is not needed.
		KeyToHash: func(k uint64) (uint64, uint64) { return k, 0 },
	})
	if err != nil {
		return nil, err
	}
	return &Cache[V]{c: c}, nil
}

// key packs lineage (28 bits), node (32 bits) and kind (4 bits) into one exact key.
func key(lineage uint64, node uint32, kind Kind) uint64 {
	return lineage<<36 | uint64(node)<<4 | uint64(kind&0xf)
}

// Get returns the answer for a node if one computed on a compatible revision is cached.
func (c *Cache[V]) Get(lineage uint64, revision int64, node uint32, kind Kind) (V, bool) {
	var zero V
	e, ok := c.c.Get(key(lineage, node, kind))
	if !ok {
		c.misses.Add(1)
		return zero, false
	}
	if dirty := c.dirty(lineage).get(node); e.Revision < dirty || revision < e.Revision {
		c.stale.Add(1)
		c.misses.Add(1)
		return zero, false
	}
	c.hits.Add(1)
	return e.Value, true
}

// Set caches an answer computed on revision; cost is its size in bytes. Answers computed on a revision older
// than the node's last change are not kept (they are correct only for old readers).
func (c *Cache[V]) Set(lineage uint64, revision int64, node uint32, kind Kind, v V, cost int64) {
	if revision < c.dirty(lineage).get(node) {
		return
	}
	c.c.Set(key(lineage, node, kind), &Entry[V]{Revision: revision, Value: v}, cost+48)
}

// Dirty records that the answers of nodes changed at revision: cached entries computed before it are no longer
// served.
func (c *Cache[V]) Dirty(lineage uint64, revision int64, nodes []uint32) {
	d := c.dirty(lineage)
	for _, n := range nodes {
		d.set(n, revision)
	}
}

// Forget drops what the cache knows of a lineage that no reader will use again (a replaced tenant).
func (c *Cache[V]) Forget(lineage uint64) { c.lineages.Delete(lineage) }

// Wait blocks until buffered writes are applied (for tests).
func (c *Cache[V]) Wait() { c.c.Wait() }

// Close releases the cache's goroutines.
func (c *Cache[V]) Close() { c.c.Close() }

// Stats are counters for metrics.
type Stats struct {
	Hits, Misses uint64
	// Stale counts entries found but refused because their node changed since they were computed.
	Stale uint64
	// CostAdded and CostEvicted are ristretto's byte counters.
	CostAdded, CostEvicted uint64
}

// Stats returns the counters.
func (c *Cache[V]) Stats() Stats {
	m := c.c.Metrics
	return Stats{Hits: c.hits.Load(), Misses: c.misses.Load(), Stale: c.stale.Load(), CostAdded: m.CostAdded(), CostEvicted: m.CostEvicted()}
}

func (c *Cache[V]) dirty(lineage uint64) *dirtyMap {
	return c.lineages.LoadOrCreate(lineage, func() *dirtyMap { return &dirtyMap{} })
}

// dirtyMap holds the last-dirty revision per node, in lock-free chunks: readers on the hot path only load.
type dirtyMap struct {
	mu     sync.Mutex // serialises growth
	chunks atomic.Pointer[[]*[dirtyChunk]atomic.Int64]
}

const dirtyChunk = 4096

func (d *dirtyMap) get(node uint32) int64 {
	p := d.chunks.Load()
	if p == nil || int(node/dirtyChunk) >= len(*p) {
		return 0
	}
	return (*p)[node/dirtyChunk][node%dirtyChunk].Load()
}

func (d *dirtyMap) set(node uint32, revision int64) {
	ci := int(node / dirtyChunk)
	p := d.chunks.Load()
	if p == nil || ci >= len(*p) {
		d.mu.Lock()
		p = d.chunks.Load()
		var cur []*[dirtyChunk]atomic.Int64
		if p != nil {
			cur = *p
		}
		if ci >= len(cur) {
			grown := make([]*[dirtyChunk]atomic.Int64, ci+1)
			copy(grown, cur)
			for i := len(cur); i <= ci; i++ {
				grown[i] = new([dirtyChunk]atomic.Int64)
			}
			d.chunks.Store(&grown)
			p = &grown
		}
		d.mu.Unlock()
	}
	slot := &(*p)[ci][node%dirtyChunk]
	for {
		old := slot.Load()
		if revision <= old || slot.CompareAndSwap(old, revision) {
			return
		}
	}
}
