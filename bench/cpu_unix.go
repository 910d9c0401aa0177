//go:build unix

package bench

import (
	"syscall"
	"time"
)

// ProcessCPU is the user and system CPU time this process has used (0 when getrusage fails): on a machine shared
// with other work, CPU per operation varies far less than throughput does (the benchmarks in server use it too).
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
