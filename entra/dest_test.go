package entra_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/groupgate/groupgate/entra"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/server/servertest"
)

func TestServerDestination(t *testing.T) {
	ctx := context.Background()
	srv := servertest.Start(t)
	dest := &entra.Server{Client: srv.Client, Tenant: tenant}
	users := func(n int) *pb.Snapshot {
		s := &pb.Snapshot{TenantId: tenant}
		for i := 0; i < n; i++ {
			s.Users = append(s.Users, &pb.User{Id: fmt.Sprintf("u-%05d", i), UserType: pb.UserType_USER_TYPE_MEMBER})
		}
		return s
	}
	revision := func() int64 {
		st, err := srv.Client.Directory.GetStatus(ctx, &pb.GetStatusRequest{TenantId: tenant})
		if err != nil {
			t.Fatal(err)
		}
		return st.GetRevision()
	}
	replaced := func(rev int64) bool {
		w, err := srv.Client.Directory.Watch(ctx, &pb.WatchRequest{TenantId: tenant, AfterRevision: rev - 1})
		if err != nil {
			t.Fatal(err)
		}
		m, err := w.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return m.GetTenantReplaced()
	}
	upsert := func(id string) *pb.Change {
		return &pb.Change{Change: &pb.Change_UpsertUser{UpsertUser: &pb.User{Id: id, UserType: pb.UserType_USER_TYPE_MEMBER}}}
	}
	write := func(r *entra.Round) string {
		t.Helper()
		r.Started = time.Now()
		msg, err := dest.Write(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}

	// The first round of a process is imported, even when it has a previous snapshot (a resumed state).
	write(&entra.Round{Prev: users(1), Snapshot: users(2), Changes: []*pb.Change{upsert("u-00001")}, RequestID: "r1"})
	if rev := revision(); rev != 1 || !replaced(rev) {
		t.Fatalf("first round: revision %d, want an import at 1", rev)
	}
	// Later rounds are one WriteChanges; a retried round (same request id) is applied once.
	round := &entra.Round{Prev: users(2), Snapshot: users(3), Changes: []*pb.Change{upsert("u-00002")}, RequestID: "r2"}
	write(round)
	write(round)
	if rev := revision(); rev != 2 || replaced(rev) {
		t.Fatalf("after a round and its retry: revision %d, want 2 written as changes", rev)
	}
	// Someone else wrote to the tenant: the expected revision fails and the round is imported instead.
	if _, err := srv.Client.Directory.WriteChanges(ctx, &pb.WriteChangesRequest{TenantId: tenant, Changes: []*pb.Change{upsert("u-foreign")}}); err != nil {
		t.Fatal(err)
	}
	if msg := write(&entra.Round{Prev: users(3), Snapshot: users(4), Changes: []*pb.Change{upsert("u-00003")}, RequestID: "r3"}); !strings.Contains(msg, "imported") {
		t.Errorf("after a foreign write: %q, want an import", msg)
	}
	if rev := revision(); rev != 4 || !replaced(rev) {
		t.Fatalf("revision %d, want 4 imported", rev)
	}
	if r, err := srv.Client.Directory.ExportSnapshot(ctx, &pb.ExportSnapshotRequest{TenantId: tenant}); err == nil {
		m, _ := r.Recv()
		for _, u := range m.GetSnapshot().GetUsers() {
			if u.GetId() == "u-foreign" {
				t.Error("the import kept the foreign write: the tenant must be exactly what Graph says")
			}
		}
	}
	// A round larger than one batch may be goes as an import.
	big := &entra.Round{Prev: users(4), Snapshot: users(10_005), RequestID: "r4"}
	for i := 4; i < 10_005; i++ {
		big.Changes = append(big.Changes, upsert(fmt.Sprintf("u-%05d", i)))
	}
	if msg := write(big); !strings.Contains(msg, "imported") {
		t.Errorf("a round of %d changes: %q, want an import", len(big.Changes), msg)
	}
	// Nothing new: the round is recorded, no revision written.
	if msg := write(&entra.Round{Prev: users(10_005), Snapshot: users(10_005), RequestID: "r5"}); !strings.Contains(msg, "nothing changed") || revision() != 5 {
		t.Errorf("an empty round: %q at revision %d, want nothing written at 5", msg, revision())
	}
}
