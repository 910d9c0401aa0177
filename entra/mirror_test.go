package entra

import (
	"fmt"
	"slices"
	"testing"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
)

// A member Graph names before the sync has seen the object (it was created between the users/delta and the
// groups/delta reads) is left out of the snapshot, never dangling, and appears once the object does.
func TestReferenceToAnObjectNotSeenYet(t *testing.T) {
	o := &Overlay{}
	w := newMirror().fork()
	w.applyUser(deltaUser{ID: "u-old", DisplayName: "Old", UserType: "Member"})
	w.applyGroup(deltaGroup{ID: "g-1", SecurityEnabled: true, Members: []deltaRef{
		{Type: typeUser, ID: "u-old"}, {Type: typeUser, ID: "u-new"}, {Type: "#microsoft.graph.orgContact", ID: "c-1"}}})
	first, b, err := build("t", w.Mirror, o, nil, nil, w.touched)
	if err != nil {
		t.Fatal(err)
	}
	if got := first.GetGroups()[0].GetMembers(); !slices.Equal(got, []string{"u-old"}) {
		t.Fatalf("members %v, want only u-old (u-new unknown yet, contacts not modelled)", got)
	}

	next := w.Mirror.fork()
	next.applyUser(deltaUser{ID: "u-new", DisplayName: "New", UserType: "Guest"})
	second, _, err := build("t", next.Mirror, o, nil, b, next.touched)
	if err != nil {
		t.Fatal(err)
	}
	changes := Diff(first, second)
	if len(changes) != 2 || changes[0].GetUpsertUser().GetId() != "u-new" ||
		changes[1].GetAddMember().GetMemberId() != "u-new" || changes[1].GetAddMember().GetGroupId() != "g-1" {
		t.Errorf("changes %v; want upsert_user u-new, then add_member g-1 u-new", changes)
	}
	if w.Groups["g-1"] != next.Groups["g-1"] {
		t.Error("the untouched group was copied: forks copy groups only when a round changes them")
	}
	if first.GetUsers()[0] != second.GetUsers()[1] { // u-new sorts first now
		t.Error("the unchanged user u-old was built again instead of reused")
	}
	if first.GetGroups()[0] == second.GetGroups()[0] {
		t.Error("g-1 was reused although a member of it appeared")
	}
	if k := second.GetGroups()[0].GetKind(); k != pb.GroupKind_GROUP_KIND_SECURITY {
		t.Errorf("kind %v", k)
	}
}

func TestNamesWalksTheShorterSide(t *testing.T) {
	g := &Group{Members: map[string]byte{"u-1": 'u', "u-2": 'u'}, Owners: map[string]byte{"u-9": 'u'}}
	many := []string{"u-9"}
	for i := 0; i < 100; i++ {
		many = append(many, fmt.Sprintf("x-%d", i))
	}
	for _, tc := range []struct {
		ids  []string
		want bool
	}{
		{nil, false}, {[]string{"u-2"}, true}, {[]string{"u-3"}, false}, {many, true}, {many[1:], false},
	} {
		if got := g.names(newChangedIDs(tc.ids)); got != tc.want {
			t.Errorf("names(%d ids starting %v) = %v, want %v", len(tc.ids), tc.ids[:min(len(tc.ids), 1)], got, tc.want)
		}
	}
}
