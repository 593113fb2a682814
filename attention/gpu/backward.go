package gpu

import (
	"context"
	"fmt"
	"math"
	"math/bits"
	"sort"
	"time"

	"github.com/coreattn/coreattn/attention"

	"github.com/coreattn/coreattn/shaders"
	"github.com/coreattn/coreattn/wgpu"
)

// BackwardTensors are the device-resident operands of the backward pass, in
// the layouts of the package documentation. DQ, DK and DV are written:
// each needs a buffer of its own (ErrAliased).
type BackwardTensors struct {
	Q, K, V, O, DO *wgpu.Buffer // inputs: O and LSE from the forward
	LSE            *wgpu.Buffer // [Hq, total_q]
	DQ, DK, DV     *wgpu.Buffer // outputs: [total_q,Hq,D], [total_k,Hkv,D], [total_k,Hkv,D]
}

// backwardBuffers is the number of storage buffers the dK/dV kernel binds;
// the fused variant binds dQ as well.
const backwardBuffers = 9

// Backward computes dQ, dK and dV for host-resident tensors: Q, K, V, the
// forward's O and LSE, and dO (shaped like Q). It uploads them (stored as
// a.DType; LSE as float32), runs the kernels and downloads the gradients.
// It implements [attention.Runner].
func (op *Op) Backward(ctx context.Context, a *attention.Args, q, k, v, o, lse, do []float32) (dq, dk, dv []float32, err error) {
	dq, dk, dv, _, err = op.BackwardTimed(ctx, a, q, k, v, o, lse, do)
	return dq, dk, dv, err
}

// BackwardTimed is [Op.Backward] that also reports how long the call took.
func (op *Op) BackwardTimed(ctx context.Context, a *attention.Args, q, k, v, o, lse, do []float32) (dq, dk, dv []float32, st attention.Stats, err error) {
	if err := a.Validate(); err != nil {
		return nil, nil, nil, st, err
	}
	if err := a.CheckBackwardSizes(len(q), len(k), len(v), len(o), len(lse), len(do)); err != nil {
		return nil, nil, nil, st, err
	}
	start := time.Now()
	var t BackwardTensors
	defer func() { releaseAll(t.Q, t.K, t.V, t.O, t.DO, t.LSE, t.DQ, t.DK, t.DV) }()
	for _, in := range []struct {
		dst  **wgpu.Buffer
		name string
		data []float32
	}{{&t.Q, "q", q}, {&t.K, "k", k}, {&t.V, "v", v}, {&t.O, "o", o}, {&t.LSE, "lse", lse}, {&t.DO, "do", do}} {
		dt := a.DType
		if in.name == "lse" {
			dt = attention.Float32
		}
		if *in.dst, err = Upload(op.dev, in.name, dt, in.data); err != nil {
			return nil, nil, nil, st, fmt.Errorf("attention: %w", err)
		}
	}
	for _, out := range []struct {
		dst  **wgpu.Buffer
		name string
		n    int
	}{{&t.DQ, "dq", len(q)}, {&t.DK, "dk", len(k)}, {&t.DV, "dv", len(v)}} {
		if *out.dst, err = NewTensor(op.dev, out.name, a.DType, out.n); err != nil {
			return nil, nil, nil, st, fmt.Errorf("attention: %w", err)
		}
	}
	call, err := op.prepareBackwardChecked(a, t)
	if err != nil {
		return nil, nil, nil, st, err
	}
	timing, err := op.run(ctx, "backward", call)
	if err != nil {
		return nil, nil, nil, st, err
	}
	for _, out := range []struct {
		src  *wgpu.Buffer
		name string
		dst  *[]float32
		n    int
	}{{t.DQ, "dq", &dq, len(q)}, {t.DK, "dk", &dk, len(k)}, {t.DV, "dv", &dv, len(v)}} {
		if *out.dst, err = Download(ctx, out.src, a.DType, out.n); err != nil {
			return nil, nil, nil, st, fmt.Errorf("attention: read %s: %w", out.name, err)
		}
	}
	return dq, dk, dv, statsOf(start, timing), nil
}

// BackwardBuffers runs the backward pass on device-resident tensors and
// waits for it to finish.
func (op *Op) BackwardBuffers(ctx context.Context, a *attention.Args, t BackwardTensors) error {
	call, err := op.PrepareBackward(a, t)
	if err != nil {
		return err
	}
	_, err = op.run(ctx, "backward", call)
	return err
}

// PrepareBackward validates the arguments and tensors, compiles (or
// fetches) the kernels for this head dimension and adapter, and returns the
// launch: the Delta pre-pass, then the dK/dV kernel with dQ fused into it
// (between a bound pass before Delta and a pass that stores dQ from its
// fixed-point accumulator; dQ is then the same bits on every run), or
// passes of the dK/dV kernel storing dS and a dQ kernel reading it
// (DQStored), or the dQ kernel and the dK/dV kernel, as Options.DQ, the
// tiling and the adapter allow (DQAuto: stored on GPUs where it takes at
// most 16 passes, else fused). The call owns
// scratch buffers, freed by Release: Delta and the fixed-point scales
// (2·Hq·total_q floats) and, with dQ fused, the accumulator (6 bytes per
// element of dQ), or with dS stored, the tiles of one pass (at most
// Options.DSScratch bytes) and, for half storage above D 64, K as float32
// for the dQ kernel (see shaders.BwdTiling.WideK).
func (op *Op) PrepareBackward(a *attention.Args, t BackwardTensors) (*Call, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return op.prepareBackwardChecked(a, t)
}

// prepareBackwardChecked is PrepareBackward for arguments already validated.
func (op *Op) prepareBackwardChecked(a *attention.Args, t BackwardTensors) (*Call, error) {
	if op.opts.DSScratch < 0 {
		return nil, fmt.Errorf("attention: Options.DSScratch %d: want a size in bytes, or 0 for the default", op.opts.DSScratch)
	}
	if call, ok, err := op.tcBackward(a, t); ok {
		return call, err
	}
	lim := op.dev.Limits()
	wgBytes, threads := int(lim.MaxWorkgroupStorageSize), int(lim.MaxInvocationsPerWorkgroup)
	// choose returns the fixed tiling for kernel k if there is one, else the
	// chooser's (for the dQ kernel of stored dS, if storedDQ).
	choose := func(k shaders.BwdKernel, fixed shaders.BwdTiling, storedDQ bool) (shaders.BwdTiling, error) {
		if fixed.TX == 0 {
			chooser := func() (shaders.BwdTiling, error) {
				return shaders.ChooseBwd(k, a.HeadDim, a.DType, wgBytes, threads)
			}
			if storedDQ {
				chooser = func() (shaders.BwdTiling, error) {
					return shaders.ChooseDQStored(a.HeadDim, a.DType, wgBytes, threads)
				}
			}
			t, err := chooser()
			t.CPU = op.dev.Info().IsCPU()
			if t.WidensK() && wideKBytes(a) > op.dev.MaxBufferBytes() {
				t.WideK = false // no room for the f32 copy of K
			}
			return t, err
		}
		fixed.Kernel, fixed.D = k, a.HeadDim
		if err := fixed.Validate(); err != nil {
			return fixed, err
		}
		if fixed.WorkgroupBytes() > wgBytes || fixed.Threads() > threads {
			return fixed, fmt.Errorf("shaders: tiling %s needs %d bytes and %d threads; the adapter has %d and %d", fixed, fixed.WorkgroupBytes(), fixed.Threads(), wgBytes, threads)
		}
		return fixed, nil
	}
	dqT, err := choose(shaders.BwdDQ, op.opts.BackwardDQ, false)
	if err != nil {
		return nil, fmt.Errorf("attention: %w", err)
	}
	kvT, err := choose(shaders.BwdDKV, op.opts.BackwardDKV, false)
	if err != nil {
		return nil, fmt.Errorf("attention: %w", err)
	}
	fused := kvT
	fused.FusedDQ = true
	fuseErr := fused.Validate()
	if fuseErr == nil && lim.MaxStorageBuffersPerStage <= backwardBuffers {
		fuseErr = fmt.Errorf("it binds %d storage buffers; the adapter allows %d", backwardBuffers+1, lim.MaxStorageBuffersPerStage)
	}
	if n, m := dqAccBytes(a), op.dev.MaxBufferBytes(); fuseErr == nil && n > m {
		fuseErr = fmt.Errorf("%w: its dQ accumulator needs %d bytes; the adapter's buffers hold %d", wgpu.ErrTooLarge, n, m)
	}
	// Storing dS is planned only where the mode may take it.
	stored := kvT
	stored.StoredDS = true
	var dqS shaders.BwdTiling
	var plan dsPlan
	var storeErr error
	if op.opts.DQ == DQAuto || op.opts.DQ == DQStored {
		if dqS, storeErr = choose(shaders.BwdDQ, op.opts.BackwardDQ, true); storeErr == nil {
			plan, storeErr = op.planStored(a, dqS, stored)
		}
	}
	switch op.opts.DQ {
	case DQAuto:
		if storeErr == nil && preferStored(op.dev.Info().IsCPU(), plan.passes(a.NumHeadsKV)) {
			kvT.StoredDS, dqT = true, dqS
		} else {
			kvT.FusedDQ = fuseErr == nil
		}
	case DQFused:
		if fuseErr != nil {
			return nil, fmt.Errorf("attention: cannot fuse dQ into %s: %w", kvT, fuseErr)
		}
		kvT.FusedDQ = true
	case DQSeparate:
		kvT.FusedDQ = false
	case DQStored:
		if storeErr != nil {
			return nil, fmt.Errorf("attention: cannot store dS for %s: %w", stored, storeErr)
		}
		kvT.StoredDS, dqT = true, dqS
	default:
		return nil, fmt.Errorf("attention: DQ mode %d does not exist", op.opts.DQ)
	}
	if op.opts.BackwardDKV.TX == 0 {
		kvT.WideK = dkvWritesWideK(kvT, dqT, lim.MaxStorageBuffersPerStage)
	}
	return op.prepareBackward(a, t, dqT, kvT)
}

// dkvWritesWideK reports whether a chosen dK/dV tiling kvT writes the f32
// copy of K that dQ tiling dqT reads (see shaders.BwdTiling.WideK): where
// it stores dS for a dQ kernel that reads the copy and the adapter allows
// maxStorage >= 11 storage buffers per stage (one more than storing dS
// takes). Otherwise a pass before the dK/dV kernels writes the copy.
func dkvWritesWideK(kvT, dqT shaders.BwdTiling, maxStorage uint32) bool {
	return kvT.StoredDS && dqT.WidensK() && maxStorage > backwardBuffers+1
}

// dqAccBytes is the size of the fused dK/dV kernel's fixed-point dQ
// accumulator: an i32 hi word per element of dQ and an i32 lo word per
// two, then from a multiple of 16 bytes a word per 32 columns of each
// (row, head) pair whose bits flag terms that were not finite.
func dqAccBytes(a *attention.Args) uint64 {
	rows, d := uint64(a.TotalQ())*uint64(a.NumHeadsQ), uint64(a.HeadDim)
	return (6*rows*d+15)/16*16 + 4*rows*((d+31)/32)
}

// loBits is L, the fractional bits of the fused kernel's lo fields (see
// bwd_common.wgsl): each dQ element sums one lo term of at most 2^(L-1) per
// key block of br rows into a signed 16-bit field, so the sum, at most
// n 2^(L-1) for n key blocks, must stay below 2^15: L = 16 - bits.Len(n)
// (8 at 8192 keys in blocks of 64, 5 at 65536), 0 from 2^15 blocks on (the
// hi words alone).
func loBits(a *attention.Args, br int) int {
	n := 1
	for b := 0; b < a.Batch(); b++ {
		_, kLen := a.Segment(b)
		n = max(n, (kLen+br-1)/br)
	}
	return max(0, 16-bits.Len(uint(n)))
}

// prepareBackward is PrepareBackward with the tilings given.
func (op *Op) prepareBackward(a *attention.Args, t BackwardTensors, dqT, kvT shaders.BwdTiling) (*Call, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	// The tilings give the shape; the call gives the storage type. Only the
	// dQ kernel of stored dS can read a widened K.
	dqT.DType, kvT.DType = a.DType, a.DType
	if !kvT.StoredDS {
		dqT.WideK = false
	}
	meta, nq := tileTable(a, dqT.BR(), dqT.BC())
	if !dqT.WidensK() || nq == 0 {
		kvT.WideK = false // no dQ kernel reads the copy
	}
	if err := checkBuffers(a, op.dev, map[string]*wgpu.Buffer{
		"q": t.Q, "k": t.K, "v": t.V, "o": t.O, "do": t.DO, "dq": t.DQ, "dk": t.DK, "dv": t.DV,
	}, int64(a.DType.Size())); err != nil {
		return nil, err
	}
	if err := checkBuffer(op.dev, "lse", t.LSE, int64(a.NumHeadsQ)*int64(a.TotalQ())*4); err != nil {
		return nil, err
	}
	if err := checkDistinctOutputs(t); err != nil {
		return nil, err
	}
	lim := op.dev.Limits()
	nbuf := backwardBuffers
	if kvT.FusedDQ || kvT.StoredDS {
		nbuf++
	}
	if kvT.WritesWideK() {
		nbuf++
	}
	if lim.MaxStorageBuffersPerStage < uint32(nbuf) {
		return nil, fmt.Errorf("attention: the backward binds %d storage buffers; the adapter allows %d", nbuf, lim.MaxStorageBuffersPerStage)
	}
	if uint32(a.NumHeadsQ) > lim.MaxWorkgroupsPerDimension {
		return nil, fmt.Errorf("attention: %d query heads exceed the adapter's %d workgroups per dimension", a.NumHeadsQ, lim.MaxWorkgroupsPerDimension)
	}
	if dqT.Kernel != shaders.BwdDQ || kvT.Kernel != shaders.BwdDKV {
		return nil, fmt.Errorf("attention: backward tilings %s and %s are for the wrong kernels", dqT, kvT)
	}
	var plan dsPlan
	if kvT.StoredDS {
		var err error
		if plan, err = op.planStored(a, dqT, kvT); err != nil {
			return nil, fmt.Errorf("attention: cannot store dS for %s: %w", kvT, err)
		}
	}
	// With dQ fused, dK/dV adds into a fixed-point accumulator, scaled from
	// a bound pass before it, that a last pass stores as dQ; that pass is
	// built with the dK/dV tiling, whose TX lays out the lo words.
	var k bwdPipelines
	for _, p := range []struct {
		dst    **wgpu.Pipeline
		tiling shaders.BwdTiling
		entry  shaders.BwdEntry
		run    bool
	}{
		{&k.delta, dqT, shaders.DeltaEntry, true},
		{&k.dq, dqT, dqEntry(kvT), !kvT.FusedDQ},
		{&k.dkv, kvT, shaders.DKVEntry, true},
		{&k.dqCast, kvT, shaders.DQCastEntry, kvT.FusedDQ},
		{&k.bound, dqT, shaders.BoundEntry, kvT.FusedDQ},
		{&k.widen, kvT, shaders.WidenEntry, dqT.WidensK() && !kvT.WritesWideK()},
	} {
		if !p.run {
			continue
		}
		if p.tiling.D != a.HeadDim {
			return nil, fmt.Errorf("attention: backward tiling %s is for D=%d, the call has head_dim %d", p.tiling, p.tiling.D, a.HeadDim)
		}
		if n, m := p.tiling.WorkgroupBytes(), int(lim.MaxWorkgroupStorageSize); n > m {
			return nil, fmt.Errorf("attention: backward tiling %s needs %d bytes of workgroup memory; the adapter has %d", p.tiling, n, m)
		}
		if n, m := p.tiling.Threads(), int(lim.MaxInvocationsPerWorkgroup); n > m {
			return nil, fmt.Errorf("attention: backward tiling %s needs %d threads per workgroup; the adapter has %d", p.tiling, n, m)
		}
		var err error
		if *p.dst, err = op.bwdPipeline(p.tiling, p.entry); err != nil {
			return nil, fmt.Errorf("attention: %w", err)
		}
	}

	kvTiles := kvTileTable(a, kvT.BR(), kvT.BC(), kvT.StoredDS)
	nkv := len(kvTiles) / 2
	kvOff := len(meta)
	meta = append(meta, kvTiles...)
	dsQOff := len(meta)
	meta = append(meta, plan.qoff...)
	dsPOff := len(meta)
	meta = append(meta, plan.poff...)
	call := &Call{Tiling: dqT.String() + "; " + kvT.String(), Kernels: KernelsFFMA}
	if kvT.FusedDQ {
		call.Tiling = kvT.String()
	}
	if kvT.StoredDS {
		call.Tiling += fmt.Sprintf(" (%d passes of %d KV heads, %d bytes of dS)", plan.passes(a.NumHeadsKV), plan.heads, plan.bytes)
	}
	if nq == 0 && nkv == 0 {
		return call, nil // no rows at all: nothing to compute
	}
	maxWG := int(lim.MaxWorkgroupsPerDimension)
	nrows := a.TotalQ() * a.NumHeadsQ
	deltaGrid := rowGrid(nrows, maxWG)
	krows := a.TotalK() * a.NumHeadsKV
	boundGrid := rowGrid(krows, maxWG)
	wideGrid := rowGrid(krows*a.HeadDim/4, maxWG)
	dqY := max(1, min(nq, maxWG))
	kvY := max(1, min(nkv, maxWG))
	lo := loBits(a, kvT.BR())
	params := shaders.BwdParams{
		HQ:         uint32(a.NumHeadsQ),
		Group:      uint32(a.NumHeadsQ / a.NumHeadsKV),
		TotalQ:     uint32(a.TotalQ()),
		Causal:     boolU32(a.Causal),
		Batch:      uint32(a.Batch()),
		HKV:        uint32(a.NumHeadsKV),
		NRows:      uint32(nrows),
		DeltaGridX: deltaGrid[0],
		DQTiles:    uint32(nq),
		DQGridY:    uint32(dqY),
		DQOff:      uint32(2 * (a.Batch() + 1)),
		ScaleLog2:  float32(a.Scale() * math.Log2E),
		KVTiles:    uint32(nkv),
		KVGridY:    uint32(kvY),
		KVOff:      uint32(kvOff),
		Scale:      float32(a.Scale()),
		KVRows:     uint32(krows),
		BoundGridX: boundGrid[0],
		LoScale:    float32(math.Ldexp(1, lo)),
		LoInv:      float32(math.Ldexp(1, -lo)),
		DSTiles:    uint32(plan.tiles),
		DSBlockOff: uint32(dsQOff),
		DSTileOff:  uint32(dsPOff),
		WideGridX:  wideGrid[0],
	}
	pbuf, err := op.uniform(call, "attn_bwd params", params.Words())
	if err != nil {
		return nil, fmt.Errorf("attention: %w", err)
	}
	mbuf, err := op.table(call, "attn_bwd meta", meta)
	if err != nil {
		call.Release()
		return nil, fmt.Errorf("attention: %w", err)
	}
	// Scratch: Delta, then the fixed-point scales; the bound's two maxima;
	// with dQ fused, its accumulator. They are zero when created, and the
	// cast pass clears the bound and the accumulator for the next run.
	var delta, bound, dqAcc *wgpu.Buffer
	type scratch struct {
		buf   **wgpu.Buffer
		label string
		size  uint64
	}
	scratches := []scratch{{&delta, "attn_bwd delta", uint64(nrows) * 8}, {&bound, "attn_bwd bound", 8}}
	if kvT.FusedDQ {
		scratches = append(scratches, scratch{&dqAcc, "attn_bwd dq acc", dqAccBytes(a)})
	}
	var dsBuf, k32 *wgpu.Buffer
	if kvT.StoredDS {
		scratches = append(scratches, scratch{&dsBuf, "attn_bwd ds", plan.bytes})
	}
	if dqT.WidensK() && nq > 0 {
		scratches = append(scratches, scratch{&k32, "attn_bwd k as f32", wideKBytes(a)})
	}
	for _, b := range scratches {
		if *b.buf, err = op.scratch(call, b.label, b.size); err != nil {
			call.Release()
			return nil, fmt.Errorf("attention: %w", err)
		}
	}
	if kvT.FusedDQ && nq > 0 && nkv > 0 {
		call.dispatches = append(call.dispatches, wgpu.Dispatch{
			Label:      "attn_bwd bound",
			Pipeline:   k.bound,
			Buffers:    []*wgpu.Buffer{pbuf, t.K, t.V, bound},
			Workgroups: boundGrid,
		})
	}
	if nq > 0 {
		call.dispatches = append(call.dispatches, wgpu.Dispatch{
			Label:      "attn_bwd delta",
			Pipeline:   k.delta,
			Buffers:    []*wgpu.Buffer{pbuf, t.O, t.DO, delta, bound},
			Workgroups: deltaGrid,
		})
		if !kvT.FusedDQ && !kvT.StoredDS {
			call.dispatches = append(call.dispatches, wgpu.Dispatch{
				Label:      "attn_bwd dq",
				Pipeline:   k.dq,
				Buffers:    []*wgpu.Buffer{pbuf, mbuf, t.Q, t.K, t.V, t.DO, t.LSE, delta, t.DQ},
				Workgroups: [3]uint32{uint32(a.NumHeadsQ), uint32(dqY), uint32((nq + dqY - 1) / dqY)},
			})
		}
	}
	if kvT.StoredDS {
		b := storedBuffers{t: t, dqK: t.K, meta: mbuf, delta: delta, dsBuf: dsBuf}
		if dqT.WidensK() && nq > 0 {
			b.dqK = k32
		}
		if kvT.WritesWideK() {
			b.wideK = k32
		} else if dqT.WidensK() && nq > 0 {
			call.dispatches = append(call.dispatches, wgpu.Dispatch{
				Label:      "attn_bwd widen k",
				Pipeline:   k.widen,
				Buffers:    []*wgpu.Buffer{pbuf, t.K, k32},
				Workgroups: wideGrid,
			})
		}
		return op.storedPasses(call, a, plan, params, b, k, dqY, nq, kvY, nkv)
	}
	if nkv > 0 {
		bufs := []*wgpu.Buffer{pbuf, mbuf, t.Q, t.K, t.V, t.DO, t.LSE, delta, t.DK, t.DV}
		if kvT.FusedDQ {
			bufs = append(bufs, dqAcc)
		}
		call.dispatches = append(call.dispatches, wgpu.Dispatch{
			Label:      "attn_bwd dkv",
			Pipeline:   k.dkv,
			Buffers:    bufs,
			Workgroups: [3]uint32{uint32(a.NumHeadsKV), uint32(kvY), uint32((nkv + kvY - 1) / kvY)},
		})
	}
	if kvT.FusedDQ && nq > 0 {
		call.dispatches = append(call.dispatches, wgpu.Dispatch{
			Label:      "attn_bwd dq cast",
			Pipeline:   k.dqCast,
			Buffers:    []*wgpu.Buffer{pbuf, dqAcc, t.DQ, delta, bound},
			Workgroups: deltaGrid,
		})
	}
	return call, nil
}

// bwdPipelines are the backward's kernels; those a call does not run are
// nil.
type bwdPipelines struct {
	bound  *wgpu.Pipeline // max |K| and max ‖V_j‖ (fused dQ)
	delta  *wgpu.Pipeline // Delta = rowsum(dO ∘ O), and the fused dQ's scales
	dq     *wgpu.Pipeline // dQ: recomputing S and dP, or from stored dS
	dkv    *wgpu.Pipeline // dK and dV (and the fused dQ, or the stored dS)
	dqCast *wgpu.Pipeline // the fused dQ from its fixed-point accumulator
	widen  *wgpu.Pipeline // K as f32 for a WideK dQ kernel
}

// bwdKernel keys a backward pipeline in the device's cache: the tiling
// and the entry determine the module's source.
type bwdKernel struct {
	tiling shaders.BwdTiling
	entry  shaders.BwdEntry
}

// bwdPipeline returns the compiled backward kernel e of tiling t,
// generating its source only the first time.
func (op *Op) bwdPipeline(t shaders.BwdTiling, e shaders.BwdEntry) (*wgpu.Pipeline, error) {
	return op.dev.PipelineFor(bwdKernel{t, e}, func() (wgpu.Kernel, error) {
		src, err := t.Module(e)
		return wgpu.Kernel{Label: "attn_bwd " + t.String() + " " + e.Name(), Source: src, Entry: e.Name()}, err
	})
}

// rowGrid is the grid of a pass with one invocation per row, rows in all,
// in workgroups of shaders.DeltaWorkgroup: as many along x as the adapter
// allows (at least one), the rest along y. The pass finds its row as
// (wg.x + wg.y * grid_x) * DeltaWorkgroup + lid.
func rowGrid(rows, maxWG int) [3]uint32 {
	wgs := (rows + shaders.DeltaWorkgroup - 1) / shaders.DeltaWorkgroup
	x := max(1, min(wgs, maxWG))
	return [3]uint32{uint32(x), uint32((wgs + x - 1) / x), 1}
}

// kvTileTable returns (segment, k0) per block of br key rows, for every
// segment with keys (those no query sees included: their dK and dV are
// written as zeros), heaviest first: the work of a block is the number of
// bc-row query steps that see it, counted from a multiple of bc if aligned
// (as the StoredDS kernel steps).
func kvTileTable(a *attention.Args, br, bc int, aligned bool) []uint32 {
	type tile struct{ b, k0, work int }
	var tiles []tile
	for b := 0; b < a.Batch(); b++ {
		qLen, kLen := a.Segment(b)
		for k0 := 0; k0 < kLen; k0 += br {
			first := 0
			if a.Causal {
				first = min(max(k0-(kLen-qLen), 0), qLen)
			}
			if aligned {
				first -= first % bc
			}
			tiles = append(tiles, tile{b, k0, (qLen - first + bc - 1) / bc})
		}
	}
	sort.SliceStable(tiles, func(i, j int) bool { return tiles[i].work > tiles[j].work })
	out := make([]uint32, 0, 2*len(tiles))
	for _, t := range tiles {
		out = append(out, uint32(t.b), uint32(t.k0))
	}
	return out
}

// checkDistinctOutputs rejects outputs that share a buffer with each other
// or with an input (ErrAliased): the kernels would read what they
// overwrite.
func checkDistinctOutputs(t BackwardTensors) error {
	return checkAliasing([]namedBuffer{{"dq", t.DQ}, {"dk", t.DK}, {"dv", t.DV}},
		[]namedBuffer{{"q", t.Q}, {"k", t.K}, {"v", t.V}, {"o", t.O}, {"do", t.DO}, {"lse", t.LSE}})
}
