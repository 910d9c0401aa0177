package directory

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"unicode/utf8"
	"unsafe"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Field numbers of the messages the wire decoder reads itself (proto/groupgate/v1/model.proto).
const (
	snapshotTenantID          = 1
	snapshotSettings          = 2
	snapshotLabels            = 3
	snapshotUsers             = 4
	snapshotServicePrincipals = 5
	snapshotGroups            = 6
	snapshotRoleDefinitions   = 7
	snapshotRoleAssignments   = 8
	snapshotUnits             = 9

	userID             = 1
	userDisplayName    = 2
	userType           = 3
	userDirectoryRoles = 4

	groupID      = 1
	groupOwners  = 8
	groupMembers = 9
)

// errNotFast says the wire decoder met something it leaves to FromSnapshot: a validation problem, or an
// encoding it does not read itself (a field it does not know, a field in an unexpected wire type).
var errNotFast = errors.New("snapshot needs the general decoder")

// fromWire builds a directory from a binary snapshot (.pb) without decoding it into a pb.Snapshot first: on the
// large preset (1M users, 10M membership edges) the decoded message holds ~600 MiB of small objects — a string
// per member id — that all live beside the directory being built from them, and the collector traces them on
// every cycle of the load. Here member and owner ids are looked up straight from the wire bytes (no string
// each), users are read field by field into their nodes, ids and names are copied once into shared arenas, and
// only the small messages (labels, settings, role definitions and assignments, units, a group's attributes) go
// through proto.Unmarshal.
//
// It takes the fast road only: on any validation problem or any encoding it does not read itself it returns
// errNotFast, and the caller decodes the whole snapshot and runs FromSnapshot, which then accepts or refuses it
// exactly as before (with the same messages). An accepted snapshot gives the directory FromSnapshot would.
func fromWire(data []byte, revision int64) (*Directory, error) {
	count, ok := countPrincipals(data)
	principals := count.users + count.servicePrincipals + count.groups
	if !ok {
		return nil, errNotFast
	}
	var (
		tenantID                                  string
		settings                                  *pb.TenantSettings
		labels, sps, roleDefs, assignments, units [][]byte
		users, groups                             [][]byte
		b                                         *builder
		strs                                      arena
		err                                       error
	)
	users, groups = make([][]byte, 0, count.users), make([][]byte, 0, count.groups)
	for rest := data; len(rest) > 0; {
		num, _, n := protowire.ConsumeTag(rest)
		rest = rest[n:]
		v, n := protowire.ConsumeBytes(rest) // countPrincipals checked every field's encoding
		rest = rest[n:]
		switch num {
		case snapshotTenantID:
			if b != nil || !utf8.Valid(v) {
				return nil, errNotFast
			}
			tenantID = string(v)
		case snapshotSettings:
			if b != nil {
				return nil, errNotFast
			}
			// A message field seen twice merges, as proto.Unmarshal does.
			if settings == nil {
				settings = &pb.TenantSettings{}
			}
			if (proto.UnmarshalOptions{Merge: true}).Unmarshal(v, settings) != nil {
				return nil, errNotFast
			}
		case snapshotLabels:
			if b != nil {
				return nil, errNotFast // labels must be known before users are created (startWire)
			}
			labels = append(labels, v)
		case snapshotUsers:
			if len(sps) > 0 {
				return nil, errNotFast // users take the first refs
			}
			if b == nil {
				if b, err = startWire(tenantID, settings, labels, principals); err != nil {
					return nil, err
				}
			}
			users = append(users, v)
		case snapshotServicePrincipals:
			sps = append(sps, v)
		case snapshotGroups:
			groups = append(groups, v)
		case snapshotRoleDefinitions:
			roleDefs = append(roleDefs, v)
		case snapshotRoleAssignments:
			assignments = append(assignments, v)
		case snapshotUnits:
			units = append(units, v)
		}
	}
	if b == nil {
		if b, err = startWire(tenantID, settings, labels, principals); err != nil {
			return nil, err
		}
	}
	// Users are created in declaration order: refs 0… FromSnapshot reserves every user, then every service
	// principal, then every group before creating any, which numbers them the same. They are decoded on every
	// core first; only the index and the node vector are written one user at a time.
	userNodes, ok := decodeUsers(users)
	if !ok {
		return nil, errNotFast
	}
	for _, n := range userNodes {
		if !b.loadUser(n) {
			return nil, errNotFast
		}
	}
	userNodes, users = nil, nil
	spMsgs := make([]*pb.ServicePrincipal, len(sps))
	for i, raw := range sps {
		spMsgs[i] = &pb.ServicePrincipal{}
		if proto.Unmarshal(raw, spMsgs[i]) != nil {
			return nil, errNotFast
		}
		b.reserve(spMsgs[i].GetId())
	}
	groupIDs := make([]string, len(groups))
	for i, raw := range groups {
		id, ok := groupIDOf(raw)
		if !ok {
			return nil, errNotFast
		}
		if _, known := b.index.lookup(string(id)); known {
			return nil, errNotFast // a duplicate id
		}
		groupIDs[i] = strs.string(id)
		b.reserve(groupIDs[i])
	}
	if b.problems.orNil() != nil {
		return nil, errNotFast
	}
	for _, sp := range spMsgs {
		b.upsertServicePrincipal("", sp)
	}

	// Groups: attributes and ref lists decoded on every core against the (now read-only) index.
	decoded, ok := decodeGroups(groups, newLoadTable(b.index.x.overlay))
	if !ok {
		return nil, errNotFast
	}
	for i := range decoded {
		g := &decoded[i]
		g.attrs.Id = groupIDs[i] // the index's copy of the id
		if !b.checkGroupAttrs("", g.attrs) || b.hasDuplicate(g.members) || b.hasDuplicate(g.owners) {
			return nil, errNotFast
		}
		b.createGroup("", g.attrs, g.members, g.owners)
		decoded[i] = wireGroup{}
	}

	for _, raw := range roleDefs {
		r := &pb.RoleDefinition{}
		if proto.Unmarshal(raw, r) != nil {
			return nil, errNotFast
		}
		b.upsertRoleDefinition("", r)
	}
	for _, raw := range units {
		u := &pb.AdministrativeUnit{}
		if proto.Unmarshal(raw, u) != nil {
			return nil, errNotFast
		}
		b.upsertUnit("", u)
	}
	for _, raw := range assignments {
		a := &pb.RoleAssignment{}
		if proto.Unmarshal(raw, a) != nil {
			return nil, errNotFast
		}
		b.addRoleAssignment("", a)
	}
	if b.problems.orNil() != nil || len(b.pending) > 0 {
		return nil, errNotFast
	}
	b.index.x = idIndex{base: b.index.x.overlay}
	d, err := b.finish(revision)
	if err != nil {
		return nil, errNotFast
	}
	return d, nil
}

// principalCounts are the users, service principals and groups of an encoded snapshot.
type principalCounts struct{ users, servicePrincipals, groups int }

// countPrincipals counts the users, service principals and groups of an encoded snapshot, checking that every
// field is one fromWire reads: a known field of the Snapshot message in the length-delimited encoding.
func countPrincipals(data []byte) (principalCounts, bool) {
	var count principalCounts
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 || typ != protowire.BytesType || num < snapshotTenantID || num > snapshotUnits {
			// Not well formed, an unknown field, or a known one in another wire type (which proto.Unmarshal
			// keeps as unknown): the general decoder's business.
			return count, false
		}
		data = data[n:]
		if n = protowire.ConsumeFieldValue(num, typ, data); n < 0 {
			return count, false
		}
		data = data[n:]
		switch num {
		case snapshotUsers:
			count.users++
		case snapshotServicePrincipals:
			count.servicePrincipals++
		case snapshotGroups:
			count.groups++
		}
	}
	return count, true
}

// startWire starts the builder of a wire-decoded tenant once the tenant id, the settings and the labels are
// known: before the first user, or at the end when there is none. proto.Marshal writes them first (it encodes in
// field order); a snapshot encoded otherwise goes to the general decoder.
func startWire(tenantID string, settings *pb.TenantSettings, labels [][]byte, principals int) (*builder, error) {
	if !ValidID(tenantID) {
		return nil, errNotFast
	}
	b := newBuilder(Empty(tenantID), subjectForTenant("snapshot", tenantID))
	b.loading = true
	b.delta = nil
	// Sized for the whole tenant up front: growing a million-entry map doubles the load time.
	b.index.x.overlay = make(map[string]Ref, principals)
	b.index.copied = true
	b.updateSettings(settings)
	// Labels before users: a principal whose id a label holds is refused by its claim, as in FromSnapshot.
	for _, raw := range labels {
		l := &pb.Label{}
		if proto.Unmarshal(raw, l) != nil {
			return nil, errNotFast
		}
		b.upsertLabel("", l)
	}
	return b, nil
}

// loadUser creates a user declared by a snapshot as reserve and then createUser would in FromSnapshot, in one
// index write instead of three lookups and a write. It reports false for anything FromSnapshot would refuse
// here: a duplicate id or one a label holds (labels are known by now; units come later in both); decodeUsers
// checked the rest.
func (b *builder) loadUser(n *Node) bool {
	if _, isLabel := b.labels[n.id]; isLabel {
		return false
	}
	index := b.index.x.overlay
	before := len(index)
	r := b.nodes.allocate()
	if index[n.id] = r; len(index) == before {
		return false // a duplicate: the snapshot is refused, so the overwritten entry does not matter
	}
	n.ref = r
	b.nodes.v.chunks[r>>chunkBits][r&(chunkSize-1)] = n // allocate made the chunk this builder's
	b.countNode(n, +1)
	return true
}

// decodeUsers decodes User messages on every core into their nodes (refs not yet given), reporting false for
// one FromSnapshot would refuse by itself (a bad id or user type) or one the wire decoder does not read.
func decodeUsers(users [][]byte) ([]*Node, bool) {
	out := make([]*Node, len(users))
	workers := runtime.GOMAXPROCS(0)
	const chunk = 4096 // users a worker takes at a time
	var next atomic.Int64
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var strs arena
			for !failed.Load() {
				from := int(next.Add(chunk)) - chunk
				if from >= len(users) {
					return
				}
				for i := from; i < min(from+chunk, len(users)); i++ {
					if out[i] = decodeUser(users[i], &strs); out[i] == nil {
						failed.Store(true)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	return out, !failed.Load()
}

// hasDuplicate reports whether a ref list names a ref twice (see refList).
func (b *builder) hasDuplicate(refs []Ref) bool {
	b.listStamp++
	for _, r := range refs {
		for int(r) >= len(b.stamps) {
			b.stamps = append(b.stamps, make([]uint32, max(1024, len(b.stamps)))...)
		}
		if b.stamps[r] == b.listStamp {
			return true
		}
		b.stamps[r] = b.listStamp
	}
	return false
}

// decodeUser reads a User message as proto.Unmarshal would (a scalar field seen twice: the last wins), with its
// strings copied into strs, into a new node (its ref not yet given). It returns nil for anything it does not read
// itself, and for a bad id or user type.
func decodeUser(b []byte, strs *arena) *Node {
	var (
		id, displayName string
		kind            pb.UserType
		roles           []string
	)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil
		}
		b = b[n:]
		switch {
		case typ == protowire.BytesType && (num == userID || num == userDisplayName || num == userDirectoryRoles):
			v, n := protowire.ConsumeBytes(b)
			if n < 0 || !utf8.Valid(v) {
				return nil
			}
			b = b[n:]
			switch num {
			case userID:
				id = strs.string(v)
			case userDisplayName:
				displayName = strs.string(v)
			default:
				roles = append(roles, string(v))
			}
		case typ == protowire.VarintType && num == userType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil
			}
			b = b[n:]
			kind = pb.UserType(int32(v))
		default:
			return nil
		}
	}
	switch kind {
	case pb.UserType_USER_TYPE_MEMBER, pb.UserType_USER_TYPE_GUEST:
	default:
		return nil
	}
	if !ValidID(id) {
		return nil
	}
	return &Node{id: id, kind: KindUser, userType: kind, userDisplayName: displayName, userRoles: roles}
}

// groupIDOf is the id a Group message carries (the last one, should it carry several).
func groupIDOf(b []byte) ([]byte, bool) {
	var id []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false
		}
		b = b[n:]
		if num == groupID && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, false
			}
			id, b = v, b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return nil, false
		}
		b = b[n:]
	}
	return id, id != nil
}

// wireGroup is one group read from the wire: its attributes (Members and Owners nil) and resolved lists.
type wireGroup struct {
	attrs           *pb.Group
	members, owners []Ref
}

// decodeGroups decodes every group on all cores. Each member and owner id is looked up in the table straight
// from the wire bytes; ok is false when one is not a reserved id, a group lists itself, or a message does not
// decode.
func decodeGroups(groups [][]byte, index *loadTable) ([]wireGroup, bool) {
	out := make([]wireGroup, len(groups))
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	var failed sync.Once
	ok := true
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var s groupScratch
			for i := w; i < len(groups); i += workers {
				var good bool
				out[i], good = s.decodeGroup(groups[i], index)
				if !good {
					failed.Do(func() { ok = false })
					return
				}
			}
		}()
	}
	wg.Wait()
	return out, ok
}

// groupScratch is what decodeGroup reuses from group to group: the member and owner ids as wire bytes, and the
// fields it leaves to proto.Unmarshal.
type groupScratch struct {
	members, owners [][]byte
	rest            []byte
}

// decodeGroup reads one Group message: id, members and owners itself, every other field (copied into rest)
// through proto.Unmarshal.
func (s *groupScratch) decodeGroup(b []byte, index *loadTable) (wireGroup, bool) {
	var g wireGroup
	var id []byte
	s.members, s.owners, s.rest = s.members[:0], s.owners[:0], s.rest[:0]
	for len(b) > 0 {
		start := b
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return g, false
		}
		b = b[n:]
		if typ == protowire.BytesType && (num == groupID || num == groupMembers || num == groupOwners) {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return g, false
			}
			b = b[n:]
			switch num {
			case groupID:
				id = v
			case groupMembers:
				s.members = append(s.members, v)
			case groupOwners:
				s.owners = append(s.owners, v)
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return g, false
		}
		b = b[n:]
		s.rest = append(s.rest, start[:len(start)-len(b)]...)
	}
	g.members = make([]Ref, len(s.members))
	if !index.lookupAll(s.members, g.members) {
		return g, false
	}
	if len(s.owners) > 0 {
		g.owners = make([]Ref, len(s.owners))
		if !index.lookupAll(s.owners, g.owners) {
			return g, false
		}
	}
	self, known := index.lookup(id)
	if !known {
		return g, false
	}
	for _, m := range g.members {
		if m == self {
			return g, false
		}
	}
	g.attrs = &pb.Group{}
	if proto.Unmarshal(s.rest, g.attrs) != nil {
		return g, false
	}
	return g, true
}

// arena copies strings into shared blocks: a million ids and names as a few hundred allocations instead of two
// million, which the collector never scans (they hold no pointers). A block lives as long as any string in it.
type arena struct{ block []byte }

const arenaBlock = 1 << 20

func (a *arena) string(v []byte) string {
	if len(v) == 0 {
		return ""
	}
	if len(v) > arenaBlock/8 {
		return string(v)
	}
	if cap(a.block)-len(a.block) < len(v) {
		a.block = make([]byte, 0, arenaBlock)
	}
	start := len(a.block)
	a.block = append(a.block, v...)
	return unsafe.String(&a.block[start], len(v))
}
