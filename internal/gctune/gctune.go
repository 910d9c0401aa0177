// Package gctune gives Go's garbage collector a minimum headroom: after every collection it raises the GC
// percent (GOGC) so that the heap may grow by at least a given number of bytes before the next one.
//
// Why: a groupgate process is mostly its tenants' directory, which lives as long as the process, and every call
// adds a few KiB of short-lived garbage. With GOGC's default of 100 a collection starts each time the heap has
// grown by the size of the live heap, so a medium tenant's heap is marked many times a second under load, and the
// calls that meet a collection pay for it in the tail (the measurements: README, Design notes, "Garbage
// collection headroom"). GOGC alone cannot say "at least 256 MiB": a value
// high enough for a small tenant would let a large one's heap grow by several times its size. This package
// applies max(GOGC, headroom / live heap) instead, so large tenants keep GOGC's behaviour and small ones stop
// being collected for nothing.
//
// The headroom follows the live heap: below FullHeadroomAt (64 MiB) it shrinks with the square of the heap the
// collector scans, so a small tenant's process (20k users, ~23 MiB) is not given a medium tenant's 256 MiB of
// garbage to keep. And under
// a Go memory limit (GOMEMLIMIT, or the container's limit through package memlimit) it is at most half of what
// the limit leaves above the live heap; the runtime itself still collects harder as the heap nears the limit.
package gctune

import (
	"math"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// Heap is what the runtime sizes the next collection's goal by: the heap the last collection found live and the
// stacks and globals it scanned. With GC percent p the goal is Live + (Live+Stacks+Globals)·p/100, and never
// less than 4 MiB·p/100 (runtime/mgcpacer.go).
type Heap struct{ Live, Stacks, Globals uint64 }

// runtimeHeapMinimum is the runtime's heap goal floor at GOGC=100 (defaultHeapMinimum), scaled by p/100.
const runtimeHeapMinimum = 4 << 20

// FullHeadroomAt is the scanned heap (live + stacks + globals) from which the whole headroom applies. Below it the
// headroom shrinks with the square of the heap: maxHeadroom·(scanned/FullHeadroomAt)². A smaller heap is marked
// in less time, so the same collections cost its calls less, and memory is what a small tenant is deployed on:
// the small preset (~23 MiB scanned) gets ~33 MiB instead of 256 (RSS under load ~80 MiB instead of 306), the
// medium one (~60 MiB) ~225 MiB, close to the 256 MiB that made its HTTP p99, and anything larger the maximum.
const FullHeadroomAt = 64 << 20

// Headroom is the headroom applied to heap h: maxHeadroom once the scanned heap reaches FullHeadroomAt, less
// below it (see FullHeadroomAt), and, when goLimit (the Go memory limit; math.MaxInt64 or less than 1 for none)
// is set, no more than half of what the limit leaves above the scanned heap (0 when the heap is at the limit
// already). Before the first collection (an empty Heap) it is maxHeadroom, bounded by the limit.
func Headroom(h Heap, maxHeadroom uint64, goLimit int64) uint64 {
	scanned := h.Live + h.Stacks + h.Globals
	headroom := maxHeadroom
	if scanned > 0 && scanned < FullHeadroomAt {
		r := float64(scanned) / FullHeadroomAt
		headroom = uint64(float64(maxHeadroom) * r * r)
	}
	if goLimit > 0 && goLimit != math.MaxInt64 {
		if uint64(goLimit) <= scanned {
			return 0
		}
		headroom = min(headroom, (uint64(goLimit)-scanned)/2)
	}
	return headroom
}

// Percent is the GC percent that lets the heap grow by at least headroom bytes beyond h.Live before the next
// collection, and by no more (unless base, the GOGC the process started with, allows more: it is the least
// Percent returns). A negative base (GOGC=off) is returned as it is, and so is base before the first collection
// (Live 0), when there is nothing to size the headroom by.
//
// The bound from above matters while the heap is small (a process starting, before its tenants have loaded):
// the runtime's goal floor grows with the percent, and a percent of 25,600 for a 1 MiB heap would put the next
// collection a gigabyte away.
func Percent(h Heap, headroom uint64, base int) int {
	if base < 0 || h.Live == 0 {
		return base
	}
	scanned := float64(h.Live + h.Stacks + h.Globals)
	p := math.Ceil(float64(headroom) * 100 / scanned)
	if floorBound := math.Floor(float64(h.Live+headroom) * 100 / runtimeHeapMinimum); p > floorBound {
		p = floorBound
	}
	if p > math.MaxInt32 {
		p = math.MaxInt32
	}
	return max(base, int(p))
}

// running is set while a tuner runs: the GC percent is the process's, so there is one tuner at most.
var running atomic.Bool

// pollEvery is how often the tuner looks for a finished collection. A collection cannot announce itself in time:
// a cleanup or finalizer on an object allocated while one is marking runs only after the next, and a percent
// left from a 2 MB heap once let a loading tenant's heap reach 1.7 GB. Polled, the percent trails a collection by
// at most this long, during which the heap grows by what is allocated in that time (~7 MB under HTTP load).
const pollEvery = 20 * time.Millisecond

// Start keeps the GC percent at Percent(heap, Headroom(heap, headroom, Go memory limit), GOGC) from now on, re-reading the heap after every
// collection, until stop is called; stop restores the GC percent the process had. Start does nothing (and stop
// neither) when headroom is 0, when GOGC is off, or while another tuner runs: a server started in a process
// that tunes already (bench's in-process servers) leaves it to that one.
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
	t := &tuner{headroom: headroom, base: base, percent: base, cycles: ^uint64(0)}
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(pollEvery)
		defer tick.Stop()
		for {
			t.adjust()
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			<-finished
			debug.SetGCPercent(base)
			running.Store(false)
		})
	}
}

type tuner struct {
	headroom uint64
	base     int
	percent  int    // what the tuner set last
	cycles   uint64 // the collections counted when it did
}

// adjust sets the GC percent for the heap of the last collection, if one has finished since the last call. It
// changes the percent only when it moves by more than a tenth, so that a heap that hovers does not rewrite it
// after every collection.
func (t *tuner) adjust() {
	cycles := readUint64("/gc/cycles/total:gc-cycles")
	if cycles == t.cycles {
		return
	}
	t.cycles = cycles
	h := readHeap()
	p := Percent(h, Headroom(h, t.headroom, debug.SetMemoryLimit(-1)), t.base)
	if diff := p - t.percent; diff*10 > t.percent || -diff*10 > t.percent {
		debug.SetGCPercent(p)
		t.percent = p
	}
}

// readHeap reads what the last collection found (runtime/metrics /gc/heap/live, /gc/scan/stack and
// /gc/scan/globals, in bytes).
func readHeap() Heap {
	return Heap{
		Live:    readUint64("/gc/heap/live:bytes"),
		Stacks:  readUint64("/gc/scan/stack:bytes"),
		Globals: readUint64("/gc/scan/globals:bytes"),
	}
}

func readUint64(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
