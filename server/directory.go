package server

import (
	"context"
	"errors"
	"io"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/store"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

type directoryService struct {
	pb.UnimplementedDirectoryServiceServer
	s *Server
}

func (d *directoryService) WriteChanges(ctx context.Context, req *pb.WriteChangesRequest) (*pb.WriteChangesResponse, error) {
	rev, err := d.s.cfg.Store.Write(ctx, store.Write{
		TenantID:         req.GetTenantId(),
		Changes:          req.GetChanges(),
		ExpectedRevision: req.ExpectedRevision,
		RequestID:        req.GetRequestId(),
	})
	if err != nil {
		return nil, err
	}
	return &pb.WriteChangesResponse{Revision: rev}, nil
}

func (d *directoryService) Watch(req *pb.WatchRequest, stream grpc.ServerStreamingServer[pb.WatchResponse]) error {
	// The headers go out once the tenant is known to exist, before the first change, which may be long in coming:
	// a client then knows the watch is on (the HTTP gateway answers its 200 at that moment, not at the first
	// change), and an unknown tenant is still refused with NOT_FOUND alone.
	if _, err := d.s.cfg.Store.Directory(stream.Context(), req.GetTenantId(), 0); err != nil {
		return err
	}
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	return d.s.cfg.Store.Watch(stream.Context(), req.GetTenantId(), req.GetAfterRevision(), func(r store.Revision) error {
		return stream.Send(&pb.WatchResponse{Revision: r.Revision, Changes: r.Changes, TenantReplaced: r.Replaced})
	})
}

// ImportSnapshot merges the streamed parts into one snapshot and replaces the tenant with it.
func (d *directoryService) ImportSnapshot(stream grpc.ClientStreamingServer[pb.ImportSnapshotRequest, pb.ImportSnapshotResponse]) error {
	var tenantID string
	var expected *int64
	snap := &pb.Snapshot{}
	for first := true; ; first = false {
		part, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if first {
			tenantID, expected = part.GetTenantId(), part.ExpectedRevision
		}
		v := &validator{}
		if first {
			v.id("tenant_id", tenantID)
		} else if t := part.GetTenantId(); t != "" && t != tenantID {
			v.add("tenant_id", "%q differs from the first message's %q", truncate(t), tenantID)
		}
		if t := part.GetSnapshot().GetTenantId(); t != "" && t != tenantID {
			v.add("snapshot.tenant_id", "%q differs from tenant_id %q", truncate(t), tenantID)
		}
		if err := v.orNil(); err != nil {
			return err
		}
		proto.Merge(snap, part.GetSnapshot())
	}
	if tenantID == "" {
		v := &validator{}
		v.id("tenant_id", "")
		return v.orNil()
	}
	snap.TenantId = tenantID
	rev, err := d.s.cfg.Store.Import(stream.Context(), snap, expected)
	if err != nil {
		return err
	}
	return stream.SendAndClose(&pb.ImportSnapshotResponse{Revision: rev})
}

// exportPartObjects is how many objects (members and owners included) one ExportSnapshot message carries: small
// enough to stay far below gRPC's default 4 MiB message limit with GUID ids.
const exportPartObjects = 20_000

func (d *directoryService) ExportSnapshot(req *pb.ExportSnapshotRequest, stream grpc.ServerStreamingServer[pb.ExportSnapshotResponse]) error {
	dir, err := d.s.directory(stream.Context(), req.GetTenantId(), req.GetConsistency())
	if err != nil {
		return err
	}
	return dir.SnapshotParts(exportPartObjects, func(part *pb.Snapshot) error {
		if err := stream.Send(&pb.ExportSnapshotResponse{Snapshot: part, Revision: dir.Revision()}); err != nil {
			return err
		}
		return stream.Context().Err()
	})
}

func (d *directoryService) GetStatus(ctx context.Context, req *pb.GetStatusRequest) (*pb.GetStatusResponse, error) {
	st, err := d.s.cfg.Store.Status(ctx, req.GetTenantId())
	if err != nil {
		return nil, err
	}
	c := st.Counts
	return &pb.GetStatusResponse{
		Revision: st.Revision,
		Counts: &pb.ObjectCounts{
			Users: c.Users, Guests: c.Guests, Groups: c.Groups, ServicePrincipals: c.ServicePrincipals,
			Labels: c.Labels, Memberships: c.Memberships,
		},
		Store:          st.Store,
		StoreRevision:  st.StoreRevision,
		ReplicationLag: durationpb.New(st.Lag),
	}, nil
}
