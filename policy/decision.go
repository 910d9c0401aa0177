package policy

import (
	"fmt"
	"strings"

	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
)

// decision collects the violations and warnings of one question and turns them into a Decision.
//
// Every violation carries enforced_by_entra as it holds for this request: a label rule that the actor bypasses
// during the preview is reported with enforced_by_entra false (Entra would let it through) plus a
// RULE_PREVIEW_BYPASS warning. So entra_verdict is DENY exactly when some violation has enforced_by_entra, and
// verdict is DENY exactly when there is any violation.
type decision struct {
	dir        *directory.Directory
	violations []*pb.Violation
	warnings   []*pb.Violation
	seen       map[pb.Rule]bool
	privileges []*pb.Privilege // how the actor holds each right relied on (privilege.go)
}

func newDecision(dir *directory.Directory) *decision {
	return &decision{dir: dir, seen: map[pb.Rule]bool{}}
}

// violate records a broken rule. enforced says whether Entra itself enforces it for this request.
func (d *decision) violate(rule pb.Rule, enforced bool, path []string, format string, args ...any) {
	d.seen[rule] = true
	d.violations = append(d.violations, &pb.Violation{
		Rule: rule, EnforcedByEntra: enforced, Path: path, Message: fmt.Sprintf(format, args...),
	})
}

// violateOnce records a rule only if it was not recorded yet (questions that combine several checks, such as a
// role-assignable group created with a label, must not report the licence twice).
func (d *decision) violateOnce(rule pb.Rule, enforced bool, path []string, format string, args ...any) {
	if !d.seen[rule] {
		d.violate(rule, enforced, path, format, args...)
	}
}

func (d *decision) warn(rule pb.Rule, path []string, format string, args ...any) {
	d.warnings = append(d.warnings, &pb.Violation{Rule: rule, Path: path, Message: fmt.Sprintf(format, args...)})
}

func (d *decision) result() *pb.Decision {
	out := &pb.Decision{
		Verdict:      pb.Verdict_VERDICT_ALLOW,
		EntraVerdict: pb.Verdict_VERDICT_ALLOW,
		Violations:   d.violations,
		Warnings:     d.warnings,
		Revision:     d.dir.Revision(),
		Privileges:   d.privileges,
	}
	for _, v := range d.violations {
		out.Verdict = pb.Verdict_VERDICT_DENY
		if v.GetEnforcedByEntra() {
			out.EntraVerdict = pb.Verdict_VERDICT_DENY
		}
	}
	return out
}

// name describes a principal for a person: "Display Name (id)".
func name(n *directory.Node) string {
	if n == nil {
		return "?"
	}
	if dn := n.DisplayName(); dn != "" {
		return fmt.Sprintf("%s (%s)", dn, n.ID())
	}
	return n.ID()
}

// labelName describes a label with its priority.
func labelName(l *pb.Label) string {
	if l.GetDisplayName() != "" {
		return fmt.Sprintf("%s (%s, priority %d)", l.GetDisplayName(), l.GetId(), l.GetPriority())
	}
	return fmt.Sprintf("%s (priority %d)", l.GetId(), l.GetPriority())
}

// pathNames describes a path of refs: "A (a) → B (b) → C (c)".
func pathNames(dir *directory.Directory, refs []directory.Ref) string {
	parts := make([]string, len(refs))
	for i, r := range refs {
		parts[i] = name(dir.Node(r))
	}
	return strings.Join(parts, " → ")
}

// invalid refuses a request whose field names an object of the wrong kind.
func invalid(field, format string, args ...any) error {
	return &directory.ValidationError{
		Subject:  "request",
		Problems: []directory.Problem{{Field: field, Description: fmt.Sprintf(format, args...)}},
	}
}

// group finds the group a field names.
func group(dir *directory.Directory, field, id string) (*directory.Node, error) {
	n, ok := dir.Lookup(id)
	if !ok {
		return nil, &directory.NotFoundError{Kind: "group", ID: id}
	}
	if !n.IsGroup() {
		return nil, invalid(field, "%q is a %s, not a group", id, n.Kind())
	}
	return n, nil
}

// actor finds the user or service principal a field names.
func actor(dir *directory.Directory, field, id string) (*directory.Node, error) {
	n, ok := dir.Lookup(id)
	if !ok {
		return nil, &directory.NotFoundError{Kind: "actor", ID: id}
	}
	if n.IsGroup() {
		return nil, invalid(field, "%q is a group: actors are users or service principals", id)
	}
	return n, nil
}

// label finds the label a field names.
func label(dir *directory.Directory, id string) (*pb.Label, error) {
	l, ok := dir.Label(id)
	if !ok {
		return nil, &directory.NotFoundError{Kind: "label", ID: id}
	}
	return l, nil
}
