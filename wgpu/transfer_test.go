package wgpu_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/wgpu"
)

// smallChunks makes an engine whose chunks are 16 KiB, so that a few
// hundred kilobytes cross many chunk boundaries and fill the ring.
func smallChunks(t *testing.T, d *wgpu.Device, depth int) *wgpu.Transfer {
	t.Helper()
	tr, err := d.NewTransfer(wgpu.TransferOptions{ChunkBytes: 16 << 10, Depth: depth, Copiers: 2})
	require.NoError(t, err)
	t.Cleanup(func() { tr.Close() })
	return tr
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// poisoned makes a buffer of n bytes holding random bytes, and returns them.
func poisoned(t *testing.T, d *wgpu.Device, tr *wgpu.Transfer, rng *rand.Rand, n int) (*wgpu.Buffer, []byte) {
	t.Helper()
	b, err := d.NewBuffer("poisoned", uint64(n))
	require.NoError(t, err)
	t.Cleanup(b.Release)
	want := randomBytes(rng, n&^3)
	require.NoError(t, tr.Upload(context.Background(), b, 0, want))
	return b, want
}

// TestTransferRoundTrip uploads random bytes at many sizes and offsets
// (within a chunk, across chunk boundaries, beyond the ring's depth) into a
// poisoned buffer and reads the whole buffer back: the range holds the new
// bytes, the rest the old ones.
func TestTransferRoundTrip(t *testing.T) {
	d := openTest(t)
	ctx := context.Background()
	tr := smallChunks(t, d, 3)
	rng := rand.New(rand.NewPCG(1, 2))
	const chunk = 16 << 10
	for _, n := range []int{0, 4, 12, 16, 4000, chunk - 4, chunk, chunk + 4, 3*chunk + 12, 7*chunk + 100} {
		for _, off := range []int{0, 4, 60, chunk - 8} {
			t.Run(fmt.Sprintf("n%d/off%d", n, off), func(t *testing.T) {
				size := off + n + 20 // bytes after the range too
				b, want := poisoned(t, d, tr, rng, size)
				src := randomBytes(rng, n)
				require.NoError(t, tr.Upload(ctx, b, uint64(off), src))
				copy(want[off:], src)
				got := make([]byte, len(want))
				require.NoError(t, tr.Download(ctx, got, b, 0))
				require.Equal(t, want, got)
				// The range alone, read back at its own offset.
				part := make([]byte, n)
				require.NoError(t, tr.Download(ctx, part, b, uint64(off)))
				require.Equal(t, src, part)
			})
		}
	}
}

// TestTransferUnalignedDownload reads ranges whose offset and length are
// not multiples of 4, including ones that end at the buffer's last byte.
func TestTransferUnalignedDownload(t *testing.T) {
	d := openTest(t)
	ctx := context.Background()
	tr := smallChunks(t, d, 2)
	rng := rand.New(rand.NewPCG(3, 4))
	const size = 3*(16<<10) + 8
	b, want := poisoned(t, d, tr, rng, size)
	for _, c := range []struct{ off, n int }{
		{1, 1}, {2, 3}, {3, 5}, {5, 16 << 10}, {(16 << 10) - 1, 2}, {7, size - 7}, {size - 3, 3}, {size - 1, 1}, {0, size}, {size, 0},
	} {
		got := make([]byte, c.n)
		require.NoError(t, tr.Download(ctx, got, b, uint64(c.off)), "off %d n %d", c.off, c.n)
		require.Equal(t, want[c.off:c.off+c.n], got, "off %d n %d", c.off, c.n)
	}
}

// TestTransferTyped moves float32 and int32 elements with WriteAt and
// ReadAt, and through Upload, Write and Download above and below the size
// where they switch to the staging path.
func TestTransferTyped(t *testing.T) {
	d := openTest(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{1, 1000, 1 << 18, 1<<18 + 3} { // 1<<18 floats: 1 MiB
		x := make([]float32, n)
		for i := range x {
			x[i] = rng.Float32()*2 - 1
		}
		b, err := wgpu.Upload(d, "x", x)
		require.NoError(t, err)
		got := make([]float32, n)
		require.NoError(t, wgpu.Download(ctx, b, got))
		require.Equal(t, x, got, "Upload/Download of %d", n)

		y := make([]float32, n/2+1)
		for i := range y {
			y[i] = float32(i) + 0.5
		}
		off := n - len(y)
		require.NoError(t, wgpu.Write(b, off, y))
		copy(x[off:], y)
		require.NoError(t, wgpu.ReadAt(ctx, b, 0, got))
		require.Equal(t, x, got, "Write/ReadAt of %d", n)

		z := make([]int32, len(y))
		for i := range z {
			z[i] = int32(rng.Uint32())
		}
		require.NoError(t, wgpu.WriteAt(ctx, b, off, z))
		gz := make([]int32, len(z))
		require.NoError(t, wgpu.ReadAt(ctx, b, off, gz))
		require.Equal(t, z, gz, "WriteAt/ReadAt of %d", n)
		b.Release()
	}
}

// TestTransferMethods checks that the comparison methods move the same
// bytes as the staged one.
func TestTransferMethods(t *testing.T) {
	d := openTest(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 8))
	for _, m := range []wgpu.UploadMethod{wgpu.UploadStaged, wgpu.UploadQueueWrite, wgpu.UploadMappedAtCreation} {
		tr, err := d.NewTransfer(wgpu.TransferOptions{ChunkBytes: 16 << 10, Upload: m})
		require.NoError(t, err)
		b, want := poisoned(t, d, tr, rng, 5*(16<<10)+12)
		src := randomBytes(rng, 3*(16<<10)+8)
		require.NoError(t, tr.Upload(ctx, b, 8, src))
		copy(want[8:], src)
		require.NoError(t, tr.Sync(ctx))
		got := make([]byte, len(want))
		require.NoError(t, tr.Download(ctx, got, b, 0))
		require.Equal(t, want, got, "%s", m)
		parsed, err := wgpu.ParseUploadMethod(m.String())
		require.NoError(t, err)
		assert.Equal(t, m, parsed)
		require.NoError(t, tr.Close())
	}
	_, err := wgpu.ParseUploadMethod("fast")
	require.ErrorContains(t, err, "fast")
}

// TestTransferErrors checks the typed errors of bad requests, and that a
// bad request loses nothing: the buffer still holds its bytes.
func TestTransferErrors(t *testing.T) {
	d := openTest(t)
	ctx := context.Background()
	tr := smallChunks(t, d, 2)
	rng := rand.New(rand.NewPCG(9, 10))
	b, want := poisoned(t, d, tr, rng, 1024)

	for _, c := range []struct {
		name string
		err  error
		is   error
	}{
		{"misaligned offset", tr.Upload(ctx, b, 2, make([]byte, 8)), wgpu.ErrMisaligned},
		{"misaligned length", tr.Upload(ctx, b, 0, make([]byte, 7)), wgpu.ErrMisaligned},
		{"upload past the end", tr.Upload(ctx, b, 1020, make([]byte, 8)), wgpu.ErrOutOfRange},
		{"upload offset past the end", tr.Upload(ctx, b, 2048, nil), wgpu.ErrOutOfRange},
		{"download past the end", tr.Download(ctx, make([]byte, 2), b, 1023), wgpu.ErrOutOfRange},
		{"nil buffer", tr.Download(ctx, make([]byte, 4), nil, 0), wgpu.ErrReleased},
		{"negative element offset", wgpu.WriteAt(ctx, b, -1, []float32{1}), wgpu.ErrOutOfRange},
		{"typed read past the end", wgpu.ReadAt(ctx, b, 250, make([]float32, 7)), wgpu.ErrOutOfRange},
	} {
		require.ErrorIs(t, c.err, c.is, c.name)
		if c.name != "nil buffer" {
			assert.Contains(t, c.err.Error(), "poisoned", c.name) // names the buffer
		}
	}
	_, err := d.NewTransfer(wgpu.TransferOptions{ChunkBytes: 1000})
	require.ErrorContains(t, err, "1000")
	_, err = d.NewTransfer(wgpu.TransferOptions{Depth: 17})
	require.ErrorContains(t, err, "17")

	other, err := wgpu.OpenBest(wgpu.Options{})
	require.NoError(t, err)
	defer other.Close()
	ob, err := other.NewBuffer("elsewhere", 64)
	require.NoError(t, err)
	require.ErrorIs(t, tr.Upload(ctx, ob, 0, make([]byte, 4)), wgpu.ErrWrongDevice)

	gone, err := d.NewBuffer("gone", 64)
	require.NoError(t, err)
	gone.Release()
	require.ErrorIs(t, tr.Upload(ctx, gone, 0, make([]byte, 4)), wgpu.ErrReleased)
	require.ErrorIs(t, tr.Download(ctx, make([]byte, 4), gone, 0), wgpu.ErrReleased)

	// A buffer that cannot be copied from (a uniform buffer) is a device
	// validation error, and the engine goes on working.
	u, err := wgpu.UploadUniform(d, "params", []uint32{1, 2, 3, 4})
	require.NoError(t, err)
	defer u.Release()
	require.Error(t, tr.Download(ctx, make([]byte, 16), u, 0))

	got := make([]byte, len(want))
	require.NoError(t, tr.Download(ctx, got, b, 0))
	require.Equal(t, want, got)
}

// TestTransferClosed: a closed engine and a closed device give ErrClosed,
// and closing the device closes its engines.
func TestTransferClosed(t *testing.T) {
	ctx := context.Background()
	d, err := wgpu.OpenBest(wgpu.Options{})
	require.NoError(t, err)
	b, err := d.NewBuffer("b", 64)
	require.NoError(t, err)
	own, err := d.NewTransfer(wgpu.TransferOptions{})
	require.NoError(t, err)
	require.NoError(t, own.Upload(ctx, b, 0, make([]byte, 64)))
	require.NoError(t, own.Close())
	require.NoError(t, own.Close())
	require.ErrorIs(t, own.Upload(ctx, b, 0, make([]byte, 4)), wgpu.ErrClosed)

	shared := d.Transfer()
	assert.Same(t, shared, d.Transfer())
	require.NoError(t, shared.Download(ctx, make([]byte, 64), b, 0))
	other, err := d.NewTransfer(wgpu.TransferOptions{})
	require.NoError(t, err)
	require.NoError(t, d.Close())
	for _, tr := range []*wgpu.Transfer{shared, other, d.Transfer()} {
		require.ErrorIs(t, tr.Upload(ctx, b, 0, make([]byte, 4)), wgpu.ErrClosed)
		require.ErrorIs(t, tr.Download(ctx, make([]byte, 4), b, 0), wgpu.ErrClosed)
		require.ErrorIs(t, tr.Sync(ctx), wgpu.ErrClosed)
		require.NoError(t, tr.Close())
	}
	require.ErrorIs(t, wgpu.Write(b, 0, []float32{1}), wgpu.ErrClosed)
	require.ErrorIs(t, wgpu.Download(ctx, b, make([]float32, 1)), wgpu.ErrClosed)
	_, err = d.NewTransfer(wgpu.TransferOptions{})
	require.ErrorIs(t, err, wgpu.ErrClosed)
}

// TestTransferConcurrent runs round trips from several goroutines at once
// through one engine with fewer slots than goroutines, synchronously and
// asynchronously; each goroutine's data comes back intact.
func TestTransferConcurrent(t *testing.T) {
	d := openTest(t)
	ctx := context.Background()
	tr := smallChunks(t, d, 2)
	const workers, rounds = 6, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 11))
			n := (5*(16<<10) + 4*w) &^ 3
			b, err := d.NewBuffer(fmt.Sprintf("w%d", w), uint64(n))
			if err != nil {
				errs <- err
				return
			}
			defer b.Release()
			for r := range rounds {
				src := randomBytes(rng, n)
				got := make([]byte, n)
				if r%2 == 0 {
					err = tr.Upload(ctx, b, 0, src)
					if err == nil {
						err = tr.Download(ctx, got, b, 0)
					}
				} else {
					err = tr.UploadAsync(ctx, b, 0, src).Wait()
					if err == nil {
						p := tr.DownloadAsync(ctx, got, b, 0)
						<-p.Done()
						err = p.Wait()
					}
				}
				if err == nil && string(got) != string(src) {
					err = fmt.Errorf("worker %d round %d: data differs", w, r)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	var moved uint64
	for w := range workers {
		moved += uint64((5*(16<<10)+4*w)&^3) * rounds
	}
	st := tr.Stats()
	assert.Equal(t, moved, st.UploadBytes)
	assert.Equal(t, moved, st.DownloadBytes)
	assert.Positive(t, st.Chunks)
	assert.Positive(t, st.HostCopy)
}

// countdown is a context that ends after its Err method has been asked n
// times, so that a test can end a transfer at a chosen point mid-way.
type countdown struct {
	context.Context
	mu   sync.Mutex
	n    int
	done chan struct{}
}

func newCountdown(n int) *countdown {
	return &countdown{Context: context.Background(), n: n, done: make(chan struct{})}
}

func (c *countdown) Done() <-chan struct{} { return c.done }

func (c *countdown) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == 0 {
		return context.Canceled
	}
	if c.n--; c.n == 0 {
		close(c.done)
		return context.Canceled
	}
	return nil
}

// TestTransferCancel ends transfers mid-way: they return the context's
// error, write nothing into dst afterwards, leak no goroutine, and the
// engine and device go on working.
func TestTransferCancel(t *testing.T) {
	d := openTest(t)
	tr := smallChunks(t, d, 3)
	rng := rand.New(rand.NewPCG(12, 13))
	const n = 1 << 20 // 64 chunks
	b, want := poisoned(t, d, tr, rng, n)
	for _, after := range []int{1, 2, 5, 20, 60} {
		got := make([]byte, n)
		err := tr.Download(newCountdown(after), got, b, 0)
		require.ErrorIs(t, err, context.Canceled, "after %d", after)
		snapshot := append([]byte(nil), got...)
		time.Sleep(5 * time.Millisecond)
		require.Equal(t, snapshot, got, "dst written after Download returned")

		err = tr.Upload(newCountdown(after), b, 0, randomBytes(rng, n))
		require.ErrorIs(t, err, context.Canceled, "after %d", after)
		// Whatever the upload left, the device still works: restore and check.
		require.NoError(t, tr.Upload(context.Background(), b, 0, want))
		got = make([]byte, n)
		require.NoError(t, tr.Download(context.Background(), got, b, 0))
		require.Equal(t, want, got)
	}
	// A real cancellation, from another goroutine, at some point.
	for _, delay := range []time.Duration{0, 100 * time.Microsecond, time.Millisecond} {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			time.Sleep(delay)
			cancel()
		}()
		if err := tr.Download(ctx, make([]byte, n), b, 0); err != nil {
			require.ErrorIs(t, err, context.Canceled)
		}
		<-ctx.Done()
	}
	got := make([]byte, n)
	require.NoError(t, tr.Download(context.Background(), got, b, 0))
	require.Equal(t, want, got)
	require.Eventually(t, func() bool { return len(ownGoroutines()) == 0 }, 2*time.Second, 10*time.Millisecond, "goroutines left: %q", ownGoroutines())
}

// ownGoroutines lists the stacks of the goroutines running code of package
// wgpu, other than the test's own.
func ownGoroutines() []string {
	buf := make([]byte, 1<<20)
	var out []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "coreattn/wgpu.") && !strings.Contains(g, "wgpu_test.") {
			out = append(out, g)
		}
	}
	return out
}

// TestTransferCloseWhileBusy closes an engine, then a device, while
// transfers run on them: each transfer ends with success or ErrClosed.
func TestTransferCloseWhileBusy(t *testing.T) {
	ctx := context.Background()
	d, err := wgpu.OpenBest(wgpu.Options{})
	require.NoError(t, err)
	defer d.Close()
	b, err := d.NewBuffer("b", 1<<20)
	require.NoError(t, err)
	src := make([]byte, 1<<20)
	for _, closeDevice := range []bool{false, true} {
		tr, err := d.NewTransfer(wgpu.TransferOptions{ChunkBytes: 16 << 10, Depth: 2})
		require.NoError(t, err)
		var ps []*wgpu.Pending
		for range 4 {
			ps = append(ps, tr.UploadAsync(ctx, b, 0, src), tr.DownloadAsync(ctx, make([]byte, 1<<20), b, 0))
		}
		time.Sleep(time.Millisecond)
		if closeDevice {
			require.NoError(t, d.Close())
		} else {
			require.NoError(t, tr.Close())
		}
		for _, p := range ps {
			if err := p.Wait(); err != nil {
				require.True(t, errors.Is(err, wgpu.ErrClosed), "%v", err)
			}
		}
	}
}

// TestTransferSurvivesGC moves data while another goroutine collects
// garbage without pause (see TestDownloadSurvivesGC): the maps of the
// staging ring stay pending across collections.
func TestTransferSurvivesGC(t *testing.T) {
	d := openTest(t)
	ctx := context.Background()
	tr := smallChunks(t, d, 4)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				junk := make([]*uint64, 4096)
				for j := range junk {
					v := uint64(0xdeadbeef) << 8
					junk[j] = &v
				}
				runtime.GC()
			}
		}
	}()
	defer func() { close(stop); <-done }()
	rng := rand.New(rand.NewPCG(14, 15))
	b, err := d.NewBuffer("b", 256<<10)
	require.NoError(t, err)
	defer b.Release()
	for i := range 40 {
		src := randomBytes(rng, 256<<10)
		require.NoError(t, tr.Upload(ctx, b, 0, src))
		got := make([]byte, len(src))
		require.NoError(t, tr.Download(ctx, got, b, 0))
		require.Equal(t, src, got, "round %d", i)
	}
}

// TestTransferAllocs: once warm, a round trip allocates nothing (the
// staged engine, go-webgpu's; Dawn's plain path goes through its own
// calls).
func TestTransferAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation count only")
	}
	d := openTest(t)
	if d.Runtime() != wgpu.RuntimeGoWebGPU {
		t.Skipf("the staged engine is go-webgpu's; %s runs on %s (transfer_plain.go)", d.Info(), d.Runtime())
	}
	ctx := context.Background()
	tr := smallChunks(t, d, 3)
	b, err := d.NewBuffer("b", 256<<10)
	require.NoError(t, err)
	defer b.Release()
	src, dst := make([]byte, 256<<10), make([]byte, 256<<10)
	for range 3 {
		require.NoError(t, tr.Upload(ctx, b, 0, src))
		require.NoError(t, tr.Download(ctx, dst, b, 0))
	}
	allocs := testing.AllocsPerRun(10, func() {
		if err := tr.Upload(ctx, b, 0, src); err != nil {
			panic(err)
		}
		if err := tr.Download(ctx, dst, b, 0); err != nil {
			panic(err)
		}
	})
	assert.Zero(t, allocs)
}

// BenchmarkTransfer measures the staged path each way at a few sizes
// (coreattn bench transfer is the full measurement).
func BenchmarkTransfer(b *testing.B) {
	d, err := wgpu.OpenBest(wgpu.Options{})
	require.NoError(b, err)
	defer d.Close()
	ctx := context.Background()
	tr := d.Transfer()
	for _, n := range []int{64 << 10, 1 << 20, 16 << 20} {
		buf, err := d.NewBuffer("bench", uint64(n))
		require.NoError(b, err)
		host := randomBytes(rand.New(rand.NewPCG(1, 1)), n)
		b.Run(fmt.Sprintf("up/%dKiB", n>>10), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				require.NoError(b, tr.Upload(ctx, buf, 0, host))
			}
			require.NoError(b, tr.Sync(ctx))
		})
		b.Run(fmt.Sprintf("down/%dKiB", n>>10), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				require.NoError(b, tr.Download(ctx, host, buf, 0))
			}
		})
		buf.Release()
	}
}
