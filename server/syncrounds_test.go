package server_test

import (
	"testing"
	"time"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/server/servertest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestSyncRoundsAreRecorded(t *testing.T) {
	srv := servertest.Start(t)
	c := srv.Client.Directory
	st, err := c.GetStatus(ctx(t), &pb.GetStatusRequest{TenantId: "contoso"})
	if err != nil || st.GetLastSyncRound() != nil || st.GetSyncLag() != nil {
		t.Fatalf("before any sync round: %v, %v; want no sync fields", st, err)
	}

	// An empty batch is refused unless it is a sync round, which writes nothing and is recorded.
	if _, err := c.WriteChanges(ctx(t), &pb.WriteChangesRequest{TenantId: "contoso"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("empty batch without a sync round: %v, want INVALID_ARGUMENT", err)
	}
	round := &pb.SyncRound{StartedAgo: durationpb.New(90 * time.Second)}
	wrong := int64(7)
	if _, err := c.WriteChanges(ctx(t), &pb.WriteChangesRequest{TenantId: "contoso", SyncRound: round, ExpectedRevision: &wrong}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("empty sync round at the wrong revision: %v, want FAILED_PRECONDITION", err)
	}
	resp, err := c.WriteChanges(ctx(t), &pb.WriteChangesRequest{TenantId: "contoso", SyncRound: round})
	if err != nil || resp.GetRevision() != 1 {
		t.Fatalf("empty sync round: %v, %v; want revision 1 unchanged", resp, err)
	}
	st, err = c.GetStatus(ctx(t), &pb.GetStatusRequest{TenantId: "contoso"})
	if err != nil {
		t.Fatal(err)
	}
	if lag := st.GetSyncLag().AsDuration(); lag < 90*time.Second || lag > 100*time.Second || st.GetRevision() != 1 {
		t.Errorf("sync lag %v at revision %d; want about 90s (the round started 90s before it was written) at 1", lag, st.GetRevision())
	}
	if at := st.GetLastSyncRound().AsTime(); time.Since(at) > 10*time.Second {
		t.Errorf("last sync round at %v", at)
	}

	// A fresher round with changes lowers the lag; an older one arriving late does not raise it again.
	if _, err := c.WriteChanges(ctx(t), &pb.WriteChangesRequest{TenantId: "contoso", Changes: []*pb.Change{addMember("grp-finance-emea", "u-ursula")},
		SyncRound: &pb.SyncRound{StartedAgo: durationpb.New(time.Second)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteChanges(ctx(t), &pb.WriteChangesRequest{TenantId: "contoso", SyncRound: round}); err != nil {
		t.Fatal(err)
	}
	st, _ = c.GetStatus(ctx(t), &pb.GetStatusRequest{TenantId: "contoso"})
	if lag := st.GetSyncLag().AsDuration(); lag > 10*time.Second || st.GetRevision() != 2 {
		t.Errorf("sync lag %v at revision %d; want about 1s at 2", lag, st.GetRevision())
	}
}
