package server_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/groupgate/groupgate/client"
	"github.com/groupgate/groupgate/directory/demo"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/server"
	"github.com/groupgate/groupgate/server/servertest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// TestInvokeRunsTheInterceptorChain: an in-process call (the HTTP gateway's) meets the same checks as a gRPC
// call: tokens, roles, validation, and answers what gRPC answers.
func TestInvokeRunsTheInterceptorChain(t *testing.T) {
	srv := servertest.StartWith(t, servertest.Options{Tokens: tokens(t), Client: client.Options{Token: checkerToken}})
	as := func(token string) context.Context {
		if token == "" {
			return context.Background()
		}
		return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
	}
	const canAddMember = "/groupgate.v1.DecisionService/CanAddMember"
	valid := &pb.CanAddMemberRequest{TenantId: "contoso", GroupId: "grp-finance", MemberId: "grp-engineering", ActorId: "u-gary"}
	tests := []struct {
		name, token, method string
		req, reply          proto.Message
		want                codes.Code
	}{
		{"no token", "", canAddMember, valid, &pb.CanAddMemberResponse{}, codes.Unauthenticated},
		{"a checker deciding", checkerToken, canAddMember, valid, &pb.CanAddMemberResponse{}, codes.OK},
		{"a checker writing", checkerToken, "/groupgate.v1.DirectoryService/WriteChanges",
			&pb.WriteChangesRequest{TenantId: "contoso"}, &pb.WriteChangesResponse{}, codes.PermissionDenied},
		{"a writer reading status", writerToken, "/groupgate.v1.DirectoryService/GetStatus",
			&pb.GetStatusRequest{TenantId: "contoso"}, &pb.GetStatusResponse{}, codes.OK},
		{"a malformed id", checkerToken, canAddMember,
			&pb.CanAddMemberRequest{TenantId: "contoso", GroupId: "no spaces", MemberId: "u-erin", ActorId: "u-gary"}, &pb.CanAddMemberResponse{}, codes.InvalidArgument},
		{"an unknown group", checkerToken, canAddMember,
			&pb.CanAddMemberRequest{TenantId: "contoso", GroupId: "grp-nope", MemberId: "u-erin", ActorId: "u-gary"}, &pb.CanAddMemberResponse{}, codes.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := srv.Server.Invoke(as(tt.token), tt.method, tt.req, tt.reply)
			if status.Code(err) != tt.want {
				t.Fatalf("Invoke: %v, want %v", err, tt.want)
			}
		})
	}
	// The same answer as over gRPC.
	got := &pb.CanAddMemberResponse{}
	if err := srv.Server.Invoke(as(checkerToken), canAddMember, valid, got); err != nil {
		t.Fatal(err)
	}
	want, err := srv.Client.Decisions.CanAddMember(context.Background(), valid)
	if err != nil {
		t.Fatal(err)
	}
	if got.GetDecision().GetDecisionId() == "" || want.GetDecision().GetDecisionId() == "" {
		t.Errorf("decisions without an id: in-process %v, gRPC %v", got, want)
	}
	got.Decision.DecisionId, want.Decision.DecisionId = "", ""
	if !proto.Equal(got, want) {
		t.Errorf("in-process\n%v\ngRPC\n%v", got, want)
	}
	// Streams are not served in-process.
	if err := srv.Server.Invoke(as(checkerToken), "/groupgate.v1.DecisionService/Audit", &pb.AuditRequest{}, &pb.AuditResponse{}); !errors.Is(err, server.ErrNotInProcess) {
		t.Errorf("Invoke of a stream: %v, want ErrNotInProcess", err)
	}
}

// TestNewStreamRunsTheInterceptorChain: an in-process server stream (the HTTP gateway's) is checked like a gRPC
// one, streams what gRPC streams, and ends its handler when the caller cancels.
func TestNewStreamRunsTheInterceptorChain(t *testing.T) {
	srv := servertest.StartWith(t, servertest.Options{Tokens: tokens(t), Client: client.Options{Token: writerToken}})
	as := func(ctx context.Context, token string) context.Context {
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	recvAll := func(cs grpc.ClientStream, newMsg func() proto.Message) ([]proto.Message, error) {
		var out []proto.Message
		for {
			m := newMsg()
			if err := cs.RecvMsg(m); err != nil {
				if errors.Is(err, io.EOF) {
					return out, nil
				}
				return out, err
			}
			out = append(out, m)
		}
	}
	open := func(ctx context.Context, method string, req proto.Message) grpc.ClientStream {
		cs, err := srv.Server.NewStream(ctx, method)
		if err != nil {
			t.Fatal(err)
		}
		if err := cs.SendMsg(req); err != nil {
			t.Fatal(err)
		}
		if err := cs.CloseSend(); err != nil {
			t.Fatal(err)
		}
		return cs
	}
	const members = "/groupgate.v1.DecisionService/EffectiveMembers"
	newResp := func() proto.Message { return &pb.EffectiveMembersResponse{} }
	tests := []struct {
		name, token string
		req         proto.Message
		want        codes.Code
	}{
		{"no token", "", &pb.EffectiveMembersRequest{TenantId: "contoso", GroupId: "grp-finance"}, codes.Unauthenticated},
		{"a malformed id", checkerToken, &pb.EffectiveMembersRequest{TenantId: "contoso", GroupId: "no spaces"}, codes.InvalidArgument},
		{"an unknown group", checkerToken, &pb.EffectiveMembersRequest{TenantId: "contoso", GroupId: "grp-nope"}, codes.NotFound},
		{"a checker", checkerToken, &pb.EffectiveMembersRequest{TenantId: "contoso", GroupId: "grp-finance", PageSize: 2}, codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.token != "" {
				ctx = as(ctx, tt.token)
			}
			got, err := recvAll(open(ctx, members, tt.req), newResp)
			if status.Code(err) != tt.want {
				t.Fatalf("stream: %v, want %v", err, tt.want)
			}
			if tt.want != codes.OK {
				return
			}
			s, err := srv.Client.Decisions.EffectiveMembers(context.Background(), tt.req.(*pb.EffectiveMembersRequest))
			if err != nil {
				t.Fatal(err)
			}
			var want []proto.Message
			for {
				r, err := s.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, r)
			}
			if len(got) != len(want) || len(got) < 2 {
				t.Fatalf("%d messages in-process, %d over gRPC (want several)", len(got), len(want))
			}
			for i := range got {
				if !proto.Equal(got[i], want[i]) {
					t.Errorf("message %d: in-process %v, gRPC %v", i, got[i], want[i])
				}
			}
		})
	}

	t.Run("a checker watching", func(t *testing.T) {
		_, err := recvAll(open(as(context.Background(), checkerToken), "/groupgate.v1.DirectoryService/Watch",
			&pb.WatchRequest{TenantId: "contoso"}), func() proto.Message { return &pb.WatchResponse{} })
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("watch: %v, want PermissionDenied", err)
		}
	})

	t.Run("a cancelled watch ends", func(t *testing.T) {
		ctx, cancel := context.WithCancel(as(context.Background(), writerToken))
		cs := open(ctx, "/groupgate.v1.DirectoryService/Watch", &pb.WatchRequest{TenantId: "contoso", AfterRevision: 1})
		if md, err := cs.Header(); err != nil || md == nil {
			t.Fatalf("Header: %v %v, want the watch's headers before any change", md, err)
		}
		done := make(chan error, 1)
		go func() { done <- cs.RecvMsg(&pb.WatchResponse{}) }()
		cancel()
		select {
		case err := <-done:
			if status.Code(err) != codes.Canceled {
				t.Errorf("RecvMsg after cancel: %v, want Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("RecvMsg still waiting 5 s after cancel")
		}
	})

	if _, err := srv.Server.NewStream(context.Background(), "/groupgate.v1.DecisionService/CanAddMember"); !errors.Is(err, server.ErrNotInProcess) {
		t.Errorf("NewStream of a unary method: %v, want ErrNotInProcess", err)
	}
}

// TestInProcessConn: Server.Conn serves everything the gRPC port does, in-process: a client stream in more parts
// than the pipe buffers (ImportSnapshot, one user a part), health, and UNIMPLEMENTED for a method it lacks.
func TestInProcessConn(t *testing.T) {
	srv := servertest.StartWith(t, servertest.Options{})
	conn := srv.Server.Conn()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := pb.NewDirectoryServiceClient(conn).ImportSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	snap := demo.Snapshot()
	snap.TenantId = "fabrikam"
	users := snap.Users
	snap.Users = nil
	if err := st.Send(&pb.ImportSnapshotRequest{TenantId: "fabrikam", Snapshot: snap}); err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if err := st.Send(&pb.ImportSnapshotRequest{Snapshot: &pb.Snapshot{Users: []*pb.User{u}}}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := st.CloseAndRecv()
	if err != nil || resp.GetRevision() != 1 {
		t.Fatalf("ImportSnapshot in %d parts: %v %v", len(users)+1, resp, err)
	}
	m, err := pb.NewDecisionServiceClient(conn).CheckMembership(ctx, &pb.CheckMembershipRequest{TenantId: "fabrikam", GroupId: "grp-finance", PrincipalId: "u-erin"})
	if err != nil || !m.GetIsMember() {
		t.Errorf("after the import: %v %v", m, err)
	}
	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health: %v %v", h, err)
	}
	if err := conn.Invoke(ctx, "/groupgate.v1.DecisionService/CanFly", &pb.GetStatusRequest{}, &pb.GetStatusResponse{}); status.Code(err) != codes.Unimplemented {
		t.Errorf("an unknown method: %v, want Unimplemented", err)
	}
}

// TestInProcessStreamMisuse: the client end of an in-process stream answers misuse with errors, as a gRPC
// stream does, instead of panicking on a closed channel: a second CloseSend, a SendMsg after CloseSend, a
// second request.
func TestInProcessStreamMisuse(t *testing.T) {
	srv := servertest.StartWith(t, servertest.Options{})
	req := &pb.EffectiveMembersRequest{TenantId: "contoso", GroupId: "grp-finance"}

	cs, err := srv.Server.NewStream(context.Background(), "/groupgate.v1.DecisionService/EffectiveMembers")
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.SendMsg(req); err != nil {
		t.Fatal(err)
	}
	if err := cs.SendMsg(req); status.Code(err) != codes.Internal {
		t.Errorf("a second request: %v, want INTERNAL", err)
	}
	for i := range 2 {
		if err := cs.CloseSend(); err != nil {
			t.Errorf("CloseSend #%d: %v", i+1, err)
		}
	}
	if err := cs.SendMsg(req); status.Code(err) != codes.Internal {
		t.Errorf("SendMsg after CloseSend: %v, want INTERNAL", err)
	}
	var got int
	for {
		var r pb.EffectiveMembersResponse
		if err := cs.RecvMsg(&r); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		got += len(r.GetMembers())
	}
	if got == 0 {
		t.Error("the stream answered no members after the misuse")
	}
}
