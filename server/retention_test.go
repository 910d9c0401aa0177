package server_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/pgtest"
	"github.com/groupgate/groupgate/server"
	"github.com/groupgate/groupgate/server/servertest"
	"github.com/groupgate/groupgate/store"
	"github.com/groupgate/groupgate/store/memory"
	"github.com/groupgate/groupgate/store/postgres"
	"github.com/groupgate/groupgate/store/storetest"
	"github.com/jackc/pgx/v5"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// compactedInfo returns the ErrorInfo of a Watch refused because its revision is no longer kept.
func compactedInfo(err error) *errdetails.ErrorInfo {
	st := status.Convert(err)
	if st.Code() != codes.OutOfRange {
		return nil
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() == server.CompactedReason && info.GetDomain() == server.ErrorDomain {
			return info
		}
	}
	return nil
}

// TestWatchFromACompactedRevisionIsOutOfRange: both stores answer a Watch from before the log they keep with
// OUT_OF_RANGE and the oldest revision kept, and a Watch from there replays.
func TestWatchFromACompactedRevisionIsOutOfRange(t *testing.T) {
	pg := pgtest.Start(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		open   func(t *testing.T, onChange store.ChangeListener) store.Store
		trim   func(t *testing.T, s store.Store)
		oldest int64
	}{
		{
			name: "memory", // keeps the last 5 revisions of 25
			open: func(t *testing.T, onChange store.ChangeListener) store.Store {
				return memory.New(memory.Options{OnChange: onChange, LogLimit: 5})
			},
			trim:   func(*testing.T, store.Store) {},
			oldest: 21,
		},
		{
			name: "postgres", // checkpoints at 10 and 20, everything below the newest pruned
			open: func(t *testing.T, onChange store.ChangeListener) store.Store {
				s, err := postgres.Open(ctx, pg.NewDatabase(), postgres.Options{OnChange: onChange, PollInterval: 100 * time.Millisecond, CheckpointEvery: 10})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(s.Close)
				return s
			},
			trim: func(t *testing.T, s store.Store) {
				deadline := time.Now().Add(10 * time.Second)
				for { // the checkpoint at 20 is written in the background
					st, err := s.(*postgres.Store).Prune(ctx)
					if err != nil {
						t.Fatal(err)
					}
					if st.Changes >= 20 || time.Now().After(deadline) {
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
			},
			oldest: 21,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var st store.Store
			srv := servertest.StartWith(t, servertest.Options{Store: func(onChange store.ChangeListener) store.Store {
				st = tc.open(t, onChange)
				return st
			}})
			if _, err := st.Write(ctx, store.Write{TenantID: "t", Changes: []*pb.Change{storetest.Group("g")}}); err != nil {
				t.Fatal(err)
			}
			for i := 2; i <= 25; i++ {
				if _, err := st.Write(ctx, store.Write{TenantID: "t", Changes: []*pb.Change{storetest.User(fmt.Sprintf("u%d", i))}}); err != nil {
					t.Fatal(err)
				}
			}
			tc.trim(t, st)

			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			stream, err := srv.Client.Directory.Watch(wctx, &pb.WatchRequest{TenantId: "t", AfterRevision: 3})
			if err == nil {
				_, err = stream.Recv()
			}
			info := compactedInfo(err)
			if info == nil {
				t.Fatalf("watch after revision 3: %v, want OUT_OF_RANGE with an ErrorInfo %s", err, server.CompactedReason)
			}
			want := map[string]string{"tenant_id": "t", "after_revision": "3", "oldest_revision": strconv.FormatInt(tc.oldest, 10),
				"min_after_revision": strconv.FormatInt(tc.oldest-1, 10)}
			for k, v := range want {
				if info.GetMetadata()[k] != v {
					t.Errorf("ErrorInfo metadata %s = %q, want %q (all: %v)", k, info.GetMetadata()[k], v, info.GetMetadata())
				}
			}

			// What the error says works: watch after min_after_revision.
			after, _ := strconv.ParseInt(info.GetMetadata()["min_after_revision"], 10, 64)
			stream, err = srv.Client.Directory.Watch(wctx, &pb.WatchRequest{TenantId: "t", AfterRevision: after})
			if err != nil {
				t.Fatal(err)
			}
			for rev := after + 1; rev <= 25; rev++ {
				r, err := stream.Recv()
				if err != nil || r.GetRevision() != rev {
					t.Fatalf("watch after %d: got revision %d, %v; want %d", after, r.GetRevision(), err, rev)
				}
			}
		})
	}
}

// queryCounter counts the queries sent on a pool.
type queryCounter struct{ n atomic.Int64 }

func (c *queryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (c *queryCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TestMetricsScrapeOfAThousandTenantsSendsNoQuery: the tenants' revisions and lag on the PostgreSQL store come
// from what the replica follows, so a scrape costs the database nothing, however many tenants it holds.
func TestMetricsScrapeOfAThousandTenantsSendsNoQuery(t *testing.T) {
	const tenants = 1000
	pg := pgtest.Start(t)
	url := pg.NewDatabase()
	ctx := context.Background()
	writer, err := postgres.Open(ctx, url, postgres.Options{}) // another replica; creates the schema
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	entry, _ := proto.Marshal(&pb.WatchResponse{Revision: 1, Changes: []*pb.Change{storetest.Group("g")}})
	if _, err := conn.Exec(ctx, `INSERT INTO tenants SELECT 't' || i, 1 FROM generate_series(1, $1) i`, tenants); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO changes (tenant_id, revision, changes) SELECT 't' || i, 1, $2 FROM generate_series(1, $1) i`, tenants, entry); err != nil {
		t.Fatal(err)
	}

	queries := &queryCounter{}
	srv := servertest.StartWith(t, servertest.Options{Metrics: true, Store: func(onChange store.ChangeListener) store.Store {
		// No polling during the test: only notifications make the follower query.
		s, err := postgres.Open(ctx, url, postgres.Options{OnChange: onChange, PollInterval: time.Hour, QueryTracer: queries})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}})
	quiet := func() { // the listener's first pass after connecting, and any follower pass, are over
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for last := queries.n.Load(); ; {
			time.Sleep(300 * time.Millisecond)
			n := queries.n.Load()
			if n == last {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("the replica keeps querying")
			}
			last = n
		}
	}
	scrape := func() map[string]float64 {
		t.Helper()
		families, err := srv.Metrics.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, f := range families {
			if f.GetName() != "groupgate_tenant_store_revision" && f.GetName() != "groupgate_tenant_revision" {
				continue
			}
			for _, m := range f.GetMetric() {
				got[f.GetName()+"/"+m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
			}
		}
		return got
	}

	quiet()
	before := queries.n.Load()
	got := scrape()
	scrape()
	scrape()
	if n := queries.n.Load() - before; n != 0 {
		t.Errorf("three scrapes of %d tenants sent %d queries, want 0", tenants, n)
	}
	if len(got) != 2*tenants || got["groupgate_tenant_store_revision/t1"] != 1 || got["groupgate_tenant_revision/t1000"] != 1 {
		t.Errorf("scrape: %d series, t1 store revision %v, t1000 revision %v; want %d series at revision 1",
			len(got), got["groupgate_tenant_store_revision/t1"], got["groupgate_tenant_revision/t1000"], 2*tenants)
	}

	// A write through the other replica reaches the scrape through the follower (NOTIFY, then the log).
	if _, err := writer.Write(ctx, store.Write{TenantID: "t7", Changes: []*pb.Change{storetest.User("u")}}); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := srv.Store.Directory(wctx, "t7", 2); err != nil {
		t.Fatal(err)
	}
	quiet()
	before = queries.n.Load()
	got = scrape()
	if n := queries.n.Load() - before; n != 0 || got["groupgate_tenant_store_revision/t7"] != 2 || got["groupgate_tenant_revision/t7"] != 2 {
		t.Errorf("scrape after a write elsewhere: %d queries, t7 at %v (store %v); want 0 queries and revision 2",
			n, got["groupgate_tenant_revision/t7"], got["groupgate_tenant_store_revision/t7"])
	}
}
