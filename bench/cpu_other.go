//go:build !unix

package bench

import "time"

// processCPU is 0 where getrusage is unavailable: the reports' CPU time per request is then 0.
func processCPU() time.Duration { return 0 }
