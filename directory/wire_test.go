package directory_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/groupgate/groupgate/directory"
	"github.com/groupgate/groupgate/directory/demo"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/conformance"
	"github.com/groupgate/groupgate/internal/workload"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// wireCorpus is every snapshot the repository holds or makes: the demo tenant, each conformance fixture's tenant
// and a generated tenant, encoded as a .pb file holds them.
func wireCorpus(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	add := func(name string, s *pb.Snapshot) {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = b
	}
	add("demo", demo.Snapshot())
	for _, preset := range []string{"tiny", "small"} { // small: users decoded by every worker, in several chunks
		p, _ := workload.Preset(preset)
		add("generated "+preset, workload.Generate(p))
	}
	for name, f := range conformance.Files(t, filepath.Join("..", "testdata", "conformance")) {
		if f.Demo {
			continue
		}
		s := &pb.Snapshot{}
		if err := protojson.Unmarshal(f.Tenant, s); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		add(name, s)
	}
	return out
}

// sameDirectory fails the test when two directories differ in anything a reader sees: the export, the counts,
// and each ref's id and its four edge lists in order (the reverse edges are not part of the export).
func sameDirectory(t *testing.T, name string, got, want *directory.Directory) {
	t.Helper()
	if !proto.Equal(got.Snapshot(), want.Snapshot()) {
		t.Errorf("%s: the wire decoder's tenant exports differently from FromSnapshot's", name)
	}
	if got.Counts() != want.Counts() || got.RefLimit() != want.RefLimit() || got.TenantID() != want.TenantID() ||
		got.Revision() != want.Revision() {
		t.Errorf("%s: counts %+v, %d refs; want %+v, %d refs", name, got.Counts(), got.RefLimit(), want.Counts(), want.RefLimit())
	}
	for r := range want.RefLimit() {
		g, w := got.Node(directory.Ref(r)), want.Node(directory.Ref(r))
		if (g == nil) != (w == nil) {
			t.Fatalf("%s: ref %d: node %v, want %v", name, r, g, w)
		}
		if w == nil {
			continue
		}
		if g.ID() != w.ID() || g.Kind() != w.Kind() || !slices.Equal(g.Members(), w.Members()) ||
			!slices.Equal(g.Owners(), w.Owners()) || !slices.Equal(g.MemberOf(), w.MemberOf()) ||
			!slices.Equal(g.OwnerOf(), w.OwnerOf()) || g.DisplayName() != w.DisplayName() ||
			g.UserType() != w.UserType() || !slices.Equal(g.DirectoryRoles(), w.DirectoryRoles()) {
			t.Fatalf("%s: ref %d (%s) differs between the decoders", name, r, w.ID())
		}
		if back, ok := got.Lookup(w.ID()); !ok || back.Ref() != w.Ref() {
			t.Fatalf("%s: %s does not look up to ref %d", name, w.ID(), r)
		}
	}
}

// TestWireDecoderMatchesFromSnapshot: every snapshot the repository has loads through the wire decoder (not
// the fallback) into the directory FromSnapshot builds from the decoded message.
func TestWireDecoderMatchesFromSnapshot(t *testing.T) {
	for name, data := range wireCorpus(t) {
		s := &pb.Snapshot{}
		if err := proto.Unmarshal(data, s); err != nil {
			t.Fatal(err)
		}
		want, err := directory.FromSnapshot(s, 1)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := directory.FromWire(data, 1)
		if err != nil {
			t.Fatalf("%s: the wire decoder gave up: %v", name, err)
		}
		sameDirectory(t, name, got, want)
		reverseEdgesMatch(t, name, got)
	}
}

// reverseEdgesMatch checks each principal's MemberOf and OwnerOf against the groups' lists: the groups that list
// it, in ref order (both decoders share the linking, so comparing them cannot catch its mistakes).
func reverseEdgesMatch(t *testing.T, name string, d *directory.Directory) {
	t.Helper()
	memberOf, ownerOf := map[directory.Ref][]directory.Ref{}, map[directory.Ref][]directory.Ref{}
	for g := range d.Groups() {
		for _, m := range g.Members() {
			memberOf[m] = append(memberOf[m], g.Ref())
		}
		for _, o := range g.Owners() {
			ownerOf[o] = append(ownerOf[o], g.Ref())
		}
	}
	for n := range d.Nodes() {
		if !slices.Equal(n.MemberOf(), memberOf[n.Ref()]) || !slices.Equal(n.OwnerOf(), ownerOf[n.Ref()]) {
			t.Fatalf("%s: %s is a member of %v and owns %v, want %v and %v", name, n.ID(), n.MemberOf(), n.OwnerOf(),
				memberOf[n.Ref()], ownerOf[n.Ref()])
		}
	}
}

// TestWireDecoderLeavesTheRestToFromSnapshot: what the wire decoder does not read itself, and every snapshot
// FromSnapshot refuses, goes to the general decoder — and LoadFile still loads the former and refuses the latter
// with FromSnapshot's message.
func TestWireDecoderLeavesTheRestToFromSnapshot(t *testing.T) {
	valid := func() *pb.Snapshot {
		return &pb.Snapshot{
			TenantId: "t",
			Labels:   []*pb.Label{{Id: "l1", PublishedTo: []string{"*"}}},
			Users:    []*pb.User{{Id: "u1", UserType: pb.UserType_USER_TYPE_MEMBER}, {Id: "u2", UserType: pb.UserType_USER_TYPE_GUEST}},
			Groups: []*pb.Group{
				{Id: "g1", Kind: 1, Membership: 1, LabelId: "l1", Members: []string{"u1", "g2"}, Owners: []string{"u1"}},
				{Id: "g2", Kind: 1, Membership: 1, Members: []string{"u2"}},
			},
		}
	}
	encode := func(s *pb.Snapshot) []byte {
		b, err := proto.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name   string
		data   func() []byte
		loads  bool // FromSnapshot accepts it
		reason string
	}{
		{"unknown top-level field", func() []byte {
			return protowire.AppendString(protowire.AppendTag(encode(valid()), 99, protowire.BytesType), "x")
		}, true, "a field it does not know"},
		{"unknown user field", func() []byte {
			s := valid()
			u := encode(s)
			user := protowire.AppendVarint(protowire.AppendTag(nil, 42, protowire.VarintType), 7)
			return protowire.AppendBytes(protowire.AppendTag(u, 4, protowire.BytesType), append(user, encode(&pb.Snapshot{Users: []*pb.User{{Id: "u3", UserType: 1}}})[2:]...))
		}, true, "a user field it does not know"},
		{"duplicate user", func() []byte {
			s := valid()
			s.Users = append(s.Users, &pb.User{Id: "u1", UserType: 1})
			return encode(s)
		}, false, "a duplicate"},
		{"user and group share an id", func() []byte {
			s := valid()
			s.Users = append(s.Users, &pb.User{Id: "g2", UserType: 1})
			return encode(s)
		}, false, "a duplicate"},
		{"user and label share an id", func() []byte {
			s := valid()
			s.Users = append(s.Users, &pb.User{Id: "l1", UserType: 1})
			return encode(s)
		}, false, "a duplicate"},
		{"dangling member", func() []byte {
			s := valid()
			s.Groups[0].Members = append(s.Groups[0].Members, "u9")
			return encode(s)
		}, false, "an unknown member"},
		{"self-membership", func() []byte {
			s := valid()
			s.Groups[1].Members = append(s.Groups[1].Members, "g2")
			return encode(s)
		}, false, "a group in itself"},
		{"member listed twice", func() []byte {
			s := valid()
			s.Groups[1].Members = append(s.Groups[1].Members, "u2")
			return encode(s)
		}, false, "a duplicate member"},
		{"unspecified user type", func() []byte {
			s := valid()
			s.Users[1].UserType = 0
			return encode(s)
		}, false, "a bad enum"},
		{"unknown group kind", func() []byte {
			s := valid()
			s.Groups[1].Kind = 42
			return encode(s)
		}, false, "a bad enum"},
		{"bad tenant id", func() []byte {
			s := valid()
			s.TenantId = "bad tenant"
			return encode(s)
		}, false, "a bad id"},
		{"group as owner", func() []byte {
			s := valid()
			s.Groups[1].Owners = []string{"g1"}
			return encode(s)
		}, false, "a group owning a group"},
		{"dangling label", func() []byte {
			s := valid()
			s.Groups[1].LabelId = "l9"
			return encode(s)
		}, false, "an unknown label"},
		{"invalid UTF-8 member", func() []byte {
			s := valid()
			s.Groups[1].Members = append(s.Groups[1].Members, "u\xff")
			b, _ := proto.MarshalOptions{}.Marshal(s) // refuses invalid UTF-8: encode by hand
			if b != nil {
				return b
			}
			g := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "g3")
			g = protowire.AppendVarint(protowire.AppendTag(g, 3, protowire.VarintType), 1)
			g = protowire.AppendVarint(protowire.AppendTag(g, 4, protowire.VarintType), 1)
			g = protowire.AppendString(protowire.AppendTag(g, 9, protowire.BytesType), "u\xff")
			return protowire.AppendBytes(protowire.AppendTag(encode(valid()), 6, protowire.BytesType), g)
		}, false, "invalid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := tt.data()
			if _, err := directory.FromWire(data, 1); !errors.Is(err, directory.ErrNotFast) {
				t.Fatalf("the wire decoder took %s itself (err %v), want it left to FromSnapshot", tt.reason, err)
			}
			path := filepath.Join(t.TempDir(), "t.pb")
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			d, err := directory.LoadFile(path)
			s := &pb.Snapshot{}
			var want *directory.Directory
			wantErr := proto.Unmarshal(data, s)
			if wantErr == nil {
				want, wantErr = directory.FromSnapshot(s, 1)
			}
			switch {
			case tt.loads && (err != nil || wantErr != nil):
				t.Fatalf("LoadFile: %v (FromSnapshot: %v), want the tenant loaded", err, wantErr)
			case tt.loads:
				sameDirectory(t, tt.name, d, want)
			case err == nil || wantErr == nil:
				t.Fatalf("LoadFile accepted it (err %v; FromSnapshot: %v), want it refused", err, wantErr)
			case err.Error() != path+": "+wantErr.Error():
				t.Errorf("LoadFile said %q, want FromSnapshot's %q", err, wantErr)
			}
		})
	}
}
