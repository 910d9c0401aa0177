// Package findings follows a tenant's audit findings from revision to revision: it evaluates each revision only
// where its changes can change findings and reports what opened and what resolved (SPEC §16).
package findings

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
)

// ID is a finding's stable id: the lowercase hex of the first 16 bytes of SHA-256 over
// "RULE_NAME\x00group_id\x00subject". It depends only on the rule, the group and the subject the finding is about,
// never on the evidence's wording or on revisions, so every replica and every restart gives a finding the same id
// and a webhook consumer can pair an OPENED event with its RESOLVED one. The subject is:
//   - RULE_LABEL_BLOCKS_GUESTS(_TRANSITIVE): the guest (the last element of the path);
//   - RULE_NESTED_GROUP_UNLABELED, RULE_NESTED_GROUP_LESS_RESTRICTIVE: the child group (path[0]);
//   - RULE_ROLE_GROUP_NO_NESTING: the nested group (path[1]);
//   - RULE_NESTING_CYCLE: the loop's group ids sorted and joined by ","; the group is the smallest of them (a
//     loop has no first group of its own: Audit starts it at the group created first, which differs by replica
//     history);
//   - anything else (RULE_ROLE_GROUP_DYNAMIC, RULE_DYNAMIC_MEMBERSHIP, RULE_ROLE_GROUP_LIMIT): "".
func ID(f *pb.Finding) string {
	group, subject := f.GetGroupId(), ""
	path := f.GetPath()
	switch f.GetRule() {
	case pb.Rule_RULE_LABEL_BLOCKS_GUESTS, pb.Rule_RULE_LABEL_BLOCKS_GUESTS_TRANSITIVE:
		if len(path) > 0 {
			subject = path[len(path)-1]
		}
	case pb.Rule_RULE_NESTED_GROUP_UNLABELED, pb.Rule_RULE_NESTED_GROUP_LESS_RESTRICTIVE:
		if len(path) > 0 {
			subject = path[0]
		}
	case pb.Rule_RULE_ROLE_GROUP_NO_NESTING:
		if len(path) > 1 {
			subject = path[1]
		}
	case pb.Rule_RULE_NESTING_CYCLE:
		// The loop's path ends where it starts; each group counts once.
		loop := slices.Clone(path)
		slices.Sort(loop)
		loop = slices.Compact(loop)
		if len(loop) > 0 {
			group = loop[0]
		}
		subject = strings.Join(loop, ",")
	}
	h := sha256.New()
	h.Write([]byte(f.GetRule().String()))
	h.Write([]byte{0})
	h.Write([]byte(group))
	h.Write([]byte{0})
	h.Write([]byte(subject))
	sum := h.Sum(nil)
	return hex.EncodeToString(sum[:16])
}
