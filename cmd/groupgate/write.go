package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/groupgate/groupgate/directory"
	"github.com/groupgate/groupgate/directory/demo"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// readRequestFile decodes a protobuf-JSON request file ("-" reads standard input).
func readRequestFile(path string, m proto.Message) error {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return err
	}
	if err := protojson.Unmarshal(data, m); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func newPlanCmd() *cobra.Command {
	f := &clientFlags{}
	var actor string
	cmd := &cobra.Command{
		Use:   "plan FILE",
		Short: "Decide an ordered plan of changes, each on the state left by the allowed steps before it (writes nothing)",
		Long: `Decide an ordered plan of changes. FILE is an EvaluatePlanRequest in protobuf JSON, e.g.
  {"actorId": "u-gary", "steps": [{"change": {"addMember": {"groupId": "grp-finance", "memberId": "u-gina"}}}]}
Its tenantId defaults to --tenant. Nothing is written.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &pb.EvaluatePlanRequest{}
			if err := readRequestFile(args[0], req); err != nil {
				return err
			}
			if req.TenantId == "" {
				req.TenantId = f.tenant
			}
			if actor != "" {
				req.ActorId = actor
			}
			ctx, c, done, err := f.dial(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := c.Decisions.EvaluatePlan(ctx, req)
			if err != nil {
				return describeError(err)
			}
			if f.output == "json" {
				return printJSON(stdout(), resp)
			}
			w := stdout()
			fmt.Fprintf(w, "plan of %d steps on revision %d\n", len(resp.GetResults()), resp.GetRevision())
			for i, r := range resp.GetResults() {
				fmt.Fprintf(w, "\nstep %d: %s", i+1, describeChange(req.GetSteps()[i].GetChange()))
				switch {
				case r.GetError() != nil:
					fmt.Fprintf(w, "  ERROR %s: %s (not applied)\n", codeName(r.GetError().GetCode()), r.GetError().GetMessage())
				case r.GetApplied():
					fmt.Fprintln(w, "  (applied for the steps after it)")
				default:
					fmt.Fprintln(w, "  (not applied: the steps after it do not see it)")
				}
				if r.GetDecision() != nil {
					printDecision(w, r.GetDecision())
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&actor, "actor", "a", "", "actor of every step that names none (overrides the file's actorId)")
	f.register(cmd)
	return cmd
}

func describeChange(c *pb.Change) string {
	b, err := protojson.Marshal(c)
	if err != nil {
		return "?"
	}
	return string(b) + "\n"
}

func codeName(code int32) string { return codes.Code(code).String() }

func newApplyCmd() *cobra.Command {
	f := &clientFlags{}
	var requestID string
	var expected int64
	cmd := &cobra.Command{
		Use:   "apply FILE",
		Short: "Write a batch of directory changes atomically and print the new revision",
		Long: `Write a batch of directory changes atomically. FILE is a WriteChangesRequest in protobuf JSON, e.g.
  {"requestId": "ticket-4711", "changes": [{"addMember": {"groupId": "grp-finance", "memberId": "u-dave"}}]}
Its tenantId defaults to --tenant. A retry with the same requestId writes nothing twice.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &pb.WriteChangesRequest{}
			if err := readRequestFile(args[0], req); err != nil {
				return err
			}
			if req.TenantId == "" {
				req.TenantId = f.tenant
			}
			if requestID != "" {
				req.RequestId = requestID
			}
			if cmd.Flags().Changed("expected-revision") {
				req.ExpectedRevision = &expected
			}
			ctx, c, done, err := f.dial(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := c.Directory.WriteChanges(ctx, req)
			if err != nil {
				return describeError(err)
			}
			if f.output == "json" {
				return printJSON(stdout(), resp)
			}
			fmt.Fprintf(stdout(), "revision %d\n", resp.GetRevision())
			return nil
		},
	}
	cmd.Flags().StringVar(&requestID, "request-id", "", "idempotency key (overrides the file's requestId)")
	cmd.Flags().Int64Var(&expected, "expected-revision", 0, "fail unless the tenant is at this revision")
	f.register(cmd)
	return cmd
}

func newStatusCmd() *cobra.Command {
	f := &clientFlags{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show a tenant's revision, object counts and store",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, c, done, err := f.dial(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := c.Directory.GetStatus(ctx, &pb.GetStatusRequest{TenantId: f.tenant})
			if err != nil {
				return describeError(err)
			}
			if f.output == "json" {
				return printJSON(stdout(), resp)
			}
			n := resp.GetCounts()
			fmt.Fprintf(stdout(), "tenant %s at revision %d (store %s, store revision %d, lag %s)\n", f.tenant, resp.GetRevision(),
				resp.GetStore(), resp.GetStoreRevision(), resp.GetReplicationLag().AsDuration())
			fmt.Fprintf(stdout(), "users %d (guests %d), groups %d, service principals %d, labels %d, memberships %d\n",
				n.GetUsers(), n.GetGuests(), n.GetGroups(), n.GetServicePrincipals(), n.GetLabels(), n.GetMemberships())
			if t := resp.GetLastSyncRound(); t != nil {
				fmt.Fprintf(stdout(), "last sync round %s, sync lag %s\n", t.AsTime().UTC().Format(time.RFC3339), resp.GetSyncLag().AsDuration().Round(time.Millisecond))
			}
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

func newImportCmd() *cobra.Command {
	f := &clientFlags{}
	var expected int64
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Replace a tenant with a snapshot file (.json, .json.gz, .pb, .pb.gz; 'demo' for the demo tenant) and print the new revision",
		Long: `Replace the tenant the snapshot names with the snapshot, as one new revision (ImportSnapshot). The file is
validated locally first, then streamed in parts. With --expected-revision 0 it only seeds a tenant that does
not exist yet.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var snap *pb.Snapshot
			if args[0] == "demo" {
				d, err := demo.Directory()
				if err != nil {
					return err
				}
				snap = d.Snapshot()
			} else {
				d, err := directory.LoadFile(args[0])
				if err != nil {
					return err
				}
				snap = d.Snapshot()
			}
			var exp *int64
			if cmd.Flags().Changed("expected-revision") {
				exp = &expected
			}
			ctx, c, done, err := f.dial(cmd)
			if err != nil {
				return err
			}
			defer done()
			rev, err := c.ImportSnapshot(ctx, snap, exp)
			if err != nil {
				return describeError(err)
			}
			if f.output == "json" {
				return printJSON(stdout(), &pb.ImportSnapshotResponse{Revision: rev})
			}
			fmt.Fprintf(stdout(), "tenant %s imported at revision %d\n", snap.GetTenantId(), rev)
			return nil
		},
	}
	cmd.Flags().Int64Var(&expected, "expected-revision", 0, "fail unless the tenant is at this revision (0: only if it does not exist)")
	f.register(cmd)
	return cmd
}
