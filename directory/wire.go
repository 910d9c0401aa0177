package directory

import (
	"errors"
	"runtime"
	"sync"
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
	principals, ok := countPrincipals(data)
	if !ok {
		return nil, errNotFast
	}
	var (
		tenantID                                  string
		settings                                  *pb.TenantSettings
		labels, sps, roleDefs, assignments, units [][]byte
		groups                                    [][]byte
		b                                         *builder
		u                                         wireUser
		strs                                      arena
		err                                       error
	)
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
			// Users are created as they are read, in declaration order: refs 0… FromSnapshot reserves
			// every user, then every service principal, then every group before creating any, which numbers
			// them the same.
			if !u.decode(v, &strs) || !b.loadUser(u.id, u.displayName, u.userType, u.roles) {
				return nil, errNotFast
			}
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
	decoded, ok := decodeGroups(groups, b.index.x.overlay)
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

// countPrincipals counts the users, service principals and groups of an encoded snapshot, checking that every
// field is one fromWire reads: a known field of the Snapshot message in the length-delimited encoding.
func countPrincipals(data []byte) (int, bool) {
	count := 0
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 || typ != protowire.BytesType || num < snapshotTenantID || num > snapshotUnits {
			// Not well formed, an unknown field, or a known one in another wire type (which proto.Unmarshal
			// keeps as unknown): the general decoder's business.
			return 0, false
		}
		data = data[n:]
		if n = protowire.ConsumeFieldValue(num, typ, data); n < 0 {
			return 0, false
		}
		data = data[n:]
		if num == snapshotUsers || num == snapshotServicePrincipals || num == snapshotGroups {
			count++
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
// here: a bad or duplicate id (labels are known by now; units come later in both), or a bad user type.
func (b *builder) loadUser(id, displayName string, userType pb.UserType, roles []string) bool {
	switch userType {
	case pb.UserType_USER_TYPE_MEMBER, pb.UserType_USER_TYPE_GUEST:
	default:
		return false
	}
	if !ValidID(id) {
		return false
	}
	if _, isLabel := b.labels[id]; isLabel {
		return false
	}
	index := b.index.x.overlay
	before := len(index)
	r := b.nodes.allocate()
	if index[id] = r; len(index) == before {
		return false // a duplicate: the snapshot is refused, so the overwritten entry does not matter
	}
	n := &Node{id: id, ref: r, kind: KindUser, userType: userType, userDisplayName: displayName, userRoles: roles}
	b.nodes.v.chunks[r>>chunkBits][r&(chunkSize-1)] = n // allocate made the chunk this builder's
	b.countNode(n, +1)
	return true
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

// wireUser is one user read from the wire; decode reuses it from user to user.
type wireUser struct {
	id, displayName string
	userType        pb.UserType
	roles           []string
}

// decode reads a User message as proto.Unmarshal would (a scalar field seen twice: the last wins), with its
// strings copied into strs. It reports false for anything it does not read itself.
func (u *wireUser) decode(b []byte, strs *arena) bool {
	*u = wireUser{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch {
		case typ == protowire.BytesType && (num == userID || num == userDisplayName || num == userDirectoryRoles):
			v, n := protowire.ConsumeBytes(b)
			if n < 0 || !utf8.Valid(v) {
				return false
			}
			b = b[n:]
			switch num {
			case userID:
				u.id = strs.string(v)
			case userDisplayName:
				u.displayName = strs.string(v)
			default:
				u.roles = append(u.roles, string(v))
			}
		case typ == protowire.VarintType && num == userType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return false
			}
			b = b[n:]
			u.userType = pb.UserType(int32(v))
		default:
			return false
		}
	}
	return true
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

// decodeGroups decodes every group on all cores. Each member and owner id is looked up in the index straight
// from the wire bytes; ok is false when one is not a reserved id, a group lists itself, or a message does not
// decode.
func decodeGroups(groups [][]byte, index map[string]Ref) ([]wireGroup, bool) {
	out := make([]wireGroup, len(groups))
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	var failed sync.Once
	ok := true
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var rest []byte
			for i := w; i < len(groups); i += workers {
				var good bool
				out[i], rest, good = decodeGroup(groups[i], index, rest[:0])
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

// decodeGroup reads one Group message: id, members and owners itself, every other field (copied into rest)
// through proto.Unmarshal.
func decodeGroup(b []byte, index map[string]Ref, rest []byte) (wireGroup, []byte, bool) {
	var g wireGroup
	var id []byte
	var self Ref
	nMembers, nOwners := 0, 0
	// Count first, so each list is allocated once at its size.
	for c := b; len(c) > 0; {
		num, typ, n := protowire.ConsumeTag(c)
		if n < 0 {
			return g, rest, false
		}
		c = c[n:]
		if typ == protowire.BytesType {
			switch num {
			case groupMembers:
				nMembers++
			case groupOwners:
				nOwners++
			}
		}
		n = protowire.ConsumeFieldValue(num, typ, c)
		if n < 0 {
			return g, rest, false
		}
		c = c[n:]
	}
	g.members = make([]Ref, 0, nMembers)
	if nOwners > 0 {
		g.owners = make([]Ref, 0, nOwners)
	}
	lookup := func(v []byte) (Ref, bool) {
		r, ok := index[string(v)] // no allocation: the compiler looks the bytes up as they are
		return r, ok
	}
	for len(b) > 0 {
		start := b
		num, typ, n := protowire.ConsumeTag(b)
		b = b[n:]
		if typ == protowire.BytesType && (num == groupID || num == groupMembers || num == groupOwners) {
			v, n := protowire.ConsumeBytes(b)
			b = b[n:]
			switch num {
			case groupID:
				id = v
			case groupMembers:
				r, ok := lookup(v)
				if !ok {
					return g, rest, false
				}
				g.members = append(g.members, r)
			case groupOwners:
				r, ok := lookup(v)
				if !ok {
					return g, rest, false
				}
				g.owners = append(g.owners, r)
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		b = b[n:]
		rest = append(rest, start[:len(start)-len(b)]...)
	}
	self, known := lookup(id)
	if !known {
		return g, rest, false
	}
	for _, m := range g.members {
		if m == self {
			return g, rest, false
		}
	}
	g.attrs = &pb.Group{}
	if proto.Unmarshal(rest, g.attrs) != nil {
		return g, rest, false
	}
	return g, rest, true
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
