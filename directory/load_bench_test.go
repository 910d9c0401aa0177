package directory_test

import (
	"os"
	"runtime"
	"testing"

	"github.com/groupgate/groupgate/directory"
)

// BenchmarkLoadFile loads the snapshot file GROUPGATE_BENCH_SNAPSHOT names (e.g. the large preset written by
// `groupgate gen --preset large -o /tmp/large.pb`), reporting the live heap after the load: what serve's start
// from a snapshot costs in time and memory.
//
//	GROUPGATE_BENCH_SNAPSHOT=/tmp/large.pb go test ./directory -run '^$' -bench LoadFile -benchtime 3x
func BenchmarkLoadFile(b *testing.B) {
	path := os.Getenv("GROUPGATE_BENCH_SNAPSHOT")
	if path == "" {
		b.Skip("set GROUPGATE_BENCH_SNAPSHOT to a snapshot file")
	}
	var keep *directory.Directory
	for i := 0; i < b.N; i++ {
		keep = nil
		runtime.GC()
		d, err := directory.LoadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		keep = d
	}
	b.StopTimer()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "live-MiB")
	runtime.KeepAlive(keep)
}
