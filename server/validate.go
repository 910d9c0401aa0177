package server

import (
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/policy"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Request limits (SPEC §3). Larger inputs are refused with INVALID_ARGUMENT naming the field.
const (
	MaxBatchChecks     = 1000
	MaxPlanSteps       = 10_000
	MaxWriteChanges    = 10_000
	DefaultPageSize    = 1000
	MaxPageSize        = 10_000
	maxRequestIDLength = 256
)

// validator checks one request message; requests are validated by an interceptor before any handler runs, so
// handlers can trust ids to be well formed. The checks are written out rather than declared with protovalidate
// because CheckBatch and EvaluatePlan must judge their items one by one (a bad item gets its own error status,
// the rest of the batch is still answered), and an item inherits the batch's tenant.
type validator struct{ fieldError }

func (v *validator) id(field, id string) {
	if id == "" {
		v.add(field, "required")
	} else if !directory.ValidID(id) {
		v.add(field, "invalid id %q: want "+directory.IDForm, truncate(id))
	}
}

func (v *validator) optionalID(field, id string) {
	if id != "" {
		v.id(field, id)
	}
}

func (v *validator) ids(field string, ids []string) {
	for i, id := range ids {
		v.id(fmt.Sprintf("%s[%d]", field, i), id)
	}
}

func (v *validator) consistency(c *pb.Consistency) {
	if c.GetMinRevision() < 0 {
		v.add("consistency.min_revision", "must not be negative")
	}
}

// pageSize bounds a streaming answer's page_size (0 takes the default).
func (v *validator) pageSize(p int32) {
	if p < 0 || p > MaxPageSize {
		v.add("page_size", "must be between 0 (default %d) and %d, got %d", DefaultPageSize, MaxPageSize, p)
	}
}

// enum refuses the zero value and numbers the enum does not define.
func (v *validator) enum(field string, e protoreflect.Enum) {
	n := e.Number()
	if n == 0 {
		v.add(field, "required: set one of the %s values", e.Descriptor().Name())
	} else if e.Descriptor().Values().ByNumber(n) == nil {
		v.add(field, "unknown %s value %d", e.Descriptor().Name(), n)
	}
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// validate checks a request received by the server.
func validate(req any) error {
	v := &validator{}
	switch r := req.(type) {
	case *pb.CanAddMemberRequest:
		v.id("tenant_id", r.GetTenantId())
		v.consistency(r.GetConsistency())
		v.canAddMember("", r)
	case *pb.CanApplyLabelRequest:
		v.id("tenant_id", r.GetTenantId())
		v.consistency(r.GetConsistency())
		v.canApplyLabel("", r)
	case *pb.CanChangeLabelRequest:
		v.id("tenant_id", r.GetTenantId())
		v.consistency(r.GetConsistency())
		v.canChangeLabel("", r)
	case *pb.CanCreateRoleGroupRequest:
		v.id("tenant_id", r.GetTenantId())
		v.consistency(r.GetConsistency())
		v.canCreateRoleGroup("", r)
	case *pb.CanModifyUserRequest:
		v.id("tenant_id", r.GetTenantId())
		v.consistency(r.GetConsistency())
		v.canModifyUser("", r)
	case *pb.CheckMembershipRequest:
		v.id("tenant_id", r.GetTenantId())
		v.consistency(r.GetConsistency())
		v.id("group_id", r.GetGroupId())
		v.id("principal_id", r.GetPrincipalId())
	case *pb.EffectiveMembersRequest:
		v.id("tenant_id", r.GetTenantId())
		v.consistency(r.GetConsistency())
		v.id("group_id", r.GetGroupId())
		for i, t := range r.GetTypes() {
			v.enum(fmt.Sprintf("types[%d]", i), t)
		}
		v.pageSize(r.GetPageSize())
	case *pb.EffectiveGroupsRequest:
		v.id("tenant_id", r.GetTenantId())
		v.consistency(r.GetConsistency())
		v.id("principal_id", r.GetPrincipalId())
		v.pageSize(r.GetPageSize())
	case *pb.CheckBatchRequest:
		v.id("tenant_id", r.GetTenantId())
		v.consistency(r.GetConsistency())
		if n := len(r.GetChecks()); n > MaxBatchChecks {
			v.add("checks", "at most %d checks per batch, got %d", MaxBatchChecks, n)
		}
		// Items are validated one by one by the handler: a bad item gets its own error.
	case *pb.EvaluatePlanRequest:
		v.id("tenant_id", r.GetTenantId())
		v.consistency(r.GetConsistency())
		v.optionalID("actor_id", r.GetActorId())
		if n := len(r.GetSteps()); n > MaxPlanSteps {
			v.add("steps", "at most %d steps per plan, got %d", MaxPlanSteps, n)
		}
		for i, s := range r.GetSteps() {
			if s.GetActorId() == "" && r.GetActorId() == "" {
				v.add(fmt.Sprintf("steps[%d].actor_id", i), "required when the plan has no actor_id")
			}
			v.optionalID(fmt.Sprintf("steps[%d].actor_id", i), s.GetActorId())
			if s.GetChange().GetChange() == nil {
				v.add(fmt.Sprintf("steps[%d].change", i), "required")
			}
		}
	case *pb.AuditRequest:
		v.id("tenant_id", r.GetTenantId())
		v.consistency(r.GetConsistency())
		for i, rule := range r.GetRules() {
			v.enum(fmt.Sprintf("rules[%d]", i), rule)
		}
	case *pb.ListTenantsRequest:
		// nothing to check: the tenants a caller may see are all the server holds
	case *pb.SearchObjectsRequest:
		v.id("tenant_id", r.GetTenantId())
		v.consistency(r.GetConsistency())
		switch q := r.GetQuery(); {
		case q == "":
			v.add("query", "required")
		case len(q) > maxSearchQueryLength:
			v.add("query", "at most %d bytes", maxSearchQueryLength)
		case !utf8.ValidString(q):
			v.add("query", "not valid UTF-8")
		}
		for i, k := range r.GetKinds() {
			v.enum(fmt.Sprintf("kinds[%d]", i), k)
		}
		if l := r.GetLimit(); l < 0 || l > MaxSearchLimit {
			v.add("limit", "must be between 0 (default %d) and %d, got %d", DefaultSearchLimit, MaxSearchLimit, l)
		}
	case *pb.LookupObjectsRequest:
		v.id("tenant_id", r.GetTenantId())
		v.consistency(r.GetConsistency())
		switch n := len(r.GetIds()); {
		case n == 0:
			v.add("ids", "required: at least one id")
		case n > MaxLookupIDs:
			v.add("ids", "at most %d ids, got %d", MaxLookupIDs, n)
		default:
			v.ids("ids", r.GetIds())
		}
	case *pb.DescribeObjectRequest:
		v.id("tenant_id", r.GetTenantId())
		v.consistency(r.GetConsistency())
		v.id("id", r.GetId())
		if p := r.GetPageSize(); p < 0 || p > MaxDescribePage {
			v.add("page_size", "must be between 0 (default %d) and %d, got %d", DefaultDescribePage, MaxDescribePage, p)
		}
		if t := r.GetPageToken(); t != "" {
			if n, err := strconv.Atoi(t); err != nil || n < 0 || strconv.Itoa(n) != t {
				v.add("page_token", "not a token from a previous response: %q", truncate(t))
			}
		}
		if n := len(r.GetAncestorIds()); n > MaxDescribeAncestors {
			v.add("ancestor_ids", "at most %d, got %d", MaxDescribeAncestors, n)
		}
		for i, id := range r.GetAncestorIds() {
			v.id(fmt.Sprintf("ancestor_ids[%d]", i), id)
		}
	case *pb.ListDecisionsRequest:
		v.id("tenant_id", r.GetTenantId())
		v.optionalID("group_id", r.GetGroupId())
		v.optionalID("actor_id", r.GetActorId())
		if r.GetGroupId() == "" && r.GetActorId() == "" {
			v.add("group_id", "required: group_id or actor_id")
		}
		if l := r.GetLimit(); l < 0 || l > MaxDecisionsLimit {
			v.add("limit", "must be between 0 (default %d) and %d, got %d", DefaultDecisionsLimit, MaxDecisionsLimit, l)
		}
	case *pb.ListLabelsRequest:
		v.id("tenant_id", r.GetTenantId())
		v.consistency(r.GetConsistency())
	case *pb.WriteChangesRequest:
		v.id("tenant_id", r.GetTenantId())
		switch n := len(r.GetChanges()); {
		case n == 0 && r.GetSyncRound() == nil:
			v.add("changes", "required: at least one change")
		case n > MaxWriteChanges:
			v.add("changes", "at most %d changes per batch, got %d", MaxWriteChanges, n)
		}
		if r.ExpectedRevision != nil && r.GetExpectedRevision() < 0 {
			v.add("expected_revision", "must not be negative")
		}
		if len(r.GetRequestId()) > maxRequestIDLength {
			v.add("request_id", "at most %d bytes", maxRequestIDLength)
		}
	case *pb.WatchFindingsRequest:
		v.id("tenant_id", r.GetTenantId())
		if r.GetAfterRevision() < 0 {
			v.add("after_revision", "must not be negative")
		}
		for i, rule := range r.GetRules() {
			field := fmt.Sprintf("rules[%d]", i)
			if v.enum(field, rule); rule != 0 && rule.Descriptor().Values().ByNumber(rule.Number()) != nil && !slices.Contains(policy.AuditRules(), rule) {
				v.add(field, "%v is a decision rule, not an audit finding: want one of %v", rule, policy.AuditRules())
			}
		}
	case *pb.WatchRequest:
		v.id("tenant_id", r.GetTenantId())
		if r.GetAfterRevision() < 0 {
			v.add("after_revision", "must not be negative")
		}
	case *pb.ExportSnapshotRequest:
		v.id("tenant_id", r.GetTenantId())
		v.consistency(r.GetConsistency())
	case *pb.GetStatusRequest:
		v.id("tenant_id", r.GetTenantId())
	}
	return v.orNil()
}

// validateItem checks one CheckBatch item; its tenant must be empty or the batch's.
func validateItem(batchTenant string, item *pb.CheckBatchItem) error {
	v := &validator{}
	tenant := ""
	switch c := item.GetCheck().(type) {
	case *pb.CheckBatchItem_CanAddMember:
		tenant = c.CanAddMember.GetTenantId()
		v.canAddMember("can_add_member.", c.CanAddMember)
	case *pb.CheckBatchItem_CanApplyLabel:
		tenant = c.CanApplyLabel.GetTenantId()
		v.canApplyLabel("can_apply_label.", c.CanApplyLabel)
	case *pb.CheckBatchItem_CanChangeLabel:
		tenant = c.CanChangeLabel.GetTenantId()
		v.canChangeLabel("can_change_label.", c.CanChangeLabel)
	case *pb.CheckBatchItem_CanCreateRoleGroup:
		tenant = c.CanCreateRoleGroup.GetTenantId()
		v.canCreateRoleGroup("can_create_role_group.", c.CanCreateRoleGroup)
	case *pb.CheckBatchItem_CanModifyUser:
		tenant = c.CanModifyUser.GetTenantId()
		v.canModifyUser("can_modify_user.", c.CanModifyUser)
	default:
		v.add("check", "required: set one of can_add_member, can_apply_label, can_change_label, can_create_role_group, can_modify_user")
	}
	if tenant != "" && tenant != batchTenant {
		v.add("tenant_id", "%q differs from the batch's tenant %q", truncate(tenant), batchTenant)
	}
	return v.orNil()
}

func (v *validator) canAddMember(prefix string, r *pb.CanAddMemberRequest) {
	v.id(prefix+"group_id", r.GetGroupId())
	v.id(prefix+"member_id", r.GetMemberId())
	v.id(prefix+"actor_id", r.GetActorId())
}

func (v *validator) canApplyLabel(prefix string, r *pb.CanApplyLabelRequest) {
	v.id(prefix+"group_id", r.GetGroupId())
	v.id(prefix+"label_id", r.GetLabelId())
	v.id(prefix+"actor_id", r.GetActorId())
}

func (v *validator) canChangeLabel(prefix string, r *pb.CanChangeLabelRequest) {
	v.id(prefix+"group_id", r.GetGroupId())
	v.optionalID(prefix+"label_id", r.GetLabelId())
	v.id(prefix+"actor_id", r.GetActorId())
}

func (v *validator) canCreateRoleGroup(prefix string, r *pb.CanCreateRoleGroupRequest) {
	v.id(prefix+"actor_id", r.GetActorId())
	g := r.GetGroup()
	if g == nil {
		v.add(prefix+"group", "required: the group as it would be created")
		return
	}
	v.optionalID(prefix+"group.id", g.GetId())
	v.enum(prefix+"group.kind", g.GetKind())
	v.enum(prefix+"group.membership", g.GetMembership())
	v.optionalID(prefix+"group.label_id", g.GetLabelId())
	v.ids(prefix+"group.owners", g.GetOwners())
	v.ids(prefix+"group.members", g.GetMembers())
}

func (v *validator) canModifyUser(prefix string, r *pb.CanModifyUserRequest) {
	v.id(prefix+"target_user_id", r.GetTargetUserId())
	v.id(prefix+"actor_id", r.GetActorId())
	v.enum(prefix+"action", r.GetAction())
}
