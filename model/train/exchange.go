package train

import (
	"context"
	"fmt"

	"github.com/coreattn/coreattn/model"
	"github.com/coreattn/coreattn/wgpu"
)

// Transfer moves rows that cross adapters: Copy copies the first n
// float32 of src (on one device) to dst at element off (on another),
// seeing the work submitted to src's device before it, and seen by the
// work submitted to dst's device after it returns.
type Transfer interface {
	Copy(ctx context.Context, dst *wgpu.Buffer, off int, src *wgpu.Buffer, n int) error
}

// LinkTransfer is the Transfer of package wgpu's transfer path
// (wgpu.Copy): each chunk is read into the source device's mapped staging
// and copied by the host straight into the destination's, with several
// chunks in flight.
type LinkTransfer struct{}

// Copy implements [Transfer].
func (LinkTransfer) Copy(ctx context.Context, dst *wgpu.Buffer, off int, src *wgpu.Buffer, n int) error {
	return wgpu.Copy(ctx, dst, uint64(off)*4, src, 0, uint64(n)*4)
}

// The exchange kernels (wgsl/exchange.wgsl).
var exchangeEntries = []string{"copy_rows", "add_rows", "fill_zero", "add_vec"}

// compileExchange adds the exchange kernels to k.
func compileExchange(k *kernels) error {
	common, err := wgslFiles.ReadFile("wgsl/common.wgsl")
	if err != nil {
		return err
	}
	src, err := wgslFiles.ReadFile("wgsl/exchange.wgsl")
	if err != nil {
		return err
	}
	for _, e := range exchangeEntries {
		p, err := k.dev.Pipeline("train "+e, string(common)+"\n"+string(src), e)
		if err != nil {
			return fmt.Errorf("train: %w", err)
		}
		k.pipes[e] = p
	}
	return nil
}

// moveRows records moving n rows of w elements from src to dst (copied, or
// added with add), their element offsets listed from pair off of the map.
func (b *builder) moveRows(add bool, n, w, off int, m, src, dst *wgpu.Buffer) wgpu.Dispatch {
	entry := "copy_rows"
	if add {
		entry = "add_rows"
	}
	return b.dispatch(entry, b.grid(ceilDiv(n*w, wg)), u32(n, w, off, 0), m, src, dst)
}

// fillZero records clearing n elements of dst from element off.
func (b *builder) fillZero(n, off int, dst *wgpu.Buffer) wgpu.Dispatch {
	return b.dispatch("fill_zero", b.grid(ceilDiv(n, wg)), u32(n, 0, off, 0), dst)
}

// addVec records dst[i] += src[i] for i < n.
func (b *builder) addVec(n int, src, dst *wgpu.Buffer) wgpu.Dispatch {
	return b.dispatch("add_vec", b.grid(ceilDiv(n, wg)), u32(n, 0, 0, 0), src, dst)
}

// stageBuffers are one attention server's staging tensors: the fused batch
// of the rows it computes away from their own buffers. Q, K, V, O and LSE
// are kept per layer (the backward reads them); dO, dQ, dK and dV are
// reused by every layer.
type stageBuffers struct {
	dev                   *wgpu.Device
	qCap, kCap            int // rows
	q, k, v, o, lse       []*wgpu.Buffer
	do, dq, dk, dv        *wgpu.Buffer
	all                   []*wgpu.Buffer
	qWidth, kWidth, heads int
}

// ensureStage returns server s's staging buffers with room for rowsQ query
// and rowsK key rows, growing them (by a quarter more than asked) where
// they are smaller.
func (cl *Cluster) ensureStage(s, rowsQ, rowsK int) (*stageBuffers, error) {
	st := cl.stage[s]
	d := cl.slots[s].d
	if st != nil && st.qCap >= rowsQ && st.kCap >= rowsK {
		return st, nil
	}
	qCap, kCap := rowsQ+rowsQ/4+64, rowsK+rowsK/4+64
	if st != nil {
		qCap, kCap = max(qCap, st.qCap), max(kCap, st.kCap)
		st.release()
		cl.stage[s] = nil
	}
	c := cl.cfg
	st = &stageBuffers{dev: d.dev, qCap: qCap, kCap: kCap, qWidth: c.QDim(), kWidth: c.KVDim(), heads: c.HeadsQ}
	limit := d.dev.MaxBufferBytes()
	if need := uint64(kCap) * uint64(c.KVDim()) * 4; need > limit {
		return nil, fmt.Errorf("%w: attention server %d stages %d key rows (%d bytes); %s binds %d", ErrTooLarge, s, rowsK, need, d.dev.Info().Name, limit)
	}
	if need := uint64(qCap) * uint64(c.QDim()) * 4; need > limit {
		return nil, fmt.Errorf("%w: attention server %d stages %d query rows (%d bytes); %s binds %d", ErrTooLarge, s, rowsQ, need, d.dev.Info().Name, limit)
	}
	alloc := func(label string, n int) (*wgpu.Buffer, error) {
		b, err := d.dev.NewBuffer(fmt.Sprintf("server %d %s", s, label), uint64(max(n, 1))*4)
		if err != nil {
			return nil, fmt.Errorf("train: %w", err)
		}
		st.all = append(st.all, b)
		return b, nil
	}
	var err error
	for l := range c.Layers {
		for _, t := range []struct {
			dst  *[]*wgpu.Buffer
			name string
			n    int
		}{{&st.q, "q", qCap * c.QDim()}, {&st.k, "k", kCap * c.KVDim()}, {&st.v, "v", kCap * c.KVDim()},
			{&st.o, "o", qCap * c.QDim()}, {&st.lse, "lse", qCap * c.HeadsQ}} {
			var b *wgpu.Buffer
			if b, err = alloc(fmt.Sprintf("layers.%d.%s", l, t.name), t.n); err != nil {
				st.release()
				return nil, err
			}
			*t.dst = append(*t.dst, b)
		}
	}
	for _, t := range []struct {
		dst  **wgpu.Buffer
		name string
		n    int
	}{{&st.do, "do", qCap * c.QDim()}, {&st.dq, "dq", qCap * c.QDim()}, {&st.dk, "dk", kCap * c.KVDim()}, {&st.dv, "dv", kCap * c.KVDim()}} {
		if *t.dst, err = alloc(t.name, t.n); err != nil {
			st.release()
			return nil, err
		}
	}
	cl.stage[s] = st
	return st, nil
}

func (st *stageBuffers) release() {
	if st == nil {
		return
	}
	for _, b := range st.all {
		b.Release()
	}
	st.all = nil
}

func (st *stageBuffers) bytes() uint64 {
	if st == nil {
		return 0
	}
	var n uint64
	for _, b := range st.all {
		n += b.Size()
	}
	return n
}

// unitKey names one transfer between two adapters within a step's program:
// the exchange, its source and destination devices and groups.
type unitKey struct {
	exchange, src, dst, srcGroup, dstGroup int
}

// transferBuffers are a transfer unit's send buffer (on the source device)
// and receive buffer (on the destination), grown as needed and kept.
type transferBuffers struct {
	send, recv *wgpu.Buffer
	cap        int // elements
}

// ensureBox returns unit k's buffers with room for n elements.
func (cl *Cluster) ensureBox(k unitKey, n int) (*transferBuffers, error) {
	tb := cl.boxes[k]
	if tb != nil && tb.cap >= n {
		return tb, nil
	}
	c := n + n/4 + 256
	if tb != nil {
		tb.release()
	}
	var err error
	tb = &transferBuffers{cap: c}
	if tb.send, err = cl.devs[k.src].dev.NewBuffer("transfer send", uint64(c)*4); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if tb.recv, err = cl.devs[k.dst].dev.NewBuffer("transfer receive", uint64(c)*4); err != nil {
		tb.send.Release()
		return nil, fmt.Errorf("train: %w", err)
	}
	cl.boxes[k] = tb
	return tb, nil
}

func (tb *transferBuffers) release() {
	tb.send.Release()
	tb.recv.Release()
}

// checkTensors checks tensors against c's parameter shapes.
func checkTensors(c model.Config, what string, tensors [][]float32) error {
	ps := c.Params()
	if len(tensors) != len(ps) {
		return fmt.Errorf("train: %s: %d tensors, the model has %d", what, len(tensors), len(ps))
	}
	for i, p := range ps {
		if len(tensors[i]) != p.Size() {
			return fmt.Errorf("train: %s: %s holds %d values, want %d (shape %v)", what, p.Name, len(tensors[i]), p.Size(), p.Shape)
		}
	}
	return nil
}
