package syncbuf

import (
	"strings"
	"sync"
	"testing"
)

// Writers on several goroutines and a reader meanwhile (run with -race):
// every write is kept whole.
func TestConcurrentWrites(t *testing.T) {
	var b Buffer
	const writers, writes = 4, 100
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range writes {
				if n, err := b.Write([]byte("ab\n")); n != 3 || err != nil {
					t.Errorf("Write = %d, %v", n, err)
				}
			}
		})
	}
	for range writes {
		_ = b.String()
	}
	wg.Wait()
	if got, want := b.String(), strings.Repeat("ab\n", writers*writes); got != want {
		t.Errorf("%d bytes written, want %d", len(got), len(want))
	}
}
