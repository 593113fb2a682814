package gpu

import (
	"slices"
	"sync"

	"github.com/coreattn/coreattn/wgpu"
)

// Workspace lends the launches prepared with it (see [Op.WithWorkspace])
// their parameter blocks, tile tables and scratch buffers, and keeps them
// from one round of launches to the next, so that a loop preparing launches
// of the same shapes every iteration (a training step's 2L launches)
// allocates nothing on the device once warm.
//
// Work is organised in rounds, begun by [Workspace.Reset]. Within a round,
// launches whose parameters or tile tables hold the same words share one
// buffer (every layer of a step has the same arguments); other contents
// get buffers of their own. Scratch buffers (the backward's Delta, bound,
// dQ accumulator, dS tiles, widened K; the forward's split-KV partials)
// are shared by every launch of every round: launches on one device's
// queue run one after another, and each leaves them as the next expects
// (the dQ accumulator and the bound cleared). A Reset lets the next round
// rewrite the buffers of the previous one, so every launch prepared before
// it must have been submitted (or dropped) by then; writes go through the
// queue, after the work submitted earlier, so that work may still be
// running. A buffer that must grow is replaced; the one it replaces is
// freed at the next Reset (wgpu frees it once the work using it is done).
//
// A Call prepared with a workspace owns nothing (its Release frees
// nothing) and is valid until the round after the next Reset. A Workspace
// is safe for concurrent use; rounds are the caller's to order.
type Workspace struct {
	dev *wgpu.Device

	mu      sync.Mutex
	round   uint64
	held    map[heldKey][]*heldBuffer // parameter blocks and tile tables, by label
	scratch map[string]*wgpu.Buffer
	retired []*wgpu.Buffer // replaced this round; freed at the next Reset
	bytes   uint64
	made    int
}

// heldKey names a group of interchangeable buffers.
type heldKey struct {
	label   string
	uniform bool
}

// heldBuffer is a parameter block or tile table and the words it holds.
type heldBuffer struct {
	buf   *wgpu.Buffer
	words []uint32
	round uint64 // the last round it was lent in
	cap   int    // words it can hold
}

// NewWorkspace returns an empty workspace on dev.
func NewWorkspace(dev *wgpu.Device) *Workspace {
	return &Workspace{dev: dev, round: 1, held: map[heldKey][]*heldBuffer{}, scratch: map[string]*wgpu.Buffer{}}
}

// WithWorkspace returns an Op with op's device and options whose launches
// take their buffers from w (nil: each launch allocates its own, as op's
// do). w must be on op's device.
func (op *Op) WithWorkspace(w *Workspace) *Op {
	o := *op
	o.ws = w
	return &o
}

// Reset begins a new round: launches prepared from now on may rewrite the
// buffers of those prepared before, which must have been submitted.
func (w *Workspace) Reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.round++
	for _, b := range w.retired {
		b.Release()
	}
	w.retired = w.retired[:0]
}

// Bytes is the device memory the workspace holds.
func (w *Workspace) Bytes() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.bytes
}

// Buffers is the number of device buffers the workspace has created, for
// checking that a warm loop creates none.
func (w *Workspace) Buffers() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.made
}

// Release frees every buffer. Launches prepared with w must not run
// afterwards. The workspace stays usable: later launches allocate anew.
func (w *Workspace) Release() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, list := range w.held {
		for _, h := range list {
			h.buf.Release()
		}
	}
	for _, b := range w.scratch {
		b.Release()
	}
	for _, b := range w.retired {
		b.Release()
	}
	w.held, w.scratch, w.retired, w.bytes = map[heldKey][]*heldBuffer{}, map[string]*wgpu.Buffer{}, nil, 0
}

// words lends a buffer holding words for this round: one lent this round
// with the same words, else one of another round (rewritten unless it
// holds them already), else a new one.
func (w *Workspace) words(label string, uniform bool, words []uint32) (*wgpu.Buffer, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := heldKey{label, uniform}
	var free, same *heldBuffer
	for _, h := range w.held[k] {
		switch {
		case h.round == w.round:
			if slices.Equal(h.words, words) {
				return h.buf, nil
			}
		case same == nil && slices.Equal(h.words, words):
			same = h
		case free == nil || (h.cap >= len(words) && free.cap < len(words)):
			free = h
		}
	}
	if same != nil {
		same.round = w.round
		return same.buf, nil
	}
	if free == nil || free.cap < len(words) {
		n := len(words)
		if !uniform {
			n += n/4 + 64 // room for the next rounds' slightly larger tables
		}
		buf, err := w.create(label, uniform, n)
		if err != nil {
			return nil, err
		}
		if free == nil {
			free = &heldBuffer{}
			w.held[k] = append(w.held[k], free)
		} else {
			w.drop(free.buf)
		}
		free.buf, free.cap = buf, n
	}
	if err := wgpu.Write(free.buf, 0, words); err != nil {
		free.words = nil
		return nil, err
	}
	free.words, free.round = append(free.words[:0], words...), w.round
	return free.buf, nil
}

// create makes a buffer of n words. Callers hold w.mu.
func (w *Workspace) create(label string, uniform bool, n int) (*wgpu.Buffer, error) {
	var buf *wgpu.Buffer
	var err error
	if uniform {
		buf, err = wgpu.UploadUniform(w.dev, label, make([]uint32, n))
	} else {
		buf, err = w.dev.NewBuffer(label, uint64(n)*4)
	}
	if err != nil {
		return nil, err
	}
	w.made++
	w.bytes += buf.Size()
	return buf, nil
}

// drop retires a replaced buffer. Callers hold w.mu.
func (w *Workspace) drop(b *wgpu.Buffer) {
	w.bytes -= b.Size()
	w.retired = append(w.retired, b)
}

// scratchBuffer lends the scratch buffer of label, of at least size bytes
// (grown to exactly size where it is smaller: scratch can be large).
func (w *Workspace) scratchBuffer(label string, size uint64) (*wgpu.Buffer, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if b := w.scratch[label]; b != nil && b.Size() >= size {
		return b, nil
	}
	b, err := w.dev.NewBuffer(label, size)
	if err != nil {
		return nil, err
	}
	if old := w.scratch[label]; old != nil {
		w.drop(old)
	}
	w.made++
	w.bytes += b.Size()
	w.scratch[label] = b
	return b, nil
}

// uniform returns a uniform buffer holding words for call: the
// workspace's, or a new one the call owns.
func (op *Op) uniform(call *Call, label string, words []uint32) (*wgpu.Buffer, error) {
	if op.ws != nil {
		return op.ws.words(label, true, words)
	}
	b, err := wgpu.UploadUniform(op.dev, label, words)
	if err == nil {
		call.owned = append(call.owned, b)
	}
	return b, err
}

// table returns a storage buffer holding words for call: the
// workspace's, or a new one the call owns.
func (op *Op) table(call *Call, label string, words []uint32) (*wgpu.Buffer, error) {
	if op.ws != nil {
		return op.ws.words(label, false, words)
	}
	b, err := wgpu.Upload(op.dev, label, words)
	if err == nil {
		call.owned = append(call.owned, b)
	}
	return b, err
}

// scratch returns a zero-filled (when new) storage buffer of at least size
// bytes for call: the workspace's, or a new one the call owns.
func (op *Op) scratch(call *Call, label string, size uint64) (*wgpu.Buffer, error) {
	if op.ws != nil {
		return op.ws.scratchBuffer(label, size)
	}
	b, err := op.dev.NewBuffer(label, size)
	if err == nil {
		call.owned = append(call.owned, b)
	}
	return b, err
}
