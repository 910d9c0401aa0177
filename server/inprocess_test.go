package server_test

import (
	"context"
	"errors"
	"testing"

	"github.com/groupgate/groupgate/client"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/server"
	"github.com/groupgate/groupgate/server/servertest"
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
	if !proto.Equal(got, want) {
		t.Errorf("in-process\n%v\ngRPC\n%v", got, want)
	}
	// Streams are not served in-process.
	if err := srv.Server.Invoke(as(checkerToken), "/groupgate.v1.DecisionService/Audit", &pb.AuditRequest{}, &pb.AuditResponse{}); !errors.Is(err, server.ErrNotInProcess) {
		t.Errorf("Invoke of a stream: %v, want ErrNotInProcess", err)
	}
}
