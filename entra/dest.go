package entra

import (
	"context"
	"fmt"
	"time"

	"github.com/groupgate/groupgate/client"
	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Destination receives rounds. Write applies a round whole or not at all.
type Destination interface {
	Write(ctx context.Context, r *Round) (string, error)
}

// SnapshotFile writes each round's whole snapshot to a file (any format directory.WriteSnapshotFile knows),
// replacing it atomically, after checking that groupgate would load it.
type SnapshotFile struct{ Path string }

func (f SnapshotFile) Write(_ context.Context, r *Round) (string, error) {
	if _, err := directory.FromSnapshot(r.Snapshot, 1); err != nil {
		return "", fmt.Errorf("the snapshot read from Graph does not validate: %w", err)
	}
	if err := replaceFile(f.Path, func(tmp string) error { return directory.WriteSnapshotFile(tmp, r.Snapshot) }); err != nil {
		return "", err
	}
	return fmt.Sprintf("wrote %s", f.Path), nil
}

// Server writes rounds into a running groupgate: the first with ImportSnapshot, each later one as a single
// WriteChanges carrying the round's request id and the revision the previous round left (expected_revision).
// When the server refuses that (someone else wrote to the tenant, or a restarted in-memory server lost it), the
// round is written with ImportSnapshot instead, so the tenant always ends up exactly as Graph describes it.
type Server struct {
	Client *client.Client
	Tenant string

	revision int64 // after our last write; 0 before the first
}

// writeTimeout bounds one write: a server that stops answering fails the round instead of stalling the sync.
const writeTimeout = 5 * time.Minute

func (s *Server) Write(ctx context.Context, r *Round) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	round := &pb.SyncRound{StartedAgo: durationpb.New(time.Since(r.Started)), ObjectsRead: int64(r.ObjectsRead), Changes: int64(len(r.Changes))}
	if s.revision == 0 || r.Prev == nil {
		return s.importSnapshot(ctx, r, round)
	}
	if len(r.Changes) > maxBatchChanges || batchBytes(r.Changes) > maxBatchBytes {
		// Beyond what one WriteChanges may carry (the server's limits): one import is still one revision.
		return s.importSnapshot(ctx, r, round)
	}
	expected := s.revision
	resp, err := s.Client.Directory.WriteChanges(ctx, &pb.WriteChangesRequest{
		TenantId: s.Tenant, Changes: r.Changes, ExpectedRevision: &expected, RequestId: r.RequestID, SyncRound: round,
	})
	switch client.Code(err) {
	case codes.OK:
		s.revision = resp.GetRevision()
		if len(r.Changes) == 0 {
			return fmt.Sprintf("nothing changed: recorded the round at revision %d", s.revision), nil
		}
		return fmt.Sprintf("wrote %d changes: revision %d", len(r.Changes), s.revision), nil
	case codes.FailedPrecondition, codes.NotFound:
		return s.importSnapshot(ctx, r, round)
	}
	return "", fmt.Errorf("WriteChanges: %w", err)
}

// The server refuses batches of more than 10 000 changes and messages over 16 MiB (server.MaxWriteChanges,
// Limits.MaxRecvBytes); a round beyond half that size goes as an import.
const (
	maxBatchChanges = 10_000
	maxBatchBytes   = 8 << 20
)

func batchBytes(changes []*pb.Change) int {
	n := 0
	for _, c := range changes {
		n += proto.Size(c) + 2
		if n > maxBatchBytes {
			break
		}
	}
	return n
}

func (s *Server) importSnapshot(ctx context.Context, r *Round, round *pb.SyncRound) (string, error) {
	rev, err := s.Client.ImportSnapshotRound(ctx, r.Snapshot, nil, round)
	if err != nil {
		return "", fmt.Errorf("ImportSnapshot: %w", err)
	}
	s.revision = rev
	return fmt.Sprintf("imported the whole tenant: revision %d", rev), nil
}
