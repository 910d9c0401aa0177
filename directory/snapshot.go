package directory

import (
	"fmt"
	"runtime"
	"sync"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"google.golang.org/protobuf/proto"
)

// FromSnapshot builds a tenant from a snapshot, validating it whole: bad id syntax, unset enums, duplicate ids
// and dangling member, owner, label or published_to ids refuse it with a *ValidationError naming every offending
// id. Facts that merely violate policy (a guest under a guest-blocking label, a nesting cycle) are accepted: real
// tenants contain them, and decisions and Audit judge them.
func FromSnapshot(s *pb.Snapshot, revision int64) (*Directory, error) {
	tenantID := s.GetTenantId()
	b := newBuilder(Empty(tenantID), subjectForTenant("snapshot", tenantID))
	b.loading = true
	b.delta = nil
	if !ValidID(tenantID) {
		b.problem("tenant_id", "invalid tenant id %q: want "+IDForm, tenantID)
	}
	// Size the index for the whole tenant up front: growing a million-entry map doubles the load time.
	b.index.x.overlay = make(map[string]Ref, len(s.GetUsers())+len(s.GetGroups())+len(s.GetServicePrincipals()))
	b.index.copied = true
	b.updateSettings(s.GetSettings())
	// Number principals in the order the snapshot declares them (not the order they are first referenced), so
	// that an export lists them in the same order as the file it was loaded from.
	for _, u := range s.GetUsers() {
		b.reserve(u.GetId())
	}
	for _, sp := range s.GetServicePrincipals() {
		b.reserve(sp.GetId())
	}
	for _, g := range s.GetGroups() {
		b.reserve(g.GetId())
	}
	for i, l := range s.GetLabels() {
		b.upsertLabel(fmt.Sprintf("labels[%d]", i), l)
	}
	for i, u := range s.GetUsers() {
		b.upsertUser(fmt.Sprintf("users[%d]", i), u)
	}
	for i, sp := range s.GetServicePrincipals() {
		b.upsertServicePrincipal(fmt.Sprintf("service_principals[%d]", i), sp)
	}
	b.preResolved = resolveMembers(b.index.x.overlay, s.GetGroups())
	for i, g := range s.GetGroups() {
		b.upsertGroup(fmt.Sprintf("groups[%d]", i), g)
	}
	b.preResolved = nil
	for i, r := range s.GetRoleDefinitions() {
		b.upsertRoleDefinition(fmt.Sprintf("role_definitions[%d]", i), r)
	}
	for i, u := range s.GetAdministrativeUnits() {
		b.upsertUnit(fmt.Sprintf("administrative_units[%d]", i), u)
	}
	for i, a := range s.GetRoleAssignments() {
		b.addRoleAssignment(fmt.Sprintf("role_assignments[%d]", i), a)
	}
	// Everything goes into the immutable base index, so later writes start with an empty overlay.
	b.index.x = idIndex{base: b.index.x.overlay}
	return b.finish(revision)
}

// Snapshot exports the whole tenant. Objects come in ref order (the order they were created), labels by id.
func (d *Directory) Snapshot() *pb.Snapshot {
	s := &pb.Snapshot{TenantId: d.tenantID, Settings: proto.CloneOf(d.settings), Labels: cloneLabels(d.Labels())}
	for n := range d.Nodes() {
		d.appendNode(s, n)
	}
	d.exportPrivileges(s)
	return s
}

// SnapshotParts exports the tenant in parts of about objectsPerPart objects each (a group's members and owners
// count as objects; one group is never split), calling emit for each part. Merged in order (proto.Merge, or
// concatenating their encodings), the parts equal Snapshot(). The first part carries tenant_id, settings and
// the labels.
func (d *Directory) SnapshotParts(objectsPerPart int, emit func(*pb.Snapshot) error) error {
	part := &pb.Snapshot{TenantId: d.tenantID, Settings: proto.CloneOf(d.settings), Labels: cloneLabels(d.Labels())}
	d.exportPrivileges(part)
	size, emitted := 0, false
	for n := range d.Nodes() {
		d.appendNode(part, n)
		size += 1 + len(n.members) + len(n.owners)
		if size >= objectsPerPart {
			if err := emit(part); err != nil {
				return err
			}
			part, size, emitted = &pb.Snapshot{}, 0, true
		}
	}
	if size > 0 || !emitted {
		return emit(part)
	}
	return nil
}

func (d *Directory) appendNode(s *pb.Snapshot, n *Node) {
	switch n.kind {
	case KindUser:
		s.Users = append(s.Users, n.User())
	case KindServicePrincipal:
		s.ServicePrincipals = append(s.ServicePrincipals, proto.CloneOf(n.sp))
	case KindGroup:
		g := proto.CloneOf(n.group)
		g.Members = d.IDs(n.members)
		g.Owners = d.IDs(n.owners)
		s.Groups = append(s.Groups, g)
	}
}

func cloneLabels(ls []*pb.Label) []*pb.Label {
	out := make([]*pb.Label, len(ls))
	for i, l := range ls {
		out[i] = proto.CloneOf(l)
	}
	return out
}

// resolveMembers looks up every group's member ids in the (by now read-only) index on all cores: on a large
// tenant these ten million map lookups are most of the load time.
func resolveMembers(index map[string]Ref, groups []*pb.Group) map[string][]Ref {
	out := make([][]Ref, len(groups))
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(groups); i += workers {
				g := groups[i]
				refs := make([]Ref, len(g.GetMembers()))
				for j, id := range g.GetMembers() {
					if r, ok := index[id]; ok && id != g.GetId() {
						refs[j] = r
					} else {
						refs[j] = noRef
					}
				}
				out[i] = refs
			}
		}()
	}
	wg.Wait()
	byID := make(map[string][]Ref, len(groups))
	for i, g := range groups {
		if _, dup := byID[g.GetId()]; !dup {
			byID[g.GetId()] = out[i]
		}
	}
	return byID
}

// reserve gives a well-formed id not yet indexed the next ref, without creating a node for it.
func (b *builder) reserve(id string) {
	if !ValidID(id) {
		return
	}
	if _, ok := b.index.lookup(id); !ok {
		b.index.add(id, b.nodes.allocate())
	}
}
