package pgstate_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/groupgate/groupgate/entra"
	"github.com/groupgate/groupgate/entra/graphtest"
	"github.com/groupgate/groupgate/entra/pgstate"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/pgtest"
	"github.com/jackc/pgx/v5"
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

// wholeStore saves the state whole in memory: the reference the rows must reproduce.
type wholeStore struct{ data []byte }

func (w *wholeStore) Load(context.Context) (*entra.State, error) {
	if w.data == nil {
		return nil, nil
	}
	return entra.UnmarshalState(w.data, false)
}
func (w *wholeStore) Save(_ context.Context, s *entra.State) (err error) {
	w.data, err = entra.MarshalState(s, false)
	return err
}

// comparable clears what two encodings of one state may differ in: the file log's id, the order of unit
// member lists (written from a map), and an empty map against none.
func comparable(t *testing.T, from entra.StateStore) *entra.State {
	t.Helper()
	st, err := from.Load(context.Background())
	if err != nil || st == nil {
		t.Fatalf("load: %v, %v", st, err)
	}
	st.LogID = ""
	if len(st.Mirror.Units) == 0 {
		st.Mirror.Units = nil
	}
	for _, u := range st.Mirror.Units {
		slices.Sort(u.Members.Users)
		slices.Sort(u.Members.Groups)
	}
	return st
}

// TestRowsEqualWholeSave runs rounds that create, change and delete users, groups and unit memberships: each
// round updates only the rows of what it changed (counted), and a fresh load gives exactly the state a
// whole save holds. A state saved whole by an older groupgate (the state column) moves to rows on first load.
func TestRowsEqualWholeSave(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Start(t).NewDatabase()
	g := graphtest.New(graphtest.Crafted())
	defer g.Close()
	graph := &entra.Client{Endpoint: g.URL, Tokens: entra.StaticToken(g.Token), HTTP: g.Client()}
	labelsPath := filepath.Join(t.TempDir(), "labels.json")
	if err := os.WriteFile(labelsPath, []byte(graphtest.LabelsJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	labels, err := entra.LoadLabels(labelsPath)
	if err != nil {
		t.Fatal(err)
	}
	store := open(t, url, "a", time.Minute)
	s := &entra.Syncer{Tenant: "contoso-sync", Graph: graph, Store: store, Labels: labels}
	whole := &wholeStore{}
	ref := &entra.Syncer{Tenant: "contoso-sync", Graph: graph, Store: whole, Labels: labels}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// The rows the last save wrote: those of its transaction, which also wrote the head.
	written := func() (n int) {
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM groupgate_sync_objects
			WHERE xmin = (SELECT xmin FROM groupgate_sync_state WHERE tenant = 'contoso-sync')`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Round 3 deletes a user and a group (rows deleted, not written) and adds a member to each unit.
	wantWritten := []int{-1, 1, 2, len(graphtest.Crafted().Units), 2}
	rounds := []func(t *graphtest.Tenant){
		nil,
		func(t *graphtest.Tenant) { t.Users["u-new"] = &graphtest.User{DisplayName: "New", UserType: "Member"} },
		func(t *graphtest.Tenant) {
			t.Groups[graphtest.GroupDyn].Members = append(t.Groups[graphtest.GroupDyn].Members, graphtest.Ref{Type: "#microsoft.graph.user", ID: "u-new"})
			t.Users[graphtest.UserOscar].DisplayName = "Oscar (renamed)"
		},
		func(t *graphtest.Tenant) {
			delete(t.Users, graphtest.UserGina)
			delete(t.Groups, graphtest.GroupMail)
			for _, u := range t.Units {
				u.Members = append(u.Members, graphtest.Ref{Type: "#microsoft.graph.user", ID: "u-new"})
			}
		},
		func(t *graphtest.Tenant) {
			t.Groups[graphtest.GroupDyn].Members = t.Groups[graphtest.GroupDyn].Members[1:]
			t.Groups["g-new"] = &graphtest.Group{DisplayName: "G", SecurityEnabled: true, Members: []graphtest.Ref{{Type: "#microsoft.graph.user", ID: "u-new"}}}
		},
	}
	for i, change := range rounds {
		if change != nil {
			g.Update(change)
		}
		for _, sy := range []*entra.Syncer{s, ref} {
			if err := sy.RunRound(ctx, &recorder{}); err != nil {
				t.Fatal(err)
			}
		}
		if n := written(); i > 0 && n != wantWritten[i] {
			t.Errorf("round %d wrote %d rows, want %d (the objects it changed)", i, n, wantWritten[i])
		}
		got := comparable(t, open(t, url, "a", time.Minute))
		want := comparable(t, whole)
		var rows int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM groupgate_sync_objects`).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if n := len(want.Mirror.Users) + len(want.Mirror.Groups) + len(want.Mirror.Units); rows != n {
			t.Errorf("round %d: %d rows, want one per object (%d)", i, rows, n)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d: the rows load as\n%+v\nwant\n%+v", i, got.Mirror, want.Mirror)
		}
	}

	// An older groupgate's row: the state whole, no head and no rows.
	old, err := entra.MarshalState(comparable(t, whole), true)
	if err != nil {
		t.Fatal(err)
	}
	url2 := pgtest.Start(t).NewDatabase()
	migrated := open(t, url2, "a", time.Minute)
	conn2, err := pgx.Connect(ctx, url2)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close(ctx)
	if _, err := conn2.Exec(ctx, `INSERT INTO groupgate_sync_state (tenant, state, holder, lease_until) VALUES ('contoso-sync', $1, 'a', now())`, old); err != nil {
		t.Fatal(err)
	}
	got := comparable(t, migrated)
	if want := comparable(t, whole); !reflect.DeepEqual(got, want) {
		t.Fatalf("the old row loads as %+v, want %+v", got.Mirror, want.Mirror)
	}
	var rows int
	var stateLeft bool
	if err := conn2.QueryRow(ctx, `SELECT count(*), bool_or(s.state IS NOT NULL) FROM groupgate_sync_objects o, groupgate_sync_state s
		WHERE o.tenant = 'contoso-sync' AND s.tenant = o.tenant`).Scan(&rows, &stateLeft); err != nil {
		t.Fatal(err)
	}
	if n := len(got.Mirror.Users) + len(got.Mirror.Groups) + len(got.Mirror.Units); rows != n || stateLeft {
		t.Fatalf("after migrating: %d rows (want %d), old state column still set: %v", rows, n, stateLeft)
	}
}
