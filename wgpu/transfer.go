package wgpu

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreattn/coreattn/wgpu/internal/backend"
	"github.com/coreattn/coreattn/wgpu/internal/gowebgpu"
	"github.com/coreattn/coreattn/wgpu/internal/pause"
)

// Errors of the transfer path, wrapped with context by the calls that
// return them; match them with errors.Is.
var (
	// ErrOutOfRange: a transfer reaches beyond its buffer.
	ErrOutOfRange = errors.New("wgpu: out of range")
	// ErrMisaligned: an upload's offset or length is not a multiple of 4
	// bytes (WebGPU copies whole 4-byte words).
	ErrMisaligned = errors.New("wgpu: not a multiple of 4 bytes")
	// ErrWrongDevice: a buffer belongs to another device than the transfer.
	ErrWrongDevice = errors.New("wgpu: buffer of another device")
	// ErrReleased: a buffer was used after Release.
	ErrReleased = backend.ErrReleased
	// ErrOutOfMemory: the device could not allocate what a call needs.
	ErrOutOfMemory = errors.New("wgpu: out of device memory")
)

// UploadMethod is how a [Transfer] moves host data into device buffers.
type UploadMethod int

const (
	// UploadStaged copies through the transfer's ring of mapped staging
	// buffers (the default and the fastest).
	UploadStaged UploadMethod = iota
	// UploadQueueWrite hands each chunk to wgpu's Queue.WriteBuffer, which
	// allocates a staging buffer per call (for comparison).
	UploadQueueWrite
	// UploadMappedAtCreation creates a staging buffer mapped at creation
	// per chunk, copies into it and releases it (for comparison).
	UploadMappedAtCreation
)

var uploadMethodNames = [...]string{"staged", "queue-write", "mapped-at-creation"}

// String names the method as `coreattn bench transfer --method` does.
func (m UploadMethod) String() string {
	if m >= 0 && int(m) < len(uploadMethodNames) {
		return uploadMethodNames[m]
	}
	return fmt.Sprintf("UploadMethod(%d)", int(m))
}

// ParseUploadMethod reads a method's name (see String).
func ParseUploadMethod(s string) (UploadMethod, error) {
	for i, n := range uploadMethodNames {
		if s == n {
			return UploadMethod(i), nil
		}
	}
	return 0, fmt.Errorf("wgpu: upload method %q: want staged, queue-write or mapped-at-creation", s)
}

// maxDepth bounds TransferOptions.Depth.
const maxDepth = 16

// TransferOptions size a [Transfer]'s staging. The zero value picks
// defaults for the adapter.
type TransferOptions struct {
	// ChunkBytes is the size of one staging buffer, the unit that is copied
	// on the host while earlier units cross the link: a multiple of 4096,
	// default 16 MiB (4 MiB on a CPU adapter, where staging is plain host
	// memory and smaller chunks move as fast). Staging buffers of up to
	// 16 MiB come out of memory that wgpu keeps mapped; larger ones may be
	// mapped anew each time.
	ChunkBytes uint64
	// Depth is the number of staging buffers per direction, so the chunks
	// in flight at once (1..16, default 4). The staging memory is at most
	// 2·Depth·ChunkBytes, allocated on first use and kept until Close.
	Depth int
	// Copiers is the number of goroutines that copy one chunk between Go
	// memory and staging (default: half the Go processors, at most 4; one
	// on a CPU adapter, whose "GPU" copies need the same cores).
	Copiers int
	// Upload picks the upload mechanism (default UploadStaged).
	Upload UploadMethod
}

// withDefaults fills the zero fields and checks the rest.
func (o TransferOptions) withDefaults(info AdapterInfo) (TransferOptions, error) {
	if o.ChunkBytes == 0 {
		o.ChunkBytes = 16 << 20
		if info.IsCPU() {
			o.ChunkBytes = 4 << 20
		}
	}
	if o.Depth == 0 {
		o.Depth = 4
	}
	if o.Copiers == 0 {
		o.Copiers = min(4, max(1, runtime.GOMAXPROCS(0)/2))
		if info.IsCPU() {
			o.Copiers = 1
		}
	}
	switch {
	case o.ChunkBytes%4096 != 0:
		return o, fmt.Errorf("wgpu: transfer chunk of %d bytes: want a multiple of 4096", o.ChunkBytes)
	case o.ChunkBytes > info.Limits.MaxBufferSize:
		return o, fmt.Errorf("wgpu: transfer chunk of %d bytes exceeds the adapter's buffer limit of %d", o.ChunkBytes, info.Limits.MaxBufferSize)
	case o.Depth < 1 || o.Depth > maxDepth:
		return o, fmt.Errorf("wgpu: transfer depth %d: want 1..%d", o.Depth, maxDepth)
	case o.Copiers < 1:
		return o, fmt.Errorf("wgpu: transfer copiers %d: want at least 1", o.Copiers)
	case o.Upload < UploadStaged || o.Upload > UploadMappedAtCreation:
		return o, fmt.Errorf("wgpu: transfer upload method %d: unknown", int(o.Upload))
	}
	return o, nil
}

// Transfer moves bytes between host memory and a device's buffers at the
// link's speed: through rings of staging buffers that are mapped once and
// reused, with several chunks in flight, so that the host copy of one chunk
// overlaps the device copy of the ones before it. Get the device's shared
// one with [Device.Transfer]; [Device.NewTransfer] makes one with other
// options. A Transfer is safe for concurrent use: concurrent transfers
// share its staging buffers chunk by chunk. Once warm, a transfer allocates
// nothing, on the host or on the device. That is the go-webgpu runtime's
// engine; on Dawn a Transfer goes through Dawn's own writes and reads
// (transfer_plain.go).
//
// Ordering is the queue's: an upload is seen by all work submitted after it
// returns; a download sees all work submitted before it was called.
type Transfer struct {
	dev  *Device
	opts TransferOptions
	// g is the go-webgpu device whose staging buffers the engine drives
	// through wgpu-native's C API; nil on other runtimes, where transfers
	// go through the runtime's own writes and reads (transfer_plain.go).
	g    *gowebgpu.Device
	raw  raw
	cerr cerr // the C calls' error record; used under g's lock

	up, down ring
	copier   copier

	closed    atomic.Bool
	done      chan struct{} // closed by Close: wakes waiters for a slot
	closeOnce sync.Once

	stats counters
}

// Transfer returns the device's shared transfer engine, with default
// options, made on first use and closed with the device. After Close it
// returns an engine whose calls fail with ErrClosed.
func (d *Device) Transfer() *Transfer {
	s := &d.transfers
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shared == nil {
		t, err := d.newTransfer(TransferOptions{})
		if err != nil { // default options are valid: only a closed device fails
			return closedTransfer(d)
		}
		s.shared = t
	}
	return s.shared
}

// closedTransfer is an engine whose calls fail with ErrClosed.
func closedTransfer(d *Device) *Transfer {
	t := &Transfer{dev: d, done: make(chan struct{})}
	t.up = ring{t: t, write: true, closed: true}
	t.down = ring{t: t, closed: true}
	t.closeOnce.Do(func() {
		t.closed.Store(true)
		close(t.done)
	})
	return t
}

// NewTransfer makes a transfer engine with its own staging buffers, for
// callers that want other options than [Device.Transfer]'s. Close it when
// done; closing the device closes it too.
func (d *Device) NewTransfer(opts TransferOptions) (*Transfer, error) {
	d.transfers.mu.Lock()
	defer d.transfers.mu.Unlock()
	return d.newTransfer(opts)
}

// newTransfer makes and registers an engine. Callers hold d.transfers.mu.
func (d *Device) newTransfer(opts TransferOptions) (*Transfer, error) {
	opts, err := opts.withDefaults(d.info)
	if err != nil {
		return nil, err
	}
	if d.transfers.closed {
		return nil, fmt.Errorf("%w: %s", ErrClosed, d.info.Name)
	}
	t := &Transfer{dev: d, opts: opts, done: make(chan struct{})}
	if g, ok := d.impl.(*gowebgpu.Device); ok {
		t.g, t.raw, t.cerr = g, raw{device: deviceRef(g.WGPU()), queue: queueRef(g.Queue())}, newCerr()
	}
	t.up = ring{t: t, write: true, free: make(chan *slot, opts.Depth)}
	t.down = ring{t: t, free: make(chan *slot, opts.Depth)}
	t.copier = copier{n: opts.Copiers}
	if d.transfers.open == nil {
		d.transfers.open = make(map[*Transfer]struct{})
	}
	d.transfers.open[t] = struct{}{}
	return t, nil
}

// Options are the engine's options, defaults filled in.
func (t *Transfer) Options() TransferOptions { return t.opts }

// Close waits for the transfers in progress to stop (they fail with
// ErrClosed at their next chunk) and frees the staging buffers. It is
// idempotent. Closing the device's shared engine is allowed: the next
// [Device.Transfer] makes a fresh one.
func (t *Transfer) Close() error {
	t.dev.transfers.mu.Lock()
	delete(t.dev.transfers.open, t)
	if t.dev.transfers.shared == t {
		t.dev.transfers.shared = nil
	}
	t.dev.transfers.mu.Unlock()
	t.close()
	return nil
}

func (t *Transfer) close() {
	t.closeOnce.Do(func() {
		t.closed.Store(true)
		close(t.done)
		t.up.close()
		t.down.close()
		t.copier.stop()
		if t.cerr.p != nil {
			// Under the device lock, where every use of the record checks
			// closed (the rings' users hold slots, which close waited for).
			t.g.Lock()
			t.cerr.free()
			t.g.Unlock()
		}
	})
}

// transferSet is a device's transfer engines, closed before the device.
type transferSet struct {
	mu     sync.Mutex
	shared *Transfer
	open   map[*Transfer]struct{}
	closed bool
}

// close closes every engine; later ones cannot be made.
func (s *transferSet) close() {
	s.mu.Lock()
	s.closed = true
	open := s.open
	s.open, s.shared = nil, nil
	s.mu.Unlock()
	for t := range open {
		t.close()
	}
}

// check reports why t cannot take work, or nil.
func (t *Transfer) check() error {
	if t.closed.Load() {
		return fmt.Errorf("%w: %s: transfer engine", ErrClosed, t.dev.info.Name)
	}
	return nil
}

// Sync waits until all work submitted to the device so far, this engine's
// uploads included, has completed: [Transfer.Upload] returns before its
// copies have run. It polls without holding the device for long, so other
// goroutines keep submitting meanwhile.
func (t *Transfer) Sync(ctx context.Context) error {
	if err := t.check(); err != nil {
		return err
	}
	d := t.dev
	if t.g == nil {
		if err := d.impl.Wait(ctx); err != nil {
			return fmt.Errorf("wgpu: %s: sync: %w", d.info.Name, err)
		}
		return nil
	}
	t.g.Lock()
	err := t.g.Usable()
	if err == nil {
		t.g.Queue().Submit() // also flushes the writes Queue.WriteBuffer queued
	}
	t.g.Unlock()
	for wait := 2 * time.Microsecond; err == nil; wait = min(2*wait, maxPollPause) {
		t.g.Lock()
		if err = t.g.Usable(); err == nil && t.g.WGPU().Poll(false, nil) {
			t.g.Unlock()
			return nil
		}
		t.g.Unlock()
		if err == nil {
			err = ctx.Err()
		}
		if err == nil {
			pause.Poll(wait)
		}
	}
	return fmt.Errorf("wgpu: %s: sync: %w", d.info.Name, err)
}

// TransferStats accumulate what an engine's transfers spent, for finding
// where the time goes (`coreattn bench transfer` prints them).
type TransferStats struct {
	UploadBytes, DownloadBytes uint64
	Chunks                     uint64        // chunks moved, both ways
	HostCopy                   time.Duration // copying between Go memory and staging
	Submit                     time.Duration // encoding, submitting, mapping and unmapping, with the device lock's wait
	Wait                       time.Duration // waiting for device copies (maps) to complete
}

type counters struct {
	up, down, chunks           atomic.Uint64
	hostCopy, submit, waitTime atomic.Int64
}

// Stats returns the totals since the engine was made.
func (t *Transfer) Stats() TransferStats {
	return TransferStats{
		UploadBytes:   t.stats.up.Load(),
		DownloadBytes: t.stats.down.Load(),
		Chunks:        t.stats.chunks.Load(),
		HostCopy:      time.Duration(t.stats.hostCopy.Load()),
		Submit:        time.Duration(t.stats.submit.Load()),
		Wait:          time.Duration(t.stats.waitTime.Load()),
	}
}

// Pending is a transfer running in the background (see
// [Transfer.UploadAsync]).
type Pending struct {
	done chan struct{}
	err  error
}

// Done is closed when the transfer has finished.
func (p *Pending) Done() <-chan struct{} { return p.done }

// Wait waits for the transfer to finish and returns its error.
func (p *Pending) Wait() error {
	<-p.done
	return p.err
}

// UploadAsync starts Upload in a new goroutine. src must not change, nor
// dst be used, until the returned transfer is done.
func (t *Transfer) UploadAsync(ctx context.Context, dst *Buffer, dstOff uint64, src []byte) *Pending {
	p := &Pending{done: make(chan struct{})}
	go func() {
		p.err = t.Upload(ctx, dst, dstOff, src)
		close(p.done)
	}()
	return p
}

// DownloadAsync starts Download in a new goroutine. dst must not be used
// until the returned transfer is done.
func (t *Transfer) DownloadAsync(ctx context.Context, dst []byte, src *Buffer, srcOff uint64) *Pending {
	p := &Pending{done: make(chan struct{})}
	go func() {
		p.err = t.Download(ctx, dst, src, srcOff)
		close(p.done)
	}()
	return p
}

// WriteAt copies data into b at element offset off through the device's
// [Device.Transfer], and returns once data may be reused; work submitted
// afterwards sees it.
func WriteAt[T Elem](ctx context.Context, b *Buffer, off int, data []T) error {
	if off < 0 {
		return fmt.Errorf("wgpu: write at element %d of %q: %w", off, b.label, ErrOutOfRange)
	}
	return b.dev.Transfer().Upload(ctx, b, uint64(off)*4, bytesOf(data))
}

// ReadAt copies len(dst) elements of b from element offset off into dst
// through the device's [Device.Transfer], after all work submitted before.
func ReadAt[T Elem](ctx context.Context, b *Buffer, off int, dst []T) error {
	if off < 0 {
		return fmt.Errorf("wgpu: read at element %d of %q: %w", off, b.label, ErrOutOfRange)
	}
	return b.dev.Transfer().Download(ctx, bytesOf(dst), b, uint64(off)*4)
}
