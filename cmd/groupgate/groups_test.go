package main

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestGroupsCommand runs `groupgate groups` in-process (--snapshot demo) and against a running server (--addr):
// both print the same table, nearest groups first.
func TestGroupsCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, &serveFlags{listen: "127.0.0.1:0", logLevel: "error", logFormat: "text", shutdownTimeout: time.Second}, ready)
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want []string // the rows' first two columns
	}{
		{[]string{"u-frank"}, []string{"grp-eng-contractors 1", "grp-board 1", "grp-engineering 2"}},
		{[]string{"u-gina", "--labelled"}, []string{"grp-project-x 1", "grp-vendors 2"}},
		{[]string{"u-erin", "--role-assignable"}, []string{"grp-tier0-admins 1"}},
	}
	for _, where := range [][]string{{"--snapshot", "demo"}, {"--addr", addr}} {
		for _, tt := range tests {
			out := runCLI(t, append(append([]string{"groups"}, tt.args...), where...)...)
			lines := strings.Split(strings.TrimSpace(out), "\n")
			var got []string
			for _, l := range lines[1:] {
				f := strings.Fields(l)
				got = append(got, f[0]+" "+f[1])
			}
			if !strings.HasPrefix(lines[0], "ID") || !slices.Equal(got, tt.want) {
				t.Errorf("groups %v %v:\n%s\nwant rows %v", tt.args, where, out, tt.want)
			}
		}
	}
	out := runCLI(t, "groups", "u-gina", "--labelled", "--paths", "--addr", addr)
	if !strings.Contains(out, "PATH") || !strings.Contains(out, "grp-vendors -> grp-partners -> u-gina") {
		t.Errorf("groups u-gina --labelled --paths:\n%s", out)
	}
	var resp struct {
		Groups []struct {
			ID    string `json:"id"`
			Label string `json:"label_id"`
		} `json:"groups"`
		Revision string `json:"revision"`
	}
	if err := json.Unmarshal([]byte(runCLI(t, "groups", "u-frank", "--labelled", "-o", "json", "--addr", addr)), &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Groups) != 2 || resp.Groups[1].Label != "lbl-highly-confidential" || resp.Revision != "1" {
		t.Errorf("json: %+v", resp)
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}

func TestGroupsCommandStatsAndErrors(t *testing.T) {
	out := runCLI(t, "groups", "u-frank", "--stats", "--snapshot", "demo")
	if !strings.HasPrefix(out, "3 effective groups in 1 messages: first message after ") {
		t.Errorf("--stats printed %q", out)
	}
	for _, tt := range []struct{ principal, want string }{
		{"u-nobody", `NotFound: principal "u-nobody" not found`},
		{"u nobody", "InvalidArgument: invalid request: principal_id"},
	} {
		root := newRootCmd()
		root.SetArgs([]string{"groups", tt.principal, "--snapshot", "demo"})
		err := root.Execute()
		if err == nil || !strings.Contains(err.Error(), tt.want) || exitCode(err) != 1 {
			t.Errorf("groups %q: %v (exit %d), want %q and exit 1", tt.principal, err, exitCode(err), tt.want)
		}
	}
}
