// Package memlimit makes a process respect its container's memory limit: it reads the limit of the cgroup the
// process runs in (cgroup v2 memory.max, v1 memory.limit_in_bytes) and sets the Go memory limit
// (debug.SetMemoryLimit) to 90% of it, unless GOMEMLIMIT is set. The runtime then collects garbage harder as the
// heap nears the limit instead of letting it grow until the kernel's OOM killer ends the process; the collector
// tuning of package gctune reads the same limit and keeps its headroom inside it.
package memlimit

import (
	"bufio"
	"errors"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path"
	"runtime/debug"
	"strconv"
	"strings"
)

// Share is the part of the cgroup limit given to the Go heap; the rest is for what the runtime does not count
// (fragmentation the kernel still charges, the binary's text, thread stacks outside Go).
const Share = 0.90

// Unlimited is the smallest value read as "no limit": cgroup v1 writes an unlimited cgroup as 2^63 rounded down
// to a page (9223372036854771712), and some runtimes write other huge numbers.
const Unlimited = 1 << 60

// Choice is what Apply decided.
type Choice struct {
	// Cgroup is the memory limit found (0: none), and CgroupFile the file it came from.
	Cgroup     uint64
	CgroupFile string
	// GoLimit is the Go memory limit in force afterwards (math.MaxInt64: none), and Source says who set it:
	// "cgroup" (Share of Cgroup), "GOMEMLIMIT" (the environment; left alone) or "none".
	GoLimit int64
	Source  string
}

// Apply reads the cgroup limit of this process and sets the Go memory limit from it unless GOMEMLIMIT is set
// (GOMEMLIMIT=off turns the limit off, and with it this package). It logs what it chose, and the collector
// headroom that fits in it (see gctune), on logger.
func Apply(logger *slog.Logger, gcHeadroom uint64) Choice {
	c := Choose(os.DirFS("/"), os.Getenv("GOMEMLIMIT"))
	if c.Source == "cgroup" {
		debug.SetMemoryLimit(c.GoLimit)
	}
	c.GoLimit = debug.SetMemoryLimit(-1)
	attrs := []any{"source", c.Source}
	if c.Cgroup > 0 {
		attrs = append(attrs, "cgroup_limit_bytes", c.Cgroup, "cgroup_file", "/"+c.CgroupFile)
	}
	if c.GoLimit != math.MaxInt64 {
		attrs = append(attrs, "go_limit_bytes", c.GoLimit)
	}
	if gcHeadroom > 0 { // a process that does not tune its collector (sync) has no headroom to report
		attrs = append(attrs, "gc_headroom_max_bytes", FitHeadroom(gcHeadroom, c.GoLimit))
	}
	logger.Info("memory limit", attrs...)
	return c
}

// FitHeadroom is the collector headroom (gctune) allowed under Go memory limit goLimit: at most half the
// limit, so that a heap at live + headroom stays under it with the live heap at up to half the limit. gctune
// narrows it further while it runs, to half of what the limit leaves above the live heap.
func FitHeadroom(headroom uint64, goLimit int64) uint64 {
	if goLimit <= 0 || goLimit == math.MaxInt64 {
		return headroom
	}
	return min(headroom, uint64(goLimit)/2)
}

// Choose decides the Go memory limit from the cgroup files under root (the file system's "/") and the value of
// GOMEMLIMIT; it sets nothing.
func Choose(root fs.FS, gomemlimit string) Choice {
	c := Choice{GoLimit: math.MaxInt64, Source: "none"}
	c.Cgroup, c.CgroupFile = Read(root)
	switch {
	case gomemlimit != "":
		c.Source = "GOMEMLIMIT"
	case c.Cgroup > 0:
		c.Source = "cgroup"
		c.GoLimit = int64(float64(c.Cgroup) * Share)
	}
	return c
}

// Read returns the lowest memory limit of this process's cgroup and its ancestors under root, and the file it
// came from (relative to root); 0 and "" when there is none. It looks where /proc/self/cgroup says the process's
// cgroup is, walking up to the hierarchy's root, and at the root files themselves: inside a container the
// mounted hierarchy starts at the container's own cgroup (sys/fs/cgroup/memory.max on v2,
// sys/fs/cgroup/memory/memory.limit_in_bytes on v1), while a service on a host (systemd's MemoryMax) has its
// limit in a sub-directory.
func Read(root fs.FS) (limit uint64, file string) {
	v2, v1 := cgroupPaths(root)
	var candidates []string
	for _, p := range ancestors(v2) {
		candidates = append(candidates, path.Join("sys/fs/cgroup", p, "memory.max"))
	}
	for _, p := range ancestors(v1) {
		candidates = append(candidates, path.Join("sys/fs/cgroup/memory", p, "memory.limit_in_bytes"))
	}
	seen := map[string]bool{}
	for _, f := range candidates {
		if seen[f] {
			continue
		}
		seen[f] = true
		v, err := readLimit(root, f)
		if err != nil || v == 0 {
			continue
		}
		if limit == 0 || v < limit {
			limit, file = v, f
		}
	}
	return limit, file
}

// cgroupPaths reads /proc/self/cgroup: the v2 path (line "0::PATH") and the v1 memory controller's path (line
// "N:...,memory,...:PATH"). Both are "/" when the file cannot be read, so that the root files are still tried.
func cgroupPaths(root fs.FS) (v2, v1 string) {
	v2, v1 = "/", "/"
	f, err := root.Open("proc/self/cgroup")
	if err != nil {
		return v2, v1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2 = parts[2]
			continue
		}
		for _, ctl := range strings.Split(parts[1], ",") {
			if ctl == "memory" {
				v1 = parts[2]
			}
		}
	}
	return v2, v1
}

// ancestors lists p and every directory above it, "/" last.
func ancestors(p string) []string {
	p = path.Clean("/" + p)
	out := []string{p}
	for p != "/" {
		p = path.Dir(p)
		out = append(out, p)
	}
	return out
}

var errNoLimit = errors.New("no limit")

// readLimit reads one limit file: a number of bytes, or "max" (v2) or a huge number (v1) for none.
func readLimit(root fs.FS, name string) (uint64, error) {
	b, err := fs.ReadFile(root, name)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" || s == "" {
		return 0, errNoLimit
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, err
	}
	if v >= Unlimited {
		return 0, errNoLimit
	}
	return v, nil
}
