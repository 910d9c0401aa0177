package gctune

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const MiB = 1 << 20
	tests := []struct {
		name           string
		live, headroom uint64
		base, want     int
	}{
		{"medium tenant: headroom wins", 60 * MiB, 256 * MiB, 100, 427},
		{"large tenant: GOGC wins", 600 * MiB, 256 * MiB, 100, 100},
		{"a higher GOGC still wins", 60 * MiB, 256 * MiB, 500, 500},
		{"exactly the headroom", 256 * MiB, 256 * MiB, 100, 100},
		{"GOGC=off stays off", 60 * MiB, 256 * MiB, -1, -1},
		{"before the first collection", 0, 256 * MiB, 100, 100},
		{"a nearly empty heap is capped", 1, 256 * MiB, 100, maxPercent},
		{"no headroom", 60 * MiB, 0, 100, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percent(tt.live, tt.headroom, tt.base); got != tt.want {
				t.Errorf("Percent(%d, %d, %d) = %d, want %d", tt.live, tt.headroom, tt.base, got, tt.want)
			}
		})
	}
}

// TestStartFollowsCollections starts a tuner with a headroom far above this test binary's live heap: after a
// collection the GC percent must be the one Percent gives for that heap, a second Start must leave it to the
// first, and stop must restore GOGC.
func TestStartFollowsCollections(t *testing.T) {
	base := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(base) })
	const headroom = 512 << 20

	stop := Start(headroom)
	defer stop()
	runtime.GC()
	want := Percent(LiveHeap(), headroom, 100)
	if want <= 100 {
		t.Fatalf("live heap %d B: the test needs a headroom above it", LiveHeap())
	}
	waitFor(t, "the GC percent to follow the collection", func() bool { return near(GCPercent(), want) })

	stop2 := Start(64 << 20)
	runtime.GC()
	runtime.GC()
	stop2() // a no-op: the first tuner runs
	if p, want := GCPercent(), Percent(LiveHeap(), headroom, 100); !near(p, want) {
		t.Errorf("after a second Start and its stop: GC percent %d, want the first tuner's %d", p, want)
	}

	stop()
	if p := GCPercent(); p != 100 {
		t.Errorf("after stop: GC percent %d, want GOGC's 100", p)
	}
	runtime.GC() // the sentinel's cleanup must not set it again
	runtime.GC()
	time.Sleep(10 * time.Millisecond)
	if p := GCPercent(); p != 100 {
		t.Errorf("a collection after stop: GC percent %d, want 100", p)
	}
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
