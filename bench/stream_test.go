package bench_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/groupgate/groupgate/bench"
	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/workload"
	"github.com/groupgate/groupgate/server/servertest"
	"google.golang.org/protobuf/proto"
)

// TestNoOpStreamsTheRecordedAnswer: bench --stream compares groupgate's EffectiveMembers with a no-op handler
// streaming the same answer, so the no-op's stream must be groupgate's, message for message, and both runs must
// count every member of the top group.
func TestNoOpStreamsTheRecordedAnswer(t *testing.T) {
	p, _ := workload.Preset("tiny")
	d, err := directory.FromSnapshot(workload.Generate(p), 1)
	if err != nil {
		t.Fatal(err)
	}
	srv := servertest.Start(t, d)
	req := &pb.EffectiveMembersRequest{TenantId: p.TenantID, GroupId: workload.TopGroupID, PageSize: 500}
	ctx := context.Background()
	gg, err := bench.Stream(ctx, "groupgate", bench.StreamConfig{Addr: srv.Addr, Request: req, Repeat: 2, Record: true})
	if err != nil {
		t.Fatal(err)
	}
	// Every user and every group but the top one is a member at some depth.
	if want := p.Users + p.Groups - 1; gg.Members != want || len(gg.Whole) != 2 || len(gg.First) != 2 {
		t.Fatalf("groupgate: %d members in %d timed streams, want %d in 2", gg.Members, len(gg.Whole), want)
	}
	addr, stop, err := bench.ServeNoOpStream("127.0.0.1:0", gg.Recorded)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	replayed, err := bench.RecordMembers(ctx, addr, "", req)
	if err != nil {
		t.Fatal(err)
	}
	if len(replayed) != gg.Messages || len(replayed) < 2 {
		t.Fatalf("the no-op streamed %d messages, groupgate %d (want the same, more than one)", len(replayed), gg.Messages)
	}
	for i := range replayed {
		if !proto.Equal(replayed[i], gg.Recorded[i]) {
			t.Fatalf("message %d: the no-op sent %d members, groupgate %d: want the same message", i, len(replayed[i].GetMembers()), len(gg.Recorded[i].GetMembers()))
		}
	}
	noop, err := bench.Stream(ctx, "no-op", bench.StreamConfig{Addr: addr, Request: req, Repeat: 1})
	if err != nil || noop.Members != gg.Members || noop.MembersPerSecond() <= 0 {
		t.Fatalf("no-op: %d members at %.0f/s (%v), want %d", noop.Members, noop.MembersPerSecond(), err, gg.Members)
	}
}

// TestStreamReportsServerCPU: with a server of its own, a stream run reports the server's CPU time per timed
// stream, read before the first timed stream and after the last (the untimed one not counted).
func TestStreamReportsServerCPU(t *testing.T) {
	p, _ := workload.Preset("tiny")
	d, err := directory.FromSnapshot(workload.Generate(p), 1)
	if err != nil {
		t.Fatal(err)
	}
	srv := servertest.Start(t, d)
	req := &pb.EffectiveMembersRequest{TenantId: p.TenantID, GroupId: workload.TopGroupID}
	var reads []time.Duration
	serverCPU := func() time.Duration { // 40 ms more at every read
		reads = append(reads, time.Duration(len(reads)+1)*40*time.Millisecond)
		return reads[len(reads)-1]
	}
	r, err := bench.Stream(context.Background(), "groupgate", bench.StreamConfig{Addr: srv.Addr, Request: req, Repeat: 4, ServerCPU: serverCPU})
	if err != nil {
		t.Fatal(err)
	}
	if len(reads) != 2 || r.ServerCPUPerStream != 10*time.Millisecond {
		t.Fatalf("%d reads of the server's CPU, %s per stream: want 2 reads, 40 ms over 4 streams = 10ms", len(reads), r.ServerCPUPerStream)
	}
	if !strings.Contains(r.String(), "server cpu/stream 10ms") {
		t.Errorf("the report %q does not show the server's CPU per stream", r)
	}
	if r, _ := bench.Stream(context.Background(), "in-process", bench.StreamConfig{Addr: srv.Addr, Request: req, Repeat: 1}); r.ServerCPUPerStream != 0 || strings.Contains(r.String(), "server cpu") {
		t.Errorf("without ServerCPU: %s per stream in %q, want none", r.ServerCPUPerStream, r)
	}
}
