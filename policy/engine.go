// Package policy decides the questions of SPEC §4 from one directory revision and the resolver: pure functions
// of (directory, resolver, request) → Decision. It never writes and never imports the transport.
//
// Each rule code appears in one place: grep RULE_LABEL_BLOCKS_GUESTS to find where it is decided.
package policy

import (
	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/resolver"
)

// Engine decides. It is safe for concurrent use.
type Engine struct {
	resolver *resolver.Resolver
	// planResolver answers on the hypothetical states of EvaluatePlan, which must never reach a cache.
	planResolver *resolver.Resolver
	// probe records the resolver walks of one decision (Probed); nil: nothing is recorded.
	probe *resolver.Probe
}

// Probed is e recording its resolver walks into p: the server's policy span of a traced decision reports the
// depth they reached. The copy is for one goroutine's decision; e itself is untouched.
func (e *Engine) Probed(p *resolver.Probe) *Engine {
	c := *e
	c.probe = p
	return &c
}

// at is the resolver's view of dir, probed when e is.
func (e *Engine) at(dir *directory.Directory) resolver.View { return e.resolver.At(dir).Probe(e.probe) }

// New returns an engine that answers membership questions through r.
func New(r *resolver.Resolver) *Engine {
	return &Engine{resolver: r, planResolver: resolver.New(resolver.Options{CacheMaxBytes: -1})}
}

// Unknown objects are reported as *directory.NotFoundError; a field naming an object of the wrong kind as a
// *directory.ValidationError.

// Check answers one CheckBatch item. The item's tenant and consistency are the batch's business.
func (e *Engine) Check(dir *directory.Directory, item *pb.CheckBatchItem) (*pb.Decision, error) {
	switch c := item.GetCheck().(type) {
	case *pb.CheckBatchItem_CanAddMember:
		return e.CanAddMember(dir, c.CanAddMember)
	case *pb.CheckBatchItem_CanApplyLabel:
		return e.CanApplyLabel(dir, c.CanApplyLabel)
	case *pb.CheckBatchItem_CanChangeLabel:
		return e.CanChangeLabel(dir, c.CanChangeLabel)
	case *pb.CheckBatchItem_CanCreateRoleGroup:
		return e.CanCreateRoleGroup(dir, c.CanCreateRoleGroup)
	case *pb.CheckBatchItem_CanModifyUser:
		return e.CanModifyUser(dir, c.CanModifyUser)
	}
	return nil, invalid("check", "required: one of can_add_member, can_apply_label, can_change_label, can_create_role_group, can_modify_user")
}

// StepResult is the outcome of one plan step.
type StepResult struct {
	Decision *pb.Decision
	// Err is set when the step could not be evaluated (unknown object, malformed change); it is not applied.
	Err     error
	Applied bool
}
