package server

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestDecisionIDIsUUIDv7(t *testing.T) {
	at := time.Date(2026, 12, 4, 15, 1, 30, 123_456_789, time.UTC)
	id, err := uuid.Parse(decisionID(at, ^uint64(0)))
	if err != nil {
		t.Fatal(err)
	}
	if id.Version() != 7 || id.Variant() != uuid.RFC4122 {
		t.Fatalf("%s: version %d variant %s, want 7 and RFC 4122", id, id.Version(), id.Variant())
	}
	sec, nsec := id.Time().UnixTime()
	if got := time.Unix(sec, nsec); got.UnixMilli() != at.UnixMilli() {
		t.Fatalf("%s carries %s, want %s to the millisecond", id, got, at)
	}
	// Later ids sort after earlier ones, within a millisecond too (the sub-millisecond fraction).
	prev := decisionID(at, 0)
	for _, d := range []time.Duration{300 * time.Nanosecond, time.Microsecond, time.Millisecond, time.Hour} {
		next := decisionID(at.Add(d), 0)
		if next <= prev {
			t.Fatalf("id %s at +%s does not sort after %s", next, d, prev)
		}
		prev = next
	}
	seen := map[string]bool{}
	for range 10000 {
		id := newDecisionID()
		if seen[id] {
			t.Fatalf("id %s twice", id)
		}
		seen[id] = true
	}
}
