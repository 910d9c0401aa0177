package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/groupgate/groupgate/decisionlog"
	"github.com/groupgate/groupgate/server"
	"github.com/groupgate/groupgate/store/postgres"
	"github.com/spf13/cobra"
)

func newDecisionsCmd() *cobra.Command {
	var storeURL, file, since, verdict, output string
	var q decisionlog.Query
	cmd := &cobra.Command{
		Use:   "decisions",
		Short: "Why was this allowed? Read the decision log: the Postgres one (--store) or a file (--file)",
		Long: `Read the records serve --decision-log wrote (SPEC §14), newest first: from the decision_log table of the
database --store names (serve --decision-log postgres), or from a file log and its rotated files (serve
--decision-log file:PATH, read with --file PATH).`,
		Example: `  groupgate decisions --store postgres://groupgate@db/groupgate --group grp-finance --since 24h
  groupgate decisions --file /var/log/groupgate/decisions.jsonl --verdict deny --actor u-oscar
  groupgate decisions --store postgres://… --id 019a3c1e-8f2a-7c4e-9b1d-2f6e8a7c5d3b -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindEnv(cmd); err != nil {
				return err
			}
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return err
				}
				q.Since = t
			}
			switch strings.ToLower(verdict) {
			case "":
			case "allow", "deny":
				q.Verdict = strings.ToUpper(verdict)
			default:
				return fmt.Errorf("--verdict %q: want allow or deny", verdict)
			}
			if q.DecisionID != "" {
				if _, err := uuid.Parse(q.DecisionID); err != nil {
					return fmt.Errorf("--id %q: not a decision id (a UUID)", q.DecisionID)
				}
			}
			if output != "text" && output != "json" {
				return fmt.Errorf("-o %q: want text or json", output)
			}
			var recs []*decisionlog.Record
			var err error
			switch {
			case file != "" && cmd.Flags().Changed("store"):
				return errors.New("--file and --store: read one decision log at a time")
			case file != "":
				recs, err = decisionlog.ReadFiles(file, q)
			case strings.HasPrefix(storeURL, "postgres://") || strings.HasPrefix(storeURL, "postgresql://"):
				var l *postgres.DecisionLog
				if l, err = postgres.OpenDecisionLog(cmd.Context(), storeURL); err != nil {
					return err
				}
				defer l.Close()
				recs, err = l.QueryDecisions(cmd.Context(), q)
			default:
				return errors.New("name the decision log: --store postgres://… (serve --decision-log postgres) or --file PATH (serve --decision-log file:PATH)")
			}
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(stdout())
				for _, r := range recs {
					if err := enc.Encode(r); err != nil {
						return err
					}
				}
				return nil
			}
			printRecords(stdout(), recs)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&storeURL, "store", "", "the database of serve --store postgres://… (its decision_log table)")
	fl.StringVar(&file, "file", "", "a file decision log (serve --decision-log file:PATH): PATH, with PATH.1 … read too")
	fl.StringVar(&since, "since", "", "only decisions since this long ago (24h, 90m) or this time (RFC 3339, or YYYY-MM-DD)")
	fl.StringVar(&q.TenantID, "tenant", "", "only this tenant's decisions")
	fl.StringVar(&q.GroupID, "group", "", "only decisions about this group")
	fl.StringVar(&q.ActorID, "actor", "", "only decisions for this actor")
	fl.StringVar(&verdict, "verdict", "", "only allow or deny decisions (the strict verdict)")
	fl.StringVar(&q.DecisionID, "id", "", "the decision with this decision_id")
	fl.IntVarP(&q.Limit, "limit", "n", 50, "at most this many, newest first (0: all)")
	fl.StringVarP(&output, "output", "o", "text", "text, or json (one record a line)")
	annotateEnv(cmd)
	return cmd
}

// parseSince reads --since: a duration back from now, an RFC 3339 time, or a date (midnight UTC).
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("--since %s: want a positive duration", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--since %q: want a duration (24h), an RFC 3339 time or a date (2026-01-31)", s)
}

// printRecords prints records for a person: one line of what was asked and answered, one of the evidence.
func printRecords(w io.Writer, recs []*decisionlog.Record) {
	if len(recs) == 0 {
		fmt.Fprintln(w, "no decisions match")
		return
	}
	for _, r := range recs {
		var about []string
		for _, f := range []struct{ name, v string }{{"group", r.GroupID}, {"member", r.MemberID}, {"label", r.LabelID}, {"actor", r.ActorID}, {"action", r.Action}} {
			if f.v != "" {
				about = append(about, f.name+" "+f.v)
			}
		}
		fmt.Fprintf(w, "%s  %-5s (entra %s)  %s  tenant %s rev %d  %s\n", r.Time.UTC().Format("2006-01-02T15:04:05.000Z"), r.Verdict,
			r.EntraVerdict, r.RPC, r.TenantID, r.Revision, strings.Join(about, "  "))
		caller := "anonymous"
		if c := r.Caller; c != nil {
			caller = server.Caller{Kind: c.Kind, Name: c.Name, TenantID: c.TenantID, ObjectID: c.ObjectID, AppID: c.AppID}.String()
		}
		fmt.Fprintf(w, "    decision %s  by %s  %.3f ms", r.DecisionID, caller, r.LatencyMS)
		if r.TraceID != "" {
			fmt.Fprintf(w, "  trace %s", r.TraceID)
		}
		fmt.Fprintln(w)
		if len(r.Violations) > 0 {
			fmt.Fprintf(w, "    violations: %s\n", strings.Join(r.Violations, ", "))
		}
		if len(r.Warnings) > 0 {
			fmt.Fprintf(w, "    warnings:   %s\n", strings.Join(r.Warnings, ", "))
		}
	}
}
