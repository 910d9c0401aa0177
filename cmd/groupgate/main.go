// Command groupgate is the groupgate policy decision point: the server (serve) and its command-line client.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// version is set at build time (scripts/image: -ldflags "-X main.version=...").
var version = "dev"

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "groupgate:", err)
		os.Exit(exitCode(err))
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "groupgate",
		Version:       version,
		Short:         "A policy decision point for Microsoft Entra ID group governance",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// Each subcommand lives in its own file and is registered here, one line each.
	root.AddCommand(newServeCmd())
	root.AddCommand(newCheckCmd(), newMembersCmd(), newGroupsCmd(), newAuditCmd())
	root.AddCommand(newPlanCmd(), newApplyCmd(), newImportCmd(), newStatusCmd())
	root.AddCommand(newGenCmd(), newBenchCmd(), newNoOpServeCmd())
	root.AddCommand(newSyncCmd(), newDecisionsCmd())
	return root
}
