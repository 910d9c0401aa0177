package syncbuf_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/groupgate/groupgate/internal/syncbuf"
)

// TestBufferConcurrentWriteAndRead: writers and a reader at once (run under -race); every line written is there.
func TestBufferConcurrentWriteAndRead(t *testing.T) {
	var b syncbuf.Buffer
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				fmt.Fprintf(&b, "w%d-%d\n", w, i)
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	if n := strings.Count(b.String(), "\n"); n != 400 {
		t.Fatalf("%d lines, want 400", n)
	}
	if !strings.Contains(b.String(), "w3-99\n") {
		t.Fatal("a line is missing")
	}
}
