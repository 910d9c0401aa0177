package memory

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

func group(id string, members ...string) *pb.Change {
	return &pb.Change{Change: &pb.Change_UpsertGroup{UpsertGroup: &pb.Group{
		Id: id, Kind: pb.GroupKind_GROUP_KIND_SECURITY, Membership: pb.Membership_MEMBERSHIP_ASSIGNED, Members: members}}}
}

func user(id string) *pb.Change {
	return &pb.Change{Change: &pb.Change_UpsertUser{UpsertUser: &pb.User{Id: id, UserType: pb.UserType_USER_TYPE_MEMBER}}}
}

func addMember(g, m string) *pb.Change {
	return &pb.Change{Change: &pb.Change_AddMember{AddMember: &pb.MemberChange{GroupId: g, MemberId: m}}}
}

func TestUnknownTenantIsNotFound(t *testing.T) {
	s := New(Options{})
	_, err := s.Directory(context.Background(), "nope", 0)
	var nf *directory.NotFoundError
	if !errors.As(err, &nf) || nf.Kind != "tenant" {
		t.Fatalf("got %v, want a tenant NotFoundError", err)
	}
}

func TestRefusedFirstWriteCreatesNoTenant(t *testing.T) {
	s := New(Options{})
	_, err := s.Write(context.Background(), store.Write{TenantID: "t", Changes: []*pb.Change{addMember("g", "u")}})
	if err == nil {
		t.Fatal("a write to a missing group was accepted")
	}
	if _, err := s.Directory(context.Background(), "t", 0); err == nil {
		t.Error("a refused first write made the tenant visible")
	}
}

// TestReadersNeverSeeHalfABatch writes batches that each add a user to two groups; concurrent readers must
// always find the user in both groups or in neither.
func TestReadersNeverSeeHalfABatch(t *testing.T) {
	s := New(Options{})
	ctx := context.Background()
	if _, err := s.Write(ctx, store.Write{TenantID: "t", Changes: []*pb.Change{group("a"), group("b")}}); err != nil {
		t.Fatal(err)
	}
	const writes = 200
	done := make(chan struct{})
	var wg sync.WaitGroup
	var torn, reads int
	var mu sync.Mutex
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				d, err := s.Directory(ctx, "t", 0)
				if err != nil {
					t.Error(err)
					return
				}
				a, _ := d.Lookup("a")
				b, _ := d.Lookup("b")
				mu.Lock()
				reads++
				if len(a.Members()) != len(b.Members()) {
					torn++
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < writes; i++ {
		u := fmt.Sprintf("u%d", i)
		if _, err := s.Write(ctx, store.Write{TenantID: "t", Changes: []*pb.Change{user(u), addMember("a", u), addMember("b", u)}}); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
	if torn > 0 {
		t.Errorf("%d of %d reads saw a half-applied batch", torn, reads)
	}
	d, _ := s.Directory(ctx, "t", 0)
	if d.Revision() != writes+1 {
		t.Errorf("revision %d, want %d", d.Revision(), writes+1)
	}
}

func TestConcurrentWritersGetDistinctRevisions(t *testing.T) {
	s := New(Options{})
	ctx := context.Background()
	if _, err := s.Write(ctx, store.Write{TenantID: "t", Changes: []*pb.Change{group("g")}}); err != nil {
		t.Fatal(err)
	}
	const writers = 8
	revs := make(chan int64, writers)
	var wg sync.WaitGroup
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := fmt.Sprintf("u%d", i)
			rev, err := s.Write(ctx, store.Write{TenantID: "t", Changes: []*pb.Change{user(u), addMember("g", u)}})
			if err != nil {
				t.Error(err)
			}
			revs <- rev
		}()
	}
	wg.Wait()
	close(revs)
	seen := map[int64]bool{}
	for r := range revs {
		if seen[r] {
			t.Errorf("revision %d given to two writes", r)
		}
		seen[r] = true
	}
	d, _ := s.Directory(ctx, "t", 0)
	g, _ := d.Lookup("g")
	if len(g.Members()) != writers {
		t.Errorf("%d members after %d concurrent writes", len(g.Members()), writers)
	}
}

func TestWatchBeyondTheLogIsCompacted(t *testing.T) {
	s := New(Options{LogLimit: 2})
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		if _, err := s.Write(ctx, store.Write{TenantID: "t", Changes: []*pb.Change{user(fmt.Sprintf("u%d", i))}}); err != nil {
			t.Fatal(err)
		}
	}
	err := s.Watch(ctx, "t", 1, func(store.Revision) error { return nil })
	if !errors.Is(err, store.ErrCompacted) {
		t.Fatalf("watch from revision 1 with 2 revisions kept: %v, want ErrCompacted", err)
	}
	var got []int64
	stop := errors.New("stop")
	err = s.Watch(ctx, "t", 3, func(r store.Revision) error {
		got = append(got, r.Revision)
		if len(got) == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || fmt.Sprint(got) != "[4 5]" {
		t.Errorf("watch from 3: %v %v, want [4 5]", got, err)
	}
}

func TestRequestIDsAreForgottenBeyondTheLimit(t *testing.T) {
	s := New(Options{RequestIDLimit: 2})
	ctx := context.Background()
	write := func(id, u string) int64 {
		rev, err := s.Write(ctx, store.Write{TenantID: "t", RequestID: id, Changes: []*pb.Change{user(u)}})
		if err != nil {
			t.Fatal(err)
		}
		return rev
	}
	first := write("r1", "u1")
	write("r2", "u2")
	if again := write("r2", "u2"); again != 2 {
		t.Errorf("retry of r2 answered %d, want 2", again)
	}
	write("r3", "u3")
	if again := write("r1", "u1"); again == first {
		t.Errorf("r1 still remembered beyond the limit of 2")
	}
}

func TestOnChangeHearsEveryRevisionBeforeReaders(t *testing.T) {
	var heard []int64
	var s *Store
	s = New(Options{OnChange: func(prev, next *directory.Directory, delta *directory.Delta) {
		// Readers must not see next before the listener has run.
		if cur, err := s.Directory(context.Background(), next.TenantID(), 0); err == nil && cur.Revision() >= next.Revision() {
			t.Errorf("revision %d was visible before OnChange ran", next.Revision())
		}
		heard = append(heard, next.Revision())
		if prev.Revision() != 0 && delta == nil {
			t.Errorf("revision %d: a change batch came without a delta", next.Revision())
		}
	}})
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := s.Write(ctx, store.Write{TenantID: "t", Changes: []*pb.Change{user(fmt.Sprintf("u%d", i))}}); err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(heard) != "[1 2 3]" {
		t.Errorf("OnChange heard %v, want [1 2 3]", heard)
	}
}

func TestDirectoryWaitsForMinRevision(t *testing.T) {
	s := New(Options{})
	ctx := context.Background()
	if _, err := s.Write(ctx, store.Write{TenantID: "t", Changes: []*pb.Change{user("u0")}}); err != nil {
		t.Fatal(err)
	}
	got := make(chan int64, 1)
	go func() {
		d, err := s.Directory(ctx, "t", 2)
		if err != nil {
			t.Error(err)
		}
		got <- d.Revision()
	}()
	if _, err := s.Write(ctx, store.Write{TenantID: "t", Changes: []*pb.Change{user("u1")}}); err != nil {
		t.Fatal(err)
	}
	select {
	case rev := <-got:
		if rev != 2 {
			t.Errorf("got revision %d, want 2", rev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiter never woke up")
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := s.Directory(short, "t", 9); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting for a revision that never comes: %v, want DeadlineExceeded", err)
	}
}
