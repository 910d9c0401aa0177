package directory

import (
	"fmt"
	"slices"
	"strings"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"google.golang.org/protobuf/proto"
)

// builder edits a copy of a Directory. Both snapshot loading and change batches go through it, so that both
// validate the same way. Any problem refuses the whole input: the builder is then dropped and nothing of it is
// ever visible.
//
// References may point forward (a group listing a member that a later change or a later snapshot entry creates):
// an unknown id gets a ref with a placeholder node, and finish refuses the input if any placeholder is left.
type builder struct {
	tenantID string
	lineage  uint64
	settings *pb.TenantSettings
	labels   map[string]*pb.Label
	ownLabel bool // labels is this builder's copy
	nodes    *vectorBuilder
	index    indexBuilder
	counts   Counts

	// loading builds a whole tenant from a snapshot onto an empty base: every node is new (so editable in
	// place), an id that exists already is a duplicate, and no delta is kept. This keeps a million-object load
	// free of per-node bookkeeping.
	loading    bool
	mine       map[Ref]bool   // nodes copied or created by this builder, edited in place
	pending    map[Ref]string // placeholders: referenced ids not yet created
	touched    map[Ref]bool   // nodes whose final state finish must check
	labelsUsed map[string]bool
	deletedLbl bool
	problems   *ValidationError
	delta      *Delta

	stamps    []uint32 // per ref: the number of the member list that last listed it (duplicate detection)
	listStamp uint32

	// Role definitions, role assignments and administrative units (privileges.go): a copy-on-write working
	// copy, whether it changed, and what finish must validate.
	priv       *privileges
	ownPriv    bool
	privDirty  bool
	privChecks []privCheck

	// preResolved holds, when loading, each group's member refs looked up in parallel (noRef: not a known
	// valid id, or the group's own id; refList handles those one by one).
	preResolved map[string][]Ref
}

// noRef marks a dropped entry in a ref list.
const noRef = ^Ref(0)

// Delta says what a change batch changed, so caches can drop exactly what it affects.
type Delta struct {
	// Changed are the principals created, deleted or changed in attributes or direct relationships.
	Changed []Ref
	// Objects are the principals created, deleted or changed in their attributes (a subset of Changed): a
	// user's type, a group's kind or label. Edge changes alone do not list their ends here.
	Objects []Ref
	// EdgesAdded and EdgesRemoved are the direct membership edges the batch added and removed.
	EdgesAdded, EdgesRemoved []Edge
	// LabelsChanged are the ids of labels created, changed or deleted.
	LabelsChanged []string
	// SettingsChanged is set when the tenant settings changed.
	SettingsChanged bool
}

// Edge is a direct membership: Member is a direct member of Group.
type Edge struct{ Group, Member Ref }

func newBuilder(d *Directory, subject string) *builder {
	b := &builder{
		tenantID: d.tenantID,
		lineage:  d.lineage,
		settings: d.settings,
		labels:   d.labels,
		nodes:    newVectorBuilder(d.nodes),
		index:    indexBuilder{x: d.index},
		counts:   d.counts,
		priv:     d.priv,
		mine:     map[Ref]bool{},
		pending:  map[Ref]string{},
		touched:  map[Ref]bool{},
		problems: &ValidationError{Subject: subject},
		delta:    &Delta{},
	}
	return b
}

func (b *builder) problem(field, format string, args ...any) {
	var ids []string
	for _, a := range args {
		if s, ok := a.(string); ok {
			ids = append(ids, s)
		}
	}
	b.problems.add(field, fmt.Sprintf(format, args...), ids...)
}

// mutable returns a node this builder may edit: a copy of the shared node, made once per batch.
func (b *builder) mutable(r Ref) *Node {
	n := b.nodes.get(r)
	// A node deleted earlier in this batch is mine but nil: named again (a dangling member, or upserted anew), it
	// gets a fresh node rather than a nil one.
	if (b.mine[r] && n != nil) || (b.loading && n != nil) {
		return n
	}
	c := &Node{ref: r}
	if n != nil {
		*c = *n
		// Clone the slices: the old revision's node shares their backing arrays.
		c.members = slices.Clone(n.members)
		c.owners = slices.Clone(n.owners)
		c.memberOf = slices.Clone(n.memberOf)
		c.ownerOf = slices.Clone(n.ownerOf)
	}
	b.nodes.set(r, c)
	if !b.loading {
		b.mine[r] = true
		b.touched[r] = true
	}
	return c
}

// refFor returns the ref of a principal id, creating a placeholder for an id not (yet) in the directory.
func (b *builder) refFor(id string) Ref {
	r, ok := b.index.lookup(id)
	if ok && b.loading {
		// Every declared id was reserved before any reference is resolved, and a declaration that fails
		// refuses the whole snapshot, so a known id needs no placeholder check (it saves a cache miss per edge).
		return r
	}
	if !ok {
		r = b.nodes.allocate()
		b.index.add(id, r)
	}
	if n := b.nodes.get(r); n == nil || n.kind == 0 {
		if _, isPending := b.pending[r]; !isPending {
			b.pending[r] = id
			p := b.mutable(r)
			p.id = id
		}
	}
	return r
}

// existing returns the live node for id, or nil.
func (b *builder) existing(id string) *Node {
	r, ok := b.index.lookup(id)
	if !ok {
		return nil
	}
	n := b.nodes.get(r)
	if n == nil || n.kind == 0 {
		return nil
	}
	return n
}

func (b *builder) checkID(field, id string) bool {
	if !ValidID(id) {
		b.problem(field, "invalid id %q: want "+IDForm, id)
		return false
	}
	return true
}

// claim prepares the node for an upsert of a principal of the given kind: it checks the id and its kind and
// returns the node to fill, or nil after recording a problem.
func (b *builder) claim(field, id string, kind Kind) *Node {
	if !b.checkID(field+".id", id) {
		return nil
	}
	if _, isLabel := b.labels[id]; isLabel {
		b.problem(field+".id", "duplicate id %q: already used by a label", id)
		return nil
	}
	if b.isUnitID(id) {
		b.problem(field+".id", "duplicate id %q: already used by an administrative unit", id)
		return nil
	}
	if old := b.existing(id); old != nil {
		if b.loading {
			b.problem(field+".id", "duplicate id %q: already used by a %s", id, old.kind)
			return nil
		}
		if old.kind != kind {
			b.problem(field+".id", "id %q is a %s: an object's kind cannot change to %s", id, old.kind, kind)
			return nil
		}
	}
	r := b.refFor(id)
	n := b.mutable(r)
	if n.kind == 0 {
		delete(b.pending, r)
		n.kind = kind
	} else {
		b.countNode(n, -1)
	}
	b.changed(r)
	b.object(r)
	return n
}

func (b *builder) countNode(n *Node, sign int64) {
	switch n.kind {
	case KindUser:
		b.counts.Users += sign
		if n.IsGuest() {
			b.counts.Guests += sign
		}
	case KindGroup:
		b.counts.Groups += sign
		if n.group.GetIsAssignableToRole() {
			b.counts.RoleAssignableGroups += sign
		}
	case KindServicePrincipal:
		b.counts.ServicePrincipals += sign
	}
}

func (b *builder) upsertUser(field string, u *pb.User) {
	if u == nil {
		b.problem(field, "missing user")
		return
	}
	switch u.GetUserType() {
	case pb.UserType_USER_TYPE_MEMBER, pb.UserType_USER_TYPE_GUEST:
	default:
		b.problem(field+".user_type", "user %q: user_type must be USER_TYPE_MEMBER or USER_TYPE_GUEST, got %v", u.GetId(), u.GetUserType())
		return
	}
	n := b.claim(field, u.GetId(), KindUser)
	if n == nil {
		return
	}
	n.id = u.GetId()
	n.userType = u.GetUserType()
	n.userDisplayName = u.GetDisplayName()
	n.userRoles = slices.Clone(u.GetDirectoryRoles())
	b.countNode(n, +1)
}

func (b *builder) upsertServicePrincipal(field string, s *pb.ServicePrincipal) {
	if s == nil {
		b.problem(field, "missing service principal")
		return
	}
	n := b.claim(field, s.GetId(), KindServicePrincipal)
	if n == nil {
		return
	}
	n.id = s.GetId()
	n.sp = proto.CloneOf(s)
	b.countNode(n, +1)
}

func (b *builder) upsertGroup(field string, g *pb.Group) {
	if g == nil {
		b.problem(field, "missing group")
		return
	}
	ok := true
	switch g.GetKind() {
	case pb.GroupKind_GROUP_KIND_SECURITY, pb.GroupKind_GROUP_KIND_MICROSOFT_365,
		pb.GroupKind_GROUP_KIND_MAIL_ENABLED_SECURITY, pb.GroupKind_GROUP_KIND_DISTRIBUTION:
	default:
		b.problem(field+".kind", "group %q: kind must be set to a GROUP_KIND_* value, got %v", g.GetId(), g.GetKind())
		ok = false
	}
	switch g.GetMembership() {
	case pb.Membership_MEMBERSHIP_ASSIGNED, pb.Membership_MEMBERSHIP_DYNAMIC:
	default:
		b.problem(field+".membership", "group %q: membership must be MEMBERSHIP_ASSIGNED or MEMBERSHIP_DYNAMIC, got %v", g.GetId(), g.GetMembership())
		ok = false
	}
	if l := g.GetLabelId(); l != "" && !b.checkID(field+".label_id", l) {
		ok = false
	}
	memberRefs, okMembers := b.refList(field+".members", g.GetId(), g.GetMembers(), true)
	ownerRefs, okOwners := b.refList(field+".owners", g.GetId(), g.GetOwners(), false)
	if !ok || !okMembers || !okOwners {
		return
	}
	n := b.claim(field, g.GetId(), KindGroup)
	if n == nil {
		return
	}
	n.id = g.GetId()
	attrs := proto.CloneOf(g)
	attrs.Members, attrs.Owners = nil, nil
	n.group = attrs
	b.countNode(n, +1)
	if l := attrs.GetLabelId(); l != "" {
		b.useLabel(l)
	}
	b.setMembers(n, memberRefs)
	b.setOwners(n, ownerRefs)
}

// refList resolves a member or owner list, refusing bad ids, duplicates and (for members) the group itself.
// Field names are formatted only for problems: loading a tenant resolves millions of members.
func (b *builder) refList(field, groupID string, ids []string, members bool) ([]Ref, bool) {
	refs := make([]Ref, 0, len(ids))
	ok := true
	at := func(i int) string { return fmt.Sprintf("%s[%d]", field, i) }
	var pre []Ref
	if members && b.preResolved != nil {
		// A duplicate group id (refused later anyway) may have another list than the one resolved.
		if p := b.preResolved[groupID]; len(p) == len(ids) {
			pre = p
		}
	}
	for i, id := range ids {
		if pre != nil && pre[i] != noRef {
			refs = append(refs, pre[i]) // resolved in parallel beforehand (loading)
			continue
		}
		if !ValidID(id) {
			b.checkID(at(i), id)
			ok = false
			continue
		}
		if members && id == groupID {
			b.problem(at(i), "group %q cannot be a member of itself", groupID)
			ok = false
			continue
		}
		refs = append(refs, b.refFor(id))
	}
	// Duplicates: stamp each ref with this list's number (no map or sort per group: a tenant has 100k lists).
	b.listStamp++
	for i, r := range refs {
		for int(r) >= len(b.stamps) {
			b.stamps = append(b.stamps, make([]uint32, max(1024, len(b.stamps)))...)
		}
		if b.stamps[r] == b.listStamp {
			id := b.idOf(r)
			b.problem(at(slices.Index(ids, id)), "group %q lists %q twice", groupID, id)
			ok = false
			refs[i] = noRef
			continue
		}
		b.stamps[r] = b.listStamp
	}
	if !ok {
		refs = slices.DeleteFunc(refs, func(r Ref) bool { return r == noRef })
	}
	return refs, ok
}

// idOf is the id behind a ref this builder handed out.
func (b *builder) idOf(r Ref) string {
	if n := b.nodes.get(r); n != nil {
		return n.id
	}
	return ""
}

// setMembers replaces a group's direct members, keeping the reverse edges in step. When loading, reverse edges
// are built once at the end (linkReverseEdges), with exact sizes.
func (b *builder) setMembers(g *Node, refs []Ref) {
	if b.loading {
		g.members = refs
		b.counts.Memberships += int64(len(refs))
		return
	}
	old := make(map[Ref]struct{}, len(g.members))
	for _, m := range g.members {
		old[m] = struct{}{}
	}
	for _, m := range refs {
		if _, was := old[m]; was {
			delete(old, m)
			continue
		}
		mn := b.mutable(m)
		mn.memberOf = append(mn.memberOf, g.ref)
		b.counts.Memberships++
		b.edgeAdded(g.ref, m)
	}
	for m := range old {
		mn := b.mutable(m)
		mn.memberOf = removeRef(mn.memberOf, g.ref)
		b.counts.Memberships--
		b.edgeRemoved(g.ref, m)
	}
	g.members = refs
}

func (b *builder) setOwners(g *Node, refs []Ref) {
	if b.loading {
		g.owners = refs
		return
	}
	for _, o := range g.owners {
		on := b.mutable(o)
		on.ownerOf = removeRef(on.ownerOf, g.ref)
	}
	for _, o := range refs {
		on := b.mutable(o)
		on.ownerOf = append(on.ownerOf, g.ref)
	}
	g.owners = refs
}

func (b *builder) changed(refs ...Ref) {
	if b.delta != nil {
		b.delta.Changed = append(b.delta.Changed, refs...)
	}
}

func (b *builder) object(r Ref) {
	if b.delta != nil {
		b.delta.Objects = append(b.delta.Objects, r)
	}
}

func (b *builder) edgeAdded(g, m Ref) {
	if b.delta != nil {
		b.delta.EdgesAdded = append(b.delta.EdgesAdded, Edge{g, m})
	}
}

func (b *builder) edgeRemoved(g, m Ref) {
	if b.delta != nil {
		b.delta.EdgesRemoved = append(b.delta.EdgesRemoved, Edge{g, m})
	}
}

func (b *builder) labelChanged(id string) {
	if b.delta != nil {
		b.delta.LabelsChanged = append(b.delta.LabelsChanged, id)
	}
}

func removeRef(refs []Ref, r Ref) []Ref {
	if i := slices.Index(refs, r); i >= 0 {
		return slices.Delete(refs, i, i+1)
	}
	return refs
}

// group returns the live group node for id, recording a problem when id is not a group.
func (b *builder) group(field, id string) *Node {
	if !b.checkID(field, id) {
		return nil
	}
	n := b.existing(id)
	if n == nil {
		b.problem(field, "group %q does not exist", id)
		return nil
	}
	if n.kind != KindGroup {
		b.problem(field, "%q is a %s, not a group", id, n.kind)
		return nil
	}
	return b.mutable(n.ref)
}

// addMember adds a direct membership edge; adding an edge that exists is a no-op, as when mirroring a feed.
func (b *builder) addMember(field string, c *pb.MemberChange) {
	g := b.group(field+".group_id", c.GetGroupId())
	if g == nil || !b.checkID(field+".member_id", c.GetMemberId()) {
		return
	}
	if c.GetMemberId() == c.GetGroupId() {
		b.problem(field+".member_id", "group %q cannot be a member of itself", c.GetGroupId())
		return
	}
	m := b.refFor(c.GetMemberId())
	if slices.Contains(g.members, m) {
		return
	}
	g.members = append(g.members, m)
	mn := b.mutable(m)
	mn.memberOf = append(mn.memberOf, g.ref)
	b.counts.Memberships++
	b.edgeAdded(g.ref, m)
	b.changed(g.ref, m)
}

// removeMember removes a direct membership edge; removing an absent edge is a no-op.
func (b *builder) removeMember(field string, c *pb.MemberChange) {
	g := b.group(field+".group_id", c.GetGroupId())
	if g == nil || !b.checkID(field+".member_id", c.GetMemberId()) {
		return
	}
	m := b.existing(c.GetMemberId())
	if m == nil || !slices.Contains(g.members, m.ref) {
		return
	}
	g.members = removeRef(g.members, m.ref)
	mn := b.mutable(m.ref)
	mn.memberOf = removeRef(mn.memberOf, g.ref)
	b.counts.Memberships--
	b.edgeRemoved(g.ref, m.ref)
	b.changed(g.ref, m.ref)
}

func (b *builder) addOwner(field string, c *pb.OwnerChange) {
	g := b.group(field+".group_id", c.GetGroupId())
	if g == nil || !b.checkID(field+".owner_id", c.GetOwnerId()) {
		return
	}
	o := b.refFor(c.GetOwnerId())
	if slices.Contains(g.owners, o) {
		return
	}
	g.owners = append(g.owners, o)
	on := b.mutable(o)
	on.ownerOf = append(on.ownerOf, g.ref)
	b.changed(g.ref, o)
}

func (b *builder) removeOwner(field string, c *pb.OwnerChange) {
	g := b.group(field+".group_id", c.GetGroupId())
	if g == nil || !b.checkID(field+".owner_id", c.GetOwnerId()) {
		return
	}
	o := b.existing(c.GetOwnerId())
	if o == nil || !slices.Contains(g.owners, o.ref) {
		return
	}
	g.owners = removeRef(g.owners, o.ref)
	on := b.mutable(o.ref)
	on.ownerOf = removeRef(on.ownerOf, g.ref)
	b.changed(g.ref, o.ref)
}

func (b *builder) mutableLabels() map[string]*pb.Label {
	if !b.ownLabel {
		m := make(map[string]*pb.Label, len(b.labels)+1)
		for k, v := range b.labels {
			m[k] = v
		}
		b.labels = m
		b.ownLabel = true
	}
	return b.labels
}

func (b *builder) upsertLabel(field string, l *pb.Label) {
	if l == nil {
		b.problem(field, "missing label")
		return
	}
	if !b.checkID(field+".id", l.GetId()) {
		return
	}
	if n := b.existing(l.GetId()); n != nil {
		b.problem(field+".id", "duplicate id %q: already used by a %s", l.GetId(), n.kind)
		return
	}
	if b.isUnitID(l.GetId()) {
		b.problem(field+".id", "duplicate id %q: already used by an administrative unit", l.GetId())
		return
	}
	if _, ok := b.labels[l.GetId()]; ok && b.loading {
		b.problem(field+".id", "duplicate id %q: already used by a label", l.GetId())
		return
	}
	for i, p := range l.GetPublishedTo() {
		if p != Everyone {
			b.checkID(fmt.Sprintf("%s.published_to[%d]", field, i), p)
		}
	}
	labels := b.mutableLabels()
	if _, existed := labels[l.GetId()]; !existed {
		b.counts.Labels++
	}
	labels[l.GetId()] = proto.CloneOf(l)
	b.useLabel(l.GetId()) // finish checks its published_to
	b.labelChanged(l.GetId())
}

func (b *builder) useLabel(id string) {
	if b.labelsUsed == nil {
		b.labelsUsed = map[string]bool{}
	}
	b.labelsUsed[id] = true
}

func (b *builder) updateSettings(s *pb.TenantSettings) {
	if s == nil {
		s = &pb.TenantSettings{}
	}
	b.settings = proto.CloneOf(s)
	if b.delta != nil {
		b.delta.SettingsChanged = true
	}
}

// deleteObject removes an object and every reference to it from member, owner and published_to lists. A label
// still carried by a group cannot be deleted: change those groups' labels first.
func (b *builder) deleteObject(field string, id string) {
	if !b.checkID(field, id) {
		return
	}
	if b.deletePrivObject(id) {
		return
	}
	if _, ok := b.labels[id]; ok {
		delete(b.mutableLabels(), id)
		b.counts.Labels--
		b.deletedLbl = true
		b.labelChanged(id)
		return
	}
	old := b.existing(id)
	if old == nil {
		b.problem(field, "object %q does not exist", id)
		return
	}
	b.forgetPrincipal(id)
	n := b.mutable(old.ref)
	for _, g := range n.memberOf {
		gn := b.mutable(g)
		gn.members = removeRef(gn.members, n.ref)
		b.counts.Memberships--
		b.edgeRemoved(g, n.ref)
	}
	for _, g := range n.ownerOf {
		gn := b.mutable(g)
		gn.owners = removeRef(gn.owners, n.ref)
	}
	for _, m := range n.members {
		mn := b.mutable(m)
		mn.memberOf = removeRef(mn.memberOf, n.ref)
		b.counts.Memberships--
		b.edgeRemoved(n.ref, m)
	}
	for _, o := range n.owners {
		on := b.mutable(o)
		on.ownerOf = removeRef(on.ownerOf, n.ref)
	}
	for lid, l := range b.labels {
		if slices.Contains(l.GetPublishedTo(), id) {
			c := proto.CloneOf(l)
			c.PublishedTo = slices.DeleteFunc(c.PublishedTo, func(p string) bool { return p == id })
			b.mutableLabels()[lid] = c
			b.labelChanged(lid)
		}
	}
	b.countNode(n, -1)
	b.changed(n.ref)
	b.object(n.ref)
	b.nodes.set(n.ref, nil)
	delete(b.touched, n.ref)
}

// finish checks the final state of everything the builder touched and returns the new directory.
func (b *builder) finish(revision int64) (*Directory, error) {
	if len(b.pending) > 0 {
		ids := make([]string, 0, len(b.pending))
		for _, id := range b.pending {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			if _, isLabel := b.labels[id]; isLabel {
				b.problem("", "%q is a label: only users, groups and service principals can be members or owners", id)
			} else {
				b.problem("", "dangling id %q: referenced as a member or owner but no such object exists", id)
			}
		}
	}
	check := func(n *Node) {
		if n == nil || n.kind != KindGroup {
			return
		}
		for _, o := range n.owners {
			if on := b.nodes.get(o); on != nil && on.kind == KindGroup {
				b.problem("", "group %q cannot own group %q: owners are users or service principals", on.id, n.id)
			}
		}
		if l := n.group.GetLabelId(); l != "" {
			if _, ok := b.labels[l]; !ok {
				b.problem("", "group %q carries label %q, which does not exist", n.id, l)
			}
		}
	}
	if b.loading {
		b.eachNode(check)
	} else {
		for r := range b.touched {
			check(b.nodes.get(r))
		}
	}
	if b.deletedLbl {
		b.eachNode(func(n *Node) {
			if n != nil && n.group != nil && n.group.GetLabelId() != "" {
				if _, ok := b.labels[n.group.GetLabelId()]; !ok {
					b.problem("", "label %q is still carried by group %q: change the group's label first", n.group.GetLabelId(), n.id)
				}
			}
		})
	}
	for id := range b.labelsUsed {
		l, ok := b.labels[id]
		if !ok {
			continue
		}
		for _, p := range l.GetPublishedTo() {
			if p == Everyone || !ValidID(p) {
				continue
			}
			n := b.existing(p)
			if n == nil || (n.kind != KindUser && n.kind != KindGroup) {
				b.problem("", "label %q is published to %q, which is not a user or group", id, p)
			}
		}
	}
	b.finishPrivileges()
	if err := b.problems.orNil(); err != nil {
		return nil, err
	}
	if b.loading {
		b.linkReverseEdges()
	}
	settings := b.settings
	if settings == nil {
		settings = &pb.TenantSettings{}
	}
	labels := b.labels
	if labels == nil {
		labels = map[string]*pb.Label{}
	}
	if b.delta != nil {
		b.delta.Changed = dedupeRefs(b.delta.Changed)
		b.delta.Objects = dedupeRefs(b.delta.Objects)
		b.delta.LabelsChanged = dedupeStrings(b.delta.LabelsChanged)
	}
	return &Directory{
		tenantID: b.tenantID,
		lineage:  b.lineage,
		revision: revision,
		settings: settings,
		labels:   labels,
		index:    b.index.build(),
		nodes:    b.nodes.build(),
		counts:   b.counts,
		priv:     b.priv,
	}, nil
}

// linkReverseEdges fills every node's memberOf and ownerOf from the groups' lists, in two passes: count, then
// carve each node's slice out of one shared array. Appending edge by edge would allocate ~5 times per user on a
// large tenant. The slices are capped at their length, so a later write's append copies instead of spilling into
// a neighbour's.
func (b *builder) linkReverseEdges() {
	n := b.nodes.v.length
	memberOf := make([]int32, n)
	ownerOf := make([]int32, n)
	totalM, totalO := 0, 0
	b.eachNode(func(g *Node) {
		if g == nil || g.kind != KindGroup {
			return
		}
		for _, m := range g.members {
			memberOf[m]++
		}
		for _, o := range g.owners {
			ownerOf[o]++
		}
		totalM += len(g.members)
		totalO += len(g.owners)
	})
	mArena := make([]Ref, totalM)
	oArena := make([]Ref, totalO)
	b.eachNode(func(x *Node) {
		if x == nil {
			return
		}
		k := int(memberOf[x.ref])
		x.memberOf, mArena = mArena[:0:k], mArena[k:]
		k = int(ownerOf[x.ref])
		x.ownerOf, oArena = oArena[:0:k], oArena[k:]
	})
	b.eachNode(func(g *Node) {
		if g == nil || g.kind != KindGroup {
			return
		}
		for _, m := range g.members {
			mn := b.nodes.get(m)
			mn.memberOf = append(mn.memberOf, g.ref)
		}
		for _, o := range g.owners {
			on := b.nodes.get(o)
			on.ownerOf = append(on.ownerOf, g.ref)
		}
	})
}

func (b *builder) eachNode(fn func(*Node)) {
	for r := 0; r < b.nodes.v.length; r++ {
		fn(b.nodes.get(Ref(r)))
	}
}

func dedupeRefs(refs []Ref) []Ref {
	slices.Sort(refs)
	return slices.Compact(refs)
}

func dedupeStrings(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

// subjectForTenant names a tenant in error messages.
func subjectForTenant(what, tenantID string) string {
	return fmt.Sprintf("%s of tenant %q", what, strings.TrimSpace(tenantID))
}
