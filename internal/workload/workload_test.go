package workload

import (
	"testing"

	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"google.golang.org/protobuf/proto"
)

func TestGenerateIsDeterministic(t *testing.T) {
	p, _ := Preset("tiny")
	a, _ := proto.MarshalOptions{Deterministic: true}.Marshal(Generate(p))
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(Generate(p))
	if string(a) != string(b) {
		t.Fatal("the same params gave two different tenants")
	}
	p.Seed = 2
	c, _ := proto.MarshalOptions{Deterministic: true}.Marshal(Generate(p))
	if string(a) == string(c) {
		t.Fatal("another seed gave the same tenant")
	}
}

func TestGeneratedShape(t *testing.T) {
	for _, name := range []string{"tiny", "small"} {
		p, _ := Preset(name)
		s := Generate(p)
		d, err := directory.FromSnapshot(s, 1)
		if err != nil {
			t.Fatalf("%s: the generated tenant is refused: %v", name, err)
		}
		c := d.Counts()
		if c.Users != int64(p.Users)+2 || c.Groups != int64(p.Groups) {
			t.Errorf("%s: %d users, %d groups; want %d, %d", name, c.Users, c.Groups, p.Users+2, p.Groups)
		}
		if share := float64(c.Guests) / float64(p.Users); share < 0.04 || share > 0.06 {
			t.Errorf("%s: guest share %.3f, want about 0.05", name, share)
		}
		layers := p.Layers()
		if len(layers) != p.Depth || layers[0] != [2]int{0, 1} || layers[p.Depth-1][1] != p.Groups {
			t.Errorf("%s: layers %v", name, layers)
		}
		// Fan-out of non-leaf groups: children in the next layer, between the bounds (cross edges aside).
		for li := 0; li < len(layers)-1; li++ {
			for i := layers[li][0]; i < layers[li][1]; i++ {
				g := s.Groups[i]
				children := 0
				for _, m := range g.GetMembers() {
					if n, ok := d.Lookup(m); ok && n.IsGroup() {
						children++
					}
				}
				if children < p.FanOutMin || children > p.FanOutMax+2 {
					t.Fatalf("%s: %s has %d child groups, want %d–%d", name, g.GetId(), children, p.FanOutMin, p.FanOutMax)
				}
			}
		}
		// Every user is in GroupsPerUser leaf groups, and under the top group.
		top, _ := d.Lookup(TopGroupID)
		reached := map[directory.Ref]bool{}
		var walk func(directory.Ref)
		walk = func(r directory.Ref) {
			for _, m := range d.Node(r).Members() {
				if !reached[m] {
					reached[m] = true
					if d.Node(m).IsGroup() {
						walk(m)
					}
				}
			}
		}
		walk(top.Ref())
		for i := 0; i < p.Users; i++ {
			u, _ := d.Lookup(UserID(i))
			if len(u.MemberOf()) != p.GroupsPerUser {
				t.Fatalf("%s: %s is in %d groups, want %d", name, UserID(i), len(u.MemberOf()), p.GroupsPerUser)
			}
			if !reached[u.Ref()] {
				t.Fatalf("%s: %s is not under the top group", name, UserID(i))
			}
		}
		for _, id := range []string{AdminID, OwnerID, AppID} {
			if _, ok := d.Lookup(id); !ok {
				t.Errorf("%s: no %s", name, id)
			}
		}
		if s.GetUsers()[0].GetUserType() != pb.UserType_USER_TYPE_MEMBER {
			t.Errorf("%s: the admin is a guest", name)
		}
	}
}
