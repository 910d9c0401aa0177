// Package gctune gives Go's garbage collector a minimum headroom: after every collection it raises the GC
// percent (GOGC) so that the heap may grow by at least a given number of bytes before the next one.
//
// Why: a groupgate process is mostly its tenants' directory, which lives as long as the process, and every call
// adds a few KiB of short-lived garbage. With GOGC's default of 100 a collection starts each time the heap has
// grown by the size of the live heap, so a medium tenant (60 MB live) was marked every ~175 ms under HTTP load,
// ~30 ms of marking each time, and calls that met a collection paid for it in the tail: HTTP p99 2.2-2.5 ms with
// the default against 1.6 ms with GOGC=400, in the same runs. GOGC alone cannot say "at least 256 MiB": a value
// high enough for a small tenant would let a large one's heap grow by several times its size. This package
// applies max(GOGC, headroom / live heap) instead, so large tenants keep GOGC's behaviour and small ones stop
// being collected for nothing. GOMEMLIMIT, when set, still bounds the heap as the runtime always does.
package gctune

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// maxPercent bounds the GC percent Start sets for a nearly empty heap.
const maxPercent = 100_000

// Percent is the GC percent that lets a heap of live bytes grow by at least headroom bytes before the next
// collection, and never less than base (the GOGC the process started with). A negative base (GOGC=off) is
// returned as it is, and so is base before the first collection (live 0): the heap's goal is then the runtime's
// minimum times GOGC, and a percent computed from nothing would let a tenant load without any collection.
func Percent(live, headroom uint64, base int) int {
	if base < 0 || live == 0 {
		return base
	}
	p := math.Ceil(float64(headroom) * 100 / float64(live))
	if p > maxPercent {
		p = maxPercent
	}
	return max(base, int(p))
}

// running is set while a tuner runs: the GC percent is the process's, so there is one tuner at most.
var running atomic.Bool

// Start keeps the GC percent at Percent(live heap, headroom, GOGC) from now on, re-reading the live heap after
// every collection, until stop is called; stop restores the GC percent the process had. Start does nothing (and
// stop neither) when headroom is 0, when GOGC is off, or while another tuner runs: a server started in a
// process that tunes already (bench's in-process servers) leaves it to that one.
func Start(headroom uint64) (stop func()) {
	if headroom == 0 || !running.CompareAndSwap(false, true) {
		return func() {}
	}
	base := debug.SetGCPercent(100)
	debug.SetGCPercent(base)
	if base < 0 {
		running.Store(false)
		return func() {}
	}
	t := &tuner{headroom: headroom, base: base, percent: base}
	t.adjust()
	t.arm()
	var once sync.Once
	return func() {
		once.Do(func() {
			t.mu.Lock()
			t.stopped = true
			debug.SetGCPercent(base)
			t.mu.Unlock()
			running.Store(false)
		})
	}
}

type tuner struct {
	headroom uint64
	base     int

	mu      sync.Mutex
	stopped bool
	percent int // what the tuner set last
}

// sentinel is an object nothing refers to, so that every collection frees it and runs its cleanup: the hook by
// which the tuner learns that a collection has ended. It holds a pointer so that it is not a tiny allocation
// (whose cleanups may never run).
type sentinel struct{ _ *byte }

func (t *tuner) arm() {
	runtime.AddCleanup(&sentinel{}, func(t *tuner) {
		if t.adjust() {
			t.arm()
		}
	}, t)
}

// adjust sets the GC percent for the live heap of the last collection, and reports whether the tuner still runs.
// It changes the percent only when it moves by more than a tenth, so that a heap that hovers does not rewrite it
// after every collection.
func (t *tuner) adjust() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	p := Percent(LiveHeap(), t.headroom, t.base)
	if diff := p - t.percent; diff*10 > t.percent || -diff*10 > t.percent {
		debug.SetGCPercent(p)
		t.percent = p
	}
	return true
}

// LiveHeap is the heap the last collection found live, in bytes (runtime/metrics /gc/heap/live:bytes).
func LiveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// GCPercent is the GC percent in effect (runtime/metrics /gc/gogc:percent), read without changing it.
func GCPercent() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return -1
	}
	return int(s[0].Value.Uint64())
}
