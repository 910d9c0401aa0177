package server_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/benchtenant"
	"github.com/groupgate/groupgate/internal/workload"
	"github.com/groupgate/groupgate/resolver"
	"github.com/groupgate/groupgate/server/servertest"
	"google.golang.org/protobuf/proto"
)

// expectedMemberPages is EffectiveMembers' answer built the plain way, from the resolver's walk into
// EffectiveMember structs: a first page of 100 members, then pages of pageSize, each with the revision.
func expectedMemberPages(d *directory.Directory, group directory.Ref, pageSize int) []*pb.EffectiveMembersResponse {
	var pages []*pb.EffectiveMembersResponse
	page := &pb.EffectiveMembersResponse{Revision: d.Revision()}
	limit := min(100, pageSize)
	for ref, depth := range resolver.New(resolver.Options{CacheMaxBytes: -1}).At(d).Members(group) {
		n := d.Node(ref)
		m := &pb.EffectiveMember{Id: n.ID(), Depth: int32(depth)}
		switch n.Kind() {
		case directory.KindUser:
			m.Kind, m.UserType = pb.ObjectKind_OBJECT_KIND_USER, n.UserType()
		case directory.KindGroup:
			m.Kind = pb.ObjectKind_OBJECT_KIND_GROUP
		case directory.KindServicePrincipal:
			m.Kind = pb.ObjectKind_OBJECT_KIND_SERVICE_PRINCIPAL
		}
		page.Members = append(page.Members, m)
		if len(page.Members) == limit {
			pages = append(pages, page)
			page, limit = &pb.EffectiveMembersResponse{Revision: d.Revision()}, pageSize
		}
	}
	if len(page.Members) > 0 || len(pages) == 0 {
		pages = append(pages, page)
	}
	return pages
}

// TestEffectiveMembersPooledPagesOverGRPC: concurrent streams of a 22,000-member answer over gRPC, whose pages
// are encoded into buffers gRPC takes back and hands out again, each carry exactly the answer built from the walk
// (members, order, depths, kinds, page boundaries, revision): a page given back before it was written, or written
// into while on its way, would show here as another stream's bytes.
func TestEffectiveMembersPooledPagesOverGRPC(t *testing.T) {
	d, _ := benchtenant.Load(t, "small")
	srv := servertest.Start(t, d)
	top, ok := d.Lookup(workload.TopGroupID)
	if !ok {
		t.Fatal("no top group")
	}
	for _, pageSize := range []int{1000, 333} {
		want := expectedMemberPages(d, top.Ref(), pageSize)
		if len(want) < 20 {
			t.Fatalf("the expected answer has %d pages: want a tenant with many", len(want))
		}
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var got []*pb.EffectiveMembersResponse
				req := &pb.EffectiveMembersRequest{TenantId: d.TenantID(), GroupId: workload.TopGroupID, PageSize: int32(pageSize)}
				errs[i] = srv.Client.EachMember(context.Background(), req, func(r *pb.EffectiveMembersResponse) error {
					got = append(got, r)
					return nil
				})
				if errs[i] == nil {
					errs[i] = samePages(got, want)
				}
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("page_size %d, stream %d: %v", pageSize, i, err)
			}
		}
	}
}

func samePages(got, want []*pb.EffectiveMembersResponse) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d messages, want %d", len(got), len(want))
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) {
			return fmt.Errorf("message %d (%d members) differs from the walk's (%d members)", i, len(got[i].GetMembers()), len(want[i].GetMembers()))
		}
	}
	return nil
}
