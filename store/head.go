package store

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/groupgate/groupgate/directory"
)

// Head is one tenant's current directory: readers load it without a lock, and readers that need a newer
// revision (consistency.min_revision, Watch) wait for the next Publish. Both stores keep one per tenant.
type Head struct {
	cur    atomic.Pointer[directory.Directory]
	mu     sync.Mutex
	notify chan struct{} // closed and replaced by every Publish
}

// NewHead returns a head holding d.
func NewHead(d *directory.Directory) *Head {
	h := &Head{notify: make(chan struct{})}
	h.cur.Store(d)
	return h
}

// Load returns the current directory.
func (h *Head) Load() *directory.Directory { return h.cur.Load() }

// Changed returns a channel that is closed by the next Publish. Take it before looking at the state it
// guards, so that a publish in between is not missed.
func (h *Head) Changed() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.notify
}

// Publish makes d current and wakes every waiter.
func (h *Head) Publish(d *directory.Directory) {
	h.cur.Store(d)
	h.mu.Lock()
	close(h.notify)
	h.notify = make(chan struct{})
	h.mu.Unlock()
}

// Wait returns the directory once its revision is >= minRevision, or ctx's error when ctx ends first.
func (h *Head) Wait(ctx context.Context, minRevision int64) (*directory.Directory, error) {
	for {
		ch := h.Changed()
		if d := h.cur.Load(); d.Revision() >= minRevision {
			return d, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
