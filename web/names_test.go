package web_test

import (
	"os"
	"regexp"
	"slices"
	"testing"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/policy"
)

// TestNamesFollowTheProto: the explorer's words for rules (static/names.js) cover exactly the proto's Rule enum,
// and its Audit filter lists exactly the rules policy.Audit reports, so a rule added to the API cannot go
// unnamed on the page, nor a filter offer a rule Audit never reports.
func TestNamesFollowTheProto(t *testing.T) {
	src, err := os.ReadFile("static/names.js")
	if err != nil {
		t.Fatal(err)
	}
	rulesBlock := regexp.MustCompile(`(?s)const RULES = \{(.*?)\n\};`).FindSubmatch(src)
	if rulesBlock == nil {
		t.Fatal("names.js: no `const RULES = {…};` block")
	}
	var named []string
	for _, m := range regexp.MustCompile(`(?m)^\s*(RULE_[A-Z0-9_]+):`).FindAllSubmatch(rulesBlock[1], -1) {
		named = append(named, string(m[1]))
	}
	var proto []string
	for v, name := range pb.Rule_name {
		if v != 0 {
			proto = append(proto, name)
		}
	}
	slices.Sort(named)
	slices.Sort(proto)
	if !slices.Equal(named, proto) {
		t.Errorf("names.js names %v\nthe proto's Rule enum has %v", named, proto)
	}

	auditBlock := regexp.MustCompile(`(?s)export const AUDIT_RULES = \[(.*?)\];`).FindSubmatch(src)
	if auditBlock == nil {
		t.Fatal("names.js: no `export const AUDIT_RULES = […];` block")
	}
	var offered []string
	for _, m := range regexp.MustCompile(`'(RULE_[A-Z0-9_]+)'`).FindAllSubmatch(auditBlock[1], -1) {
		offered = append(offered, string(m[1]))
	}
	var reported []string
	for _, r := range policy.AuditRules() {
		reported = append(reported, r.String())
	}
	if !slices.Equal(offered, reported) {
		t.Errorf("names.js AUDIT_RULES %v\npolicy.AuditRules %v", offered, reported)
	}
}
