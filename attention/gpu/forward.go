package gpu

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/attention/worklist"

	"github.com/coreattn/coreattn/shaders"
	"github.com/coreattn/coreattn/wgpu"
)

// Op runs the attention kernels on one device. It holds no state beyond the
// device, whose pipeline cache it uses, and its options; it is safe for
// concurrent use.
type Op struct {
	dev  *wgpu.Device
	opts Options
	ws   *Workspace // where launches take their buffers (nil: their own)
}

// Options tune an Op. The zero value picks every tile shape from the
// adapter's limits.
type Options struct {
	// ForwardTiling, if its TX is non-zero, fixes the forward's TX, TY, KC
	// and VC (the head dimension still comes from the call), its fetch
	// pattern and its staging: CPU and TransposedK as given, where the
	// automatic choice follows the adapter and the shape; for tuning and
	// tests.
	ForwardTiling shaders.FwdTiling
	// BackwardDQ and BackwardDKV, if their TX is non-zero, fix the tilings of
	// the backward's dQ and dK/dV kernels in the same way (CPU and
	// Transposed as given); for tuning.
	BackwardDQ, BackwardDKV shaders.BwdTiling
	// DQ chooses how the backward computes dQ (DQAuto: fused where the
	// adapter allows it).
	DQ DQMode
	// DSScratch caps the scratch buffer of DQStored, in bytes (0: 2 GiB);
	// the backward runs in as many passes over the KV heads as it needs.
	// It never exceeds the adapter's limit for one buffer.
	DSScratch int64
	// SplitKV is the forward's split-KV piece length in keys (rounded up
	// to the key tile): query blocks that see more keys are computed in
	// pieces and merged (see package worklist). 0 splits where the work calls for
	// it, on GPUs only; a negative value never splits.
	SplitKV int
	// Kernels chooses the FFMA or the tensor-core kernels (KernelsAuto:
	// tensor cores for float16 storage where the device has them; see
	// tensorcore.go). SplitKV and DSScratch apply to both.
	Kernels Kernels
	// TensorCoreForward and TensorCoreBackward, if their NS or NP is
	// non-zero, fix the tensor-core kernels' tilings (the head dimension
	// and storage type come from the call); for tuning and tests.
	TensorCoreForward  shaders.TCFwdTiling
	TensorCoreBackward shaders.TCBwdTiling
}

// DQMode chooses how the backward computes dQ.
type DQMode int

const (
	// DQAuto fuses dQ into the dK/dV kernel where the tiling and the
	// adapter's storage-buffer limit allow it, and runs the dQ kernel
	// otherwise.
	DQAuto DQMode = iota
	// DQFused always fuses it (an error where that is impossible): the
	// dK/dV kernel adds dS K into a fixed-point dQ with integer atomics.
	DQFused
	// DQSeparate runs the query-block-major dQ kernel, which recomputes S
	// and dP but writes every element of dQ exactly once, with no scratch
	// buffer.
	DQSeparate
	// DQStored makes the dK/dV kernel store its dS tiles (float32, 4 bytes
	// per visible query-key pair and query head) in a scratch buffer, and a
	// query-block-major kernel multiplies them by K: no recomputation and
	// no atomics, every element of dQ has one writer. Where the tiles of
	// all heads exceed Options.DSScratch, the two kernels run in passes over
	// groups of KV heads (an error wrapping wgpu.ErrTooLarge where one KV
	// head's tiles do not fit).
	DQStored
)

// String names the mode as `coreattn bench --dq` does: "auto", "fused",
// "separate" or "stored".
func (m DQMode) String() string {
	switch m {
	case DQAuto:
		return "auto"
	case DQFused:
		return "fused"
	case DQSeparate:
		return "separate"
	case DQStored:
		return "stored"
	}
	return fmt.Sprintf("DQMode(%d)", int(m))
}

// dqModes are the modes in the order ParseDQMode lists them.
var dqModes = []DQMode{DQAuto, DQFused, DQSeparate, DQStored}

// ParseDQMode is the mode that String names s.
func ParseDQMode(s string) (DQMode, error) {
	names := make([]string, len(dqModes))
	for i, m := range dqModes {
		if s == m.String() {
			return m, nil
		}
		names[i] = m.String()
	}
	return DQAuto, fmt.Errorf("attention: DQ mode %q: want one of %s", s, strings.Join(names, ", "))
}

// New returns an Op on dev with default options.
func New(dev *wgpu.Device) *Op { return &Op{dev: dev} }

// NewWithOptions returns an Op on dev with the given options.
func NewWithOptions(dev *wgpu.Device, opts Options) *Op { return &Op{dev: dev, opts: opts} }

// forwardTiling picks the forward kernel's tile shape for head dimension d
// and storage type dt.
func (op *Op) forwardTiling(d int, dt shaders.DType) (shaders.FwdTiling, error) {
	lim := op.dev.Limits()
	if t := op.opts.ForwardTiling; t.TX != 0 {
		t.D = d
		if err := t.Validate(); err != nil {
			return t, err
		}
		if t.WorkgroupBytes() > int(lim.MaxWorkgroupStorageSize) || t.Threads() > int(lim.MaxInvocationsPerWorkgroup) {
			return t, fmt.Errorf("shaders: tiling %s needs %d bytes and %d threads; the adapter has %d and %d", t, t.WorkgroupBytes(), t.Threads(), lim.MaxWorkgroupStorageSize, lim.MaxInvocationsPerWorkgroup)
		}
		return t, nil
	}
	t, err := shaders.ChooseFwd(d, dt, int(lim.MaxWorkgroupStorageSize), int(lim.MaxInvocationsPerWorkgroup))
	t.CPU = op.dev.Info().IsCPU()
	return t, err
}

// Device is the device the Op runs on.
func (op *Op) Device() *wgpu.Device { return op.dev }

// ForwardTensors are the device-resident operands of the forward pass, in
// the layouts of the package documentation, stored in attention.Args.DType (LSE is
// always float32). O and LSE are written: each needs a buffer of its own
// (ErrAliased).
type ForwardTensors struct {
	Q, K, V *wgpu.Buffer // [total_q, Hq, D], [total_k, Hkv, D], [total_k, Hkv, D]
	O       *wgpu.Buffer // [total_q, Hq, D]
	LSE     *wgpu.Buffer // [Hq, total_q]
}

// Call is a prepared kernel launch: its dispatches can be submitted any
// number of times (a benchmark does), then Release frees what it owns.
type Call struct {
	Tiling     string  // the tile shapes used, for reports
	Kernels    Kernels // the family that runs: KernelsFFMA or KernelsTensorCore
	dispatches []wgpu.Dispatch
	owned      []*wgpu.Buffer
}

// Dispatches returns the launch's dispatches, in order.
func (c *Call) Dispatches() []wgpu.Dispatch { return c.dispatches }

// Release frees the parameter buffers the call owns.
func (c *Call) Release() {
	for _, b := range c.owned {
		b.Release()
	}
	c.owned = nil
}

// Forward computes O and LSE for host-resident Q, K and V: it uploads them,
// runs the kernel and downloads the results. It implements
// [attention.Runner].
func (op *Op) Forward(ctx context.Context, a *attention.Args, q, k, v []float32) (o, lse []float32, err error) {
	o, lse, _, err = op.ForwardTimed(ctx, a, q, k, v)
	return o, lse, err
}

// ForwardTimed is [Op.Forward] that also reports how long the call took.
func (op *Op) ForwardTimed(ctx context.Context, a *attention.Args, q, k, v []float32) (o, lse []float32, st attention.Stats, err error) {
	if err := a.Validate(); err != nil {
		return nil, nil, st, err
	}
	if err := a.CheckSizes(len(q), len(k), len(v)); err != nil {
		return nil, nil, st, err
	}
	start := time.Now()
	lse = make([]float32, a.NumHeadsQ*a.TotalQ())
	var t ForwardTensors
	defer func() { releaseAll(t.Q, t.K, t.V, t.O, t.LSE) }()
	if t.Q, err = Upload(op.dev, "q", a.DType, q); err != nil {
		return nil, nil, st, fmt.Errorf("attention: %w", err)
	}
	if t.K, err = Upload(op.dev, "k", a.DType, k); err != nil {
		return nil, nil, st, fmt.Errorf("attention: %w", err)
	}
	if t.V, err = Upload(op.dev, "v", a.DType, v); err != nil {
		return nil, nil, st, fmt.Errorf("attention: %w", err)
	}
	if t.O, err = NewTensor(op.dev, "o", a.DType, len(q)); err != nil {
		return nil, nil, st, fmt.Errorf("attention: %w", err)
	}
	if t.LSE, err = op.dev.NewBuffer("lse", uint64(len(lse))*4); err != nil {
		return nil, nil, st, fmt.Errorf("attention: %w", err)
	}
	call, err := op.prepareForward(a, t)
	if err != nil {
		return nil, nil, st, err
	}
	timing, err := op.run(ctx, "forward", call)
	if err != nil {
		return nil, nil, st, err
	}
	if o, err = Download(ctx, t.O, a.DType, len(q)); err != nil {
		return nil, nil, st, fmt.Errorf("attention: read o: %w", err)
	}
	if err := wgpu.Download(ctx, t.LSE, lse); err != nil {
		return nil, nil, st, fmt.Errorf("attention: read lse: %w", err)
	}
	return o, lse, statsOf(start, timing), nil
}

// ForwardBuffers runs the forward pass on device-resident tensors and waits
// for it to finish.
func (op *Op) ForwardBuffers(ctx context.Context, a *attention.Args, t ForwardTensors) error {
	call, err := op.PrepareForward(a, t)
	if err != nil {
		return err
	}
	_, err = op.run(ctx, "forward", call)
	return err
}

// run submits call, waits for it and releases it.
func (op *Op) run(ctx context.Context, pass string, call *Call) (wgpu.Timing, error) {
	defer call.Release()
	timing, err := op.dev.Run(ctx, call.dispatches...)
	if err != nil {
		return timing, fmt.Errorf("attention: %s: %w", pass, err)
	}
	return timing, nil
}

// statsOf turns a device run that started at start into [attention.Stats].
func statsOf(start time.Time, t wgpu.Timing) attention.Stats {
	st := attention.Stats{Total: time.Since(start), Kernel: t.Wall}
	if t.Passes != nil {
		st.GPU = t.GPU()
	}
	return st
}

// PrepareForward validates the arguments and tensors, compiles (or fetches)
// the kernel for this head dimension and adapter, and returns the launch.
func (op *Op) PrepareForward(a *attention.Args, t ForwardTensors) (*Call, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return op.prepareForward(a, t)
}

// prepareForward is PrepareForward for arguments already validated.
func (op *Op) prepareForward(a *attention.Args, t ForwardTensors) (*Call, error) {
	if err := checkBuffers(a, op.dev, map[string]*wgpu.Buffer{"q": t.Q, "k": t.K, "v": t.V, "o": t.O}, int64(a.DType.Size())); err != nil {
		return nil, err
	}
	if err := checkBuffer(op.dev, "lse", t.LSE, int64(a.NumHeadsQ)*int64(a.TotalQ())*4); err != nil {
		return nil, err
	}
	if err := checkAliasing([]namedBuffer{{"o", t.O}, {"lse", t.LSE}}, []namedBuffer{{"q", t.Q}, {"k", t.K}, {"v", t.V}}); err != nil {
		return nil, err
	}
	if call, ok, err := op.tcForward(a, t); ok {
		return call, err
	}
	lim := op.dev.Limits()
	tiling, err := op.forwardTiling(a.HeadDim, a.DType)
	if err != nil {
		return nil, fmt.Errorf("attention: %w", err)
	}
	tiling.DType = a.DType
	if uint32(a.NumHeadsQ) > lim.MaxWorkgroupsPerDimension {
		return nil, fmt.Errorf("attention: %d query heads exceed the adapter's %d workgroups per dimension", a.NumHeadsQ, lim.MaxWorkgroupsPerDimension)
	}
	pipe, err := op.fwdPipeline(tiling, shaders.ForwardEntry)
	if err != nil {
		return nil, fmt.Errorf("attention: %w", err)
	}
	plan := op.plan(a, tiling)
	call := &Call{Tiling: tiling.String(), Kernels: KernelsFFMA}
	if plan.Tiles == 0 {
		return call, nil // every segment is empty: nothing to compute
	}
	if plan.Piece > 0 {
		call.Tiling += fmt.Sprintf(" split-kv %d keys (%d pieces)", plan.Piece, plan.Slots)
	}
	maxWG := int(lim.MaxWorkgroupsPerDimension)
	gridY := min(plan.Tiles, maxWG)
	cgridY := max(1, min(plan.Groups, maxWG))
	params := shaders.FwdParams{
		HQ:        uint32(a.NumHeadsQ),
		Group:     uint32(a.NumHeadsQ / a.NumHeadsKV),
		TotalQ:    uint32(a.TotalQ()),
		Causal:    boolU32(a.Causal),
		NTiles:    uint32(plan.Tiles),
		GridY:     uint32(gridY),
		Batch:     uint32(a.Batch()),
		TilesOff:  uint32(plan.TilesOff),
		ScaleLog2: float32(a.Scale() * math.Log2E),
		HKV:       uint32(a.NumHeadsKV),
		Piece:     uint32(plan.Piece),
		CombOff:   uint32(plan.CombOff),
		NGroups:   uint32(plan.Groups),
		CombGridY: uint32(cgridY),
		LSEOff:    uint32(lseOffset(plan, a.NumHeadsQ, tiling.BR(), a.HeadDim)),
	}
	bufs := make([]*wgpu.Buffer, 3)
	for i, mk := range []func() (*wgpu.Buffer, error){
		func() (*wgpu.Buffer, error) { return op.uniform(call, "attn_fwd params", params.Words()) },
		func() (*wgpu.Buffer, error) { return op.table(call, "attn_fwd meta", plan.Meta) },
		func() (*wgpu.Buffer, error) {
			return op.scratch(call, "attn_fwd split-kv partials", partBytes(plan, a.NumHeadsQ, tiling.BR(), a.HeadDim))
		},
	} {
		if bufs[i], err = mk(); err != nil {
			call.Release()
			return nil, fmt.Errorf("attention: %w", err)
		}
	}
	pbuf, mbuf, part := bufs[0], bufs[1], bufs[2]
	call.dispatches = []wgpu.Dispatch{{
		Label:      "attn_fwd",
		Pipeline:   pipe,
		Buffers:    []*wgpu.Buffer{pbuf, mbuf, t.Q, t.K, t.V, t.O, t.LSE, part},
		Workgroups: [3]uint32{uint32(a.NumHeadsQ), uint32(gridY), uint32((plan.Tiles + gridY - 1) / gridY)},
	}}
	if plan.Groups > 0 {
		comb, err := op.fwdPipeline(tiling, shaders.CombineEntry)
		if err != nil {
			call.Release()
			return nil, fmt.Errorf("attention: %w", err)
		}
		call.dispatches = append(call.dispatches, wgpu.Dispatch{
			Label:      "attn_fwd combine",
			Pipeline:   comb,
			Buffers:    []*wgpu.Buffer{pbuf, mbuf, part, t.O, t.LSE},
			Workgroups: [3]uint32{uint32(a.NumHeadsQ), uint32(cgridY), uint32((plan.Groups + cgridY - 1) / cgridY)},
		})
	}
	return call, nil
}

// fwdKernel keys a forward pipeline in the device's cache: the tiling
// determines the source.
type fwdKernel struct {
	tiling shaders.FwdTiling
	entry  string
}

// fwdPipeline returns the compiled forward kernel entry of tiling t,
// generating its source only the first time.
func (op *Op) fwdPipeline(t shaders.FwdTiling, entry string) (*wgpu.Pipeline, error) {
	return op.dev.PipelineFor(fwdKernel{t, entry}, func() (wgpu.Kernel, error) {
		src, err := t.Source()
		return wgpu.Kernel{Label: "attn_fwd " + entry + " " + t.String(), Source: src, Entry: entry}, err
	})
}

// tileTable returns cu_seqlens_q ++ cu_seqlens_k ++ (segment, q0) per query
// block of br rows, and the number of blocks. Blocks are ordered by the work
// they carry, heaviest first, so that long causal rows start early and the
// short ones fill the tail.
func tileTable(a *attention.Args, br, bc int) ([]uint32, int) {
	type tile struct{ b, q0, work int }
	var tiles []tile
	for _, blk := range worklist.Blocks(a, br) {
		tiles = append(tiles, tile{blk.Seg, blk.Q0, (blk.End + bc - 1) / bc})
	}
	slices.SortStableFunc(tiles, func(x, y tile) int { return cmp.Compare(y.work, x.work) })
	meta := worklist.Seqlens(a, 2*len(tiles))
	for _, t := range tiles {
		meta = append(meta, uint32(t.b), uint32(t.q0))
	}
	return meta, len(tiles)
}

// checkBuffers checks Q-shaped ("q", "o", "dq", "do") and KV-shaped buffers
// of elemBytes-byte elements.
func checkBuffers(a *attention.Args, dev *wgpu.Device, bufs map[string]*wgpu.Buffer, elemBytes int64) error {
	qBytes := int64(a.TotalQ()) * int64(a.NumHeadsQ) * int64(a.HeadDim) * elemBytes
	kBytes := int64(a.TotalK()) * int64(a.NumHeadsKV) * int64(a.HeadDim) * elemBytes
	for _, name := range []string{"q", "k", "v", "o", "do", "dq", "dk", "dv"} {
		b, ok := bufs[name]
		if !ok {
			continue
		}
		want := qBytes
		if name == "k" || name == "v" || name == "dk" || name == "dv" {
			want = kBytes
		}
		if err := checkBuffer(dev, name, b, want); err != nil {
			return err
		}
	}
	return nil
}

func checkBuffer(dev *wgpu.Device, name string, b *wgpu.Buffer, want int64) error {
	switch {
	case b == nil:
		return fmt.Errorf("attention: tensor %s is missing", name)
	case b.Device() != dev:
		return fmt.Errorf("attention: tensor %s lives on another device", name)
	case int64(b.Size()) < want:
		return fmt.Errorf("attention: tensor %s holds %d bytes, want at least %d", name, b.Size(), want)
	}
	return nil
}

func releaseAll(bufs ...*wgpu.Buffer) {
	for _, b := range bufs {
		b.Release()
	}
}

func boolU32(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}
