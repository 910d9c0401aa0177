package main

import (
	"fmt"
	"os"
	"time"

	"github.com/groupgate/groupgate/directory"
	"github.com/groupgate/groupgate/internal/workload"
	"github.com/spf13/cobra"
)

func newGenCmd() *cobra.Command {
	var preset, out string
	var p workload.Params
	cmd := &cobra.Command{
		Use:   "gen",
		Short: "Generate a synthetic tenant (SPEC §7 workload), deterministic by seed",
		Long: `Generate a synthetic tenant: a layered DAG of groups (users in the leaf groups, 2-4 child groups per group,
~1% cross edges), 5% guests, labelled groups, an admin, an owner and a provisioning app. Presets: tiny, small
(20k users, 2k groups, depth 8), medium (100k, 10k, 8), large (1M, 100k, 12, ~10M edges). Flags override a preset.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			base, ok := workload.Preset(preset)
			if !ok {
				return fmt.Errorf("--preset %q: want tiny, small, medium or large", preset)
			}
			fl := cmd.Flags()
			override := func(name string, dst *int, v int) {
				if fl.Changed(name) {
					*dst = v
				}
			}
			override("users", &base.Users, p.Users)
			override("groups", &base.Groups, p.Groups)
			override("depth", &base.Depth, p.Depth)
			override("fanout-min", &base.FanOutMin, p.FanOutMin)
			override("fanout-max", &base.FanOutMax, p.FanOutMax)
			override("groups-per-user", &base.GroupsPerUser, p.GroupsPerUser)
			if fl.Changed("seed") {
				base.Seed = p.Seed
			}
			if fl.Changed("guest-share") {
				base.GuestShare = p.GuestShare
			}
			if fl.Changed("cross-edges") {
				base.CrossEdges = p.CrossEdges
			}
			if fl.Changed("labelled-share") {
				base.LabelledShare = p.LabelledShare
			}
			if fl.Changed("tenant") {
				base.TenantID = p.TenantID
			}
			if base.Groups < base.Depth || base.Users < 1 || base.FanOutMin < 1 || base.FanOutMax < base.FanOutMin {
				return fmt.Errorf("need users >= 1, groups >= depth, 1 <= fanout-min <= fanout-max")
			}
			start := time.Now()
			snap := workload.Generate(base)
			generated := time.Since(start)
			if err := directory.WriteSnapshotFile(out, snap); err != nil {
				return err
			}
			edges := 0
			for _, g := range snap.GetGroups() {
				edges += len(g.GetMembers())
			}
			info, err := os.Stat(out)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout(), "tenant %s: %d users, %d groups (depth %d), %d service principals, %d labels, %d membership edges\n",
				snap.GetTenantId(), len(snap.GetUsers()), len(snap.GetGroups()), base.Depth, len(snap.GetServicePrincipals()), len(snap.GetLabels()), edges)
			fmt.Fprintf(stdout(), "generated in %s, wrote %s (%.1f MiB) in %s\n", generated.Round(time.Millisecond), out,
				float64(info.Size())/(1<<20), (time.Since(start) - generated).Round(time.Millisecond))
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&preset, "preset", "small", "tiny, small, medium or large")
	fl.StringVarP(&out, "output", "o", "tenant.pb.gz", "snapshot file to write (.json, .json.gz, .pb, .pb.gz)")
	fl.StringVar(&p.TenantID, "tenant", "", "tenant id (default bench-PRESET)")
	fl.Uint64Var(&p.Seed, "seed", 1, "random seed")
	fl.IntVar(&p.Users, "users", 0, "users")
	fl.IntVar(&p.Groups, "groups", 0, "groups")
	fl.IntVar(&p.Depth, "depth", 0, "group layers")
	fl.IntVar(&p.FanOutMin, "fanout-min", 2, "fewest child groups per group")
	fl.IntVar(&p.FanOutMax, "fanout-max", 4, "most child groups per group")
	fl.IntVar(&p.GroupsPerUser, "groups-per-user", 10, "leaf groups each user is in")
	fl.Float64Var(&p.GuestShare, "guest-share", 0.05, "share of users who are guests")
	fl.Float64Var(&p.CrossEdges, "cross-edges", 0.01, "extra group edges relative to the tree's")
	fl.Float64Var(&p.LabelledShare, "labelled-share", 0.2, "share of groups with a label")
	return cmd
}
