package findings

import (
	"maps"
	"slices"

	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/resolver"
)

// named returns the ids of principals and labels a change names, and whether it changes tenant settings. Owner
// and privilege changes name nothing: no audit rule reads them.
func named(c *pb.Change) (ids []string, settings bool) {
	switch ch := c.GetChange().(type) {
	case *pb.Change_AddMember:
		return []string{ch.AddMember.GetGroupId(), ch.AddMember.GetMemberId()}, false
	case *pb.Change_RemoveMember:
		return []string{ch.RemoveMember.GetGroupId(), ch.RemoveMember.GetMemberId()}, false
	case *pb.Change_UpsertUser:
		return []string{ch.UpsertUser.GetId()}, false
	case *pb.Change_UpsertGroup:
		return []string{ch.UpsertGroup.GetId()}, false
	case *pb.Change_UpsertServicePrincipal:
		return []string{ch.UpsertServicePrincipal.GetId()}, false
	case *pb.Change_UpsertLabel:
		return []string{ch.UpsertLabel.GetId()}, false
	case *pb.Change_DeleteObject:
		return []string{ch.DeleteObject.GetId()}, false
	case *pb.Change_UpdateSettings:
		return nil, true
	}
	return nil, false
}

// causes picks the changes of a revision (prev → next) that opened or resolved f: those that name its group,
// anything on its path (the subject, the groups between), or a label one of those groups carries — a membership
// change only when the edge it adds or removes joins two of those. A change can
// also act from further away: removing the nearest guest deep below a group makes another guest, on another
// path, the one reported. When no change names the finding, causes falls back to the changes that name
// something below its group (for the role-assignable limit: the group upserts and deletes, and settings).
func causes(res *resolver.Resolver, prev, next *directory.Directory, changes []*pb.Change, f *pb.Finding) []*pb.Change {
	if len(changes) == 0 {
		return nil
	}
	if f.GetRule() == pb.Rule_RULE_ROLE_GROUP_LIMIT {
		var out []*pb.Change
		for _, c := range changes {
			_, settings := named(c)
			if settings || c.GetUpsertGroup() != nil || c.GetDeleteObject() != nil {
				out = append(out, c)
			}
		}
		return out
	}
	touch := map[string]bool{f.GetGroupId(): true}
	for _, id := range f.GetPath() {
		touch[id] = true
	}
	for _, d := range []*directory.Directory{prev, next} {
		// A copy of the keys: the loop adds labels to touch while it ranges.
		for _, id := range slices.Collect(maps.Keys(touch)) {
			if n, ok := d.Lookup(id); ok && n.IsGroup() && n.Group().GetLabelId() != "" {
				touch[n.Group().GetLabelId()] = true
			}
		}
	}
	var out []*pb.Change
	for _, c := range changes {
		ids, _ := named(c)
		// A membership change is an edge: it is this finding's when both of its ends are (the edge lies on the
		// path). Naming the group alone is not enough: a Confidential group gaining 1,000 unlabelled children
		// opens 1,000 findings, each caused by its own child's edge, not by all 1,000.
		onPath := slices.ContainsFunc(ids, func(id string) bool { return touch[id] })
		if c.GetAddMember() != nil || c.GetRemoveMember() != nil {
			onPath = !slices.ContainsFunc(ids, func(id string) bool { return !touch[id] })
		}
		if onPath {
			out = append(out, c)
		}
	}
	if len(out) > 0 {
		return out
	}
	below := func(id string) bool {
		for _, d := range []*directory.Directory{prev, next} {
			g, ok := d.Lookup(f.GetGroupId())
			if !ok {
				continue
			}
			n, ok := d.Lookup(id)
			if !ok {
				continue
			}
			for a := range res.At(d).Ancestors(n.Ref()) {
				if a == g.Ref() {
					return true
				}
			}
		}
		return false
	}
	for _, c := range changes {
		ids, _ := named(c)
		if slices.ContainsFunc(ids, below) {
			out = append(out, c)
		}
	}
	return out
}
