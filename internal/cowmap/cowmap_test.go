package cowmap

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

func TestLoadOrCreateCreatesOncePerKey(t *testing.T) {
	var m Map[string, *int]
	var created atomic.Int32
	var wg sync.WaitGroup
	got := make([]*int, 16)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = m.LoadOrCreate("k", func() *int { created.Add(1); return new(int) })
		}()
	}
	wg.Wait()
	if created.Load() != 1 {
		t.Errorf("created %d times, want once", created.Load())
	}
	for _, p := range got {
		if p != got[0] {
			t.Fatal("callers got different values for one key")
		}
	}
}

func TestLoadDeleteAll(t *testing.T) {
	var m Map[int, string]
	if _, ok := m.Load(1); ok {
		t.Fatal("the zero map holds something")
	}
	m.LoadOrCreate(1, func() string { return "one" })
	m.LoadOrCreate(2, func() string { return "two" })
	before := m.All() // a version: later writes do not change it
	m.Delete(1)
	m.Delete(3) // absent: nothing happens
	if _, ok := m.Load(1); ok {
		t.Error("1 still there after Delete")
	}
	if v, ok := m.Load(2); !ok || v != "two" {
		t.Errorf("2: %q, %v", v, ok)
	}
	if keys := slices.Collect(m.Keys()); len(keys) != 1 || keys[0] != 2 {
		t.Errorf("keys %v, want [2]", keys)
	}
	n := 0
	for range before {
		n++
	}
	if n != 2 {
		t.Errorf("the earlier version has %d entries, want 2", n)
	}
}
