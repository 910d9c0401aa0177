package pgstate_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/groupgate/groupgate/entra"
	"github.com/groupgate/groupgate/entra/graphtest"
	"github.com/groupgate/groupgate/entra/pgstate"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/pgtest"
	"google.golang.org/protobuf/encoding/protojson"
)

func open(t *testing.T, url, holder string, ttl time.Duration) *pgstate.Store {
	t.Helper()
	s, err := pgstate.Open(context.Background(), url, "contoso-sync", holder, ttl)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestLeaseLetsOneSyncWrite(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Start(t).NewDatabase()
	a := open(t, url, "sync-a", 2*time.Second)
	b := open(t, url, "sync-b", 2*time.Second)
	if st, err := a.Load(ctx); err != nil || st != nil {
		t.Fatalf("a takes the free lease: %v, %v; want no state yet", st, err)
	}
	if _, err := b.Load(ctx); !errors.Is(err, pgstate.ErrLeaseHeld) {
		t.Fatalf("b while a holds the lease: %v, want ErrLeaseHeld", err)
	}
	saved := &entra.State{Version: 1, Tenant: "contoso-sync", UsersLink: "https://graph.microsoft.com/v1.0/users/delta?$deltatoken=x",
		Mirror: &entra.Mirror{Users: map[string]entra.User{"u-1": {Name: "One"}}, Groups: map[string]*entra.Group{
			"g-1": {Name: "G", Kind: pb.GroupKind_GROUP_KIND_SECURITY, Members: map[string]byte{"u-1": 'u'}, Owners: map[string]byte{}}}},
		Overlay: &entra.Overlay{}}
	if err := a.Save(ctx, saved); err != nil {
		t.Fatal(err)
	}
	if err := a.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	// a stops renewing; once its lease expires b takes over with a's state, and a may no longer write.
	time.Sleep(2100 * time.Millisecond)
	st, err := b.Load(ctx)
	if err != nil {
		t.Fatalf("b after a's lease expired: %v", err)
	}
	if st == nil || st.UsersLink != saved.UsersLink || st.Mirror.Groups["g-1"].Members["u-1"] != 'u' {
		t.Fatalf("b loaded %+v, want a's state", st)
	}
	if err := a.Renew(ctx); !errors.Is(err, pgstate.ErrLeaseLost) {
		t.Errorf("a renews after losing the lease: %v, want ErrLeaseLost", err)
	}
	if err := a.Save(ctx, saved); !errors.Is(err, pgstate.ErrLeaseLost) {
		t.Errorf("a saves after losing the lease: %v, want ErrLeaseLost", err)
	}
}

// recorder is a destination that keeps the rounds it is given.
type recorder struct{ rounds []*entra.Round }

func (r *recorder) Write(_ context.Context, round *entra.Round) (string, error) {
	r.rounds = append(r.rounds, round)
	return "recorded", nil
}

func TestSyncResumesFromPostgres(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Start(t).NewDatabase()
	g := graphtest.New(graphtest.Crafted())
	defer g.Close()
	var labels []*pb.Label
	l := &pb.Label{}
	if err := protojson.Unmarshal([]byte(`{"id": "lbl-confidential", "priority": 10, "groupsScope": true, "synced": true}`), l); err != nil {
		t.Fatal(err)
	}
	labels = append(labels, l)
	syncer := func(holder string) *entra.Syncer {
		return &entra.Syncer{Tenant: "contoso-sync", Labels: labels, Store: open(t, url, holder, time.Minute),
			Graph: &entra.Client{Endpoint: g.URL, Tokens: entra.StaticToken(g.Token), HTTP: g.Client()}}
	}
	dest := &recorder{}
	first := syncer("a")
	if err := first.RunRound(ctx, dest); err != nil {
		t.Fatal(err)
	}
	// A second process cannot run a round while the first holds the lease.
	if err := syncer("b").RunRound(ctx, dest); !errors.Is(err, pgstate.ErrLeaseHeld) {
		t.Fatalf("second sync: %v, want ErrLeaseHeld", err)
	}
	// The first process restarts (same holder): it resumes with deltas from the state in PostgreSQL.
	g.Update(func(t *graphtest.Tenant) { delete(t.Users, graphtest.UserGina) })
	if err := syncer("a").RunRound(ctx, dest); err != nil {
		t.Fatal(err)
	}
	last := dest.rounds[len(dest.rounds)-1]
	if len(dest.rounds) != 2 || last.Full || len(last.Changes) != 1 || last.Changes[0].GetDeleteObject().GetId() != graphtest.UserGina {
		t.Fatalf("resumed round: full %v, changes %v; want a delta deleting %s", last.Full, last.Changes, graphtest.UserGina)
	}
}
