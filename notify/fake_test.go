package notify_test

import (
	"net"
	"sort"
	"sync"
	"testing"
	"time"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// fakeFindings is a DecisionService whose WatchFindings follows the SPEC §16 contract over a scripted history:
// revision first..newest, each with the findings it opens and resolves. The unit tests drive the deliverer's
// corner cases through it (OUT_OF_RANGE, RESOURCE_EXHAUSTED); the end-to-end tests use the real server.
type fakeFindings struct {
	pb.UnimplementedDecisionServiceServer
	mu      sync.Mutex
	changed chan struct{} // closed and replaced at every new revision
	oldest  int64         // the oldest revision one can start from
	revs    map[int64][]*pb.FindingEvent
	newest  int64
	// exhaustAfter, when > 0, ends each stream with RESOURCE_EXHAUSTED after that many messages of later
	// revisions (a subscriber that fell behind); exhausted counts how often.
	exhaustAfter int
	exhausted    int
	tokens       []string // the bearer tokens streams came with
}

func newFake(oldest int64) *fakeFindings {
	return &fakeFindings{changed: make(chan struct{}), oldest: oldest, newest: oldest, revs: map[int64][]*pb.FindingEvent{}}
}

func finding(group, guest string) *pb.Finding {
	return &pb.Finding{Rule: pb.Rule_RULE_LABEL_BLOCKS_GUESTS, GroupId: group, Path: []string{group, guest}, Message: guest + " is a guest in " + group}
}

// commit adds a revision that opens and resolves findings (ids are "group/guest").
func (f *fakeFindings) commit(opened, resolved []*pb.Finding) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.newest++
	var es []*pb.FindingEvent
	for _, fd := range resolved {
		es = append(es, &pb.FindingEvent{Kind: pb.FindingEventKind_FINDING_EVENT_KIND_RESOLVED, Finding: fd, FindingId: fakeID(fd), Revision: f.newest})
	}
	for _, fd := range opened {
		es = append(es, &pb.FindingEvent{Kind: pb.FindingEventKind_FINDING_EVENT_KIND_OPENED, Finding: fd, FindingId: fakeID(fd), Revision: f.newest})
	}
	f.revs[f.newest] = es
	close(f.changed)
	f.changed = make(chan struct{})
	return f.newest
}

func fakeID(fd *pb.Finding) string { return fd.GetGroupId() + "." + fd.GetPath()[len(fd.GetPath())-1] }

// openAt is the open set at rev (the caller holds mu).
func (f *fakeFindings) openAt(rev int64) map[string]*pb.Finding {
	open := map[string]*pb.Finding{}
	for r := int64(1); r <= rev; r++ {
		for _, e := range f.revs[r] {
			if e.GetKind() == pb.FindingEventKind_FINDING_EVENT_KIND_OPENED {
				open[e.GetFindingId()] = e.GetFinding()
			} else {
				delete(open, e.GetFindingId())
			}
		}
	}
	return open
}

func (f *fakeFindings) WatchFindings(req *pb.WatchFindingsRequest, stream grpc.ServerStreamingServer[pb.WatchFindingsResponse]) error {
	md, _ := metadata.FromIncomingContext(stream.Context())
	f.mu.Lock()
	f.tokens = append(f.tokens, md.Get("authorization")...)
	start := req.GetAfterRevision()
	if start == 0 {
		start = f.newest
	}
	if start < f.oldest {
		f.mu.Unlock()
		return status.Errorf(codes.OutOfRange, "revision %d is older than the findings history: start from %d or later", start, f.oldest)
	}
	open := f.openAt(start)
	f.mu.Unlock()
	ids := make([]string, 0, len(open))
	for id := range open {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var cur []*pb.FindingEvent
	for _, id := range ids {
		cur = append(cur, &pb.FindingEvent{Kind: pb.FindingEventKind_FINDING_EVENT_KIND_OPENED, Finding: open[id], FindingId: id, Revision: start, Current: true})
	}
	if err := stream.Send(&pb.WatchFindingsResponse{Events: cur, Revision: start}); err != nil {
		return err
	}
	if err := stream.Send(&pb.WatchFindingsResponse{Revision: start, CurrentDone: true, RevisionDone: true}); err != nil {
		return err
	}
	sent := 0
	for next := start + 1; ; {
		f.mu.Lock()
		es, ok := f.revs[next]
		changed := f.changed
		if ok && f.exhaustAfter > 0 && sent == f.exhaustAfter {
			f.exhausted++
			f.mu.Unlock()
			return status.Error(codes.ResourceExhausted, "the subscriber fell behind")
		}
		f.mu.Unlock()
		if !ok {
			select {
			case <-changed:
				continue
			case <-stream.Context().Done():
				return stream.Context().Err()
			}
		}
		if len(es) > 0 {
			if err := stream.Send(&pb.WatchFindingsResponse{Events: es, Revision: next, RevisionDone: true}); err != nil {
				return err
			}
			sent++
		}
		next++
	}
}

// serve runs the fake on a loopback port and returns a connection to it.
func (f *fakeFindings) serve(t *testing.T) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	pb.RegisterDecisionServiceServer(s, f)
	go func() { _ = s.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); s.Stop() })
	return conn
}

// waitSubscribed waits until n streams have started: revisions committed after it come as live events, not as
// part of the starting findings.
func (f *fakeFindings) waitSubscribed(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.mu.Lock()
		got := len(f.tokens)
		f.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d WatchFindings streams after 5s, want %d", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
