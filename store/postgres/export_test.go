package postgres

import (
	"context"
	"io/fs"
)

// StopFollowing stops the follower, the listener and the pruner, as if this replica lost its database for a
// while: tests then change the database behind its back and call Sync.
func (s *Store) StopFollowing() {
	s.cancel()
	s.done.Wait()
}

// Sync runs one follower pass.
func (s *Store) Sync(ctx context.Context) error { return s.sync(ctx) }

// WaitCheckpoints waits for the checkpoints in flight.
func (s *Store) WaitCheckpoints() { s.checkpoints.Wait() }

// PruneLock is the advisory lock a pruning replica holds.
const PruneLock = pruneLock

// MigrationCount is how many migrations the package embeds.
func MigrationCount() int {
	names, _ := fs.Glob(migrations, "migrations/*.sql")
	return len(names)
}
