// Package cowmap is a map that readers load without a lock and writers copy whole: for maps read on every request
// and written rarely, such as the tenants a store holds or the lineages the resolver cache knows.
package cowmap

import (
	"iter"
	"maps"
	"sync"
	"sync/atomic"
)

// Map is a copy-on-write map. The zero value is empty and ready to use.
type Map[K comparable, V any] struct {
	mu sync.Mutex // serialises writers
	m  atomic.Pointer[map[K]V]
}

func (c *Map[K, V]) load() map[K]V {
	if p := c.m.Load(); p != nil {
		return *p
	}
	return nil
}

// Load returns the value of k.
func (c *Map[K, V]) Load(k K) (V, bool) {
	v, ok := c.load()[k]
	return v, ok
}

// LoadOrCreate returns the value of k, storing create() first when there is none; create runs at most once per
// missing key.
func (c *Map[K, V]) LoadOrCreate(k K, create func() V) V {
	if v, ok := c.Load(k); ok {
		return v
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.load()
	if v, ok := old[k]; ok {
		return v
	}
	m := make(map[K]V, len(old)+1)
	maps.Copy(m, old)
	v := create()
	m[k] = v
	c.m.Store(&m)
	return v
}

// Delete removes k.
func (c *Map[K, V]) Delete(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.load()
	if _, ok := old[k]; !ok {
		return
	}
	m := maps.Clone(old)
	delete(m, k)
	c.m.Store(&m)
}

// Keys yields the keys of one version of the map, in no particular order.
func (c *Map[K, V]) Keys() iter.Seq[K] { return maps.Keys(c.load()) }

// All yields the entries of one version of the map, in no particular order.
func (c *Map[K, V]) All() iter.Seq2[K, V] { return maps.All(c.load()) }
