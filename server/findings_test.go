package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/groupgate/groupgate/findings"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/server/servertest"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func removeMember(group, member string) *pb.Change {
	return &pb.Change{Change: &pb.Change_RemoveMember{RemoveMember: &pb.MemberChange{GroupId: group, MemberId: member}}}
}

func write(t *testing.T, srv *servertest.Server, changes ...*pb.Change) int64 {
	t.Helper()
	resp, err := srv.Client.Directory.WriteChanges(ctx(t), &pb.WriteChangesRequest{TenantId: "contoso", Changes: changes})
	if err != nil {
		t.Fatalf("write %v: %v", changes, err)
	}
	return resp.GetRevision()
}

// findingsStream reads a WatchFindings stream message by message, failing the test on a read that takes too long.
type findingsStream struct {
	t      *testing.T
	stream grpc.ServerStreamingClient[pb.WatchFindingsResponse]
}

func watchFindings(t *testing.T, srv *servertest.Server, req *pb.WatchFindingsRequest) *findingsStream {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	if req.TenantId == "" {
		req.TenantId = "contoso"
	}
	stream, err := srv.Client.Decisions.WatchFindings(c, req)
	if err != nil {
		t.Fatal(err)
	}
	return &findingsStream{t: t, stream: stream}
}

func (s *findingsStream) next() *pb.WatchFindingsResponse {
	s.t.Helper()
	m, err := s.stream.Recv()
	if err != nil {
		s.t.Fatalf("WatchFindings: %v", err)
	}
	return m
}

// current reads the starting findings up to current_done and returns them by id, checking their form.
func (s *findingsStream) current(rev int64) map[string]*pb.FindingEvent {
	s.t.Helper()
	out := map[string]*pb.FindingEvent{}
	for {
		m := s.next()
		if m.GetRevision() != rev {
			s.t.Fatalf("starting message at revision %d, want %d", m.GetRevision(), rev)
		}
		if m.GetCurrentDone() {
			if len(m.GetEvents()) != 0 || !m.GetRevisionDone() {
				s.t.Fatalf("current_done message carries %d events and revision_done %v, want none and true", len(m.GetEvents()), m.GetRevisionDone())
			}
			return out
		}
		for _, e := range m.GetEvents() {
			if !e.GetCurrent() || e.GetKind() != pb.FindingEventKind_FINDING_EVENT_KIND_OPENED || e.GetRevision() != rev || len(e.GetCausedBy()) != 0 {
				s.t.Fatalf("starting event %v: want current OPENED at revision %d without caused_by", e, rev)
			}
			if e.GetFindingId() != findings.ID(e.GetFinding()) {
				s.t.Fatalf("event id %s, want findings.ID %s", e.GetFindingId(), findings.ID(e.GetFinding()))
			}
			out[e.GetFindingId()] = e
		}
	}
}

// auditIDs is a fresh Audit over gRPC, by finding id.
func auditIDs(t *testing.T, srv *servertest.Server, rules ...pb.Rule) map[string]*pb.Finding {
	t.Helper()
	out := map[string]*pb.Finding{}
	err := srv.Client.Audit(ctx(t), &pb.AuditRequest{TenantId: "contoso", Rules: rules}, func(f *pb.Finding, _ int64) error {
		out[findings.ID(f)] = f
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameFindings(t *testing.T, what string, got map[string]*pb.FindingEvent, want map[string]*pb.Finding) {
	t.Helper()
	for id, f := range want {
		if e, ok := got[id]; !ok || !proto.Equal(e.GetFinding(), f) {
			t.Errorf("%s: finding %s %v: got %v", what, id, f, e.GetFinding())
		}
	}
	for id, e := range got {
		if _, ok := want[id]; !ok {
			t.Errorf("%s: extra finding %s %v", what, id, e.GetFinding())
		}
	}
}

// TestWatchFindingsGuestThroughUnlabelledChild is the story over real gRPC: a guest added to an unlabelled
// child of a Confidential group opens a finding with the nesting path as evidence and the write as its cause;
// removing the guest resolves the same finding id; a second subscriber resumes from a revision in between.
func TestWatchFindingsGuestThroughUnlabelledChild(t *testing.T) {
	srv := servertest.Start(t)
	st, err := srv.Client.Directory.GetStatus(ctx(t), &pb.GetStatusRequest{TenantId: "contoso"})
	if err != nil {
		t.Fatal(err)
	}
	start := st.GetRevision()
	w := watchFindings(t, srv, &pb.WatchFindingsRequest{})
	sameFindings(t, "starting findings", w.current(start), auditIDs(t, srv))

	add := addMember("grp-finance-interns", "u-gina")
	rev := write(t, srv, add)
	m := w.next()
	wantPath := []string{"grp-finance", "grp-finance-interns", "u-gina"}
	var opened *pb.FindingEvent
	for _, e := range m.GetEvents() {
		if e.GetFinding().GetRule() == pb.Rule_RULE_LABEL_BLOCKS_GUESTS_TRANSITIVE && e.GetFinding().GetGroupId() == "grp-finance" {
			opened = e
		}
	}
	if m.GetRevision() != rev || opened == nil || opened.GetKind() != pb.FindingEventKind_FINDING_EVENT_KIND_OPENED || opened.GetCurrent() ||
		!slices.Equal(opened.GetFinding().GetPath(), wantPath) || opened.GetRevision() != rev ||
		len(opened.GetCausedBy()) != 1 || !proto.Equal(opened.GetCausedBy()[0], add) {
		t.Fatalf("after adding the guest (revision %d): %v\nwant an OPENED guest finding on grp-finance, path %v, caused by %v", rev, m, wantPath, add)
	}
	if want := findings.ID(&pb.Finding{Rule: pb.Rule_RULE_LABEL_BLOCKS_GUESTS_TRANSITIVE, GroupId: "grp-finance", Path: []string{"u-gina"}}); opened.GetFindingId() != want {
		t.Errorf("finding_id %s, want %s (rule, group, guest)", opened.GetFindingId(), want)
	}
	// A change that touches no finding sends nothing: the next message is the removal's.
	write(t, srv, addMember("grp-berlin", "u-ivan"))
	remove := removeMember("grp-finance-interns", "u-gina")
	rev2 := write(t, srv, remove)
	m = w.next()
	var resolved *pb.FindingEvent
	for _, e := range m.GetEvents() {
		if e.GetFindingId() == opened.GetFindingId() {
			resolved = e
		}
	}
	if m.GetRevision() != rev2 || resolved == nil || resolved.GetKind() != pb.FindingEventKind_FINDING_EVENT_KIND_RESOLVED ||
		!proto.Equal(resolved.GetFinding(), opened.GetFinding()) || len(resolved.GetCausedBy()) != 1 || !proto.Equal(resolved.GetCausedBy()[0], remove) {
		t.Fatalf("after removing the guest (revision %d): %v\nwant the same finding RESOLVED, caused by %v", rev2, m, remove)
	}

	// Resuming after the revision that opened it: the finding is current there, then its resolution follows.
	r := watchFindings(t, srv, &pb.WatchFindingsRequest{AfterRevision: rev, Rules: []pb.Rule{pb.Rule_RULE_LABEL_BLOCKS_GUESTS_TRANSITIVE}})
	cur := r.current(rev)
	if _, ok := cur[opened.GetFindingId()]; !ok {
		t.Fatalf("resumed at revision %d: current findings %v lack %s", rev, cur, opened.GetFindingId())
	}
	for _, e := range cur {
		if e.GetFinding().GetRule() != pb.Rule_RULE_LABEL_BLOCKS_GUESTS_TRANSITIVE {
			t.Errorf("rules filter let %v through", e)
		}
	}
	m = r.next()
	if m.GetRevision() != rev2 || len(m.GetEvents()) != 1 || m.GetEvents()[0].GetFindingId() != opened.GetFindingId() ||
		m.GetEvents()[0].GetKind() != pb.FindingEventKind_FINDING_EVENT_KIND_RESOLVED {
		t.Fatalf("resumed stream's first revision: %v, want revision %d resolving %s", m, rev2, opened.GetFindingId())
	}
	// And from the newest revision: the open set equals a fresh Audit again.
	st, _ = srv.Client.Directory.GetStatus(ctx(t), &pb.GetStatusRequest{TenantId: "contoso"})
	sameFindings(t, "after both writes", watchFindings(t, srv, &pb.WatchFindingsRequest{}).current(st.GetRevision()), auditIDs(t, srv))
}

// TestWatchFindingsRefusals: bad requests are refused before any event, each with its own code and the field or
// revision named.
func TestWatchFindingsRefusals(t *testing.T) {
	srv := servertest.Start(t)
	write(t, srv, addMember("grp-berlin", "u-ivan")) // revision 2: revision 1 then lies before the history
	st, _ := srv.Client.Directory.GetStatus(ctx(t), &pb.GetStatusRequest{TenantId: "contoso"})
	tests := []struct {
		name string
		req  *pb.WatchFindingsRequest
		code codes.Code
		want string // in the message
	}{
		{"unknown tenant", &pb.WatchFindingsRequest{TenantId: "fabrikam"}, codes.NotFound, "fabrikam"},
		{"no tenant", &pb.WatchFindingsRequest{TenantId: ""}, codes.InvalidArgument, "tenant_id"},
		{"negative revision", &pb.WatchFindingsRequest{TenantId: "contoso", AfterRevision: -1}, codes.InvalidArgument, "after_revision"},
		{"a rule Audit does not report", &pb.WatchFindingsRequest{TenantId: "contoso", Rules: []pb.Rule{pb.Rule_RULE_PREVIEW_BYPASS}}, codes.InvalidArgument, "rules[0]"},
		{"an unknown rule number", &pb.WatchFindingsRequest{TenantId: "contoso", Rules: []pb.Rule{pb.Rule_RULE_NESTING_CYCLE, 9999}}, codes.InvalidArgument, "rules[1]"},
		{"the unspecified rule", &pb.WatchFindingsRequest{TenantId: "contoso", Rules: []pb.Rule{0}}, codes.InvalidArgument, "rules[0]"},
		// The server began evaluating at the tenant's newest revision: nothing before it is known.
		{"a revision before the history", &pb.WatchFindingsRequest{TenantId: "contoso", AfterRevision: st.GetRevision() - 1}, codes.OutOfRange,
			fmt.Sprintf("from revision %d on", st.GetRevision())},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stream, err := srv.Client.Decisions.WatchFindings(ctx(t), tt.req)
			if err == nil {
				_, err = stream.Recv()
			}
			if status.Code(err) != tt.code || !strings.Contains(status.Convert(err).Message(), tt.want) {
				t.Fatalf("got %v, want %v naming %q", err, tt.code, tt.want)
			}
			if tt.code == codes.OutOfRange {
				var info *errdetails.ErrorInfo
				for _, d := range status.Convert(err).Details() {
					if i, ok := d.(*errdetails.ErrorInfo); ok {
						info = i
					}
				}
				if info.GetMetadata()["min_after_revision"] != fmt.Sprint(st.GetRevision()) {
					t.Errorf("ErrorInfo %v: want min_after_revision %d", info, st.GetRevision())
				}
			}
		})
	}
}

// TestWatchFindingsWaitsForAFutureRevision: a start revision not yet written is waited for, as Watch does.
func TestWatchFindingsWaitsForAFutureRevision(t *testing.T) {
	srv := servertest.Start(t)
	st, _ := srv.Client.Directory.GetStatus(ctx(t), &pb.GetStatusRequest{TenantId: "contoso"})
	w := watchFindings(t, srv, &pb.WatchFindingsRequest{AfterRevision: st.GetRevision() + 1})
	got := make(chan map[string]*pb.FindingEvent, 1)
	go func() { got <- w.current(st.GetRevision() + 1) }()
	select {
	case cur := <-got:
		t.Fatalf("answered before revision %d existed: %v", st.GetRevision()+1, cur)
	case <-time.After(200 * time.Millisecond):
	}
	write(t, srv, addMember("grp-finance-interns", "u-gina"))
	select {
	case cur := <-got:
		sameFindings(t, "at the awaited revision", cur, auditIDs(t, srv))
	case <-time.After(10 * time.Second):
		t.Fatal("no answer after the revision was written")
	}
}

// TestWatchFindingsSlowSubscriberIsEnded: a subscriber that stops reading is ended with RESOURCE_EXHAUSTED naming
// the revision to resume from, while writes go on at full speed, and it can resume from there.
func TestWatchFindingsSlowSubscriberIsEnded(t *testing.T) {
	srv := servertest.StartWith(t, servertest.Options{Findings: findings.Options{SubscriberBuffer: 4}})
	st, _ := srv.Client.Directory.GetStatus(ctx(t), &pb.GetStatusRequest{TenantId: "contoso"})
	slow := watchFindings(t, srv, &pb.WatchFindingsRequest{})
	slow.current(st.GetRevision())
	// The slow subscriber reads nothing more while every write opens or resolves a finding. Its messages fill
	// the transport's windows, then its buffer of 4 revisions; the hub must not wait for it.
	var slowest time.Duration
	const writes = 600
	for i := range writes {
		c := addMember("grp-finance-interns", "u-gina")
		if i%2 == 1 {
			c = removeMember("grp-finance-interns", "u-gina")
		}
		t0 := time.Now()
		write(t, srv, c)
		slowest = max(slowest, time.Since(t0))
	}
	// Reading now drains what was in flight, then the end.
	var last int64
	var err error
	for {
		var m *pb.WatchFindingsResponse
		if m, err = slow.stream.Recv(); err != nil {
			break
		}
		last = m.GetRevision()
	}
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("slow subscriber ended with %v after revision %d, want RESOURCE_EXHAUSTED", err, last)
	}
	if last >= st.GetRevision()+writes {
		t.Fatalf("slow subscriber received every revision up to %d: it was buffered, not ended", last)
	}
	if want := fmt.Sprintf("resume with after_revision %d", last); !strings.Contains(status.Convert(err).Message(), want) {
		t.Errorf("message %q: want %q (the last revision it received)", status.Convert(err).Message(), want)
	}
	t.Logf("%d writes, the slowest took %v; the slow subscriber got up to revision %d of %d", writes, slowest, last, st.GetRevision()+writes)
	// It resumes where it stopped and then sees every later revision.
	r := watchFindings(t, srv, &pb.WatchFindingsRequest{AfterRevision: last})
	r.current(last)
	m := r.next()
	if m.GetRevision() != last+1 {
		t.Errorf("resumed at %d: first revision %d, want %d", last, m.GetRevision(), last+1)
	}
}

// TestWatchFindingsImportReplacesTheTenant: an import is evaluated in full and diffed against the open set; its
// events carry no caused_by.
func TestWatchFindingsImportReplacesTheTenant(t *testing.T) {
	srv := servertest.Start(t)
	st, _ := srv.Client.Directory.GetStatus(ctx(t), &pb.GetStatusRequest{TenantId: "contoso"})
	w := watchFindings(t, srv, &pb.WatchFindingsRequest{})
	before := w.current(st.GetRevision())
	var snap *pb.Snapshot
	stream, err := srv.Client.Directory.ExportSnapshot(ctx(t), &pb.ExportSnapshotRequest{TenantId: "contoso"})
	if err != nil {
		t.Fatal(err)
	}
	for {
		part, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if snap == nil {
			snap = part.GetSnapshot()
		} else {
			proto.Merge(snap, part.GetSnapshot())
		}
	}
	// The imported tenant lacks the nesting cycle and has the guest in the interns group.
	snap.Groups = slices.DeleteFunc(snap.Groups, func(g *pb.Group) bool { return g.GetId() == "grp-cycle-b" })
	for _, g := range snap.Groups {
		g.Members = slices.DeleteFunc(g.Members, func(id string) bool { return id == "grp-cycle-b" })
		if g.GetId() == "grp-finance-interns" {
			g.Members = append(g.Members, "u-gina")
		}
	}
	rev, err := srv.Client.ImportSnapshot(ctx(t), snap, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := w.next()
	if m.GetRevision() != rev {
		t.Fatalf("message at revision %d, want the import's %d", m.GetRevision(), rev)
	}
	after := map[string]*pb.FindingEvent{}
	for id, e := range before {
		after[id] = e
	}
	for _, e := range m.GetEvents() {
		if len(e.GetCausedBy()) != 0 {
			t.Errorf("event %v of an import has caused_by", e)
		}
		if e.GetKind() == pb.FindingEventKind_FINDING_EVENT_KIND_OPENED {
			after[e.GetFindingId()] = e
		} else {
			delete(after, e.GetFindingId())
		}
	}
	sameFindings(t, "before plus the import's events", after, auditIDs(t, srv))
	kinds := map[pb.FindingEventKind][]pb.Rule{}
	for _, e := range m.GetEvents() {
		kinds[e.GetKind()] = append(kinds[e.GetKind()], e.GetFinding().GetRule())
	}
	if !slices.Contains(kinds[pb.FindingEventKind_FINDING_EVENT_KIND_RESOLVED], pb.Rule_RULE_NESTING_CYCLE) ||
		!slices.Contains(kinds[pb.FindingEventKind_FINDING_EVENT_KIND_OPENED], pb.Rule_RULE_LABEL_BLOCKS_GUESTS_TRANSITIVE) {
		t.Errorf("import events %v: want the cycle resolved and the guest finding opened", kinds)
	}
}

// TestWatchFindingsSplitsALargeRevision: a revision with more events than one message holds comes as consecutive
// messages of that revision, and only the last says revision_done — what a consumer (the webhook) records a
// revision as delivered by.
func TestWatchFindingsSplitsALargeRevision(t *testing.T) {
	srv := servertest.Start(t)
	start := revisionOf(t, srv)
	w := watchFindings(t, srv, &pb.WatchFindingsRequest{Rules: []pb.Rule{pb.Rule_RULE_NESTED_GROUP_UNLABELED}})
	w.current(start)

	// Confidential grp-finance gains 1,001 unlabelled child groups: 1,001 findings in one revision, one more than a
	// message holds (server.findingsPageSize).
	const pageSize = 1000
	const children = pageSize + 1
	var changes []*pb.Change
	for i := range children {
		id := fmt.Sprintf("grp-split-%04d", i)
		changes = append(changes, &pb.Change{Change: &pb.Change_UpsertGroup{UpsertGroup: &pb.Group{
			Id: id, DisplayName: id, Kind: pb.GroupKind_GROUP_KIND_SECURITY, Membership: pb.Membership_MEMBERSHIP_ASSIGNED}}}, addMember("grp-finance", id))
	}
	rev := write(t, srv, changes...)
	var sizes []int
	var done []bool
	for len(done) == 0 || !done[len(done)-1] {
		m := w.next()
		if m.GetRevision() != rev {
			t.Fatalf("message at revision %d, want %d (sizes so far %v)", m.GetRevision(), rev, sizes)
		}
		sizes, done = append(sizes, len(m.GetEvents())), append(done, m.GetRevisionDone())
		for _, e := range m.GetEvents() {
			// Each finding is caused by its own child's creation and edge, not by the other 1,000 edges.
			if child := e.GetFinding().GetPath()[0]; len(e.GetCausedBy()) != 2 ||
				e.GetCausedBy()[0].GetUpsertGroup().GetId() != child || e.GetCausedBy()[1].GetAddMember().GetMemberId() != child {
				t.Fatalf("finding about %s caused by %d changes %v, want its upsert and its edge", child, len(e.GetCausedBy()), e.GetCausedBy()[:min(3, len(e.GetCausedBy()))])
			}
		}
	}
	if !slices.Equal(sizes, []int{pageSize, 1}) || !slices.Equal(done, []bool{false, true}) {
		t.Errorf("revision %d came as messages of %v events with revision_done %v, want [%d 1] and [false true]", rev, sizes, done, pageSize)
	}
}
