package memory

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/store"
	"github.com/groupgate/groupgate/store/storetest"
)

// TestReadersNeverSeeHalfABatch writes batches that each add a user to two groups; concurrent readers must
// always find the user in both groups or in neither.
func TestReadersNeverSeeHalfABatch(t *testing.T) {
	s := New(Options{})
	ctx := context.Background()
	if _, err := s.Write(ctx, store.Write{TenantID: "t", Changes: []*pb.Change{storetest.Group("a"), storetest.Group("b")}}); err != nil {
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
		if _, err := s.Write(ctx, store.Write{TenantID: "t", Changes: []*pb.Change{storetest.User(u), storetest.AddMember("a", u), storetest.AddMember("b", u)}}); err != nil {
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

func TestWatchBeyondTheLogIsCompacted(t *testing.T) {
	s := New(Options{LogLimit: 2})
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		if _, err := s.Write(ctx, store.Write{TenantID: "t", Changes: []*pb.Change{storetest.User(fmt.Sprintf("u%d", i))}}); err != nil {
			t.Fatal(err)
		}
	}
	err := s.Watch(ctx, "t", 1, func(store.Revision) error { return nil })
	var compacted *store.CompactedError
	if !errors.Is(err, store.ErrCompacted) || !errors.As(err, &compacted) || compacted.Oldest != 4 {
		t.Fatalf("watch from revision 1 with 2 revisions kept: %v, want ErrCompacted with the log starting at 4", err)
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
		rev, err := s.Write(ctx, store.Write{TenantID: "t", RequestID: id, Changes: []*pb.Change{storetest.User(u)}})
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

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, onChange store.ChangeListener) store.Store {
		return New(Options{OnChange: onChange})
	})
}
