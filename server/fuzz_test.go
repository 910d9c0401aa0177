package server

import (
	"testing"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"google.golang.org/protobuf/proto"
)

// FuzzValidate decodes arbitrary bytes as each request type the server accepts and validates it: validation
// must never panic, and every refusal must map to INVALID_ARGUMENT with at least one field violation.
func FuzzValidate(f *testing.F) {
	seeds := []proto.Message{
		&pb.CanAddMemberRequest{TenantId: "contoso", GroupId: "grp-finance", MemberId: "u-dave", ActorId: "u-gary"},
		&pb.CanAddMemberRequest{TenantId: "contoso", GroupId: "bad id", Consistency: &pb.Consistency{MinRevision: -3}},
		&pb.CanCreateRoleGroupRequest{TenantId: "t", ActorId: "a", Group: &pb.Group{Kind: 9, Members: []string{"", "ok"}}},
		&pb.CanModifyUserRequest{TenantId: "t", TargetUserId: "u", ActorId: "a", Action: 77},
		&pb.EffectiveMembersRequest{TenantId: "t", GroupId: "g", Types: []pb.MemberType{0, 5}, PageSize: -1},
		&pb.CheckBatchRequest{TenantId: "t", Checks: []*pb.CheckBatchItem{{}, {Check: &pb.CheckBatchItem_CanAddMember{CanAddMember: &pb.CanAddMemberRequest{TenantId: "other"}}}}},
		&pb.EvaluatePlanRequest{TenantId: "t", Steps: []*pb.PlanStep{{}, {ActorId: "a", Change: &pb.Change{Change: &pb.Change_AddMember{AddMember: &pb.MemberChange{}}}}}},
		&pb.AuditRequest{TenantId: "t", Rules: []pb.Rule{0, 1000}},
		&pb.WriteChangesRequest{TenantId: "t", RequestId: "r"},
		&pb.EffectiveGroupsRequest{TenantId: "t", PrincipalId: "bad id", PageSize: 10_001},
		&pb.SearchObjectsRequest{TenantId: "t", Query: "", Kinds: []pb.ObjectKind{0, 9}, Limit: 51},
		&pb.LookupObjectsRequest{TenantId: "t", Ids: []string{"ok", "not ok"}},
		&pb.DescribeObjectRequest{TenantId: "t", Id: "g", PageSize: 1001, PageToken: "007"},
	}
	for i, m := range seeds {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), b)
	}
	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		msgs := []proto.Message{
			&pb.CanAddMemberRequest{}, &pb.CanApplyLabelRequest{}, &pb.CanChangeLabelRequest{},
			&pb.CanCreateRoleGroupRequest{}, &pb.CanModifyUserRequest{}, &pb.CheckMembershipRequest{},
			&pb.EffectiveMembersRequest{}, &pb.CheckBatchRequest{}, &pb.EvaluatePlanRequest{}, &pb.AuditRequest{},
			&pb.WriteChangesRequest{}, &pb.WatchRequest{}, &pb.ExportSnapshotRequest{}, &pb.GetStatusRequest{},
			&pb.EffectiveGroupsRequest{}, &pb.ListTenantsRequest{}, &pb.SearchObjectsRequest{}, &pb.LookupObjectsRequest{},
			&pb.DescribeObjectRequest{}, &pb.ListLabelsRequest{},
		}
		m := msgs[int(kind)%len(msgs)]
		if proto.Unmarshal(data, m) != nil {
			return
		}
		check := func(err error) {
			if err == nil {
				return
			}
			fe, ok := err.(*fieldError)
			if !ok || len(fe.violations) == 0 {
				t.Fatalf("validation refused %T without field violations: %v", m, err)
			}
			if st := toStatus(err); st.Code() != 3 || len(st.Details()) == 0 {
				t.Fatalf("refusal maps to %v with %d details, want INVALID_ARGUMENT with BadRequest", st.Code(), len(st.Details()))
			}
		}
		check(validate(m))
		if b, ok := m.(*pb.CheckBatchRequest); ok {
			for _, item := range b.GetChecks() {
				check(validateItem(b.GetTenantId(), item))
			}
		}
	})
}
