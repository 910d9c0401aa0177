package main

import (
	"fmt"
	"io"
	"strings"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
)

// verdictWord is VERDICT_DENY → DENY.
func verdictWord(v pb.Verdict) string { return strings.TrimPrefix(v.String(), "VERDICT_") }

// printDecision prints a decision for a person: both verdicts, then every violation and warning with its
// evidence path.
func printDecision(w io.Writer, d *pb.Decision) {
	fmt.Fprintf(w, "verdict:        %s   (groupgate strict policy)\n", verdictWord(d.GetVerdict()))
	fmt.Fprintf(w, "entra_verdict:  %s   (what Entra ID itself would do today)\n", verdictWord(d.GetEntraVerdict()))
	fmt.Fprintf(w, "revision:       %d\n", d.GetRevision())
	if id := d.GetDecisionId(); id != "" {
		fmt.Fprintf(w, "decision_id:    %s   (groupgate decisions --id %s)\n", id, id)
	}
	printViolations(w, "violations", d.GetViolations())
	printViolations(w, "warnings", d.GetWarnings())
}

func printViolations(w io.Writer, title string, vs []*pb.Violation) {
	if len(vs) == 0 {
		return
	}
	fmt.Fprintf(w, "%s:\n", title)
	for _, v := range vs {
		switch {
		case title == "warnings":
			fmt.Fprintf(w, "  - %s\n", v.GetRule())
		case v.GetEnforcedByEntra():
			fmt.Fprintf(w, "  - %s (enforced by Entra)\n", v.GetRule())
		default:
			fmt.Fprintf(w, "  - %s (strict only: Entra would let it through)\n", v.GetRule())
		}
		fmt.Fprintf(w, "    %s\n", v.GetMessage())
		if len(v.GetPath()) > 0 {
			fmt.Fprintf(w, "    path: %s\n", strings.Join(v.GetPath(), " -> "))
		}
	}
}
