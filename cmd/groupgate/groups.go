package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/spf13/cobra"
)

func newGroupsCmd() *cobra.Command {
	f := &clientFlags{}
	var labelled, roleAssignable, paths, stats bool
	var pageSize int32
	cmd := &cobra.Command{
		Use:   "groups PRINCIPAL",
		Short: "List every group PRINCIPAL belongs to, through every level of nesting",
		Long: "List every group PRINCIPAL (a user, group or service principal) belongs to, through every level of nesting,\n" +
			"nearest first: DEPTH is the length of the shortest nesting path (1 = a direct member). --labelled and\n" +
			"--role-assignable narrow the list, not the walk: a labelled group reached through unlabelled ones is listed.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, done, err := f.dial(cmd)
			if err != nil {
				return err
			}
			defer done()
			req := &pb.EffectiveGroupsRequest{TenantId: f.tenant, PrincipalId: args[0], LabelledOnly: labelled, RoleAssignableOnly: roleAssignable, IncludePaths: paths, PageSize: pageSize}
			var revision int64
			st := startStreamStats()
			err = c.EachGroup(ctx, req, func(resp *pb.EffectiveGroupsResponse) error {
				if st.message() {
					if f.output == "text" && !stats { // after the call succeeded: an error prints no table head
						head := []string{"ID", "DEPTH", "LABEL", "ROLE-ASSIGNABLE"}
						if paths {
							head = append(head, "PATH")
						}
						fmt.Fprintln(stdout(), groupRow(head...))
					}
				}
				revision = resp.GetRevision()
				if stats {
					st.count += len(resp.GetGroups())
					return nil
				}
				if f.output == "json" {
					return printJSON(stdout(), resp)
				}
				for _, g := range resp.GetGroups() {
					st.count++
					role := ""
					if g.GetIsAssignableToRole() {
						role = "yes"
					}
					row := []string{g.GetId(), strconv.Itoa(int(g.GetDepth())), g.GetLabelId(), role}
					if paths {
						row = append(row, strings.Join(g.GetPath(), " -> "))
					}
					fmt.Fprintln(stdout(), groupRow(row...))
				}
				return nil
			})
			if err != nil {
				return describeError(err)
			}
			if stats {
				st.print("effective groups")
			} else if f.output == "text" {
				fmt.Fprintf(os.Stderr, "%d effective groups (revision %d)\n", st.count, revision)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&labelled, "labelled", false, "only groups that carry a sensitivity label")
	cmd.Flags().BoolVar(&roleAssignable, "role-assignable", false, "only role-assignable groups")
	cmd.Flags().BoolVar(&paths, "paths", false, "also print each group's shortest nesting path down to PRINCIPAL")
	cmd.Flags().BoolVar(&stats, "stats", false, "print only the count and how long the first message and the whole stream took")
	cmd.Flags().Int32Var(&pageSize, "page-size", 0, "groups per streamed message (0: server default)")
	f.register(cmd)
	return cmd
}

// groupRow lays out ID, DEPTH, LABEL, ROLE-ASSIGNABLE and, with --paths, PATH.
func groupRow(cols ...string) string {
	widths := []int{40, 6, 28, 15}
	var b strings.Builder
	for i, c := range cols {
		if i < len(cols)-1 {
			fmt.Fprintf(&b, "%-*s ", widths[i], c)
		} else {
			b.WriteString(c)
		}
	}
	return strings.TrimRight(b.String(), " ")
}
