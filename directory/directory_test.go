package directory

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"google.golang.org/protobuf/proto"
)

// base is a small valid tenant; tests derive broken variants from it.
func base() *pb.Snapshot {
	return &pb.Snapshot{
		TenantId: "t",
		Settings: &pb.TenantSettings{Licenses: []string{"ENTRA_ID_P1"}},
		Labels:   []*pb.Label{{Id: "l1", PublishedTo: []string{"*", "g1"}}},
		Users: []*pb.User{
			{Id: "u1", UserType: pb.UserType_USER_TYPE_MEMBER},
			{Id: "u2", UserType: pb.UserType_USER_TYPE_GUEST},
		},
		ServicePrincipals: []*pb.ServicePrincipal{{Id: "sp1"}},
		Groups: []*pb.Group{
			{Id: "g1", Kind: pb.GroupKind_GROUP_KIND_SECURITY, Membership: pb.Membership_MEMBERSHIP_ASSIGNED, LabelId: "l1", Members: []string{"u1", "g2"}, Owners: []string{"u1", "sp1"}},
			{Id: "g2", Kind: pb.GroupKind_GROUP_KIND_SECURITY, Membership: pb.Membership_MEMBERSHIP_ASSIGNED, Members: []string{"u2", "sp1"}},
		},
	}
}

func TestSnapshotValidation(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(s *pb.Snapshot)
		ids    []string // every one must be named in the error
	}{
		{"duplicate user", func(s *pb.Snapshot) { s.Users = append(s.Users, &pb.User{Id: "u1", UserType: 1}) }, []string{"u1"}},
		{"user and group share an id", func(s *pb.Snapshot) { s.Users = append(s.Users, &pb.User{Id: "g2", UserType: 1}) }, []string{"g2"}},
		{"user and label share an id", func(s *pb.Snapshot) { s.Users = append(s.Users, &pb.User{Id: "l1", UserType: 1}) }, []string{"l1"}},
		{"dangling member", func(s *pb.Snapshot) { s.Groups[0].Members = append(s.Groups[0].Members, "u9") }, []string{"u9"}},
		{"dangling owner", func(s *pb.Snapshot) { s.Groups[1].Owners = []string{"u8"} }, []string{"u8"}},
		{"dangling label", func(s *pb.Snapshot) { s.Groups[1].LabelId = "l9" }, []string{"l9"}},
		{"dangling published_to", func(s *pb.Snapshot) { s.Labels[0].PublishedTo = append(s.Labels[0].PublishedTo, "g9") }, []string{"g9"}},
		{"label as member", func(s *pb.Snapshot) { s.Groups[1].Members = append(s.Groups[1].Members, "l1") }, []string{"l1"}},
		{"group as owner", func(s *pb.Snapshot) { s.Groups[1].Owners = []string{"g1"} }, []string{"g1"}},
		{"empty id", func(s *pb.Snapshot) { s.Users[0].Id = "" }, nil},
		{"id too long", func(s *pb.Snapshot) { s.Users[0].Id = strings.Repeat("x", 257) }, nil},
		{"bad character", func(s *pb.Snapshot) { s.Users[0].Id = "u 1" }, []string{"u 1"}},
		{"unspecified user type", func(s *pb.Snapshot) { s.Users[1].UserType = 0 }, []string{"u2"}},
		{"unknown group kind", func(s *pb.Snapshot) { s.Groups[1].Kind = 42 }, []string{"g2"}},
		{"unspecified membership", func(s *pb.Snapshot) { s.Groups[1].Membership = 0 }, []string{"g2"}},
		{"self-membership", func(s *pb.Snapshot) { s.Groups[1].Members = append(s.Groups[1].Members, "g2") }, []string{"g2"}},
		{"member listed twice", func(s *pb.Snapshot) { s.Groups[1].Members = append(s.Groups[1].Members, "u2") }, []string{"g2", "u2"}},
		{"bad tenant id", func(s *pb.Snapshot) { s.TenantId = "bad tenant" }, []string{"bad tenant"}},
		{"several problems at once", func(s *pb.Snapshot) {
			s.Groups[0].Members = append(s.Groups[0].Members, "ghost-a")
			s.Groups[1].Members = append(s.Groups[1].Members, "ghost-b")
		}, []string{"ghost-a", "ghost-b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := base()
			tt.break_(s)
			_, err := FromSnapshot(s, 1)
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("got %v, want a *ValidationError", err)
			}
			for _, id := range tt.ids {
				if !strings.Contains(err.Error(), `"`+id+`"`) {
					t.Errorf("error does not name %q: %v", id, err)
				}
			}
		})
	}
}

func TestSnapshotAcceptsPolicyViolatingFacts(t *testing.T) {
	s := base()
	// A cycle, a forward reference (g1 lists g2 before it is declared), and a guest under a label.
	s.Groups[1].Members = append(s.Groups[1].Members, "g1")
	if _, err := FromSnapshot(s, 1); err != nil {
		t.Fatal(err)
	}
}

func TestSnapshotRoundTripsThroughEveryFormat(t *testing.T) {
	d, err := FromSnapshot(base(), 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"t.json", "t.json.gz", "t.pb", "t.pb.gz"} {
		path := filepath.Join(t.TempDir(), name)
		if err := WriteSnapshotFile(path, d.Snapshot()); err != nil {
			t.Fatal(err)
		}
		back, err := LoadFile(path)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !proto.Equal(back.Snapshot(), base()) || back.Counts() != d.Counts() {
			t.Errorf("%s: round trip changed the tenant", name)
		}
	}
}

func TestSnapshotFileErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := map[string]string{
		write("typo.json", `{"tenantId": "t", "userz": []}`): "userz",
		write("t.yaml", `tenantId: t`):                       "unknown snapshot format",
		write("bad.json.gz", `not gzip`):                     "gzip",
	}
	for path, want := range tests {
		if _, err := LoadFile(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error mentioning %q", filepath.Base(path), err, want)
		}
	}
}

func change(c any) *pb.Change {
	switch v := c.(type) {
	case *pb.User:
		return &pb.Change{Change: &pb.Change_UpsertUser{UpsertUser: v}}
	case *pb.Group:
		return &pb.Change{Change: &pb.Change_UpsertGroup{UpsertGroup: v}}
	case *pb.Label:
		return &pb.Change{Change: &pb.Change_UpsertLabel{UpsertLabel: v}}
	case *pb.ServicePrincipal:
		return &pb.Change{Change: &pb.Change_UpsertServicePrincipal{UpsertServicePrincipal: v}}
	case *pb.TenantSettings:
		return &pb.Change{Change: &pb.Change_UpdateSettings{UpdateSettings: v}}
	}
	panic("unknown change")
}

func addMember(g, m string) *pb.Change {
	return &pb.Change{Change: &pb.Change_AddMember{AddMember: &pb.MemberChange{GroupId: g, MemberId: m}}}
}
func removeMember(g, m string) *pb.Change {
	return &pb.Change{Change: &pb.Change_RemoveMember{RemoveMember: &pb.MemberChange{GroupId: g, MemberId: m}}}
}
func deleteObject(id string) *pb.Change {
	return &pb.Change{Change: &pb.Change_DeleteObject{DeleteObject: &pb.DeleteObject{Id: id}}}
}
func addOwner(g, o string) *pb.Change {
	return &pb.Change{Change: &pb.Change_AddOwner{AddOwner: &pb.OwnerChange{GroupId: g, OwnerId: o}}}
}

// recount computes counts from scratch, to check the incremental ones.
func recount(d *Directory) Counts {
	var c Counts
	for n := range d.Nodes() {
		switch n.Kind() {
		case KindUser:
			c.Users++
			if n.IsGuest() {
				c.Guests++
			}
		case KindGroup:
			c.Groups++
			c.Memberships += int64(len(n.Members()))
			if n.Group().GetIsAssignableToRole() {
				c.RoleAssignableGroups++
			}
		case KindServicePrincipal:
			c.ServicePrincipals++
		}
	}
	c.Labels = int64(len(d.Labels()))
	return c
}

func TestApply(t *testing.T) {
	tests := []struct {
		name    string
		changes []*pb.Change
		check   func(t *testing.T, d *Directory)
		err     string // a substring of the refusal; empty: accepted
	}{
		{"add a member", []*pb.Change{addMember("g2", "u1")}, func(t *testing.T, d *Directory) {
			g, _ := d.Lookup("g2")
			u, _ := d.Lookup("u1")
			if !slices.Contains(g.Members(), u.Ref()) || !slices.Contains(u.MemberOf(), g.Ref()) {
				t.Error("edge or reverse edge missing")
			}
		}, ""},
		{"adding an existing member is a no-op", []*pb.Change{addMember("g1", "u1")}, nil, ""},
		{"removing an absent member is a no-op", []*pb.Change{removeMember("g1", "u2")}, nil, ""},
		{"remove a member", []*pb.Change{removeMember("g1", "g2")}, func(t *testing.T, d *Directory) {
			g2, _ := d.Lookup("g2")
			if len(g2.MemberOf()) != 0 {
				t.Error("reverse edge left behind")
			}
		}, ""},
		{"forward reference inside a batch", []*pb.Change{addMember("g2", "u3"), change(&pb.User{Id: "u3", UserType: 1})}, nil, ""},
		{"upsert replaces a group's members and owners", []*pb.Change{change(&pb.Group{Id: "g1", Kind: 1, Membership: 1, Members: []string{"u2"}, Owners: []string{"sp1"}})}, func(t *testing.T, d *Directory) {
			g, _ := d.Lookup("g1")
			u1, _ := d.Lookup("u1")
			if len(g.Members()) != 1 || len(u1.MemberOf()) != 0 || len(u1.OwnerOf()) != 0 || g.Group().GetLabelId() != "" {
				t.Error("old members, owners or label survived the upsert")
			}
		}, ""},
		{"delete a user removes it everywhere", []*pb.Change{deleteObject("u1")}, func(t *testing.T, d *Directory) {
			g, _ := d.Lookup("g1")
			if len(g.Members()) != 1 || len(g.Owners()) != 1 {
				t.Error("u1 still listed")
			}
		}, ""},
		{"delete a group removes it from published_to", []*pb.Change{deleteObject("g1")}, func(t *testing.T, d *Directory) {
			l, _ := d.Label("l1")
			g2, _ := d.Lookup("g2")
			if slices.Contains(l.GetPublishedTo(), "g1") || len(g2.MemberOf()) != 0 {
				t.Error("g1 still referenced")
			}
		}, ""},
		{"update settings", []*pb.Change{change(&pb.TenantSettings{SecurityGroupLabelsEnabled: true})}, func(t *testing.T, d *Directory) {
			if !d.Settings().GetSecurityGroupLabelsEnabled() || d.HasPremiumLicense() {
				t.Error("settings not replaced")
			}
		}, ""},
		{"add an owner", []*pb.Change{addOwner("g2", "u1")}, func(t *testing.T, d *Directory) {
			u, _ := d.Lookup("u1")
			if len(u.OwnerOf()) != 2 {
				t.Error("ownerOf not kept in step")
			}
		}, ""},
		{"a dangling member refuses the whole batch", []*pb.Change{change(&pb.User{Id: "u3", UserType: 1}), addMember("g2", "ghost")}, nil, `"ghost"`},
		{"a kind cannot change", []*pb.Change{change(&pb.User{Id: "g1", UserType: 1})}, nil, "kind cannot change"},
		{"a label in use cannot be deleted", []*pb.Change{deleteObject("l1")}, nil, "still carried"},
		{"deleting an unknown object is an error", []*pb.Change{deleteObject("nobody")}, nil, "does not exist"},
		// A sync batch may delete an object and name it again later in the same batch: a refusal, never a panic.
		{"a member deleted earlier in the batch is dangling", []*pb.Change{deleteObject("u1"), addMember("g2", "u1")}, nil, "dangling id \"u1\""},
		{"an object deleted and upserted again in one batch", []*pb.Change{deleteObject("u1"),
			{Change: &pb.Change_UpsertUser{UpsertUser: &pb.User{Id: "u1", UserType: pb.UserType_USER_TYPE_GUEST}}}, addMember("g2", "u1")},
			func(t *testing.T, d *Directory) {
				u, _ := d.Lookup("u1")
				g, _ := d.Lookup("g2")
				if u == nil || !u.IsGuest() || !slices.Contains(g.Members(), u.Ref()) {
					t.Errorf("u1 after delete, upsert, add: %v", u)
				}
			}, ""},
		{"self-membership is refused", []*pb.Change{addMember("g2", "g2")}, nil, "itself"},
		{"an empty change is refused", []*pb.Change{{}}, nil, "empty change"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := FromSnapshot(base(), 1)
			if err != nil {
				t.Fatal(err)
			}
			before := d.Snapshot()
			next, delta, err := d.Apply(tt.changes, 2)
			if !proto.Equal(d.Snapshot(), before) || d.Revision() != 1 {
				t.Fatal("Apply changed the revision it started from")
			}
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, want a refusal mentioning %s", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if next.Revision() != 2 || next.Lineage() != d.Lineage() || delta == nil {
				t.Errorf("revision %d lineage %d delta %v", next.Revision(), next.Lineage(), delta)
			}
			if got, want := next.Counts(), recount(next); got != want {
				t.Errorf("counts %+v, recounted %+v", got, want)
			}
			reloaded, err := FromSnapshot(next.Snapshot(), 2)
			if err != nil {
				t.Fatalf("the result does not reload: %v", err)
			}
			if !proto.Equal(reloaded.Snapshot(), next.Snapshot()) {
				t.Error("the result differs from its own reload")
			}
			if tt.check != nil {
				tt.check(t, next)
			}
		})
	}
}

func TestDeltaNamesWhatChanged(t *testing.T) {
	d, _ := FromSnapshot(base(), 1)
	_, delta, err := d.Apply([]*pb.Change{addMember("g2", "u1"), removeMember("g1", "g2"), change(&pb.User{Id: "u2", UserType: 1})}, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref := func(id string) Ref { n, _ := d.Lookup(id); return n.Ref() }
	if !slices.Equal(delta.EdgesAdded, []Edge{{ref("g2"), ref("u1")}}) || !slices.Equal(delta.EdgesRemoved, []Edge{{ref("g1"), ref("g2")}}) {
		t.Errorf("edges %v / %v", delta.EdgesAdded, delta.EdgesRemoved)
	}
	if !slices.Equal(delta.Objects, []Ref{ref("u2")}) {
		t.Errorf("objects %v, want only u2 (edges alone are not object changes)", delta.Objects)
	}
}

func TestManyRevisionsAndIndexFolding(t *testing.T) {
	d, _ := FromSnapshot(base(), 1)
	var revisions []*Directory
	for i := 0; i < overlayLimit+100; i += 500 {
		var batch []*pb.Change
		for j := i; j < i+500; j++ {
			id := "n" + strings.Repeat("x", j%3) + string(rune('a'+j%26)) + "-" + itoa(j)
			batch = append(batch, change(&pb.User{Id: id, UserType: 1}), addMember("g2", id))
		}
		next, _, err := d.Apply(batch, d.Revision()+1)
		if err != nil {
			t.Fatal(err)
		}
		revisions = append(revisions, d)
		d = next
	}
	if got, want := d.Counts(), recount(d); got != want {
		t.Fatalf("counts %+v, recounted %+v", got, want)
	}
	// Every older revision still answers as it did: its users and no later ones.
	for i, old := range revisions {
		if got, want := old.Counts().Users, int64(2+500*i); got != want {
			t.Errorf("revision %d: %d users, want %d", old.Revision(), got, want)
		}
	}
	if _, ok := revisions[0].Lookup("na-0"); ok {
		t.Error("the first revision sees a user created later")
	}
	if _, ok := d.Lookup("na-0"); !ok {
		t.Error("the last revision lost a user after the index folded")
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func TestSnapshotPartsMergeToTheWhole(t *testing.T) {
	d, _ := FromSnapshot(base(), 1)
	for _, size := range []int{1, 2, 3, 100} {
		merged := &pb.Snapshot{}
		parts := 0
		if err := d.SnapshotParts(size, func(p *pb.Snapshot) error { parts++; proto.Merge(merged, p); return nil }); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(merged, d.Snapshot()) {
			t.Errorf("parts of %d: merged snapshot differs", size)
		}
		if size == 1 && parts < 5 {
			t.Errorf("parts of 1 object: only %d parts", parts)
		}
	}
}
