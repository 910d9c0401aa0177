package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/groupgate/groupgate/client"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/spf13/cobra"
)

func newCheckCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Ask whether a directory change is allowed: both verdicts, the violations and their evidence",
	}
	cmd.AddCommand(
		checkCmd("add-member GROUP MEMBER", "May --actor add MEMBER to GROUP?", 2,
			func(ctx context.Context, c *client.Client, tenant, actor string, args []string) (*pb.Decision, error) {
				r, err := c.Decisions.CanAddMember(ctx, &pb.CanAddMemberRequest{TenantId: tenant, GroupId: args[0], MemberId: args[1], ActorId: actor})
				return r.GetDecision(), err
			}),
		checkCmd("apply-label GROUP LABEL", "May --actor apply LABEL as GROUP's first label?", 2,
			func(ctx context.Context, c *client.Client, tenant, actor string, args []string) (*pb.Decision, error) {
				r, err := c.Decisions.CanApplyLabel(ctx, &pb.CanApplyLabelRequest{TenantId: tenant, GroupId: args[0], LabelId: args[1], ActorId: actor})
				return r.GetDecision(), err
			}),
		checkCmd("change-label GROUP [LABEL]", "May --actor change GROUP's label to LABEL (none: remove it)?", -1,
			func(ctx context.Context, c *client.Client, tenant, actor string, args []string) (*pb.Decision, error) {
				label := ""
				if len(args) > 1 {
					label = args[1]
				}
				r, err := c.Decisions.CanChangeLabel(ctx, &pb.CanChangeLabelRequest{TenantId: tenant, GroupId: args[0], LabelId: label, ActorId: actor})
				return r.GetDecision(), err
			}),
		newCheckCreateRoleGroupCmd(),
		newCheckModifyUserCmd(),
	)
	return cmd
}

type asker func(ctx context.Context, c *client.Client, tenant, actor string, args []string) (*pb.Decision, error)

// checkCmd builds one "check" subcommand: args positional ids (-1: one or two), --actor, output and exit code.
func checkCmd(use, short string, nargs int, ask asker) *cobra.Command {
	f := &clientFlags{}
	var actor string
	var exitOnDeny bool
	cmd := &cobra.Command{Use: use, Short: short}
	if nargs >= 0 {
		cmd.Args = cobra.ExactArgs(nargs)
	} else {
		cmd.Args = cobra.RangeArgs(1, 2)
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx, c, done, err := f.dial(cmd)
		if err != nil {
			return err
		}
		defer done()
		d, err := ask(ctx, c, f.tenant, actor, args)
		if err != nil {
			return describeError(err)
		}
		return reportDecision(f, d, exitOnDeny)
	}
	cmd.Flags().StringVarP(&actor, "actor", "a", "", "id of the user or service principal that would make the change (required)")
	cmd.Flags().BoolVar(&exitOnDeny, "exit-code", false, "exit with status 3 when the strict verdict is DENY")
	_ = cmd.MarkFlagRequired("actor")
	f.register(cmd)
	return cmd
}

func reportDecision(f *clientFlags, d *pb.Decision, exitOnDeny bool) error {
	if f.output == "json" {
		if err := printJSON(stdout(), d); err != nil {
			return err
		}
	} else {
		printDecision(stdout(), d)
	}
	if exitOnDeny && d.GetVerdict() == pb.Verdict_VERDICT_DENY {
		return &exitError{code: 3, msg: "verdict: DENY"}
	}
	return nil
}

func newCheckCreateRoleGroupCmd() *cobra.Command {
	var kind, membership, label, id, name string
	var owners, members []string
	var onPrem bool
	cmd := checkCmd("create-role-group", "May --actor create this role-assignable group?", 0,
		func(ctx context.Context, c *client.Client, tenant, actor string, _ []string) (*pb.Decision, error) {
			k, ok := pb.GroupKind_value["GROUP_KIND_"+strings.ToUpper(strings.ReplaceAll(kind, "-", "_"))]
			if !ok {
				return nil, fmt.Errorf("--kind %q: want security, microsoft-365, mail-enabled-security or distribution", kind)
			}
			m, ok := pb.Membership_value["MEMBERSHIP_"+strings.ToUpper(membership)]
			if !ok {
				return nil, fmt.Errorf("--membership %q: want assigned or dynamic", membership)
			}
			g := &pb.Group{Id: id, DisplayName: name, Kind: pb.GroupKind(k), Membership: pb.Membership(m), LabelId: label,
				Owners: owners, Members: members, OnPremisesSynced: onPrem, IsAssignableToRole: true}
			r, err := c.Decisions.CanCreateRoleGroup(ctx, &pb.CanCreateRoleGroupRequest{TenantId: tenant, ActorId: actor, Group: g})
			return r.GetDecision(), err
		})
	fl := cmd.Flags()
	fl.StringVar(&kind, "kind", "security", "security, microsoft-365, mail-enabled-security or distribution")
	fl.StringVar(&membership, "membership", "assigned", "assigned or dynamic")
	fl.StringVar(&label, "label", "", "label id the group would carry")
	fl.StringVar(&id, "id", "", "id of the new group (optional)")
	fl.StringVar(&name, "name", "", "display name")
	fl.StringSliceVar(&owners, "owner", nil, "owner ids")
	fl.StringSliceVar(&members, "member", nil, "initial member ids")
	fl.BoolVar(&onPrem, "on-premises-synced", false, "the group would be synced from on-premises AD")
	return cmd
}

func newCheckModifyUserCmd() *cobra.Command {
	var action string
	cmd := checkCmd("modify-user TARGET", "May --actor perform --action on user TARGET?", 1,
		func(ctx context.Context, c *client.Client, tenant, actor string, args []string) (*pb.Decision, error) {
			a, ok := pb.UserAction_value["USER_ACTION_"+strings.ToUpper(strings.ReplaceAll(action, "-", "_"))]
			if !ok {
				return nil, fmt.Errorf("--action %q: want reset-password, reset-mfa or update-sensitive-attributes", action)
			}
			r, err := c.Decisions.CanModifyUser(ctx, &pb.CanModifyUserRequest{TenantId: tenant, TargetUserId: args[0], ActorId: actor, Action: pb.UserAction(a)})
			return r.GetDecision(), err
		})
	cmd.Flags().StringVar(&action, "action", "reset-password", "reset-password, reset-mfa or update-sensitive-attributes")
	return cmd
}

func newMembersCmd() *cobra.Command {
	f := &clientFlags{}
	var types []string
	var pageSize int32
	var principal string
	var stats bool
	cmd := &cobra.Command{
		Use:   "members GROUP",
		Short: "List who is really in GROUP, through every level of nesting (or, with --principal, check one)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, done, err := f.dial(cmd)
			if err != nil {
				return err
			}
			defer done()
			if principal != "" {
				resp, err := c.CheckMembership(ctx, f.tenant, args[0], principal)
				if err != nil {
					return describeError(err)
				}
				if f.output == "json" {
					return printJSON(stdout(), resp)
				}
				if resp.GetIsMember() {
					fmt.Fprintf(stdout(), "%s is a member of %s (revision %d)\npath: %s\n", principal, args[0], resp.GetRevision(), strings.Join(resp.GetPath(), " -> "))
				} else {
					fmt.Fprintf(stdout(), "%s is not a member of %s (revision %d)\n", principal, args[0], resp.GetRevision())
				}
				return nil
			}
			req := &pb.EffectiveMembersRequest{TenantId: f.tenant, GroupId: args[0], PageSize: pageSize}
			for _, t := range types {
				v, ok := pb.MemberType_value["MEMBER_TYPE_"+strings.ToUpper(strings.ReplaceAll(t, "-", "_"))]
				if !ok {
					return fmt.Errorf("--type %q: want user, guest, group or service-principal", t)
				}
				req.Types = append(req.Types, pb.MemberType(v))
			}
			if f.output == "text" && !stats {
				fmt.Fprintf(stdout(), "%-40s %-18s %-6s %s\n", "ID", "KIND", "GUEST", "DEPTH")
			}
			st := startStreamStats()
			err = c.EachMember(ctx, req, func(resp *pb.EffectiveMembersResponse) error {
				st.message()
				if stats {
					st.count += len(resp.GetMembers())
					return nil
				}
				if f.output == "json" {
					return printJSON(stdout(), resp)
				}
				for _, m := range resp.GetMembers() {
					st.count++
					guest := ""
					if m.GetUserType() == pb.UserType_USER_TYPE_GUEST {
						guest = "guest"
					}
					fmt.Fprintf(stdout(), "%-40s %-18s %-6s %d\n", m.GetId(), strings.ToLower(strings.TrimPrefix(m.GetKind().String(), "OBJECT_KIND_")), guest, m.GetDepth())
				}
				return nil
			})
			if err != nil {
				return describeError(err)
			}
			if stats {
				st.print("effective members")
			} else if f.output == "text" {
				fmt.Fprintf(os.Stderr, "%d effective members\n", st.count)
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&types, "type", nil, "only these: user, guest, group, service-principal")
	cmd.Flags().BoolVar(&stats, "stats", false, "print only the count and how long the first message and the whole stream took")
	cmd.Flags().Int32Var(&pageSize, "page-size", 0, "members per streamed message (0: server default)")
	cmd.Flags().StringVar(&principal, "principal", "", "only check whether this principal is a member, and print the path")
	f.register(cmd)
	return cmd
}

func newAuditCmd() *cobra.Command {
	f := &clientFlags{}
	var rules []string
	var follow bool
	var afterRevision int64
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "List today's policy violations in the directory (drift)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, c, done, err := f.dial(cmd)
			if err != nil {
				return err
			}
			defer done()
			req := &pb.AuditRequest{TenantId: f.tenant}
			for _, r := range rules {
				v, ok := pb.Rule_value[strings.ToUpper(r)]
				if !ok {
					v, ok = pb.Rule_value["RULE_"+strings.ToUpper(r)]
				}
				if !ok {
					return fmt.Errorf("--rule %q: unknown rule", r)
				}
				req.Rules = append(req.Rules, pb.Rule(v))
			}
			if follow {
				return followFindings(cmd, f, c, &pb.WatchFindingsRequest{TenantId: f.tenant, AfterRevision: afterRevision, Rules: req.Rules})
			}
			if afterRevision != 0 {
				return errors.New("--after-revision needs --follow")
			}
			n := 0
			err = c.Audit(ctx, req, func(fd *pb.Finding, rev int64) error {
				n++
				if f.output == "json" {
					return printJSON(stdout(), fd)
				}
				fmt.Fprintf(stdout(), "%s  %s\n    %s\n", fd.GetRule(), fd.GetGroupId(), fd.GetMessage())
				if len(fd.GetPath()) > 0 {
					fmt.Fprintf(stdout(), "    path: %s\n", strings.Join(fd.GetPath(), " -> "))
				}
				return nil
			})
			if err != nil {
				return describeError(err)
			}
			if f.output == "text" {
				fmt.Fprintf(os.Stderr, "%d findings\n", n)
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&rules, "rule", nil, "only findings of these rules (e.g. RULE_NESTING_CYCLE or nesting_cycle)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "after the current findings, print each finding that opens or resolves as it happens, until Ctrl-C (--timeout does not apply)")
	cmd.Flags().Int64Var(&afterRevision, "after-revision", 0, "with --follow: start at this revision (the last one printed, to resume); 0: the newest")
	f.register(cmd)
	return cmd
}
