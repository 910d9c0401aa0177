package bench_test

import (
	"context"
	"testing"

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
