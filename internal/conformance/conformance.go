// Package conformance runs the policy conformance fixtures of testdata/conformance: each file is a tenant and
// cases with their expected verdicts, rule codes, warnings and evidence. The same fixtures run in-process
// (policy) and over real gRPC (server), so both answer exactly alike.
//
// A fixture file, in YAML:
//
//	name: what the file covers
//	demo: true                 # start from the embedded demo tenant contoso, or give `tenant:` (a Snapshot)
//	changes: [...]             # optional Change messages applied to the tenant first (protobuf JSON)
//	cases:
//	  - name: a guest may not join a confidential group
//	    canAddMember: {groupId: grp-finance, memberId: u-gina, actorId: u-oscar}   # or canApplyLabel, …, plan, audit
//	    want:
//	      verdict: DENY          # ALLOW or DENY
//	      entraVerdict: DENY
//	      violations: [RULE_LABEL_BLOCKS_GUESTS]     # the exact set of rule codes
//	      warnings: []                              # the exact set of warning codes
//	      paths: {RULE_LABEL_BLOCKS_GUESTS: [grp-finance, u-gina]}   # optional evidence
//	      error: NOT_FOUND       # instead of a decision: the gRPC code expected
//	  - name: the groups a guest reaches
//	    effectiveGroups: {principalId: u-frank, labelledOnly: true}
//	    want:
//	      groups: ["grp-eng-contractors 1 label=lbl-general", "grp-tier0-admins 1 role-assignable"]   # id depth …
package conformance

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/groupgate/groupgate/directory"
	"github.com/groupgate/groupgate/directory/demo"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"
)

// File is one fixture file.
type File struct {
	Name    string            `json:"name"`
	Demo    bool              `json:"demo"`
	Tenant  json.RawMessage   `json:"tenant"`
	Changes []json.RawMessage `json:"changes"`
	Cases   []Case            `json:"cases"`
}

// Case is one question and what it must answer.
type Case struct {
	Name               string          `json:"name"`
	CanAddMember       json.RawMessage `json:"canAddMember"`
	CanApplyLabel      json.RawMessage `json:"canApplyLabel"`
	CanChangeLabel     json.RawMessage `json:"canChangeLabel"`
	CanCreateRoleGroup json.RawMessage `json:"canCreateRoleGroup"`
	CanModifyUser      json.RawMessage `json:"canModifyUser"`
	Plan               json.RawMessage `json:"plan"`
	Audit              json.RawMessage `json:"audit"`
	EffectiveGroups    json.RawMessage `json:"effectiveGroups"`
	Want               Want            `json:"want"`
}

// Want is the expected answer.
type Want struct {
	Error        string              `json:"error"`
	Verdict      string              `json:"verdict"`
	EntraVerdict string              `json:"entraVerdict"`
	Violations   []string            `json:"violations"`
	Warnings     []string            `json:"warnings"`
	Paths        map[string][]string `json:"paths"`
	// Steps, for plans: one expectation per step.
	Steps []StepWant `json:"steps"`
	// Findings, for audits: the exact set of "RULE group_id" pairs.
	Findings []string `json:"findings"`
	// Groups, for EffectiveGroups: the exact set of "id depth" with " label=L" for a labelled group,
	// " role-assignable" for a role-assignable one and " path=id>…>principal" with includePaths (see FormatGroup).
	Groups []string `json:"groups"`
	// Privileges, for decisions: the exact set of evidence of how the actor holds each right the decision
	// relied on, written as FormatPrivilege does; unchecked when absent.
	Privileges []string `json:"privileges"`
}

// StepWant is the expectation of one plan step.
type StepWant struct {
	Want
	Applied bool `json:"applied"`
}

// Target answers questions on a loaded tenant: in-process or over gRPC.
type Target interface {
	Check(t *testing.T, item *pb.CheckBatchItem) (*pb.Decision, codes.Code)
	Plan(t *testing.T, req *pb.EvaluatePlanRequest) ([]*pb.PlanStepResult, codes.Code)
	Audit(t *testing.T, req *pb.AuditRequest) ([]*pb.Finding, codes.Code)
	// EffectiveGroups returns every group streamed, in order, and fails the test if the messages of the call
	// do not all carry one revision.
	EffectiveGroups(t *testing.T, req *pb.EffectiveGroupsRequest) ([]*pb.EffectiveGroup, codes.Code)
}

// FormatGroup writes an EffectiveGroups item the way fixtures list them:
// "id depth[ label=L][ role-assignable][ path=id>…>principal]".
func FormatGroup(g *pb.EffectiveGroup) string {
	s := fmt.Sprintf("%s %d", g.GetId(), g.GetDepth())
	if g.GetLabelId() != "" {
		s += " label=" + g.GetLabelId()
	}
	if g.GetIsAssignableToRole() {
		s += " role-assignable"
	}
	if len(g.GetPath()) > 0 {
		s += " path=" + strings.Join(g.GetPath(), ">")
	}
	return s
}

// FormatPrivilege writes a decision's privilege evidence the way fixtures list it:
// "actor object owner", "actor object permission=P" or
// "actor object role=NAME scope=SCOPE action=ACTION[ custom][ via=GROUP]".
func FormatPrivilege(p *pb.Privilege) string {
	s := p.GetActorId() + " " + p.GetObjectId()
	switch {
	case p.GetOwner():
		return s + " owner"
	case p.GetAppPermission() != "":
		return s + " permission=" + p.GetAppPermission()
	}
	s += fmt.Sprintf(" role=%s scope=%s action=%s", p.GetRole(), p.GetDirectoryScopeId(), p.GetAction())
	if p.GetCustomRole() {
		s += " custom"
	}
	if p.GetViaGroupId() != "" {
		s += " via=" + p.GetViaGroupId()
	}
	return s
}

// Files loads every fixture file in dir.
func Files(t testing.TB, dir string) map[string]*File {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no fixtures in %s: %v", dir, err)
	}
	out := map[string]*File{}
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		js, err := yaml.YAMLToJSON(raw)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		f := &File{}
		dec := json.NewDecoder(strings.NewReader(string(js)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(f); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out[filepath.Base(p)] = f
	}
	return out
}

// Directory builds the fixture's tenant.
func (f *File) Directory(t testing.TB) *directory.Directory {
	t.Helper()
	snap := demo.Snapshot()
	if !f.Demo {
		snap = &pb.Snapshot{}
		if err := protojson.Unmarshal(f.Tenant, snap); err != nil {
			t.Fatalf("fixture %q: tenant: %v", f.Name, err)
		}
	}
	d, err := directory.FromSnapshot(snap, 1)
	if err != nil {
		t.Fatalf("fixture %q: tenant refused: %v", f.Name, err)
	}
	if len(f.Changes) > 0 {
		changes := make([]*pb.Change, len(f.Changes))
		for i, raw := range f.Changes {
			changes[i] = &pb.Change{}
			if err := protojson.Unmarshal(raw, changes[i]); err != nil {
				t.Fatalf("fixture %q: changes[%d]: %v", f.Name, i, err)
			}
		}
		if d, _, err = d.Apply(changes, 2); err != nil {
			t.Fatalf("fixture %q: changes refused: %v", f.Name, err)
		}
	}
	return d
}

// Run runs every fixture file in dir against targets made by start, one subtest per file and case.
func Run(t *testing.T, dir string, start func(t *testing.T, d *directory.Directory) Target) {
	files := Files(t, dir)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		f := files[n]
		t.Run(strings.TrimSuffix(n, ".yaml"), func(t *testing.T) {
			target := start(t, f.Directory(t))
			tenant := f.Directory(t).TenantID()
			for i, c := range f.Cases {
				t.Run(fmt.Sprintf("%02d %s", i, c.Name), func(t *testing.T) {
					c.run(t, target, tenant)
				})
			}
		})
	}
}

func (c *Case) run(t *testing.T, target Target, tenant string) {
	switch {
	case c.Plan != nil:
		req := &pb.EvaluatePlanRequest{}
		mustUnmarshal(t, c.Plan, req)
		req.TenantId = tenant
		steps, code := target.Plan(t, req)
		if !c.Want.checkCode(t, code) {
			return
		}
		if len(steps) != len(c.Want.Steps) {
			t.Fatalf("%d step results, want %d", len(steps), len(c.Want.Steps))
		}
		for i, s := range steps {
			w := c.Want.Steps[i]
			label := fmt.Sprintf("step %d: ", i)
			if s.GetApplied() != w.Applied {
				t.Errorf("%sapplied = %v, want %v", label, s.GetApplied(), w.Applied)
			}
			if s.GetError() != nil {
				code := codes.Code(s.GetError().GetCode())
				if w.Error == "" || code.String() != codeName(w.Error) {
					t.Errorf("%serror %v (%s), want %q", label, code, s.GetError().GetMessage(), w.Error)
				}
				continue
			}
			w.checkDecision(t, label, s.GetDecision())
		}
	case c.Audit != nil:
		req := &pb.AuditRequest{}
		mustUnmarshal(t, c.Audit, req)
		req.TenantId = tenant
		findings, code := target.Audit(t, req)
		if !c.Want.checkCode(t, code) {
			return
		}
		var got []string
		for _, f := range findings {
			got = append(got, f.GetRule().String()+" "+f.GetGroupId())
			if f.GetMessage() == "" {
				t.Errorf("finding %v has no message", f)
			}
		}
		if !sameSet(got, c.Want.Findings) {
			t.Errorf("findings\n got %v\nwant %v", sorted(got), sorted(c.Want.Findings))
		}
	case c.EffectiveGroups != nil:
		req := &pb.EffectiveGroupsRequest{}
		mustUnmarshal(t, c.EffectiveGroups, req)
		req.TenantId = tenant
		groups, code := target.EffectiveGroups(t, req)
		if !c.Want.checkCode(t, code) {
			return
		}
		var got []string
		last := int32(0)
		for _, g := range groups {
			got = append(got, FormatGroup(g))
			if g.GetDepth() < last {
				t.Errorf("%s comes after depth %d: groups must come nearest first", FormatGroup(g), last)
			}
			last = g.GetDepth()
		}
		if len(sorted(got)) != len(got) {
			t.Errorf("a group is listed twice: %v", got)
		}
		if !sameSet(got, c.Want.Groups) {
			t.Errorf("groups\n got %v\nwant %v", sorted(got), sorted(c.Want.Groups))
		}
	default:
		item := c.item(t, tenant)
		d, code := target.Check(t, item)
		if !c.Want.checkCode(t, code) {
			return
		}
		c.Want.checkDecision(t, "", d)
	}
}

// item builds the CheckBatchItem of a Can* case.
func (c *Case) item(t *testing.T, tenant string) *pb.CheckBatchItem {
	t.Helper()
	switch {
	case c.CanAddMember != nil:
		r := &pb.CanAddMemberRequest{}
		mustUnmarshal(t, c.CanAddMember, r)
		r.TenantId = tenant
		return &pb.CheckBatchItem{Check: &pb.CheckBatchItem_CanAddMember{CanAddMember: r}}
	case c.CanApplyLabel != nil:
		r := &pb.CanApplyLabelRequest{}
		mustUnmarshal(t, c.CanApplyLabel, r)
		r.TenantId = tenant
		return &pb.CheckBatchItem{Check: &pb.CheckBatchItem_CanApplyLabel{CanApplyLabel: r}}
	case c.CanChangeLabel != nil:
		r := &pb.CanChangeLabelRequest{}
		mustUnmarshal(t, c.CanChangeLabel, r)
		r.TenantId = tenant
		return &pb.CheckBatchItem{Check: &pb.CheckBatchItem_CanChangeLabel{CanChangeLabel: r}}
	case c.CanCreateRoleGroup != nil:
		r := &pb.CanCreateRoleGroupRequest{}
		mustUnmarshal(t, c.CanCreateRoleGroup, r)
		r.TenantId = tenant
		return &pb.CheckBatchItem{Check: &pb.CheckBatchItem_CanCreateRoleGroup{CanCreateRoleGroup: r}}
	case c.CanModifyUser != nil:
		r := &pb.CanModifyUserRequest{}
		mustUnmarshal(t, c.CanModifyUser, r)
		r.TenantId = tenant
		return &pb.CheckBatchItem{Check: &pb.CheckBatchItem_CanModifyUser{CanModifyUser: r}}
	}
	t.Fatal("case asks no question: set canAddMember, canApplyLabel, canChangeLabel, canCreateRoleGroup, canModifyUser, plan, audit or effectiveGroups")
	return nil
}

// checkCode compares the call's code with the expected error; it reports whether a decision should follow.
func (w *Want) checkCode(t *testing.T, got codes.Code) bool {
	t.Helper()
	want := codes.OK
	if w.Error != "" {
		want = parseCode(t, w.Error)
	}
	if got != want {
		t.Fatalf("code %v, want %v", got, want)
	}
	return got == codes.OK
}

func (w *Want) checkDecision(t *testing.T, label string, d *pb.Decision) {
	t.Helper()
	if d == nil {
		t.Fatalf("%sno decision", label)
	}
	if w.Verdict == "" || w.EntraVerdict == "" {
		t.Fatalf("%sfixture lacks verdict or entraVerdict", label)
	}
	if got := strings.TrimPrefix(d.GetVerdict().String(), "VERDICT_"); got != w.Verdict {
		t.Errorf("%sverdict %s, want %s (violations %v)", label, got, w.Verdict, rules(d.GetViolations()))
	}
	if got := strings.TrimPrefix(d.GetEntraVerdict().String(), "VERDICT_"); got != w.EntraVerdict {
		t.Errorf("%sentra_verdict %s, want %s", label, got, w.EntraVerdict)
	}
	if got := rules(d.GetViolations()); !sameSet(got, w.Violations) {
		t.Errorf("%sviolations %v, want %v\n%s", label, sorted(got), sorted(w.Violations), messages(d.GetViolations()))
	}
	if got := rules(d.GetWarnings()); !sameSet(got, w.Warnings) {
		t.Errorf("%swarnings %v, want %v\n%s", label, sorted(got), sorted(w.Warnings), messages(d.GetWarnings()))
	}
	for rule, path := range w.Paths {
		found := false
		for _, v := range append(slices.Clone(d.GetViolations()), d.GetWarnings()...) {
			if v.GetRule().String() == rule && slices.Equal(v.GetPath(), path) {
				found = true
			}
		}
		if !found {
			t.Errorf("%sno %s with path %v in %s", label, rule, path, messages(append(slices.Clone(d.GetViolations()), d.GetWarnings()...)))
		}
	}
	if w.Privileges != nil {
		var got []string
		for _, p := range d.GetPrivileges() {
			got = append(got, FormatPrivilege(p))
		}
		if !sameSet(got, w.Privileges) {
			t.Errorf("%sprivileges %q, want %q", label, sorted(got), sorted(w.Privileges))
		}
	}
	for _, v := range d.GetViolations() {
		if v.GetMessage() == "" {
			t.Errorf("%s%s has no message", label, v.GetRule())
		}
	}
	if (d.GetVerdict() == pb.Verdict_VERDICT_ALLOW) != (len(d.GetViolations()) == 0) {
		t.Errorf("%sverdict %v with %d violations: violations must be empty exactly when ALLOW", label, d.GetVerdict(), len(d.GetViolations()))
	}
	entraDeny := false
	for _, v := range d.GetViolations() {
		entraDeny = entraDeny || v.GetEnforcedByEntra()
	}
	if entraDeny != (d.GetEntraVerdict() == pb.Verdict_VERDICT_DENY) {
		t.Errorf("%sentra_verdict %v disagrees with enforced_by_entra of the violations", label, d.GetEntraVerdict())
	}
}

func rules(vs []*pb.Violation) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.GetRule().String()
	}
	return out
}

func messages(vs []*pb.Violation) string {
	var b strings.Builder
	for _, v := range vs {
		fmt.Fprintf(&b, "  %s enforced=%v path=%v: %s\n", v.GetRule(), v.GetEnforcedByEntra(), v.GetPath(), v.GetMessage())
	}
	return b.String()
}

func sameSet(a, b []string) bool { return slices.Equal(sorted(a), sorted(b)) }

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

func parseCode(t *testing.T, name string) codes.Code {
	t.Helper()
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if c.String() == codeName(name) {
			return c
		}
	}
	t.Fatalf("unknown code %q", name)
	return codes.Unknown
}

// codeName turns NOT_FOUND into NotFound, the way codes.Code prints.
func codeName(s string) string {
	parts := strings.Split(strings.ToLower(s), "_")
	for i, p := range parts {
		if p != "" {
			parts[i] = strings.ToUpper(p[:1]) + p[1:]
		}
	}
	return strings.Join(parts, "")
}

func mustUnmarshal(t *testing.T, raw json.RawMessage, m proto.Message) {
	t.Helper()
	if err := protojson.Unmarshal(raw, m); err != nil {
		t.Fatalf("request: %v", err)
	}
}
