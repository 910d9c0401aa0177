// Package storetest is the contract every store meets, as one test suite run against each of them (memory and
// PostgreSQL): atomic batches, optimistic locking, idempotent retries, revision waits, the change feed.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/store"
)

// Open returns a new, empty store whose OnChange calls onChange.
type Open func(t *testing.T, onChange store.ChangeListener) store.Store

// Group, User and AddMember build changes.
func Group(id string, members ...string) *pb.Change {
	return &pb.Change{Change: &pb.Change_UpsertGroup{UpsertGroup: &pb.Group{
		Id: id, DisplayName: id, Kind: pb.GroupKind_GROUP_KIND_SECURITY, Membership: pb.Membership_MEMBERSHIP_ASSIGNED, Members: members}}}
}

func User(id string) *pb.Change {
	return &pb.Change{Change: &pb.Change_UpsertUser{UpsertUser: &pb.User{Id: id, DisplayName: id, UserType: pb.UserType_USER_TYPE_MEMBER}}}
}

func AddMember(g, m string) *pb.Change {
	return &pb.Change{Change: &pb.Change_AddMember{AddMember: &pb.MemberChange{GroupId: g, MemberId: m}}}
}

// Run runs the contract against the store that open returns.
func Run(t *testing.T, open Open) {
	ctx := context.Background()
	write := func(t *testing.T, s store.Store, w store.Write) int64 {
		t.Helper()
		rev, err := s.Write(ctx, w)
		if err != nil {
			t.Fatalf("write %v: %v", w.Changes, err)
		}
		return rev
	}

	t.Run("UnknownTenantIsNotFound", func(t *testing.T) {
		s := open(t, nil)
		for _, minRevision := range []int64{0, 5} { // with min_revision too: at once, not at the deadline
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := s.Directory(wctx, "nope", minRevision)
			cancel()
			var nf *directory.NotFoundError
			if !errors.As(err, &nf) || nf.Kind != "tenant" {
				t.Fatalf("min revision %d: got %v, want a tenant NotFoundError", minRevision, err)
			}
		}
	})

	t.Run("RefusedBatchWritesNothing", func(t *testing.T) {
		s := open(t, nil)
		if _, err := s.Write(ctx, store.Write{TenantID: "t", Changes: []*pb.Change{AddMember("g", "u")}}); err == nil {
			t.Fatal("a write to a missing group was accepted")
		}
		if _, err := s.Directory(ctx, "t", 0); err == nil {
			t.Fatal("a refused first write made the tenant visible")
		}
		rev := write(t, s, store.Write{TenantID: "t", Changes: []*pb.Change{Group("g"), User("u")}})
		// The first two changes are fine; the third names a missing member: nothing of the batch may land.
		_, err := s.Write(ctx, store.Write{TenantID: "t", Changes: []*pb.Change{User("v"), AddMember("g", "v"), AddMember("g", "ghost")}})
		var invalid *directory.ValidationError
		if !errors.As(err, &invalid) {
			t.Fatalf("got %v, want a ValidationError", err)
		}
		d, err := s.Directory(ctx, "t", 0)
		if err != nil {
			t.Fatal(err)
		}
		if d.Revision() != rev {
			t.Errorf("revision %d after a refused batch, want %d", d.Revision(), rev)
		}
		if _, ok := d.Lookup("v"); ok {
			t.Error("part of a refused batch was applied")
		}
		if rev2 := write(t, s, store.Write{TenantID: "t", Changes: []*pb.Change{User("w")}}); rev2 != rev+1 {
			t.Errorf("next write got revision %d, want %d: a refused batch used up a revision", rev2, rev+1)
		}
	})

	t.Run("ExpectedRevision", func(t *testing.T) {
		s := open(t, nil)
		zero := int64(0)
		rev := write(t, s, store.Write{TenantID: "t", Changes: []*pb.Change{Group("g")}, ExpectedRevision: &zero})
		stale := rev - 1
		_, err := s.Write(ctx, store.Write{TenantID: "t", Changes: []*pb.Change{User("u")}, ExpectedRevision: &stale})
		var mismatch *store.RevisionMismatchError
		if !errors.As(err, &mismatch) || mismatch.Actual != rev || mismatch.Expected != stale {
			t.Fatalf("got %v, want a mismatch expecting %d at %d", err, stale, rev)
		}
		if got := write(t, s, store.Write{TenantID: "t", Changes: []*pb.Change{User("u")}, ExpectedRevision: &rev}); got != rev+1 {
			t.Errorf("revision %d, want %d", got, rev+1)
		}
	})

	t.Run("RequestIDWritesOnce", func(t *testing.T) {
		s := open(t, nil)
		write(t, s, store.Write{TenantID: "t", Changes: []*pb.Change{Group("g"), User("u")}})
		w := store.Write{TenantID: "t", Changes: []*pb.Change{AddMember("g", "u")}, RequestID: "req-1"}
		first := write(t, s, w)
		write(t, s, store.Write{TenantID: "t", Changes: []*pb.Change{User("x")}})
		if again := write(t, s, w); again != first {
			t.Errorf("retry answered revision %d, want the first result %d", again, first)
		}
		d, _ := s.Directory(ctx, "t", 0)
		if d.Revision() != first+1 {
			t.Errorf("tenant at revision %d after the retry, want %d: the retry wrote again", d.Revision(), first+1)
		}
	})

	t.Run("ConcurrentWritersGetDistinctRevisions", func(t *testing.T) {
		s := open(t, nil)
		base := write(t, s, store.Write{TenantID: "t", Changes: []*pb.Change{Group("g")}})
		const writers, each = 4, 10
		revs := make(chan int64, writers*each)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					rev, err := s.Write(ctx, store.Write{TenantID: "t", Changes: []*pb.Change{User(fmt.Sprintf("u-%d-%d", w, i))}})
					if err != nil {
						t.Error(err)
						return
					}
					revs <- rev
				}
			}()
		}
		wg.Wait()
		close(revs)
		seen := map[int64]bool{}
		for r := range revs {
			if seen[r] {
				t.Errorf("revision %d given twice", r)
			}
			seen[r] = true
		}
		d, _ := s.Directory(ctx, "t", 0)
		if d.Revision() != base+writers*each || d.Counts().Users != writers*each {
			t.Errorf("revision %d with %d users, want %d with %d", d.Revision(), d.Counts().Users, base+writers*each, writers*each)
		}
	})

	t.Run("DirectoryWaitsForMinRevision", func(t *testing.T) {
		s := open(t, nil)
		rev := write(t, s, store.Write{TenantID: "t", Changes: []*pb.Change{Group("g")}})
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if _, err := s.Directory(short, "t", rev+1); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("waiting for a revision that never comes: %v, want DeadlineExceeded", err)
		}
		got := make(chan int64, 1)
		go func() {
			d, err := s.Directory(ctx, "t", rev+1)
			if err != nil {
				t.Error(err)
			}
			got <- d.Revision()
		}()
		write(t, s, store.Write{TenantID: "t", Changes: []*pb.Change{User("u")}})
		select {
		case r := <-got:
			if r != rev+1 {
				t.Errorf("woke at revision %d, want %d", r, rev+1)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the waiter was not woken by the write")
		}
	})

	t.Run("WatchReplaysThenFollows", func(t *testing.T) {
		s := open(t, nil)
		first := write(t, s, store.Write{TenantID: "t", Changes: []*pb.Change{Group("g")}})
		write(t, s, store.Write{TenantID: "t", Changes: []*pb.Change{User("u"), AddMember("g", "u")}})
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		got := make(chan store.Revision, 10)
		go func() {
			_ = s.Watch(wctx, "t", first, func(r store.Revision) error { got <- r; return nil })
		}()
		next := func() store.Revision {
			select {
			case r := <-got:
				return r
			case <-time.After(10 * time.Second):
				t.Fatal("no revision from Watch")
				return store.Revision{}
			}
		}
		if r := next(); r.Revision != first+1 || len(r.Changes) != 2 || r.Replaced {
			t.Errorf("replayed %+v, want revision %d with 2 changes", r, first+1)
		}
		write(t, s, store.Write{TenantID: "t", Changes: []*pb.Change{User("v")}})
		if r := next(); r.Revision != first+2 || len(r.Changes) != 1 {
			t.Errorf("live %+v, want revision %d with 1 change", r, first+2)
		}
		if _, err := s.Import(ctx, &pb.Snapshot{TenantId: "t"}, nil); err != nil {
			t.Fatal(err)
		}
		if r := next(); r.Revision != first+3 || !r.Replaced {
			t.Errorf("after import %+v, want revision %d replaced", r, first+3)
		}
	})

	t.Run("ImportReplacesTheTenant", func(t *testing.T) {
		s := open(t, nil)
		write(t, s, store.Write{TenantID: "t", Changes: []*pb.Change{Group("old")}})
		snap := &pb.Snapshot{TenantId: "t", Users: []*pb.User{{Id: "u", DisplayName: "U", UserType: pb.UserType_USER_TYPE_GUEST}},
			Groups: []*pb.Group{{Id: "g", DisplayName: "G", Kind: pb.GroupKind_GROUP_KIND_SECURITY, Membership: pb.Membership_MEMBERSHIP_ASSIGNED, Members: []string{"u"}}}}
		wrong := int64(7)
		if _, err := s.Import(ctx, snap, &wrong); !errors.Is(err, store.ErrRevisionMismatch) {
			t.Fatalf("import with a wrong expected revision: %v", err)
		}
		bad := &pb.Snapshot{TenantId: "t", Groups: []*pb.Group{{Id: "g", Kind: pb.GroupKind_GROUP_KIND_SECURITY, Membership: pb.Membership_MEMBERSHIP_ASSIGNED, Members: []string{"ghost"}}}}
		if _, err := s.Import(ctx, bad, nil); err == nil {
			t.Fatal("a snapshot with a dangling member was imported")
		}
		rev, err := s.Import(ctx, snap, nil)
		if err != nil {
			t.Fatal(err)
		}
		d, _ := s.Directory(ctx, "t", rev)
		if _, ok := d.Lookup("old"); ok || d.Counts().Guests != 1 || d.Revision() != 2 {
			t.Errorf("after import: revision %d, counts %+v, old group still there: %v", d.Revision(), d.Counts(), ok)
		}
		if next := write(t, s, store.Write{TenantID: "t", Changes: []*pb.Change{User("v"), AddMember("g", "v")}}); next != rev+1 {
			t.Errorf("write after import got revision %d, want %d", next, rev+1)
		}
	})

	t.Run("OnChangeHearsEveryRevisionBeforeReaders", func(t *testing.T) {
		var heard []int64
		var s store.Store
		s = open(t, func(prev, next *directory.Directory, delta *directory.Delta) {
			if d, err := s.Directory(ctx, next.TenantID(), 0); err == nil && d.Revision() >= next.Revision() {
				t.Errorf("revision %d was visible before OnChange", next.Revision())
			}
			if next.Revision() != prev.Revision()+1 {
				t.Errorf("OnChange from %d to %d", prev.Revision(), next.Revision())
			}
			heard = append(heard, next.Revision())
		})
		first := write(t, s, store.Write{TenantID: "t", Changes: []*pb.Change{Group("g")}})
		last := write(t, s, store.Write{TenantID: "t", Changes: []*pb.Change{User("u")}})
		write(t, s, store.Write{TenantID: "t", Changes: []*pb.Change{AddMember("g", "u")}})
		if want := []int64{last, last + 1}; fmt.Sprint(heard) != fmt.Sprint(want) {
			t.Errorf("OnChange heard %v, want %v (revision %d created the tenant)", heard, want, first)
		}
	})
}
