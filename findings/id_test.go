package findings_test

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/groupgate/groupgate/findings"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
)

// want computes the id from the contract's words, independently of ID's switch.
func want(rule, group, subject string) string {
	sum := sha256.Sum256([]byte(rule + "\x00" + group + "\x00" + subject))
	return hex.EncodeToString(sum[:16])
}

func TestID(t *testing.T) {
	tests := []struct {
		name    string
		finding *pb.Finding
		want    string
	}{
		{"direct guest: the guest is the subject",
			&pb.Finding{Rule: pb.Rule_RULE_LABEL_BLOCKS_GUESTS, GroupId: "g1", Path: []string{"g1", "u-guest"}, Message: "x"},
			want("RULE_LABEL_BLOCKS_GUESTS", "g1", "u-guest")},
		{"transitive guest: the last element of the path, not the child in between",
			&pb.Finding{Rule: pb.Rule_RULE_LABEL_BLOCKS_GUESTS_TRANSITIVE, GroupId: "g1", Path: []string{"g1", "g2", "u-guest"}},
			want("RULE_LABEL_BLOCKS_GUESTS_TRANSITIVE", "g1", "u-guest")},
		{"unlabelled child: path[0]",
			&pb.Finding{Rule: pb.Rule_RULE_NESTED_GROUP_UNLABELED, GroupId: "g1", Path: []string{"g2", "g1"}},
			want("RULE_NESTED_GROUP_UNLABELED", "g1", "g2")},
		{"less restrictive child: path[0]",
			&pb.Finding{Rule: pb.Rule_RULE_NESTED_GROUP_LESS_RESTRICTIVE, GroupId: "g1", Path: []string{"g2", "g1"}},
			want("RULE_NESTED_GROUP_LESS_RESTRICTIVE", "g1", "g2")},
		{"role group nesting: path[1]",
			&pb.Finding{Rule: pb.Rule_RULE_ROLE_GROUP_NO_NESTING, GroupId: "g1", Path: []string{"g1", "g2"}},
			want("RULE_ROLE_GROUP_NO_NESTING", "g1", "g2")},
		{"role group dynamic: no subject",
			&pb.Finding{Rule: pb.Rule_RULE_ROLE_GROUP_DYNAMIC, GroupId: "g1", Path: []string{"g1"}},
			want("RULE_ROLE_GROUP_DYNAMIC", "g1", "")},
		{"dynamic membership: no subject, the label is evidence only",
			&pb.Finding{Rule: pb.Rule_RULE_DYNAMIC_MEMBERSHIP, GroupId: "g1", Path: []string{"g1", "lbl-secret"}},
			want("RULE_DYNAMIC_MEMBERSHIP", "g1", "")},
		{"role group limit: no group, no subject",
			&pb.Finding{Rule: pb.Rule_RULE_ROLE_GROUP_LIMIT},
			want("RULE_ROLE_GROUP_LIMIT", "", "")},
		{"cycle: the smallest id is the group, the sorted loop the subject",
			&pb.Finding{Rule: pb.Rule_RULE_NESTING_CYCLE, GroupId: "g3", Path: []string{"g3", "g1", "g2", "g3"}},
			want("RULE_NESTING_CYCLE", "g1", "g1,g2,g3")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := findings.ID(tt.finding); got != tt.want {
				t.Errorf("ID = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestIDStable: the id ignores what may change while a finding holds (its wording, the path between group and
// subject, where a loop starts), and tells different subjects apart.
func TestIDStable(t *testing.T) {
	a := &pb.Finding{Rule: pb.Rule_RULE_LABEL_BLOCKS_GUESTS_TRANSITIVE, GroupId: "g1", Path: []string{"g1", "g2", "u"}, Message: "one"}
	b := &pb.Finding{Rule: pb.Rule_RULE_LABEL_BLOCKS_GUESTS_TRANSITIVE, GroupId: "g1", Path: []string{"g1", "g3", "g4", "u"}, Message: "two"}
	if findings.ID(a) != findings.ID(b) {
		t.Errorf("same rule, group and guest by another path: ids differ")
	}
	c := &pb.Finding{Rule: pb.Rule_RULE_LABEL_BLOCKS_GUESTS_TRANSITIVE, GroupId: "g1", Path: []string{"g1", "g2", "v"}}
	if findings.ID(a) == findings.ID(c) {
		t.Errorf("another guest: same id")
	}
	l1 := &pb.Finding{Rule: pb.Rule_RULE_NESTING_CYCLE, GroupId: "g2", Path: []string{"g2", "g1", "g2"}}
	l2 := &pb.Finding{Rule: pb.Rule_RULE_NESTING_CYCLE, GroupId: "g1", Path: []string{"g1", "g2", "g1"}}
	if findings.ID(l1) != findings.ID(l2) {
		t.Errorf("one loop started at two groups: ids differ")
	}
	if id := findings.ID(a); len(id) != 32 {
		t.Errorf("id %q: want 32 hex digits", id)
	}
}
