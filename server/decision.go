package server

import (
	"context"
	"iter"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/policy"
	"github.com/groupgate/groupgate/resolver"
	"google.golang.org/grpc"
)

type decisionService struct {
	pb.UnimplementedDecisionServiceServer
	s *Server
}

// question is what every Can* request has in common.
type question interface {
	GetTenantId() string
	GetConsistency() *pb.Consistency
}

// decide answers one Can* question on the directory its consistency asks for.
func decide[Q question](ctx context.Context, s *Server, name string, q Q, fn func(*policy.Engine, *directory.Directory, Q) (*pb.Decision, error)) (*pb.Decision, error) {
	var start time.Time
	if s.cfg.DecisionLog != nil {
		start = time.Now()
	}
	dir, err := s.directory(ctx, q.GetTenantId(), q.GetConsistency())
	if err != nil {
		return nil, err
	}
	d, err := evaluate(ctx, s, name, dir, q, fn) // names the decision (DecisionId) when traced
	if d == nil {
		return d, err
	}
	if d.DecisionId == "" {
		d.DecisionId = newDecisionID()
	}
	s.cfg.Metrics.observe(name, d)
	s.logDecision(ctx, q.GetTenantId(), idsOf(q), d, start)
	return d, err
}

func (d *decisionService) CanAddMember(ctx context.Context, req *pb.CanAddMemberRequest) (*pb.CanAddMemberResponse, error) {
	dec, err := decide(ctx, d.s, "can_add_member", req, (*policy.Engine).CanAddMember)
	if err != nil {
		return nil, err
	}
	return &pb.CanAddMemberResponse{Decision: dec}, nil
}

func (d *decisionService) CanApplyLabel(ctx context.Context, req *pb.CanApplyLabelRequest) (*pb.CanApplyLabelResponse, error) {
	dec, err := decide(ctx, d.s, "can_apply_label", req, (*policy.Engine).CanApplyLabel)
	if err != nil {
		return nil, err
	}
	return &pb.CanApplyLabelResponse{Decision: dec}, nil
}

func (d *decisionService) CanChangeLabel(ctx context.Context, req *pb.CanChangeLabelRequest) (*pb.CanChangeLabelResponse, error) {
	dec, err := decide(ctx, d.s, "can_change_label", req, (*policy.Engine).CanChangeLabel)
	if err != nil {
		return nil, err
	}
	return &pb.CanChangeLabelResponse{Decision: dec}, nil
}

func (d *decisionService) CanCreateRoleGroup(ctx context.Context, req *pb.CanCreateRoleGroupRequest) (*pb.CanCreateRoleGroupResponse, error) {
	dec, err := decide(ctx, d.s, "can_create_role_group", req, (*policy.Engine).CanCreateRoleGroup)
	if err != nil {
		return nil, err
	}
	return &pb.CanCreateRoleGroupResponse{Decision: dec}, nil
}

func (d *decisionService) CanModifyUser(ctx context.Context, req *pb.CanModifyUserRequest) (*pb.CanModifyUserResponse, error) {
	dec, err := decide(ctx, d.s, "can_modify_user", req, (*policy.Engine).CanModifyUser)
	if err != nil {
		return nil, err
	}
	return &pb.CanModifyUserResponse{Decision: dec}, nil
}

// groupNode finds the group a request names: NOT_FOUND when unknown, INVALID_ARGUMENT when it is not a group.
func groupNode(dir *directory.Directory, field, id string) (*directory.Node, error) {
	n, ok := dir.Lookup(id)
	if !ok {
		return nil, &directory.NotFoundError{Kind: "group", ID: id}
	}
	if !n.IsGroup() {
		e := &fieldError{}
		e.add(field, "%q is a %s, not a group", id, n.Kind())
		return nil, e
	}
	return n, nil
}

func (d *decisionService) CheckMembership(ctx context.Context, req *pb.CheckMembershipRequest) (*pb.CheckMembershipResponse, error) {
	dir, err := d.s.directory(ctx, req.GetTenantId(), req.GetConsistency())
	if err != nil {
		return nil, err
	}
	g, err := groupNode(dir, "group_id", req.GetGroupId())
	if err != nil {
		return nil, err
	}
	p, ok := dir.Lookup(req.GetPrincipalId())
	if !ok {
		return nil, &directory.NotFoundError{Kind: "principal", ID: req.GetPrincipalId()}
	}
	resp := &pb.CheckMembershipResponse{Revision: dir.Revision()}
	end := d.s.resolverSpan(ctx, "member_path", dir)
	path, ok := d.s.cfg.Resolver.At(dir).MemberPath(g.Ref(), p.Ref())
	end(len(path) - 1)
	if ok {
		resp.IsMember = true
		resp.Path = dir.IDs(path)
	}
	return resp, nil
}

func (d *decisionService) EffectiveMembers(req *pb.EffectiveMembersRequest, stream grpc.ServerStreamingServer[pb.EffectiveMembersResponse]) error {
	ctx := stream.Context()
	dir, err := d.s.directory(ctx, req.GetTenantId(), req.GetConsistency())
	if err != nil {
		return err
	}
	g, err := groupNode(dir, "group_id", req.GetGroupId())
	if err != nil {
		return err
	}
	want := memberTypeFilter(req.GetTypes())
	batches := d.s.cfg.Resolver.At(dir).MemberBatches(g.Ref())
	end := d.s.resolverSpan(ctx, "members", dir)
	var deepest atomic.Int64 // written by the walk's goroutine, read once the stream has ended
	defer func() { end(int(deepest.Load())) }()
	return streamMembers(ctx, stream, pageSize(req.GetPageSize(), DefaultPageSize), dir.Revision(), func(p *memberPager) {
		produceMembers(dir, batches, want, p, &deepest)
	})
}

// produceMembers is EffectiveMembers' walk: it encodes the members batches yields that pass want into p's pages
// and records the deepest level reached in deepest.
func produceMembers(dir *directory.Directory, batches iter.Seq2[[]directory.Ref, int], want func(*directory.Node) bool, p *memberPager, deepest *atomic.Int64) {
	var nodes []*directory.Node
	for batch, depth := range batches {
		if int64(depth) > deepest.Load() {
			deepest.Store(int64(depth))
		}
		nodes = nodes[:0]
		for _, ref := range batch {
			if n := dir.Node(ref); n != nil && want(n) {
				nodes = append(nodes, n)
			}
		}
		p.prefetchIDs(nodes)
		for _, n := range nodes {
			if !p.add(n, depth) {
				return
			}
		}
	}
}

func (d *decisionService) EffectiveGroups(req *pb.EffectiveGroupsRequest, stream grpc.ServerStreamingServer[pb.EffectiveGroupsResponse]) error {
	ctx := stream.Context()
	dir, err := d.s.directory(ctx, req.GetTenantId(), req.GetConsistency())
	if err != nil {
		return err
	}
	principal, ok := dir.Lookup(req.GetPrincipalId())
	if !ok {
		return &directory.NotFoundError{Kind: "principal", ID: req.GetPrincipalId()}
	}
	filter := resolver.GroupFilter{LabelledOnly: req.GetLabelledOnly(), RoleAssignableOnly: req.GetRoleAssignableOnly()}
	view := d.s.cfg.Resolver.At(dir)
	return streamPages(ctx, pageSize(req.GetPageSize(), DefaultPageSize), func(p *pager[pb.EffectiveGroup]) {
		if req.GetIncludePaths() {
			for ref, path := range view.GroupPaths(principal.Ref(), filter) {
				m := p.next()
				setEffectiveGroup(m, dir.Node(ref), len(path)-1)
				m.Path = dir.IDs(path) // one slice per group: the price include_paths announces
				if !p.add(m) {
					return
				}
			}
			return
		}
		for ref, depth := range view.Groups(principal.Ref(), filter) {
			m := p.next()
			setEffectiveGroup(m, dir.Node(ref), depth)
			if !p.add(m) {
				return
			}
		}
	}, func(page []*pb.EffectiveGroup) error {
		return stream.Send(&pb.EffectiveGroupsResponse{Groups: page, Revision: dir.Revision()})
	})
}

// setEffectiveGroup fills one EffectiveGroups item from a group's node.
func setEffectiveGroup(m *pb.EffectiveGroup, n *directory.Node, depth int) {
	g := n.Group()
	m.Id, m.Depth, m.LabelId, m.IsAssignableToRole = n.ID(), int32(depth), g.GetLabelId(), g.GetIsAssignableToRole()
}

// pageSize is the requested page size or limit, or def when the request left it 0 (validation has refused
// negative ones and ones above the maximum).
func pageSize(requested int32, def int) int {
	if requested == 0 {
		return def
	}
	return int(requested)
}

// streamPages streams what produce finds, in pages of pageSize items, through send. produce runs in its own
// goroutine, ahead of the sends by a few pages, so that the walk and the encoding of what it found use both
// cores; it stops when pager.add reports that the call has ended, which frees the walk's scratch at once. Each
// page's items share one allocation. The first page holds at most firstPageSize items, so that the caller can
// start on them at once. An empty answer is still sent once, with its revision.
func streamPages[T any](ctx context.Context, pageSize int, produce func(*pager[T]), send func([]*T) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p := &pager[T]{ctx: ctx, pages: make(chan []*T, 4), size: pageSize, limit: min(pageSize, firstPageSize)}
	go func() {
		defer close(p.pages)
		produce(p)
		if len(p.batch) > 0 {
			select {
			case p.pages <- p.batch:
			case <-ctx.Done():
			}
		}
	}()
	sent := false
	for page := range p.pages {
		if err := send(page); err != nil {
			return err
		}
		sent = true
		if err := ctx.Err(); err != nil {
			return err // the client has gone: stop promptly (the deferred cancel stops the walk)
		}
	}
	if !sent {
		return send(nil)
	}
	return nil
}

// pager collects a producer's items into pages; it is used by the producer's goroutine only.
type pager[T any] struct {
	ctx         context.Context
	pages       chan []*T
	backing     []T
	batch       []*T
	size, limit int
}

// next is the slot for the next item, to fill and then add. A page is allocated when its first item comes, of
// the page's size: an answer of 57 groups costs one page of 100, not 1,000 (zeroing 1,000 unused items was 8% of
// the CPU of a small EffectiveGroups call), and an answer that ends with a full page allocates no empty one.
func (p *pager[T]) next() *T {
	if p.batch == nil {
		p.backing = make([]T, p.limit)
		p.batch = make([]*T, 0, p.limit)
	}
	return &p.backing[len(p.batch)]
}

// add appends the filled slot and hands the page over when it is full; false means the call has ended.
func (p *pager[T]) add(m *T) bool {
	p.batch = append(p.batch, m)
	if len(p.batch) < p.limit {
		return true
	}
	select {
	case p.pages <- p.batch:
	case <-p.ctx.Done():
		return false
	}
	p.limit = p.size
	p.backing, p.batch = nil, nil
	return true
}

// firstPageSize bounds the first message of EffectiveMembers and EffectiveGroups (page_size bounds the others).
const firstPageSize = 100

// memberTypeFilter returns whether a node passes the EffectiveMembers type filter (empty: everything).
func memberTypeFilter(types []pb.MemberType) func(*directory.Node) bool {
	if len(types) == 0 {
		return func(*directory.Node) bool { return true }
	}
	var users, guests, groups, sps bool
	for _, t := range types {
		switch t {
		case pb.MemberType_MEMBER_TYPE_USER:
			users = true
		case pb.MemberType_MEMBER_TYPE_GUEST:
			guests = true
		case pb.MemberType_MEMBER_TYPE_GROUP:
			groups = true
		case pb.MemberType_MEMBER_TYPE_SERVICE_PRINCIPAL:
			sps = true
		}
	}
	return func(n *directory.Node) bool {
		switch n.Kind() {
		case directory.KindUser:
			if n.IsGuest() {
				return guests
			}
			return users
		case directory.KindGroup:
			return groups
		case directory.KindServicePrincipal:
			return sps
		}
		return false
	}
}

func (d *decisionService) CheckBatch(ctx context.Context, req *pb.CheckBatchRequest) (*pb.CheckBatchResponse, error) {
	dir, err := d.s.directory(ctx, req.GetTenantId(), req.GetConsistency())
	if err != nil {
		return nil, err
	}
	resp := &pb.CheckBatchResponse{Revision: dir.Revision(), Results: make([]*pb.CheckBatchResult, len(req.GetChecks()))}
	// One policy span for the whole batch, not one per item: spans are the costly part of tracing.
	parent, traced := d.s.tracedParent(ctx)
	engine, started := d.s.engine, time.Time{}
	var probe resolver.Probe
	if traced {
		engine, started = engine.Probed(&probe), time.Now()
	}
	violations := 0
	for i, item := range req.GetChecks() {
		var start time.Time
		if d.s.cfg.DecisionLog != nil {
			start = time.Now()
		}
		var dec *pb.Decision
		err := validateItem(req.GetTenantId(), item)
		if err == nil {
			dec, err = engine.Check(dir, item)
		}
		if dec != nil {
			violations += len(dec.GetViolations()) + len(dec.GetWarnings())
			dec.DecisionId = newDecisionID()
			d.s.cfg.Metrics.observe("check_batch", dec)
			d.s.logDecision(ctx, req.GetTenantId(), idsOf(item), dec, start)
		}
		if err != nil {
			resp.Results[i] = &pb.CheckBatchResult{Result: &pb.CheckBatchResult_Error{Error: toStatus(err).Proto()}}
		} else {
			resp.Results[i] = &pb.CheckBatchResult{Result: &pb.CheckBatchResult_Decision{Decision: dec}}
		}
	}
	if traced {
		d.s.finishedChild(parent, "policy.check_batch", started, nil, attribute.String("groupgate.tenant", dir.TenantID()),
			attribute.Int64("groupgate.revision", dir.Revision()), attribute.Int("groupgate.items", len(req.GetChecks())),
			attribute.Int("groupgate.rule_count", violations), attribute.Int("groupgate.depth_reached", probe.Depth),
			attribute.Int("groupgate.resolver_cache_hits", probe.CacheHits))
	}
	return resp, nil
}

func (d *decisionService) EvaluatePlan(ctx context.Context, req *pb.EvaluatePlanRequest) (*pb.EvaluatePlanResponse, error) {
	dir, err := d.s.directory(ctx, req.GetTenantId(), req.GetConsistency())
	if err != nil {
		return nil, err
	}
	var start time.Time
	if d.s.cfg.DecisionLog != nil {
		start = time.Now()
	}
	steps, err := evaluate(ctx, d.s, "evaluate_plan", dir, req, (*policy.Engine).EvaluatePlan)
	if err != nil {
		return nil, err
	}
	resp := &pb.EvaluatePlanResponse{Revision: dir.Revision(), Results: make([]*pb.PlanStepResult, len(steps))}
	for i, st := range steps {
		r := &pb.PlanStepResult{Decision: st.Decision, Applied: st.Applied}
		if st.Decision != nil {
			st.Decision.DecisionId = newDecisionID()
			d.s.cfg.Metrics.observe("evaluate_plan", st.Decision)
			// Every step's record has the plan's latency: the steps are decided together.
			d.s.logDecision(ctx, req.GetTenantId(), stepIDs(req.GetSteps()[i], req.GetActorId()), st.Decision, start)
		}
		if st.Err != nil {
			r.Error = toStatus(st.Err).Proto()
		}
		resp.Results[i] = r
	}
	return resp, nil
}

// auditPageSize is how many findings one Audit message carries.
const auditPageSize = 500

func (d *decisionService) Audit(req *pb.AuditRequest, stream grpc.ServerStreamingServer[pb.AuditResponse]) error {
	ctx := stream.Context()
	dir, err := d.s.directory(ctx, req.GetTenantId(), req.GetConsistency())
	if err != nil {
		return err
	}
	var batch []*pb.Finding
	sent := false
	flush := func() error {
		sent = true
		err := stream.Send(&pb.AuditResponse{Findings: batch, Revision: dir.Revision()})
		batch = nil
		if err != nil {
			return err
		}
		return ctx.Err()
	}
	err = d.s.engine.Audit(dir, req.GetRules(), func(f *pb.Finding) error {
		batch = append(batch, f)
		if len(batch) == auditPageSize {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(batch) > 0 || !sent {
		return flush()
	}
	return nil
}
