package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/groupgate/groupgate/directory/demo"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/pgtest"
	"github.com/groupgate/groupgate/store"
	"github.com/groupgate/groupgate/store/postgres"
	"github.com/groupgate/groupgate/store/storetest"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"
)

// fastPoll keeps tests that rely on the polling fallback short.
const fastPoll = 100 * time.Millisecond

func open(t testing.TB, url string, onChange store.ChangeListener) *postgres.Store {
	t.Helper()
	return openWith(t, url, postgres.Options{OnChange: onChange, PollInterval: fastPoll})
}

// openWith opens a store on url with opts, closed at the end of the test.
func openWith(t testing.TB, url string, opts postgres.Options) *postgres.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestPostgres(t *testing.T) {
	pg := pgtest.Start(t)
	ctx := context.Background()

	t.Run("Contract", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T, onChange store.ChangeListener) store.Store {
			return open(t, pg.NewDatabase(), onChange)
		})
	})

	t.Run("MigrationsAreIdempotent", func(t *testing.T) {
		url := pg.NewDatabase()
		open(t, url, nil)
		open(t, url, nil) // a second replica (or a restart) finds the schema in place
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var versions int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM groupgate_schema").Scan(&versions); err != nil || versions != postgres.MigrationCount() {
			t.Errorf("schema versions recorded: %d (%v), want one per migration (%d)", versions, err, postgres.MigrationCount())
		}
	})

	t.Run("AReplicaSeesAnotherReplicasWrite", func(t *testing.T) {
		url := pg.NewDatabase()
		a, b := open(t, url, nil), open(t, url, nil)
		rev, err := a.Write(ctx, store.Write{TenantID: "t", Changes: []*pb.Change{storetest.Group("g"), storetest.User("u"), storetest.AddMember("g", "u")}})
		if err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		d, err := b.Directory(wctx, "t", rev)
		if err != nil {
			t.Fatalf("replica B waiting for revision %d: %v", rev, err)
		}
		if g, _ := d.Lookup("g"); len(g.Members()) != 1 {
			t.Errorf("replica B sees %d members of g, want 1", len(g.Members()))
		}
		// B writes next: it must validate against A's write (u exists) and take the next revision.
		rev2, err := b.Write(ctx, store.Write{TenantID: "t", Changes: []*pb.Change{storetest.Group("h", "u")}})
		if err != nil || rev2 != rev+1 {
			t.Fatalf("write through B: revision %d, %v; want %d", rev2, err, rev+1)
		}
		if _, err := a.Directory(wctx, "t", rev2); err != nil {
			t.Fatalf("replica A waiting for B's revision: %v", err)
		}
	})

	t.Run("ARestartedReplicaLoadsSnapshotAndLog", func(t *testing.T) {
		url := pg.NewDatabase()
		a := open(t, url, nil)
		d, err := demo.Directory()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Import(ctx, d.Snapshot(), nil); err != nil {
			t.Fatal(err)
		}
		var last int64
		for i := range 20 {
			id := fmt.Sprintf("u-new-%02d", i)
			if last, err = a.Write(ctx, store.Write{TenantID: "contoso", Changes: []*pb.Change{storetest.User(id), storetest.AddMember("grp-engineering", id)}}); err != nil {
				t.Fatal(err)
			}
		}
		want, _ := a.Directory(ctx, "contoso", last)
		b := open(t, url, nil) // a new replica: newest snapshot plus 20 log entries
		got, err := b.Directory(ctx, "contoso", 0)
		if err != nil {
			t.Fatal(err)
		}
		if got.Revision() != last || !proto.Equal(got.Snapshot(), want.Snapshot()) {
			t.Errorf("the new replica holds revision %d (want %d); same snapshot: %v", got.Revision(), last, proto.Equal(got.Snapshot(), want.Snapshot()))
		}
		if st, err := b.Status(ctx, "contoso"); err != nil || st.StoreRevision != last || st.Lag != 0 || st.Store != "postgres" {
			t.Errorf("status %+v, %v", st, err)
		}
	})

	t.Run("ReplicasStartFromTheNewestCheckpoint", func(t *testing.T) {
		url := pg.NewDatabase()
		a, err := postgres.Open(ctx, url, postgres.Options{PollInterval: fastPoll, CheckpointEvery: 10})
		if err != nil {
			t.Fatal(err)
		}
		const last = 25
		writeRevisions(t, a, "t", last)
		want, _ := a.Directory(ctx, "t", last)
		a.Close() // waits for the checkpoints at revisions 10 and 20
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var checkpoints []int64
		rows, _ := conn.Query(ctx, `SELECT revision FROM snapshots WHERE tenant_id = 't' ORDER BY revision`)
		for rows.Next() {
			var r int64
			_ = rows.Scan(&r)
			checkpoints = append(checkpoints, r)
		}
		if fmt.Sprint(checkpoints) != "[10 20]" {
			t.Fatalf("checkpoints at %v, want [10 20]", checkpoints)
		}
		// Without the log up to the checkpoint, only a replica that starts from it can load the tenant.
		if _, err := conn.Exec(ctx, `DELETE FROM changes WHERE tenant_id = 't' AND revision <= 20`); err != nil {
			t.Fatal(err)
		}
		b := open(t, url, nil)
		got, err := b.Directory(ctx, "t", 0)
		if err != nil {
			t.Fatal(err)
		}
		if got.Revision() != last || !proto.Equal(got.Snapshot(), want.Snapshot()) {
			t.Errorf("replica started at revision %d (want %d), same tenant: %v", got.Revision(), last, proto.Equal(got.Snapshot(), want.Snapshot()))
		}
	})

	t.Run("WatchSurvivesAReplicaThatMissedNotifications", func(t *testing.T) {
		url := pg.NewDatabase()
		a, b := open(t, url, nil), open(t, url, nil)
		first, err := a.Write(ctx, store.Write{TenantID: "t", Changes: []*pb.Change{storetest.Group("g")}})
		if err != nil {
			t.Fatal(err)
		}
		// Write behind the replicas' backs, as an old replica without NOTIFY would: only polling finds it.
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		entry, _ := proto.Marshal(&pb.WatchResponse{Revision: first + 1, Changes: []*pb.Change{storetest.User("quiet")}})
		if _, err := conn.Exec(ctx, `INSERT INTO changes (tenant_id, revision, changes) VALUES ('t', $1, $2)`, first+1, entry); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `UPDATE tenants SET revision = $1 WHERE tenant_id = 't'`, first+1); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		got := make(chan store.Revision, 1)
		go func() {
			enough := errors.New("enough")
			if err := b.Watch(wctx, "t", first, func(r store.Revision) error { got <- r; return enough }); !errors.Is(err, enough) {
				t.Errorf("Watch on replica B: %v", err)
			}
		}()
		select {
		case r := <-got:
			if r.Revision != first+1 || len(r.Changes) != 1 {
				t.Errorf("watch gave %+v", r)
			}
		case <-wctx.Done():
			t.Fatal("Watch did not deliver the revision")
		}
		if d, err := b.Directory(wctx, "t", first+1); err != nil || d.Counts().Users != 1 {
			t.Errorf("replica B after polling: %v", err)
		}
	})
}

// TestDatabaseDown stops PostgreSQL under two replicas: both keep answering at their last revision, writes fail
// with ErrUnavailable, and once the database is back writes succeed and both replicas catch up.
func TestDatabaseDown(t *testing.T) {
	pg := pgtest.Start(t)
	url := pg.NewDatabase()
	ctx := context.Background()
	a, b := open(t, url, nil), open(t, url, nil)
	rev, err := a.Write(ctx, store.Write{TenantID: "t", Changes: []*pb.Change{storetest.Group("g"), storetest.User("u")}})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := b.Directory(wctx, "t", rev); err != nil {
		t.Fatal(err)
	}

	pg.Stop()
	for name, s := range map[string]*postgres.Store{"A": a, "B": b} {
		d, err := s.Directory(ctx, "t", 0)
		if err != nil || d.Revision() != rev {
			t.Errorf("replica %s with the database down: %v, %v", name, d.Revision(), err)
		}
		_, err = s.Write(ctx, store.Write{TenantID: "t", Changes: []*pb.Change{storetest.AddMember("g", "u")}, RequestID: "while-down"})
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("replica %s write with the database down: %v, want ErrUnavailable", name, err)
		}
		if st, err := s.Status(ctx, "t"); err != nil || st.Revision != rev || st.StoreRevision != rev {
			t.Errorf("replica %s status with the database down: %+v, %v", name, st, err)
		}
	}

	pg.Restart()
	var next int64
	deadline := time.Now().Add(10 * time.Second)
	for { // the pool notices the restart on its next connection attempt
		next, err = a.Write(ctx, store.Write{TenantID: "t", Changes: []*pb.Change{storetest.AddMember("g", "u")}, RequestID: "while-down"})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || next != rev+1 {
		t.Fatalf("write after the database came back: %d, %v", next, err)
	}
	wctx2, cancel2 := context.WithTimeout(ctx, 10*time.Second)
	defer cancel2()
	d, err := b.Directory(wctx2, "t", next)
	if err != nil {
		t.Fatalf("replica B did not catch up after the database came back: %v", err)
	}
	if g, _ := d.Lookup("g"); len(g.Members()) != 1 {
		t.Errorf("replica B: g has %d members, want 1", len(g.Members()))
	}
}
