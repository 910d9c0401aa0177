package policy_test

import (
	"strings"
	"testing"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/conformance"
)

// TestEveryRuleHasFixtures fails when a rule code of the API has no conformance case that expects it, and when
// a kind of question has no case that expects ALLOW, so that new rules cannot land untested.
func TestEveryRuleHasFixtures(t *testing.T) {
	expected := map[string]bool{}
	allowed := map[string]bool{}
	note := func(kind string, w conformance.Want) {
		for _, r := range append(append([]string{}, w.Violations...), w.Warnings...) {
			expected[r] = true
		}
		for _, f := range w.Findings {
			expected[strings.Fields(f)[0]] = true
		}
		if w.Verdict == "ALLOW" {
			allowed[kind] = true
		}
	}
	for _, f := range conformance.Files(t, "../testdata/conformance") {
		for _, c := range f.Cases {
			switch {
			case c.CanAddMember != nil:
				note("CanAddMember", c.Want)
			case c.CanApplyLabel != nil:
				note("CanApplyLabel", c.Want)
			case c.CanChangeLabel != nil:
				note("CanChangeLabel", c.Want)
			case c.CanCreateRoleGroup != nil:
				note("CanCreateRoleGroup", c.Want)
			case c.CanModifyUser != nil:
				note("CanModifyUser", c.Want)
			default:
				note("other", c.Want)
			}
			for _, s := range c.Want.Steps {
				note("EvaluatePlan", s.Want)
			}
		}
	}
	for num, name := range pb.Rule_name {
		if num != 0 && !expected[name] {
			t.Errorf("no conformance case expects %s", name)
		}
	}
	for _, q := range []string{"CanAddMember", "CanApplyLabel", "CanChangeLabel", "CanCreateRoleGroup", "CanModifyUser", "EvaluatePlan"} {
		if !allowed[q] {
			t.Errorf("no conformance case expects %s to ALLOW", q)
		}
	}
}
