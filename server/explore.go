package server

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/policy"
)

// The read-only look-ups behind the explorer page (SPEC §12). They answer on one revision like every other
// DecisionService call and need the checker role.

// Limits of the look-ups.
const (
	DefaultSearchLimit   = 20
	MaxSearchLimit       = 50
	MaxLookupIDs         = 1000
	DefaultDescribePage  = 100
	MaxDescribePage      = 1000
	MaxDescribeAncestors = 100
	maxSearchQueryLength = 256
	// countBudget bounds the membership edges one DescribeObject call may walk to count transitive members
	// (the cost of a count is its edges: a user in ten groups is reached ten times); the group itself may use
	// rootCountBudget of them, each sub-group on the page rowCountBudget. A count cut short is reported as a
	// lower bound, so that opening a million-member group costs a bounded walk (see
	// BenchmarkDescribeTopGroupOverGRPC), not one of the whole tenant per row.
	countBudget     = 3_000_000
	rootCountBudget = 2_000_000
	rowCountBudget  = 250_000
)

func (d *decisionService) ListTenants(ctx context.Context, _ *pb.ListTenantsRequest) (*pb.ListTenantsResponse, error) {
	resp := &pb.ListTenantsResponse{}
	for _, id := range d.s.cfg.Store.Tenants() {
		dir, err := d.s.cfg.Store.Directory(ctx, id, 0)
		if err != nil {
			continue // removed meanwhile, or not loaded yet on this replica: not listed
		}
		c := dir.Counts()
		resp.Tenants = append(resp.Tenants, &pb.TenantInfo{TenantId: id, Revision: dir.Revision(), Users: c.Users, Groups: c.Groups})
	}
	return resp, nil
}

func (d *decisionService) SearchObjects(ctx context.Context, req *pb.SearchObjectsRequest) (*pb.SearchObjectsResponse, error) {
	dir, err := d.s.directory(ctx, req.GetTenantId(), req.GetConsistency())
	if err != nil {
		return nil, err
	}
	limit := pageSize(req.GetLimit(), DefaultSearchLimit)
	var keep func(*directory.Node) bool
	if kinds := req.GetKinds(); len(kinds) > 0 {
		keep = func(n *directory.Node) bool { return slices.Contains(kinds, objectKind(n.Kind())) }
	}
	found, more := dir.Search(req.GetQuery(), keep, limit)
	resp := &pb.SearchObjectsResponse{Truncated: more, Revision: dir.Revision(), Objects: make([]*pb.ObjectSummary, len(found))}
	for i, r := range found {
		resp.Objects[i] = summarize(r.Node)
	}
	return resp, nil
}

func (d *decisionService) LookupObjects(ctx context.Context, req *pb.LookupObjectsRequest) (*pb.LookupObjectsResponse, error) {
	dir, err := d.s.directory(ctx, req.GetTenantId(), req.GetConsistency())
	if err != nil {
		return nil, err
	}
	resp := &pb.LookupObjectsResponse{Revision: dir.Revision()}
	seen := make(map[string]bool, len(req.GetIds()))
	for _, id := range req.GetIds() {
		if seen[id] {
			continue
		}
		seen[id] = true
		if n, ok := dir.Lookup(id); ok {
			resp.Objects = append(resp.Objects, summarize(n))
		} else {
			resp.NotFound = append(resp.NotFound, id)
		}
	}
	return resp, nil
}

func (d *decisionService) ListLabels(ctx context.Context, req *pb.ListLabelsRequest) (*pb.ListLabelsResponse, error) {
	dir, err := d.s.directory(ctx, req.GetTenantId(), req.GetConsistency())
	if err != nil {
		return nil, err
	}
	labels := dir.Labels()
	slices.SortStableFunc(labels, func(a, b *pb.Label) int { return cmp.Compare(a.GetPriority(), b.GetPriority()) })
	return &pb.ListLabelsResponse{Labels: labels, Revision: dir.Revision()}, nil
}

func (d *decisionService) DescribeObject(ctx context.Context, req *pb.DescribeObjectRequest) (*pb.DescribeObjectResponse, error) {
	dir, err := d.s.directory(ctx, req.GetTenantId(), req.GetConsistency())
	if err != nil {
		return nil, err
	}
	n, ok := dir.Lookup(req.GetId())
	if !ok {
		return nil, &directory.NotFoundError{Kind: "object", ID: req.GetId()}
	}
	resp := &pb.DescribeObjectResponse{Object: summarize(n), Revision: dir.Revision()}
	if !n.IsGroup() {
		p := &pb.PrincipalDetails{
			DirectoryRoles:   n.DirectoryRoles(),
			EffectiveRoles:   policy.EffectiveRoles(dir, n),
			DirectGroupCount: int64(len(n.MemberOf())),
			OwnedGroupCount:  int64(len(n.OwnerOf())),
		}
		if sp := n.ServicePrincipal(); sp != nil {
			p.AppPermissions = sp.GetAppPermissions()
		}
		resp.Details = &pb.DescribeObjectResponse_Principal{Principal: p}
		return resp, nil
	}
	offset := 0
	if t := req.GetPageToken(); t != "" {
		offset, _ = strconv.Atoi(t) // validated before the handler ran
	}
	members := n.Members()
	if offset > len(members) {
		v := &validator{}
		v.add("page_token", "beyond the last page: the group has %d direct members now", len(members))
		return nil, v.orNil()
	}
	end := min(offset+pageSize(req.GetPageSize(), DefaultDescribePage), len(members))
	attrs := n.Group()
	view := d.s.cfg.Resolver.At(dir)
	g := &pb.GroupDetails{
		Kind:               attrs.GetKind(),
		Membership:         attrs.GetMembership(),
		OnPremisesSynced:   attrs.GetOnPremisesSynced(),
		IsAssignableToRole: attrs.GetIsAssignableToRole(),
		DirectoryRoles:     attrs.GetDirectoryRoles(),
		DirectMemberCount:  int64(len(members)),
	}
	if l, ok := dir.Label(attrs.GetLabelId()); ok {
		g.Label = l
	}
	for _, o := range n.Owners() {
		if on := dir.Node(o); on != nil {
			g.Owners = append(g.Owners, summarize(on))
		}
	}
	count, exact, used := view.CountMembers(n.Ref(), rootCountBudget)
	g.EffectiveMemberCount, g.EffectiveMemberCountExact = int64(count), exact
	budget := countBudget - used
	chain, err := ancestorChain(dir, req.GetAncestorIds(), n)
	if err != nil {
		return nil, err
	}
	labels := map[string]bool{}
	for _, r := range members[offset:end] {
		mn := dir.Node(r)
		if mn == nil {
			continue
		}
		m := &pb.DirectMember{Object: summarize(mn), Findings: policy.MemberFindings(dir, chain, mn)}
		if mn.IsGroup() {
			m.DirectMemberCount = int64(len(mn.Members()))
			count, exact, used := view.CountMembers(r, min(budget, rowCountBudget))
			budget -= used
			m.EffectiveMemberCount, m.EffectiveMemberCountExact = int64(count), exact
			_, m.ContainsGuest = view.GuestPath(r)
			if l, ok := dir.Label(mn.Group().GetLabelId()); ok && !labels[l.GetId()] {
				labels[l.GetId()] = true
				g.MemberLabels = append(g.MemberLabels, l)
			}
		}
		g.Members = append(g.Members, m)
	}
	if end < len(members) {
		g.NextPageToken = strconv.Itoa(end)
	}
	resp.Details = &pb.DescribeObjectResponse_Group{Group: g}
	return resp, nil
}

// ancestorChain is the tree above a described group, outermost first, and the group itself last. Each must be a
// direct member of the one before: findings judged against a chain that is not a nesting path would be made up.
func ancestorChain(dir *directory.Directory, ids []string, group *directory.Node) ([]*directory.Node, error) {
	chain := make([]*directory.Node, 0, len(ids)+1)
	v := &validator{}
	for i, id := range ids {
		a, ok := dir.Lookup(id)
		if !ok || !a.IsGroup() {
			v.add(fmt.Sprintf("ancestor_ids[%d]", i), "no group %q in the tenant", truncate(id))
			return nil, v.orNil()
		}
		chain = append(chain, a)
	}
	chain = append(chain, group)
	for i := 1; i < len(chain); i++ {
		if !slices.Contains(chain[i].MemberOf(), chain[i-1].Ref()) {
			v.add(fmt.Sprintf("ancestor_ids[%d]", i-1), "%s is not a direct member of %s: want the nesting path above %s, outermost first",
				chain[i].ID(), chain[i-1].ID(), group.ID())
			return nil, v.orNil()
		}
	}
	return chain, nil
}

func objectKind(k directory.Kind) pb.ObjectKind {
	switch k {
	case directory.KindUser:
		return pb.ObjectKind_OBJECT_KIND_USER
	case directory.KindGroup:
		return pb.ObjectKind_OBJECT_KIND_GROUP
	case directory.KindServicePrincipal:
		return pb.ObjectKind_OBJECT_KIND_SERVICE_PRINCIPAL
	}
	return pb.ObjectKind_OBJECT_KIND_UNSPECIFIED
}

// summarize is what a list shows of one principal.
func summarize(n *directory.Node) *pb.ObjectSummary {
	s := &pb.ObjectSummary{Id: n.ID(), Kind: objectKind(n.Kind()), DisplayName: n.DisplayName(), UserType: n.UserType()}
	if g := n.Group(); g != nil {
		s.GroupKind, s.LabelId, s.IsAssignableToRole, s.Membership = g.GetKind(), g.GetLabelId(), g.GetIsAssignableToRole(), g.GetMembership()
	}
	return s
}
