//go:build !unix

package bench

import "time"

// ProcessCPU is 0 where getrusage is unavailable: the reports' CPU time per request is then 0.
func ProcessCPU() time.Duration { return 0 }
