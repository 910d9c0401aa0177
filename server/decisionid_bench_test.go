package server

import "testing"

// BenchmarkNewDecisionID is what a decision id costs every decision (issue 21: keep the hot path cheap).
func BenchmarkNewDecisionID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = newDecisionID()
	}
}
