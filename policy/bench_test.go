package policy_test

import (
	"fmt"

	"testing"

	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/benchtenant"
	"github.com/groupgate/groupgate/internal/workload"
	"github.com/groupgate/groupgate/policy"
	"github.com/groupgate/groupgate/resolver"
)

// BenchmarkCanAddMember nests a random group under another, as the Groups Administrator: every decision runs the
// nesting-cycle check and the transitive guest check on the member group (warm: the cache has seen each group).
//
//	go test ./policy -run '^$' -bench CanAddMember -benchtime 200000x
func BenchmarkCanAddMember(b *testing.B) {
	for _, preset := range benchtenant.Presets() {
		b.Run(preset, func(b *testing.B) {
			d, p := benchtenant.Load(b, preset)
			res := resolver.New(resolver.Options{})
			e := policy.New(res)
			groups, _ := benchtenant.Refs(b, d, p, 4096)
			reqs := make([]*pb.CanAddMemberRequest, len(groups))
			for i := range groups {
				reqs[i] = &pb.CanAddMemberRequest{GroupId: d.Node(groups[i]).ID(), MemberId: d.Node(groups[(i+1)%len(groups)]).ID(), ActorId: workload.AdminID}
			}
			for _, r := range reqs { // warm the cache
				if _, err := e.CanAddMember(d, r); err != nil {
					b.Fatal(err)
				}
			}
			res.WaitCache()
			var lat benchtenant.Latencies
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				lat.Time(func() {
					if _, err := e.CanAddMember(d, reqs[i%len(reqs)]); err != nil {
						b.Fatal(err)
					}
				})
			}
			b.StopTimer()
			lat.Report(b)
		})
	}
}

// BenchmarkCheckMembership asks whether a random user is in a random group, with the shortest path when so.
func BenchmarkCheckMembership(b *testing.B) {
	for _, preset := range benchtenant.Presets() {
		b.Run(preset, func(b *testing.B) {
			d, p := benchtenant.Load(b, preset)
			v := resolver.New(resolver.Options{}).At(d)
			groups, users := benchtenant.Refs(b, d, p, 4096)
			var lat benchtenant.Latencies
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				lat.Time(func() { v.MemberPath(groups[i%len(groups)], users[i%len(users)]) })
			}
			b.StopTimer()
			lat.Report(b)
		})
	}
}

// BenchmarkCanAddMemberScope compares the same decisions (BenchmarkCanAddMember's nesting of one sampled group
// under another) made by a tenant-wide Groups Administrator and by one whose role is scoped to an
// administrative unit holding the sampled groups, among 20 units and 40 assignments (SPEC §18: within 5%).
//
//	go test ./policy -run '^$' -bench CanAddMemberScope -benchtime 200000x -count 6
func BenchmarkCanAddMemberScope(b *testing.B) {
	const groupsAdmin = "fdd7a751-b60b-444a-984c-02652fe8fa1c"
	for _, preset := range benchtenant.Presets() {
		d0, p := benchtenant.Load(b, preset)
		groups, users := benchtenant.Refs(b, d0, p, 4096)
		var changes []*pb.Change
		seen := map[directory.Ref]bool{} // the samples repeat: each object goes to one unit
		for u := 0; u < 20; u++ {
			unit := &pb.AdministrativeUnit{Id: fmt.Sprintf("au-bench-%d", u)}
			for i := u; i < len(groups); i += 20 {
				if !seen[groups[i]] {
					seen[groups[i]] = true
					unit.Members = append(unit.Members, d0.Node(groups[i]).ID())
				}
			}
			for i := u; i < len(users) && i < 2000; i += 20 {
				if !seen[users[i]] {
					seen[users[i]] = true
					unit.Members = append(unit.Members, d0.Node(users[i]).ID())
				}
			}
			changes = append(changes, &pb.Change{Change: &pb.Change_UpsertAdministrativeUnit{UpsertAdministrativeUnit: unit}})
		}
		changes = append(changes, &pb.Change{Change: &pb.Change_UpsertUser{UpsertUser: &pb.User{Id: "u-bench-au-admin", UserType: pb.UserType_USER_TYPE_MEMBER}}})
		for u := 0; u < 20; u++ {
			for _, who := range []string{"u-bench-au-admin", workload.OwnerID} {
				changes = append(changes, &pb.Change{Change: &pb.Change_AddRoleAssignment{AddRoleAssignment: &pb.RoleAssignment{
					PrincipalId: who, RoleDefinitionId: groupsAdmin, DirectoryScopeId: fmt.Sprintf("/administrativeUnits/au-bench-%d", u)}}})
			}
		}
		d, _, err := d0.Apply(changes, d0.Revision()+1)
		if err != nil {
			b.Fatal(err)
		}
		for _, actor := range []struct{ name, id string }{{"tenant", workload.AdminID}, {"unit", "u-bench-au-admin"}} {
			b.Run(preset+"/"+actor.name, func(b *testing.B) {
				res := resolver.New(resolver.Options{})
				e := policy.New(res)
				reqs := make([]*pb.CanAddMemberRequest, len(groups))
				for i := range groups {
					reqs[i] = &pb.CanAddMemberRequest{GroupId: d.Node(groups[i]).ID(), MemberId: d.Node(groups[(i+1)%len(groups)]).ID(), ActorId: actor.id}
				}
				for _, r := range reqs {
					dec, err := e.CanAddMember(d, r)
					if err != nil {
						b.Fatal(err)
					}
					for _, v := range dec.GetViolations() {
						if v.GetRule() == pb.Rule_RULE_INSUFFICIENT_PRIVILEGE {
							b.Fatalf("%s: %s", actor.name, v.GetMessage())
						}
					}
				}
				res.WaitCache()
				b.ReportAllocs()
				var lat benchtenant.Latencies
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					lat.Time(func() {
						if _, err := e.CanAddMember(d, reqs[i%len(reqs)]); err != nil {
							b.Fatal(err)
						}
					})
				}
				b.StopTimer()
				lat.Report(b)
			})
		}
	}
}
