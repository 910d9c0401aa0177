package server

import (
	"context"
	"errors"

	"github.com/groupgate/groupgate/findings"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/policy"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// findingsPageSize bounds the events of one WatchFindings message: the starting findings come in pages of it, and
// a revision with more events (an import) is split into consecutive messages of the same revision, so that no
// message nears gRPC's default 4 MiB receive limit.
const findingsPageSize = 1000

// findingsPageBytes also ends a page: events carry their evidence and causes (an upsert_group cause holds the
// group's whole member list), so a thousand of them can outgrow the limit on their own.
const findingsPageBytes = 1 << 20

// StartFindings starts following a tenant's findings before anyone subscribes, so that the history a
// subscriber can resume from begins now. Unknown tenants are a *directory.NotFoundError.
func (s *Server) StartFindings(ctx context.Context, tenantID string) error {
	_, err := s.findings.Hub(ctx, tenantID)
	return err
}

// WatchFindings streams the findings that hold at the starting revision, then what each later revision opened and
// resolved (SPEC §16). The tenant's hub evaluates each revision once for every subscriber, off the write path;
// this handler only filters by rule and sends. A subscriber that cannot keep up is ended with RESOURCE_EXHAUSTED
// rather than buffered without bound; it resumes with after_revision = the last revision it fully received.
func (d *decisionService) WatchFindings(req *pb.WatchFindingsRequest, stream grpc.ServerStreamingServer[pb.WatchFindingsResponse]) error {
	ctx := stream.Context()
	hub, err := d.s.findings.Hub(ctx, req.GetTenantId())
	if err != nil {
		return err
	}
	sub, err := hub.Subscribe(ctx, req.GetAfterRevision())
	if err != nil {
		return err
	}
	defer sub.Close()
	// The headers go out before the first event, which may be long in coming (see Watch).
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	want := policy.WantRules(req.GetRules())
	last := sub.Start // the last revision fully sent
	// send sends a revision's events that the rules admit, in pages; done marks the last page as the revision's end
	// (revision_done), with an empty message after a last page that was full, so that a consumer never guesses. A
	// revision none of whose events the rules admit sends nothing.
	send := func(rev int64, events []*pb.FindingEvent, done bool) error {
		var page []*pb.FindingEvent
		size, sent := 0, false
		for _, e := range events {
			if !want(e.GetFinding().GetRule()) {
				continue
			}
			page, size = append(page, e), size+proto.Size(e)
			if len(page) == findingsPageSize || size >= findingsPageBytes {
				if err := stream.Send(&pb.WatchFindingsResponse{Events: page, Revision: rev}); err != nil {
					return err
				}
				page, size, sent = nil, 0, true
			}
		}
		if len(page) > 0 || (done && sent) {
			return stream.Send(&pb.WatchFindingsResponse{Events: page, Revision: rev, RevisionDone: done})
		}
		return nil
	}
	if err := send(sub.Start, sub.Current, false); err != nil {
		return err
	}
	if err := stream.Send(&pb.WatchFindingsResponse{Revision: sub.Start, CurrentDone: true, RevisionDone: true}); err != nil {
		return err
	}
	for _, rec := range sub.Backlog {
		if err := send(rec.Revision, rec.Events, true); err != nil {
			return err
		}
		last = rec.Revision
	}
	for {
		select {
		case <-sub.Done():
			if errors.Is(sub.Err(), findings.ErrSlowSubscriber) {
				return status.Errorf(codes.ResourceExhausted, "tenant %q: this subscriber fell more than %d revisions behind the findings; resume with after_revision %d (the last revision fully received)",
					req.GetTenantId(), d.s.findingsOpts.SubscriberBuffer, last)
			}
			return status.Errorf(codes.Unavailable, "the server stopped following tenant %q (shutting down); resume with after_revision %d", req.GetTenantId(), last)
		case <-ctx.Done():
			return ctx.Err()
		case rec := <-sub.C():
			if err := send(rec.Revision, rec.Events, true); err != nil {
				return err
			}
			last = rec.Revision
		}
	}
}
