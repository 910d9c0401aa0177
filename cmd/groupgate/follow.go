package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/groupgate/groupgate/client"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

// followResumeDelay is how long audit --follow waits before it resumes a stream the server ended while it
// stays up (RESOURCE_EXHAUSTED: the terminal read too slowly; UNAVAILABLE: a replica shutting down).
const followResumeDelay = 500 * time.Millisecond

// followFindings is `audit --follow`: the findings that hold at the starting revision, then every OPENED and
// RESOLVED event as it comes, until Ctrl-C (or SIGTERM) ends it cleanly. A stream the server ends with
// RESOURCE_EXHAUSTED or UNAVAILABLE is resumed after the last revision printed in full, the way the contract
// says a subscriber resumes; the resumed stream's starting findings are the ones already printed, so they are
// skipped.
func followFindings(cmd *cobra.Command, f *clientFlags, c *client.Client, req *pb.WatchFindingsRequest) error {
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p := &findingPrinter{w: stdout(), json: f.output == "json"}
	resumed := false
	for {
		err := c.WatchFindings(ctx, req, func(resp *pb.WatchFindingsResponse) error {
			if resumed && !p.doneCurrent(resp) {
				return nil
			}
			if err := p.print(resp); err != nil {
				return err
			}
			if resp.GetRevisionDone() {
				req.AfterRevision = resp.GetRevision() // fully received: where a resumed stream starts
			}
			return nil
		})
		switch {
		case ctx.Err() != nil:
			fmt.Fprintln(os.Stderr, "stopped following")
			return nil
		case err == nil:
			return errors.New("the server ended the stream") // it never does by itself
		}
		if code := status.Code(err); (code == codes.ResourceExhausted || code == codes.Unavailable) && req.AfterRevision > 0 {
			fmt.Fprintf(os.Stderr, "%s; resuming after revision %d\n", describeError(err), req.AfterRevision)
			resumed, p.skipping = true, true
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(followResumeDelay):
			}
			continue
		}
		return describeError(err)
	}
}

// findingPrinter writes WatchFindings messages for a terminal (text) or a pipe (json: one FindingEvent per line).
type findingPrinter struct {
	w        io.Writer
	json     bool
	open     int  // starting findings printed
	skipping bool // a resumed stream's starting findings, already printed once
}

// doneCurrent reports whether the message comes after a resumed stream's starting findings.
func (p *findingPrinter) doneCurrent(resp *pb.WatchFindingsResponse) bool {
	if p.skipping {
		if resp.GetCurrentDone() {
			p.skipping = false
		}
		return false
	}
	return true
}

var eventJSON = protojson.MarshalOptions{UseProtoNames: true}

func (p *findingPrinter) print(resp *pb.WatchFindingsResponse) error {
	if resp.GetCurrentDone() {
		if !p.json {
			fmt.Fprintf(os.Stderr, "%d findings open at revision %d; following (Ctrl-C ends)\n", p.open, resp.GetRevision())
		}
		return nil
	}
	for _, e := range resp.GetEvents() {
		if e.GetCurrent() {
			p.open++
		}
		if p.json {
			b, err := eventJSON.Marshal(e)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(p.w, "%s\n", b); err != nil {
				return err
			}
			continue
		}
		if _, err := io.WriteString(p.w, formatEvent(e)); err != nil {
			return err
		}
	}
	return nil
}

// formatEvent is one event in text: its kind (OPEN for a finding that already held at the start), revision,
// rule and group, then the finding's message, its evidence path and the changes that caused it.
func formatEvent(e *pb.FindingEvent) string {
	kind := strings.TrimPrefix(e.GetKind().String(), "FINDING_EVENT_KIND_")
	if e.GetCurrent() {
		kind = "OPEN"
	}
	fd := e.GetFinding()
	var b strings.Builder
	fmt.Fprintf(&b, "%-8s r%d  %s  %s\n    %s\n", kind, e.GetRevision(), fd.GetRule(), fd.GetGroupId(), fd.GetMessage())
	if len(fd.GetPath()) > 0 {
		fmt.Fprintf(&b, "    path: %s\n", strings.Join(fd.GetPath(), " -> "))
	}
	if causes := describeChanges(e.GetCausedBy()); causes != "" {
		fmt.Fprintf(&b, "    caused by: %s\n", causes)
	}
	return b.String()
}

// describeChanges names changes briefly ("add grp-x <- u-y"); the full change is in -o json.
func describeChanges(cs []*pb.Change) string {
	var out []string
	for _, c := range cs {
		switch k := c.GetChange().(type) {
		case *pb.Change_AddMember:
			out = append(out, fmt.Sprintf("add %s <- %s", k.AddMember.GetGroupId(), k.AddMember.GetMemberId()))
		case *pb.Change_RemoveMember:
			out = append(out, fmt.Sprintf("remove %s <- %s", k.RemoveMember.GetGroupId(), k.RemoveMember.GetMemberId()))
		default:
			b, _ := protojson.Marshal(c)
			out = append(out, string(b))
		}
	}
	return strings.Join(out, "; ")
}
