package wgpu_test

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReleaseConcurrent releases each buffer from several goroutines at
// once, and again after its device is closed: go-webgpu crashes on a
// second free, and -race flags an unguarded handle.
func TestReleaseConcurrent(t *testing.T) {
	d := openTest(t)
	for range 20 {
		b, err := d.NewBuffer("b", 256)
		require.NoError(t, err)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				b.Release()
			}()
		}
		close(start)
		wg.Wait()
		b.Release()
	}
	b, err := d.NewBuffer("after close", 64)
	require.NoError(t, err)
	require.NoError(t, d.Close())
	b.Release()
	b.Release()
}
