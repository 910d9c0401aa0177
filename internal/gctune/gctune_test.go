package gctune

import (
	"math"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

const MiB = 1 << 20

func TestPercent(t *testing.T) {
	tests := []struct {
		name       string
		heap       Heap
		headroom   uint64
		base, want int
	}{
		{"medium tenant: the headroom wins", Heap{Live: 60 * MiB, Stacks: MiB / 2, Globals: MiB}, 256 * MiB, 100, 417},
		{"large tenant: GOGC wins", Heap{Live: 600 * MiB, Stacks: MiB, Globals: MiB}, 256 * MiB, 100, 100},
		{"a higher GOGC still wins", Heap{Live: 60 * MiB}, 256 * MiB, 500, 500},
		{"exactly the headroom", Heap{Live: 256 * MiB}, 256 * MiB, 100, 100},
		{"GOGC=off stays off", Heap{Live: 60 * MiB}, 256 * MiB, -1, -1},
		{"before the first collection", Heap{}, 256 * MiB, 100, 100},
		{"a starting process: globals count", Heap{Live: MiB, Stacks: MiB / 16, Globals: 3 * MiB}, 256 * MiB, 100, 6302},
		{"a nearly empty heap: bounded by the runtime's floor", Heap{Live: 1}, 256 * MiB, 100, 6400},
		{"no headroom", Heap{Live: 60 * MiB}, 0, 100, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percent(tt.heap, tt.headroom, tt.base); got != tt.want {
				t.Errorf("Percent(%+v, %d, %d) = %d, want %d", tt.heap, tt.headroom, tt.base, got, tt.want)
			}
		})
	}
}

// TestPercentPutsTheGoalAtTheHeadroom checks Percent against the runtime's own goal formula over heaps from a
// few bytes to a gigabyte: where the headroom wins, the next collection is due at live + headroom (±1%), never
// a gigabyte away.
func TestPercentPutsTheGoalAtTheHeadroom(t *testing.T) {
	const headroom = 256 * MiB
	for _, live := range []uint64{1, 4 << 10, MiB, 10 * MiB, 60 * MiB, 200 * MiB, 255 * MiB, 300 * MiB, 1 << 30} {
		for _, globals := range []uint64{0, MiB, 8 * MiB} {
			h := Heap{Live: live, Stacks: 64 << 10, Globals: globals}
			p := Percent(h, headroom, 100)
			goal := runtimeGoal(h, p)
			if p == 100 { // GOGC gives at least the headroom already
				if goal < live+headroom {
					t.Errorf("%+v: percent 100 puts the goal at %d, below live + headroom %d", h, goal, live+headroom)
				}
				continue
			}
			if want := float64(live + headroom); float64(goal) < 0.99*want || float64(goal) > 1.01*want {
				t.Errorf("%+v: percent %d puts the goal at %d, want %d (±1%%)", h, p, goal, live+headroom)
			}
		}
	}
}

// runtimeGoal is the heap goal the runtime computes for percent p (runtime/mgcpacer.go, commit).
func runtimeGoal(h Heap, p int) uint64 {
	goal := h.Live + (h.Live+h.Stacks+h.Globals)*uint64(p)/100
	return max(goal, runtimeHeapMinimum*uint64(p)/100)
}

func TestHeadroom(t *testing.T) {
	const noLimit = math.MaxInt64
	tests := []struct {
		name  string
		heap  Heap
		max   uint64
		limit int64
		want  uint64
	}{
		{"medium: a little under the maximum", Heap{Live: 62 * MiB, Stacks: MiB, Globals: MiB}, 256 * MiB, noLimit, 256 * MiB},
		{"medium, a little smaller", Heap{Live: 48 * MiB}, 256 * MiB, noLimit, 144 * MiB},
		{"small: a sixteenth of it at a quarter of the heap", Heap{Live: 15 * MiB, Globals: MiB}, 256 * MiB, noLimit, 16 * MiB},
		{"tiny: next to nothing", Heap{Live: 2 * MiB}, 256 * MiB, noLimit, MiB / 4},
		{"large: the maximum", Heap{Live: 500 * MiB}, 256 * MiB, noLimit, 256 * MiB},
		{"before the first collection: the maximum", Heap{}, 256 * MiB, noLimit, 256 * MiB},
		{"a memory limit: half of what it leaves", Heap{Live: 100 * MiB}, 256 * MiB, 150 * MiB, 25 * MiB},
		{"a roomy memory limit changes nothing", Heap{Live: 100 * MiB}, 256 * MiB, 2 << 30, 256 * MiB},
		{"at the memory limit: none", Heap{Live: 160 * MiB}, 256 * MiB, 150 * MiB, 0},
		{"no limit spelled 0", Heap{Live: 500 * MiB}, 256 * MiB, 0, 256 * MiB},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Headroom(tt.heap, tt.max, tt.limit); got != tt.want {
				t.Errorf("Headroom(%+v, %d, %d) = %d MiB, want %d MiB", tt.heap, tt.max, tt.limit, got/MiB, tt.want/MiB)
			}
		})
	}
}

// applied is the headroom the tuner gives the heap of the last collection.
func applied(headroom uint64) uint64 {
	return Headroom(readHeap(), headroom, debug.SetMemoryLimit(-1))
}

// TestStartFollowsCollections starts a tuner with a headroom above what GOGC gives this test's heap (a 64 MiB
// ballast, where the whole headroom applies): after a collection the GC percent must be the one Percent gives for that heap, a second Start must
// leave it to the first, and stop must restore GOGC.
func TestStartFollowsCollections(t *testing.T) {
	base := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(base) })
	const headroom = 256 << 20
	ballast := make([]byte, FullHeadroomAt)
	for i := range ballast {
		ballast[i] = byte(i)
	}
	defer runtime.KeepAlive(ballast)

	stop := Start(headroom)
	defer stop()
	runtime.GC()
	want := Percent(readHeap(), applied(headroom), 100)
	if want <= 100 {
		t.Fatalf("heap %+v: the test needs a headroom above it", readHeap())
	}
	waitFor(t, "the GC percent to follow the collection", func() bool { return near(gcPercent(), want) })
	// The runtime's own goal: about live + headroom (within the tenth the tuner tolerates), not GOGC's 2 x live.
	if live, goal := readHeap().Live, heapGoal(); goal < live+headroom*9/10 || goal > live+headroom*11/10 {
		t.Errorf("live heap %d B, headroom %d B: the next collection is due at %d B", live, uint64(headroom), goal)
	}

	stop2 := Start(8 << 20)
	runtime.GC()
	runtime.GC()
	stop2() // a no-op: the first tuner runs
	if p, want := gcPercent(), Percent(readHeap(), applied(headroom), 100); !near(p, want) {
		t.Errorf("after a second Start and its stop: GC percent %d, want the first tuner's %d", p, want)
	}

	stop()
	if p := gcPercent(); p != 100 {
		t.Errorf("after stop: GC percent %d, want GOGC's 100", p)
	}
	runtime.GC() // the stopped tuner must not set it again
	runtime.GC()
	time.Sleep(10 * time.Millisecond)
	if p := gcPercent(); p != 100 {
		t.Errorf("a collection after stop: GC percent %d, want 100", p)
	}
}

// TestGoalFollowsAGrowingHeap grows the live heap 30-fold after the tuner has sized the percent for a small one,
// as a server does while its tenants load: the next goal must come back to live + headroom, not stay at the
// small heap's percent times the large heap.
func TestGoalFollowsAGrowingHeap(t *testing.T) {
	base := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(base) })
	const headroom = 256 * MiB
	stop := Start(headroom)
	defer stop()
	runtime.GC()
	waitFor(t, "a percent for the small heap", func() bool {
		return near(gcPercent(), Percent(readHeap(), applied(headroom), 100))
	})

	tenant := make([]byte, 64*MiB)
	for i := range tenant {
		tenant[i] = byte(i)
	}
	runtime.GC()
	waitFor(t, "the goal to follow the grown heap", func() bool {
		live, goal, h := readHeap().Live, heapGoal(), applied(headroom)
		return h > 200*MiB && goal >= live+h*9/10 && goal <= live+h*11/10
	})
	runtime.KeepAlive(tenant)
}

// TestStartKeepsWithinTheMemoryLimit sets a Go memory limit a little above a 64 MiB heap: the tuner must give
// the heap half of what the limit leaves, not the 256 MiB asked for.
func TestStartKeepsWithinTheMemoryLimit(t *testing.T) {
	base := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(base) })
	tenant := make([]byte, 64*MiB)
	for i := range tenant {
		tenant[i] = byte(i)
	}
	defer runtime.KeepAlive(tenant)
	runtime.GC()
	limit := int64(readHeap().Live + 40*MiB)
	before := debug.SetMemoryLimit(limit)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	stop := Start(256 * MiB)
	defer stop()
	waitFor(t, "the goal to stay under the memory limit", func() bool {
		live, goal := readHeap().Live, heapGoal()
		return goal > live && goal <= uint64(limit) && goal-live < 25*MiB
	})
}

func TestStartLeavesGOGCOffAlone(t *testing.T) {
	base := debug.SetGCPercent(-1)
	t.Cleanup(func() { debug.SetGCPercent(base) })
	stop := Start(256 << 20)
	defer stop()
	if p := debug.SetGCPercent(-1); p != -1 {
		t.Errorf("GOGC=off: the tuner set %d", p)
	}
	if running.Load() {
		t.Error("a tuner runs with GOGC=off")
	}
}

// heapGoal is the heap size at which the next collection is due (runtime/metrics /gc/heap/goal:bytes).
func heapGoal() uint64 { return readUint64("/gc/heap/goal:bytes") }

// gcPercent is the GC percent in effect (runtime/metrics /gc/gogc:percent), read without changing it.
func gcPercent() int { return int(readUint64("/gc/gogc:percent")) }

// near reports whether the percent got is within the tenth the tuner tolerates before rewriting it.
func near(got, want int) bool {
	d := got - want
	return d*10 <= want && -d*10 <= want
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if ok() {
			return
		}
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}
