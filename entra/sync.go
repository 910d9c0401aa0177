package entra

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
)

// Syncer reads rounds from Graph. Each round starts from the committed state and leaves it untouched until
// Commit: a round that fails anywhere (Graph, a label, the destination) changes nothing.
type Syncer struct {
	Tenant string
	Graph  *Client
	// Labels are the label definitions (--labels); groups carrying any other label stop the round.
	Labels []*pb.Label
	// Store keeps the state between runs; nil keeps it in memory only.
	Store  StateStore
	Logger *slog.Logger
	// Tracer makes one "sync.round" span per round, the parent of the round's Graph requests (whose client spans
	// the Graph client's transport makes from the round's context); nil: no span.
	Tracer trace.Tracer

	state  *State
	snap   *pb.Snapshot // build of state, the snapshot the destination holds after the last commit
	built  *built       // snap's index
	loaded bool
}

// Round is one read of Graph and what it changes.
type Round struct {
	// Full is set when the round read users and groups from the start (first run, or Graph asked for a
	// resync); Changes is then still the difference to the previous snapshot, if there was one.
	Full bool
	// Resynced is set when a delta link expired (410 Gone) and this round read everything again.
	Resynced bool
	// Snapshot is the whole tenant after the round.
	Snapshot *pb.Snapshot
	// Prev is the snapshot the round started from (nil on the first round of a sync without state).
	Prev *pb.Snapshot
	// Changes turn Prev into Snapshot.
	Changes []*pb.Change
	// RequestID is derived from the delta links the round started from and the changes it makes: a retried
	// round carries the same id, so the server applies it once.
	RequestID string
	// Started is when the round began reading Graph: the tenant is at least this fresh once it is written.
	Started time.Time
	// ObjectsRead counts the entries read from Graph; Requests the HTTP requests made.
	ObjectsRead, Requests int

	next  *State
	built *built
}

func (s *Syncer) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

func (s *Syncer) load(ctx context.Context) error {
	if s.loaded {
		return nil
	}
	if s.Store != nil {
		st, err := s.Store.Load(ctx)
		if err != nil {
			return err
		}
		if st != nil && (st.Tenant != s.Tenant || st.Endpoint != s.Graph.Endpoint) {
			s.logger().WarnContext(ctx, "sync: the state file is for another tenant or Graph endpoint: starting with a full sync",
				"state_tenant", st.Tenant, "state_endpoint", st.Endpoint)
			st = nil
		}
		if st != nil {
			labels, err := decodeLabels(st.Labels)
			if err != nil {
				return fmt.Errorf("state: labels: %w", err)
			}
			snap, b, err := build(s.Tenant, st.Mirror, st.Overlay, labels, nil, nil)
			if err != nil {
				return fmt.Errorf("state: %w", err)
			}
			s.state, s.snap, s.built = st, snap, b
		}
	}
	s.loaded = true
	return nil
}

// Next reads one round from Graph: deltas from the committed links (or everything, the first time or when
// Graph asks for a resync), the overlay, and computes the changes. Nothing is committed.
func (s *Syncer) Next(ctx context.Context) (*Round, error) {
	if err := s.load(ctx); err != nil {
		return nil, err
	}
	r := &Round{Started: time.Now(), Prev: s.snap}
	reqBefore := s.Graph.Requests
	base := s.state
	if base == nil {
		base = &State{Mirror: newMirror()}
		r.Full = true
	}
	w, links, err := s.readDeltas(ctx, base, r)
	if errors.Is(err, ErrResync) {
		s.logger().WarnContext(ctx, "sync: Graph asked for a full resync", "reason", err.Error())
		r.Full, r.Resynced = true, true
		w, links, err = s.readDeltas(ctx, &State{Mirror: newMirror()}, r)
	}
	if err != nil {
		return nil, err
	}
	overlay, err := readOverlay(ctx, s.Graph, &r.ObjectsRead)
	if err != nil {
		return nil, err
	}
	prev := s.built
	if r.Full {
		prev = nil // a full read replaced every object: nothing to reuse
	}
	snap, b, err := build(s.Tenant, w.Mirror, overlay, s.Labels, prev, w.touched)
	if err != nil {
		return nil, err
	}
	r.built = b
	labels, err := encodeLabels(s.Labels)
	if err != nil {
		return nil, err
	}
	r.Snapshot = snap
	if r.Prev != nil {
		r.Changes = Diff(r.Prev, snap)
	}
	r.Requests = s.Graph.Requests - reqBefore
	r.RequestID = requestID(s.Tenant, base, r.Changes)
	r.next = &State{Version: stateVersion, Tenant: s.Tenant, Endpoint: s.Graph.Endpoint, UsersLink: links.UsersLink, GroupsLink: links.GroupsLink,
		UnitsLink: links.UnitsLink, Mirror: w.Mirror, Overlay: overlay, Labels: labels}
	if !r.Full {
		r.next.delta = w.delta(base)
	}
	return r, nil
}

// readDeltas applies users/delta, groups/delta and administrativeUnits/delta from base's links to a fork of
// base's mirror, and returns the new links in a State.
func (s *Syncer) readDeltas(ctx context.Context, base *State, r *Round) (*working, *State, error) {
	w := base.Mirror.fork()
	w.track = base.GroupsLink != "" // a delta read: Delta lists what it named
	links := &State{}
	var err error
	links.UsersLink, err = readUsers(ctx, s.Graph, base.UsersLink, func(u deltaUser) error {
		r.ObjectsRead++
		w.applyUser(u)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	links.GroupsLink, err = readGroups(ctx, s.Graph, base.GroupsLink, func(g deltaGroup) error {
		r.ObjectsRead++
		w.applyGroup(g)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	unitsLink := base.UnitsLink
	if base.GroupsLink == "" {
		unitsLink = "" // a full read of the rest reads the units whole too
	}
	links.UnitsLink, err = readUnits(ctx, s.Graph, unitsLink, func(u deltaUnit) error {
		r.ObjectsRead++
		w.applyUnit(u)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if links.UsersLink == "" || links.GroupsLink == "" || links.UnitsLink == "" {
		return nil, nil, errors.New("graph: a delta query ended without an @odata.deltaLink")
	}
	w.ids = nil // the mirror holds the ids now; the table would only keep them longer
	return w, links, nil
}

// requestID hashes the tenant, the delta links the round started from and its changes. The changes are part of
// it because a round retried after a lost answer may read more from the same links: that is a different batch
// and must not be mistaken for the one already applied (the server's expected revision then refuses it and
// the sync imports the whole snapshot instead).
func requestID(tenant string, base *State, changes []*pb.Change) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00", tenant, base.UsersLink, base.GroupsLink, base.UnitsLink)
	opts := proto.MarshalOptions{Deterministic: true}
	for _, c := range changes {
		b, _ := opts.Marshal(c)
		h.Write(b)
		h.Write([]byte{0})
	}
	return "groupgate-sync:" + hex.EncodeToString(h.Sum(nil))[:40]
}

// Commit makes a written round the base of the next one and saves the state.
func (s *Syncer) Commit(ctx context.Context, r *Round) error {
	s.state, s.snap, s.built = r.next, r.Snapshot, r.built
	if s.Store == nil {
		r.next.delta = nil // holds the previous state
		return nil
	}
	err := s.Store.Save(ctx, r.next)
	r.next.delta = nil
	if _, shared := s.Store.(Lease); err != nil && shared {
		s.forget() // another process may hold the state now: start again from what the store holds
	}
	return err
}

// forget drops the state held in memory; the next round loads it from the store again.
func (s *Syncer) forget() {
	s.state, s.snap, s.built, s.loaded = nil, nil, nil, false
}

// Snapshot is the snapshot of the last committed round (nil before the first).
func (s *Syncer) Snapshot() *pb.Snapshot { return s.snap }

// RunRound reads one round, writes it to dest and commits it, logging a progress line.
func (s *Syncer) RunRound(ctx context.Context, dest Destination) (err error) {
	var r *Round
	if s.Tracer != nil {
		var span trace.Span
		ctx, span = s.Tracer.Start(ctx, "sync.round", trace.WithAttributes(attribute.String("groupgate.tenant", s.Tenant)))
		defer func() { endRoundSpan(span, r, err) }()
	}
	r, err = s.Next(ctx)
	if err != nil {
		return err
	}
	if l, ok := s.Store.(Lease); ok {
		if err := l.Renew(ctx); err != nil {
			s.forget()
			return err
		}
	}
	result, err := dest.Write(ctx, r)
	if err != nil {
		return err
	}
	s.logger().InfoContext(ctx, "sync round", "tenant", s.Tenant, "kind", r.kind(), "objects_read", r.ObjectsRead,
		"graph_requests", r.Requests, "changes", len(r.Changes), "users", len(r.Snapshot.GetUsers()),
		"groups", len(r.Snapshot.GetGroups()), "result", result, "took", time.Since(r.Started).Round(time.Millisecond).String())
	if err := s.Commit(ctx, r); err != nil {
		return fmt.Errorf("saving the sync state: %w", err)
	}
	return nil
}

// kind names how the round read Graph: full, resync or delta.
func (r *Round) kind() string {
	switch {
	case r.Resynced:
		return "resync"
	case r.Full:
		return "full"
	}
	return "delta"
}

// endRoundSpan ends a round's span with what the round read and changed (when it got that far), or its error.
func endRoundSpan(span trace.Span, r *Round, err error) {
	if r != nil {
		span.SetAttributes(attribute.String("groupgate.sync.kind", r.kind()), attribute.Int("groupgate.sync.objects_read", r.ObjectsRead),
			attribute.Int("groupgate.sync.graph_requests", r.Requests), attribute.Int("groupgate.sync.changes", len(r.Changes)))
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// Run runs a round, then (unless once) one every interval until ctx ends. With once a failed round is
// returned; otherwise it is logged and the next round tries again from the last committed state.
func (s *Syncer) Run(ctx context.Context, dest Destination, once bool, interval time.Duration) error {
	for {
		err := s.RunRound(ctx, dest)
		if once || ctx.Err() != nil {
			return err
		}
		if err != nil {
			s.logger().ErrorContext(ctx, "sync round failed; the tenant is left as it was", "tenant", s.Tenant, "error", err.Error())
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}
