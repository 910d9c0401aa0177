package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/pgtest"
	"github.com/groupgate/groupgate/store"
	"github.com/groupgate/groupgate/store/postgres"
	"github.com/groupgate/groupgate/store/storetest"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"
)

// writeRevisions makes tenant id a group g, then adds users until the tenant is at revision last.
func writeRevisions(t *testing.T, s *postgres.Store, id string, last int64) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Write(ctx, store.Write{TenantID: id, Changes: []*pb.Change{storetest.Group("g")}}); err != nil {
		t.Fatal(err)
	}
	for rev := int64(2); rev <= last; rev++ {
		u := fmt.Sprintf("u-%03d", rev)
		got, err := s.Write(ctx, store.Write{TenantID: id, Changes: []*pb.Change{storetest.User(u), storetest.AddMember("g", u)}})
		if err != nil || got != rev {
			t.Fatalf("write: revision %d, %v; want %d", got, err, rev)
		}
	}
}

// kept lists a tenant's log range and snapshot revisions.
func kept(t *testing.T, conn *pgx.Conn, id string) (oldest, newest int64, snapshots []int64) {
	t.Helper()
	ctx := context.Background()
	if err := conn.QueryRow(ctx, `SELECT coalesce(min(revision), 0), coalesce(max(revision), 0) FROM changes WHERE tenant_id = $1`, id).Scan(&oldest, &newest); err != nil {
		t.Fatal(err)
	}
	rows, _ := conn.Query(ctx, `SELECT revision FROM snapshots WHERE tenant_id = $1 ORDER BY revision`, id)
	snapshots, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	return oldest, newest, snapshots
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// TestRetention writes 25 revisions with checkpoints at 10 and 20 (and a tenant of 5 revisions without any),
// prunes once, and checks what is left: never the log above the newest checkpoint, never a tenant without a
// snapshot, and below the checkpoint only what both bounds let go.
func TestRetention(t *testing.T) {
	pg := pgtest.Start(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name           string
		retention      postgres.Retention
		oldest         int64 // the oldest log entry left of tenant t
		snapshots      string
		prunedSnapshot int64
		age            string // SQL run before pruning, to make rows older than they are
	}{
		{"EverythingBelowTheCheckpoint", postgres.Retention{}, 21, "[20]", 1, ""},
		{"RevisionsWindowBelowTheCheckpoint", postgres.Retention{Revisions: 8}, 18, "[20]", 1, ""},
		{"RevisionsWindowAboveTheCheckpoint", postgres.Retention{Revisions: 2}, 21, "[20]", 1, ""},
		{"RevisionsWindowKeepsAll", postgres.Retention{Revisions: 100}, 1, "[10 20]", 0, ""},
		{"TimeWindowKeepsAll", postgres.Retention{For: time.Hour}, 1, "[10 20]", 0, ""},
		// Revisions 1..15 committed two hours ago: the log from 16 is inside the hour kept, and the superseded
		// checkpoint at 10, written just now, waits out its grace period.
		{"TimeWindowBelowTheCheckpoint", postgres.Retention{For: time.Hour}, 16, "[10 20]", 0,
			`UPDATE changes SET committed = now() - interval '2 hours' WHERE tenant_id = 't' AND revision <= 15`},
		{"SupersededCheckpointAfterItsGracePeriod", postgres.Retention{For: time.Hour}, 16, "[20]", 1,
			`UPDATE changes SET committed = now() - interval '2 hours' WHERE tenant_id = 't' AND revision <= 15;
			 UPDATE snapshots SET created = now() - interval '2 hours' WHERE tenant_id = 't'`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := pg.NewDatabase()
			s := openWith(t, url, postgres.Options{PollInterval: fastPoll, CheckpointEvery: 10, Retention: tc.retention})
			writeRevisions(t, s, "t", 25)
			writeRevisions(t, s, "no-checkpoint", 5)
			s.WaitCheckpoints()
			conn := connect(t, url)
			if tc.age != "" {
				if _, err := conn.Exec(ctx, tc.age); err != nil {
					t.Fatal(err)
				}
			}
			st, err := s.Prune(ctx)
			if err != nil {
				t.Fatal(err)
			}
			oldest, newest, snapshots := kept(t, conn, "t")
			if oldest != tc.oldest || newest != 25 || fmt.Sprint(snapshots) != tc.snapshots {
				t.Errorf("kept log %d..%d and snapshots %v; want %d..25 and %s", oldest, newest, snapshots, tc.oldest, tc.snapshots)
			}
			if st.Changes != tc.oldest-1 || st.Snapshots != tc.prunedSnapshot || st.Tenants != 2 || st.Skipped {
				t.Errorf("prune stats %+v, want %d changes and %d snapshots of 2 tenants", st, tc.oldest-1, tc.prunedSnapshot)
			}
			if oldest, newest, snapshots := kept(t, conn, "no-checkpoint"); oldest != 1 || newest != 5 || len(snapshots) != 0 {
				t.Errorf("a tenant without a snapshot lost log entries: %d..%d, snapshots %v", oldest, newest, snapshots)
			}

			// Watch: after oldest-1 replays, before it answers the oldest revision kept.
			var compacted *store.CompactedError
			err = s.Watch(ctx, "t", tc.oldest-2, func(store.Revision) error { return nil })
			if tc.oldest > 1 && (!errors.As(err, &compacted) || compacted.Oldest != tc.oldest || !errors.Is(err, store.ErrCompacted)) {
				t.Errorf("watch after %d: %v, want a CompactedError with the log starting at %d", tc.oldest-2, err, tc.oldest)
			}
			var got []int64
			enough := errors.New("enough")
			err = s.Watch(ctx, "t", tc.oldest-1, func(r store.Revision) error {
				if got = append(got, r.Revision); r.Revision == 25 {
					return enough
				}
				return nil
			})
			if !errors.Is(err, enough) || len(got) != int(26-tc.oldest) || got[0] != tc.oldest {
				t.Errorf("watch after %d: revisions %v, %v; want %d..25", tc.oldest-1, got, err, tc.oldest)
			}

			// A new replica starts from the newest checkpoint and the log after it.
			want, _ := s.Directory(ctx, "t", 25)
			b := open(t, url, nil)
			d, err := b.Directory(ctx, "t", 0)
			if err != nil || d.Revision() != 25 || !proto.Equal(d.Snapshot(), want.Snapshot()) {
				t.Errorf("a replica started after pruning: %v, %v; want revision 25 and the same tenant", d.Revision(), err)
			}
		})
	}

	t.Run("OneReplicaPrunesAtATime", func(t *testing.T) {
		url := pg.NewDatabase()
		s := openWith(t, url, postgres.Options{PollInterval: fastPoll, CheckpointEvery: 10})
		writeRevisions(t, s, "t", 12)
		s.WaitCheckpoints()
		other := connect(t, url) // another replica, in the middle of its pass
		if _, err := other.Exec(ctx, `SELECT pg_advisory_lock($1)`, postgres.PruneLock); err != nil {
			t.Fatal(err)
		}
		if st, err := s.Prune(ctx); err != nil || !st.Skipped || st.Changes != 0 {
			t.Errorf("prune while another replica prunes: %+v, %v; want skipped", st, err)
		}
		if _, err := other.Exec(ctx, `SELECT pg_advisory_unlock($1)`, postgres.PruneLock); err != nil {
			t.Fatal(err)
		}
		if st, err := s.Prune(ctx); err != nil || st.Skipped || st.Changes != 10 {
			t.Errorf("prune once the other replica is done: %+v, %v; want 10 log entries pruned", st, err)
		}
	})

	// A replica that stopped following (database unreachable for it, or a long pause) while the log it needs
	// was pruned reloads the newest checkpoint and catches up, both by following and inside its next write.
	t.Run("AReplicaBehindThePrunedLogStartsFromTheCheckpoint", func(t *testing.T) {
		url := pg.NewDatabase()
		a := openWith(t, url, postgres.Options{PollInterval: fastPoll, CheckpointEvery: 10})
		writeRevisions(t, a, "t", 3)
		for _, viaWrite := range []bool{false, true} {
			b := open(t, url, nil)
			if _, err := b.Directory(ctx, "t", 3); err != nil {
				t.Fatal(err)
			}
			b.StopFollowing()
			held, _ := b.Directory(ctx, "t", 0)
			last := held.Revision() + 20
			for rev := held.Revision() + 1; rev <= last; rev++ {
				u := fmt.Sprintf("v-%03d", rev)
				if _, err := a.Write(ctx, store.Write{TenantID: "t", Changes: []*pb.Change{storetest.User(u), storetest.AddMember("g", u)}}); err != nil {
					t.Fatal(err)
				}
			}
			a.WaitCheckpoints()
			if st, err := a.Prune(ctx); err != nil || st.Changes == 0 {
				t.Fatalf("prune: %+v, %v", st, err)
			}
			conn := connect(t, url)
			if oldest, _, _ := kept(t, conn, "t"); oldest <= held.Revision()+1 {
				t.Fatalf("the log after B's revision %d is still there (from %d): the test proves nothing", held.Revision(), oldest)
			}
			if viaWrite {
				if _, err := b.Write(ctx, store.Write{TenantID: "t", Changes: []*pb.Change{storetest.User("via-b")}}); err != nil {
					t.Fatalf("write through the replica behind the pruned log: %v", err)
				}
				last++
			} else if err := b.Sync(ctx); err != nil {
				t.Fatalf("follower pass of the replica behind the pruned log: %v", err)
			}
			want, _ := a.Directory(ctx, "t", last)
			got, _ := b.Directory(ctx, "t", 0)
			if got.Revision() != last || !proto.Equal(got.Snapshot(), want.Snapshot()) {
				t.Errorf("via write %v: replica B at revision %d (want %d), same tenant: %v", viaWrite, got.Revision(), last, proto.Equal(got.Snapshot(), want.Snapshot()))
			}
		}
	})
}
