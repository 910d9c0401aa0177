// Package store defines where tenants' directories come from and where writes go: an in-memory store (the
// default, seeded from snapshot files) and PostgreSQL (store/postgres), shared by many replicas.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
)

// Store holds tenants. Every method is safe for concurrent use; readers never block writers.
type Store interface {
	// Name is "memory" or "postgres".
	Name() string
	// Tenants lists the tenant ids held, sorted.
	Tenants() []string
	// Directory returns the tenant's directory at a revision >= minRevision, waiting for one until ctx ends.
	// An unknown tenant is a *directory.NotFoundError.
	Directory(ctx context.Context, tenantID string, minRevision int64) (*directory.Directory, error)
	// Write applies a batch of changes atomically as one new revision (see Write).
	Write(ctx context.Context, w Write) (int64, error)
	// Import replaces a whole tenant (creating it if needed) with the snapshot, as one new revision.
	Import(ctx context.Context, s *pb.Snapshot, expectedRevision *int64) (int64, error)
	// Watch calls fn for every revision after afterRevision, in order, then for each new one as it is written,
	// until ctx ends or fn fails. A revision that replaced the whole tenant (Import) comes with Replaced set.
	Watch(ctx context.Context, tenantID string, afterRevision int64, fn func(Revision) error) error
	// Status reports on a tenant.
	Status(ctx context.Context, tenantID string) (Status, error)
}

// Write is one WriteChanges call.
type Write struct {
	TenantID string
	Changes  []*pb.Change
	// ExpectedRevision, when set, must equal the tenant's revision (0 for a tenant that does not exist yet).
	ExpectedRevision *int64
	// RequestID makes a retry return the first result without writing again.
	RequestID string
}

// Revision is one entry of a tenant's change log.
type Revision struct {
	Revision int64
	Changes  []*pb.Change
	// Replaced is set when the revision replaced the whole tenant (an import): a follower must export the
	// tenant again rather than apply changes.
	Replaced bool
}

// Status describes a tenant held by a store.
type Status struct {
	Revision      int64
	Counts        directory.Counts
	Store         string
	StoreRevision int64
	Lag           time.Duration
}

// ErrRevisionMismatch is returned when a write's expected revision is not the tenant's revision.
var ErrRevisionMismatch = errors.New("expected revision does not match")

// RevisionMismatchError says which revision was expected and which one the tenant is at.
type RevisionMismatchError struct{ Expected, Actual int64 }

func (e *RevisionMismatchError) Error() string {
	return fmt.Sprintf("expected revision %d, but the tenant is at revision %d", e.Expected, e.Actual)
}

func (e *RevisionMismatchError) Is(target error) bool { return target == ErrRevisionMismatch }

// ErrUnavailable wraps a failure to reach the shared store (PostgreSQL down, connection lost). Reads keep being
// answered from the last revision held; writes fail with it and can be retried with the same request id.
var ErrUnavailable = errors.New("store unavailable")

// ErrCompacted is returned by Watch when the revisions asked for are no longer in the change log.
var ErrCompacted = errors.New("revision is older than the change log kept")

// CompactedError is ErrCompacted with what a watcher needs to start again: the oldest revision still in the
// log. Watching after Oldest-1 or later replays; from further back, export the tenant and watch after its
// revision.
type CompactedError struct {
	TenantID string
	After    int64 // the after_revision asked for
	Oldest   int64 // the oldest revision still kept (the tenant's revision + 1 when the log is empty)
}

func (e *CompactedError) Error() string {
	return fmt.Sprintf("tenant %q: revisions after %d are no longer kept; the change log starts at revision %d (watch after revision %d or later)",
		e.TenantID, e.After, e.Oldest, e.Oldest-1)
}

func (e *CompactedError) Is(target error) bool { return target == ErrCompacted }

// ChangeListener hears of every new revision, e.g. to invalidate caches. delta is nil when the whole tenant
// was replaced.
type ChangeListener func(prev, next *directory.Directory, delta *directory.Delta)
