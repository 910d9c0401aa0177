package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/groupgate/groupgate/directory"
	"github.com/groupgate/groupgate/entra/graphtest"
	"github.com/groupgate/groupgate/internal/workload"
)

// BenchmarkSyncFullMedium runs `groupgate sync -o` as a process of its own against the Graph stand-in holding
// the medium preset, at Graph's page sizes (999 users, 100 groups a page), and reports the sync process's peak
// RSS and CPU time, and the wall time without the time the stand-in spent answering (Graph's latency), beside
// the wall time.
func BenchmarkSyncFullMedium(b *testing.B) { benchmarkSyncFull(b, "medium") }

// BenchmarkSyncFullLarge is BenchmarkSyncFullMedium on the large preset (1M users, 100k groups, 10.1M
// memberships), with the --state file written as a full sync writes it; only with GROUPGATE_BENCH_LARGE=1 (the
// stand-in alone holds several GiB).
func BenchmarkSyncFullLarge(b *testing.B) {
	if os.Getenv("GROUPGATE_BENCH_LARGE") != "1" {
		b.Skip("set GROUPGATE_BENCH_LARGE=1 to sync the large preset")
	}
	benchmarkSyncFull(b, "large")
}

func benchmarkSyncFull(b *testing.B, preset string) {
	p, _ := workload.Preset(preset)
	tenant, labels, err := graphtest.FromSnapshot(workload.Generate(p))
	if err != nil {
		b.Fatal(err)
	}
	g := graphtest.New(tenant)
	defer g.Close()
	g.UserPage, g.GroupPage, g.OtherPage, g.MembersPerEntry = 999, 100, 999, 1000
	dir := b.TempDir()
	labelsPath := filepath.Join(dir, "labels.json")
	if err := os.WriteFile(labelsPath, labels, 0o644); err != nil {
		b.Fatal(err)
	}
	out := filepath.Join(dir, preset+".pb.gz")
	var rss int64
	var cpu, wall time.Duration
	busy := g.Busy()
	for b.Loop() {
		start := time.Now()
		cmd := exec.Command(os.Args[0], "sync", "--tenant", p.TenantID, "--graph-endpoint", g.URL, "--token-env", "GG_GRAPH_TOKEN",
			"--labels", labelsPath, "-o", out, "--log-level", "warn")
		if preset == "large" {
			state := filepath.Join(dir, "state.json.gz")
			os.Remove(state)
			cmd.Args = append(cmd.Args, "--state", state)
		}
		cmd.Env = append(os.Environ(), "GROUPGATE_TEST_MAIN=1", "GG_GRAPH_TOKEN="+g.Token)
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("sync: %v\n%s", err, msg)
		}
		wall += time.Since(start)
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		rss = max(rss, ru.Maxrss)
		cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	b.StopTimer()
	d, err := directory.LoadFile(out)
	if err != nil {
		b.Fatal(err)
	}
	c := d.Counts()
	b.Logf("synced %d users, %d groups, %d memberships", c.Users, c.Groups, c.Memberships)
	b.ReportMetric(float64(rss)/1024, "peak-RSS-MiB")
	b.ReportMetric(cpu.Seconds()/float64(b.N), "sync-cpu-s/op")
	// The stand-in answers one request at a time while the sync waits, so its busy time is Graph's latency.
	b.ReportMetric((wall-(g.Busy()-busy)).Seconds()/float64(b.N), "s/op-without-graph")
}
