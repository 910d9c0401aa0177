package bench

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportsRunDownward checks the module's import graph against the layout the README describes: bench imports
// internal/, so nothing under internal/ may import bench (internal/benchtenant once imported bench/workload, and
// the two packages depended on each other's trees); data flows server → policy → resolver → directory and never
// back (findings, the live findings evaluator, sits between server and policy); server/app, the wiring, sits on top. In-package test files count (a benchmark's imports are its package's dependencies too); external test
// packages (package x_test) may use the layers above to drive the one they test.
func TestImportsRunDownward(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	const module = "github.com/groupgate/groupgate/"
	out, err := exec.Command("go", "list", "-f",
		`{{.ImportPath}} {{join .Imports " "}} {{join .TestImports " "}}`,
		module+"...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	// below imports nothing in above (both module-relative prefixes of package paths).
	rules := []struct{ below, above string }{
		{"internal/", "bench"},
		{"internal/", "cmd/"},
		{"internal/", "server"},
		{"policy", "server"},
		{"resolver", "policy"},
		{"resolver", "server"},
		{"directory", "resolver"},
		{"directory", "policy"},
		{"directory", "server"},
		{"store", "server"},
		{"store", "policy"},
		{"web", "server"},
		// findings (live findings) sits between server and policy: it asks policy, follows store, serves server.
		{"findings", "server"},
		{"policy", "findings"},
		{"resolver", "findings"},
		{"directory", "findings"},
		{"store", "findings"},
		// server/app wires everything; only the commands and the test harness start servers through it.
		{"server/gateway", "server/app"},
		{"policy", "server/app"},
		{"entra", "server/app"},
		// The findings webhook follows the server through its API (a grpc connection), never its insides.
		{"notify", "server"},
		{"notify", "policy"},
		{"notify", "store"},
		{"store", "notify"},
	}
	under := func(pkg, prefix string) bool {
		return pkg == strings.TrimSuffix(prefix, "/") || strings.HasPrefix(pkg, strings.TrimSuffix(prefix, "/")+"/")
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], module)
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			imp = strings.TrimPrefix(imp, module)
			for _, r := range rules {
				if under(pkg, r.below) && under(imp, r.above) && !under(pkg, r.above) {
					t.Errorf("%s imports %s: want nothing under %s importing %s", pkg, imp, r.below, r.above)
				}
			}
			checked++
		}
	}
	if checked < 50 {
		t.Fatalf("checked %d imports inside the module: want the whole module's (go list output:\n%s)", checked, out)
	}
}
