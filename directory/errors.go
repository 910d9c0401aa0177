package directory

import (
	"fmt"
	"strings"
)

// NotFoundError says that a request named an object the directory does not hold.
type NotFoundError struct {
	// Kind is what was looked for: "tenant", "group", "user", "label", "object", …
	Kind string
	ID   string
}

func (e *NotFoundError) Error() string { return fmt.Sprintf("%s %q not found", e.Kind, e.ID) }

// Problem is one reason a snapshot or a change batch was refused.
type Problem struct {
	// Field locates the problem in the input, e.g. "groups[3].members[7]" or "changes[2].add_member.member_id".
	Field string
	// IDs are the offending object ids.
	IDs         []string
	Description string
}

// ValidationError refuses a whole snapshot or change batch; it lists every problem found (up to a bound).
type ValidationError struct {
	// What was refused, e.g. `snapshot of tenant "contoso"`.
	Subject  string
	Problems []Problem
	// Truncated counts problems found beyond those listed.
	Truncated int
}

// maxProblems bounds the problems one error lists, so a garbage input cannot make a huge error message.
const maxProblems = 50

func (e *ValidationError) add(field, description string, ids ...string) {
	if len(e.Problems) >= maxProblems {
		e.Truncated++
		return
	}
	e.Problems = append(e.Problems, Problem{Field: field, IDs: ids, Description: description})
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s refused: ", e.Subject)
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		if p.Field != "" {
			b.WriteString(p.Field)
			b.WriteString(": ")
		}
		b.WriteString(p.Description)
	}
	if e.Truncated > 0 {
		fmt.Fprintf(&b, "; and %d more problems", e.Truncated)
	}
	return b.String()
}

func (e *ValidationError) orNil() error {
	if len(e.Problems) == 0 {
		return nil
	}
	return e
}
