package memlimit

import (
	"bytes"
	"log/slog"
	"math"
	"runtime/debug"
	"strings"
	"testing"
	"testing/fstest"
)

const MiB = 1 << 20

func file(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }

func TestRead(t *testing.T) {
	tests := []struct {
		name     string
		files    fstest.MapFS
		want     uint64
		wantFile string
	}{
		{"v2 container", fstest.MapFS{
			"proc/self/cgroup":          file("0::/\n"),
			"sys/fs/cgroup/memory.max":  file("536870912\n"),
			"sys/fs/cgroup/memory.high": file("max\n"),
		}, 512 * MiB, "sys/fs/cgroup/memory.max"},
		{"v2 no limit", fstest.MapFS{
			"proc/self/cgroup":         file("0::/\n"),
			"sys/fs/cgroup/memory.max": file("max\n"),
		}, 0, ""},
		{"v1 container (podman on this machine)", fstest.MapFS{
			"proc/self/cgroup": file("12:pids:/libpod_parent/libpod-1\n4:memory:/libpod_parent/libpod-1\n0::/\n"),
			// the mount starts at the container's own cgroup: the /proc path is not there
			"sys/fs/cgroup/memory/memory.limit_in_bytes": file("157286400\n"),
		}, 150 * MiB, "sys/fs/cgroup/memory/memory.limit_in_bytes"},
		{"v1 unlimited is a huge number", fstest.MapFS{
			"proc/self/cgroup":                           file("4:memory:/\n"),
			"sys/fs/cgroup/memory/memory.limit_in_bytes": file("9223372036854771712\n"),
		}, 0, ""},
		{"v1 with memory among several controllers", fstest.MapFS{
			"proc/self/cgroup":                               file("3:cpu,memory:/svc\n"),
			"sys/fs/cgroup/memory/memory.limit_in_bytes":     file("9223372036854771712\n"),
			"sys/fs/cgroup/memory/svc/memory.limit_in_bytes": file("268435456\n"),
		}, 256 * MiB, "sys/fs/cgroup/memory/svc/memory.limit_in_bytes"},
		{"v2 systemd service: its own directory, and a lower parent wins", fstest.MapFS{
			"proc/self/cgroup": file("0::/system.slice/groupgate.service\n"),
			"sys/fs/cgroup/system.slice/groupgate.service/memory.max": file("1073741824\n"),
			"sys/fs/cgroup/system.slice/memory.max":                   file("805306368\n"),
		}, 768 * MiB, "sys/fs/cgroup/system.slice/memory.max"},
		{"no cgroup files at all", fstest.MapFS{}, 0, ""},
		{"garbage in the file", fstest.MapFS{
			"proc/self/cgroup":         file("0::/\n"),
			"sys/fs/cgroup/memory.max": file("lots\n"),
		}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, f := Read(tt.files)
			if got != tt.want || f != tt.wantFile {
				t.Errorf("Read = %d, %q; want %d, %q", got, f, tt.want, tt.wantFile)
			}
		})
	}
}

func TestChoose(t *testing.T) {
	limited := fstest.MapFS{"sys/fs/cgroup/memory.max": file("1000000000\n")}
	if c := Choose(limited, ""); c.Source != "cgroup" || c.GoLimit != 900_000_000 || c.Cgroup != 1_000_000_000 {
		t.Errorf("cgroup limit 1e9: %+v, want Go limit 9e8 from the cgroup", c)
	}
	if c := Choose(limited, "300MiB"); c.Source != "GOMEMLIMIT" || c.GoLimit != math.MaxInt64 {
		t.Errorf("GOMEMLIMIT set: %+v, want it left alone", c)
	}
	if c := Choose(limited, "off"); c.Source != "GOMEMLIMIT" {
		t.Errorf("GOMEMLIMIT=off: %+v, want it left alone", c)
	}
	if c := Choose(fstest.MapFS{}, ""); c.Source != "none" || c.GoLimit != math.MaxInt64 {
		t.Errorf("no cgroup limit: %+v, want none", c)
	}
}

func TestFitHeadroom(t *testing.T) {
	if got := FitHeadroom(256*MiB, math.MaxInt64); got != 256*MiB {
		t.Errorf("no limit: %d", got)
	}
	if got := FitHeadroom(256*MiB, 200*MiB); got != 100*MiB {
		t.Errorf("200 MiB limit: %d, want 100 MiB", got)
	}
	if got := FitHeadroom(64*MiB, 1<<30); got != 64*MiB {
		t.Errorf("1 GiB limit: %d, want the 64 MiB asked for", got)
	}
}

// TestApplyLogs runs Apply on this machine: whatever the limit here, it logs one line and leaves a GOMEMLIMIT
// alone.
func TestApplyLogs(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "123MiB")
	before := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(before)
	var buf bytes.Buffer
	c := Apply(slog.New(slog.NewTextHandler(&buf, nil)), 256*MiB)
	if c.Source != "GOMEMLIMIT" || c.GoLimit != before {
		t.Errorf("Apply with GOMEMLIMIT set: %+v, want the limit left at %d", c, before)
	}
	if !strings.Contains(buf.String(), `msg="memory limit" source=GOMEMLIMIT`) {
		t.Errorf("log: %s", buf.String())
	}
}
