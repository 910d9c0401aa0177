package notify

import (
	"context"
	"errors"
	"maps"
	"sync"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"google.golang.org/protobuf/proto"
)

// Position is what a tenant's receiver has been told: every event up to Revision, and so the findings it holds
// open (by finding id, each as it was last sent).
type Position struct {
	Revision int64
	Open     map[string]*pb.Finding
}

// ErrLeaseHeld is Ledgers.Lease's answer while another replica delivers.
var ErrLeaseHeld = errors.New("another replica holds the findings webhook lease")

// Ledgers hand out the right to deliver: at most one ledger is held at a time across every replica that shares
// them (PostgreSQL: an advisory lock, as pruning does; memory: one process).
type Ledgers interface {
	// Lease returns the ledger, or ErrLeaseHeld while another holder has it.
	Lease(ctx context.Context) (Ledger, error)
}

// Ledger records, per tenant, how far delivery got. Its methods are safe for concurrent use.
type Ledger interface {
	// Load is the tenant's position: the zero Position (no revision, nothing open) when nothing was delivered.
	Load(ctx context.Context, tenant string) (Position, error)
	// Delivered records that every event of revision rev was delivered: opened join the open set, resolved
	// (finding ids) leave it. Its cost follows the events, not the open set.
	Delivered(ctx context.Context, tenant string, rev int64, opened map[string]*pb.Finding, resolved []string) error
	// Lost is closed when the lease ends without Release (the database session died): delivery must stop, as
	// another replica may take over.
	Lost() <-chan struct{}
	// Release gives the lease back.
	Release()
}

// MemoryLedgers keep positions in the process: with the memory store, the tenant itself lives no longer.
type MemoryLedgers struct {
	mu   sync.Mutex
	held bool
	pos  map[string]Position
}

// NewMemoryLedgers returns empty in-memory ledgers.
func NewMemoryLedgers() *MemoryLedgers { return &MemoryLedgers{pos: map[string]Position{}} }

// Lease hands out the one ledger.
func (m *MemoryLedgers) Lease(context.Context) (Ledger, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.held {
		return nil, ErrLeaseHeld
	}
	m.held = true
	return &memoryLedger{m: m, lost: make(chan struct{})}, nil
}

type memoryLedger struct {
	m    *MemoryLedgers
	lost chan struct{}
	once sync.Once
}

func (l *memoryLedger) Load(_ context.Context, tenant string) (Position, error) {
	l.m.mu.Lock()
	defer l.m.mu.Unlock()
	p := l.m.pos[tenant]
	return Position{Revision: p.Revision, Open: maps.Clone(p.Open)}, nil
}

func (l *memoryLedger) Delivered(_ context.Context, tenant string, rev int64, opened map[string]*pb.Finding, resolved []string) error {
	l.m.mu.Lock()
	defer l.m.mu.Unlock()
	p := l.m.pos[tenant]
	if p.Open == nil {
		p.Open = map[string]*pb.Finding{}
	}
	for id, f := range opened {
		p.Open[id] = proto.Clone(f).(*pb.Finding)
	}
	for _, id := range resolved {
		delete(p.Open, id)
	}
	p.Revision = rev
	l.m.pos[tenant] = p
	return nil
}

func (l *memoryLedger) Lost() <-chan struct{} { return l.lost }

func (l *memoryLedger) Release() {
	l.once.Do(func() {
		l.m.mu.Lock()
		l.m.held = false
		l.m.mu.Unlock()
	})
}
