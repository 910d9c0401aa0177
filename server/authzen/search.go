package authzen

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"hash/fnv"
	"io"
	"slices"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// searchRequest is AuthZEN §Subject/Resource/Action Search API Request.
type searchRequest struct {
	Subject  *entity        `json:"subject"`
	Action   *action        `json:"action"`
	Resource *entity        `json:"resource"`
	Context  map[string]any `json:"context"`
	Page     *pageRequest   `json:"page"`
}

type pageRequest struct {
	Token string `json:"token"`
	Limit *int64 `json:"limit"`
}

// result is one entity found: {type, id} for subjects and resources, {name} for actions.
type result struct {
	Type string `json:"type,omitempty"`
	ID   string `json:"id,omitempty"`
	Name string `json:"name,omitempty"`
}

type pageResponse struct {
	NextToken string `json:"next_token"`
	Count     int    `json:"count"`
	Total     int    `json:"total"`
}

type searchResponse struct {
	Page    pageResponse   `json:"page"`
	Context map[string]any `json:"context,omitempty"`
	Results []result       `json:"results"`
}

// Page sizes: a request without page.limit (or with 0) gets defaultLimit results a page; more than maxLimit is
// cut to maxLimit.
const (
	defaultLimit = 1000
	maxLimit     = 10000
)

// pageToken is what a next_token carries (base64url JSON, opaque to the PEP): the revision every page answers
// from, where the next page starts, and a hash of the request without its token, so that a changed request
// mid-pagination is refused (§Pagination: the PDP SHOULD return an error).
type pageToken struct {
	Revision int64  `json:"r"`
	Offset   int    `json:"o"`
	Hash     uint64 `json:"h"`
}

// paging is a search's page: the revision to answer from (0: the current one) and the slice of the results.
type paging struct {
	revision int64
	offset   int
	limit    int
	hash     uint64
}

func (r *searchRequest) paging() (paging, error) {
	p := paging{limit: defaultLimit}
	tok := ""
	if r.Page != nil {
		tok = r.Page.Token
		if r.Page.Limit != nil {
			switch l := *r.Page.Limit; {
			case l < 0:
				return p, badRequest("page.limit %d: want a non-negative integer", l)
			case l > maxLimit:
				p.limit = maxLimit
			case l > 0:
				p.limit = int(l)
			}
		}
	}
	// The request as it must stay across pages: everything but the token.
	saved := r.Page
	if saved != nil {
		cp := *saved
		cp.Token = ""
		r.Page = &cp
	}
	canon, _ := json.Marshal(r)
	r.Page = saved
	h := fnv.New64a()
	_, _ = h.Write(canon)
	p.hash = h.Sum64()
	if tok == "" {
		return p, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	var t pageToken
	if err == nil {
		err = json.Unmarshal(raw, &t)
	}
	if err != nil || t.Revision <= 0 || t.Offset < 0 {
		return p, badRequest("page.token is not a token this server issued")
	}
	if t.Hash != p.hash {
		return p, badRequest("page.token belongs to a different request: subject, action, resource, context and page.limit must stay as they were on the first page")
	}
	p.revision, p.offset = t.Revision, t.Offset
	return p, nil
}

// consistency pins a later page to the first page's revision; the first page honours context.min_revision.
func (p paging) consistency(r *searchRequest) *pb.Consistency {
	if p.revision > 0 {
		return &pb.Consistency{MinRevision: p.revision}
	}
	e := evaluationRequest{Context: r.Context}
	return e.consistency()
}

// answer cuts one page out of all the results found at revision. A later page whose directory has moved on is
// refused (400, FAILED_PRECONDITION): groupgate answers from its current revision only, and SPEC §17 wants every
// page of a search from the same directory, so the PEP starts again rather than get a mix.
func (p paging) answer(all []result, revision int64) (*searchResponse, error) {
	if p.revision > 0 && revision != p.revision {
		return nil, status.Errorf(codes.FailedPrecondition, "the directory changed since the first page of this search (revision %d, now %d): start the search again without page.token", p.revision, revision)
	}
	start := min(p.offset, len(all))
	end := min(start+p.limit, len(all))
	resp := &searchResponse{Results: all[start:end], Context: map[string]any{"revision": revision}}
	resp.Page = pageResponse{Count: end - start, Total: len(all)}
	if end < len(all) {
		b, _ := json.Marshal(pageToken{Revision: revision, Offset: end, Hash: p.hash})
		resp.Page.NextToken = base64.RawURLEncoding.EncodeToString(b)
	}
	if resp.Results == nil {
		resp.Results = []result{}
	}
	return resp, nil
}

func empty() *searchResponse {
	return &searchResponse{Results: []result{}}
}

func (r *searchRequest) decode(body []byte) (paging, error) {
	if err := decode(body, r); err != nil {
		return paging{}, err
	}
	return r.paging()
}

// requireAction: action.name is required (400 without it); known reports whether the search answers it (an
// action it does not know permits nothing: empty results).
func (r *searchRequest) requireAction(names ...string) (known bool, err error) {
	if r.Action == nil || r.Action.Name == "" {
		return false, badRequest("action.name is required")
	}
	return slices.Contains(names, r.Action.Name), nil
}

// searchSubject answers POST …/access/v1/search/subject (SPEC §17): with action member, the group's effective
// members of subject.type (user includes guests); with owner, its owners of that type.
func (h *Handler) searchSubject(ctx context.Context, tenant string, body []byte) (any, error) {
	var req searchRequest
	p, err := req.decode(body)
	if err != nil {
		return nil, err
	}
	switch {
	case req.Subject == nil || req.Subject.Type == "":
		return nil, badRequest("subject.type is required")
	case !slices.Contains(subjectTypes, req.Subject.Type):
		return empty(), nil // an entity type groupgate does not know: nothing of it is permitted
	case req.Resource == nil || req.Resource.ID == "":
		return nil, badRequest("resource.type and resource.id are required")
	case req.Resource.Type != "group":
		return empty(), nil
	}
	if known, err := req.requireAction(actMember, actOwner); err != nil {
		return nil, err
	} else if !known {
		return empty(), nil
	}
	cons := p.consistency(&req)
	if req.Action.Name == actOwner {
		resp, err := h.dec.DescribeObject(ctx, &pb.DescribeObjectRequest{TenantId: tenant, Consistency: cons, Id: req.Resource.ID, PageSize: 1})
		if status.Code(err) == codes.NotFound {
			return empty(), nil
		} else if err != nil {
			return nil, err
		}
		var all []result
		for _, o := range resp.GetGroup().GetOwners() {
			if kindName(o.GetKind()) == req.Subject.Type {
				all = append(all, result{Type: req.Subject.Type, ID: o.GetId()})
			}
		}
		return p.answer(all, resp.GetRevision())
	}
	var types []pb.MemberType
	switch req.Subject.Type {
	case "user":
		types = []pb.MemberType{pb.MemberType_MEMBER_TYPE_USER, pb.MemberType_MEMBER_TYPE_GUEST}
	case "group":
		types = []pb.MemberType{pb.MemberType_MEMBER_TYPE_GROUP}
	default:
		types = []pb.MemberType{pb.MemberType_MEMBER_TYPE_SERVICE_PRINCIPAL}
	}
	stream, err := h.dec.EffectiveMembers(ctx, &pb.EffectiveMembersRequest{TenantId: tenant, Consistency: cons, GroupId: req.Resource.ID, Types: types})
	return answerStream(h, ctx, tenant, cons, p, stream, err, func(m *pb.EffectiveMembersResponse) []result {
		out := make([]result, 0, len(m.GetMembers()))
		for _, x := range m.GetMembers() {
			out = append(out, result{Type: req.Subject.Type, ID: x.GetId()})
		}
		return out
	})
}

// answerStream reads a search's stream to its end and answers its page: every message's results, at the
// revision the stream answered from (or the tenant's, when it sent no message). An unknown id is empty results,
// as the certification scenario wants.
func answerStream[M interface{ GetRevision() int64 }](h *Handler, ctx context.Context, tenant string, cons *pb.Consistency, p paging,
	stream interface{ Recv() (M, error) }, err error, results func(M) []result) (any, error) {
	var all []result
	var rev int64
	for err == nil {
		var m M
		if m, err = stream.Recv(); err != nil {
			break
		}
		rev = m.GetRevision()
		all = append(all, results(m)...)
	}
	switch {
	case errors.Is(err, io.EOF):
	case status.Code(err) == codes.NotFound:
		return empty(), nil
	case err != nil:
		return nil, err
	}
	if rev == 0 {
		// No message (no members): the revision comes from the tenant.
		if rev, err = h.revision(ctx, tenant, cons); err != nil {
			return nil, err
		}
	}
	return p.answer(all, rev)
}

// searchResource answers POST …/access/v1/search/resource (SPEC §17): with action member, the groups the subject
// reaches (EffectiveGroups).
func (h *Handler) searchResource(ctx context.Context, tenant string, body []byte) (any, error) {
	var req searchRequest
	p, err := req.decode(body)
	if err != nil {
		return nil, err
	}
	switch {
	case req.Subject == nil || req.Subject.Type == "" || req.Subject.ID == "":
		return nil, badRequest("subject.type and subject.id are required")
	case !slices.Contains(subjectTypes, req.Subject.Type):
		return empty(), nil // an entity type groupgate does not know: nothing of it is permitted
	case req.Resource == nil || req.Resource.Type == "":
		return nil, badRequest("resource.type is required")
	case req.Resource.Type != "group":
		return empty(), nil
	}
	if known, err := req.requireAction(actMember); err != nil {
		return nil, err
	} else if !known {
		return empty(), nil
	}
	cons := p.consistency(&req)
	stream, err := h.dec.EffectiveGroups(ctx, &pb.EffectiveGroupsRequest{TenantId: tenant, Consistency: cons, PrincipalId: req.Subject.ID})
	return answerStream(h, ctx, tenant, cons, p, stream, err, func(m *pb.EffectiveGroupsResponse) []result {
		out := make([]result, 0, len(m.GetGroups()))
		for _, g := range m.GetGroups() {
			out = append(out, result{Type: "group", ID: g.GetId()})
		}
		return out
	})
}

// searchAction answers POST …/access/v1/search/action (SPEC §17): which of member and owner hold for the subject
// on the resource group, both asked at one revision.
func (h *Handler) searchAction(ctx context.Context, tenant string, body []byte) (any, error) {
	var req searchRequest
	p, err := req.decode(body)
	if err != nil {
		return nil, err
	}
	switch {
	case req.Subject == nil || req.Subject.Type == "" || req.Subject.ID == "":
		return nil, badRequest("subject.type and subject.id are required")
	case !slices.Contains(subjectTypes, req.Subject.Type):
		return empty(), nil // an entity type groupgate does not know: nothing of it is permitted
	case req.Resource == nil || req.Resource.Type == "" || req.Resource.ID == "":
		return nil, badRequest("resource.type and resource.id are required")
	case req.Resource.Type != "group":
		return empty(), nil
	}
	cons := p.consistency(&req)
	mem, err := h.dec.CheckMembership(ctx, &pb.CheckMembershipRequest{TenantId: tenant, Consistency: cons, GroupId: req.Resource.ID, PrincipalId: req.Subject.ID})
	if status.Code(err) == codes.NotFound {
		return empty(), nil
	} else if err != nil {
		return nil, err
	}
	owns, rev, err := h.owns(ctx, tenant, &pb.Consistency{MinRevision: mem.GetRevision()}, req.Subject.ID, req.Resource.ID)
	if status.Code(err) == codes.NotFound {
		return empty(), nil
	} else if err != nil {
		return nil, err
	}
	if rev != mem.GetRevision() {
		return nil, status.Errorf(codes.Unavailable, "the directory changed while answering (revision %d, then %d): ask again", mem.GetRevision(), rev)
	}
	var all []result
	if mem.GetIsMember() {
		all = append(all, result{Name: actMember})
	}
	if owns {
		all = append(all, result{Name: actOwner})
	}
	return p.answer(all, rev)
}

// revision is the tenant's current revision (for a search that found nothing, whose stream said none).
func (h *Handler) revision(ctx context.Context, tenant string, cons *pb.Consistency) (int64, error) {
	resp, err := h.dec.ListLabels(ctx, &pb.ListLabelsRequest{TenantId: tenant, Consistency: cons})
	if err != nil {
		return 0, err
	}
	return resp.GetRevision(), nil
}
