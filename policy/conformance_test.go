package policy_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/conformance"
	"github.com/groupgate/groupgate/policy"
	"github.com/groupgate/groupgate/resolver"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestConformance runs testdata/conformance in-process; server/conformance_test.go runs the same files over gRPC.
func TestConformance(t *testing.T) {
	conformance.Run(t, "../testdata/conformance", func(t *testing.T, d *directory.Directory) conformance.Target {
		r := resolver.New(resolver.Options{})
		return &engineTarget{engine: policy.New(r), resolver: r, dir: d}
	})
}

type engineTarget struct {
	engine   *policy.Engine
	resolver *resolver.Resolver
	dir      *directory.Directory
}

// code maps the engine's errors the way the server does.
func code(err error) codes.Code {
	var nf *directory.NotFoundError
	var inv *directory.ValidationError
	switch {
	case err == nil:
		return codes.OK
	case errors.As(err, &nf):
		return codes.NotFound
	case errors.As(err, &inv):
		return codes.InvalidArgument
	}
	return codes.Unknown
}

func (e *engineTarget) Check(t *testing.T, item *pb.CheckBatchItem) (*pb.Decision, codes.Code) {
	d, err := e.engine.Check(e.dir, item)
	return d, code(err)
}

func (e *engineTarget) Plan(t *testing.T, req *pb.EvaluatePlanRequest) ([]*pb.PlanStepResult, codes.Code) {
	steps, err := e.engine.EvaluatePlan(e.dir, req)
	if err != nil {
		return nil, code(err)
	}
	out := make([]*pb.PlanStepResult, len(steps))
	for i, s := range steps {
		out[i] = &pb.PlanStepResult{Decision: s.Decision, Applied: s.Applied}
		if s.Err != nil {
			out[i].Error = status.New(code(s.Err), s.Err.Error()).Proto()
		}
	}
	return out, codes.OK
}

func (e *engineTarget) Audit(t *testing.T, req *pb.AuditRequest) ([]*pb.Finding, codes.Code) {
	var out []*pb.Finding
	err := e.engine.Audit(e.dir, req.GetRules(), func(f *pb.Finding) error {
		out = append(out, f)
		return nil
	})
	return out, code(err)
}

// EffectiveGroups asks the resolver directly: the question involves no policy.
func (e *engineTarget) EffectiveGroups(t *testing.T, req *pb.EffectiveGroupsRequest) ([]*pb.EffectiveGroup, codes.Code) {
	p, ok := e.dir.Lookup(req.GetPrincipalId())
	if !ok {
		return nil, codes.NotFound
	}
	var out []*pb.EffectiveGroup
	filter := resolver.GroupFilter{LabelledOnly: req.GetLabelledOnly(), RoleAssignableOnly: req.GetRoleAssignableOnly()}
	for ref, path := range e.resolver.At(e.dir).GroupPaths(p.Ref(), filter) {
		n := e.dir.Node(ref)
		g := &pb.EffectiveGroup{Id: n.ID(), Depth: int32(len(path) - 1), LabelId: n.Group().GetLabelId(), IsAssignableToRole: n.Group().GetIsAssignableToRole()}
		if req.GetIncludePaths() {
			g.Path = e.dir.IDs(path)
		}
		out = append(out, g)
	}
	return out, codes.OK
}

// TestAuditReportsOnlyAuditRules: across every conformance tenant, Audit reports no rule that AuditRules (the
// explorer's filter list) lacks.
func TestAuditReportsOnlyAuditRules(t *testing.T) {
	e := policy.New(resolver.New(resolver.Options{}))
	seen := map[pb.Rule]bool{}
	for name, f := range conformance.Files(t, "../testdata/conformance") {
		err := e.Audit(f.Directory(t), nil, func(fd *pb.Finding) error {
			seen[fd.GetRule()] = true
			if !slices.Contains(policy.AuditRules(), fd.GetRule()) {
				t.Errorf("%s: Audit reports %v, which policy.AuditRules lacks", name, fd.GetRule())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) < 5 {
		t.Errorf("the fixtures exercise only %d audit rules: %v", len(seen), seen)
	}
}
