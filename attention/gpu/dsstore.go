package gpu

import (
	"fmt"

	"github.com/coreattn/coreattn/attention"

	"github.com/coreattn/coreattn/shaders"
	"github.com/coreattn/coreattn/wgpu"
)

// defaultDSScratch is DQStored's scratch cap when Options.DSScratch is 0.
const defaultDSScratch = 2 << 30

// dsPlan places the dS tiles of DQStored (see bwd_dq_stored.wgsl) and
// splits the KV heads into passes whose tiles fit the scratch buffer.
type dsPlan struct {
	// qoff holds each segment's first query block (of br rows) among all
	// segments' blocks, poff each query block's first tile: tile (query
	// head h of the pass, block i, key block j) is h·tiles + poff[i] + j.
	qoff, poff []uint32
	tiles      int    // tiles per query head
	heads      int    // KV heads per pass (the last pass may have fewer)
	bytes      uint64 // the scratch: heads times one KV head's tiles
}

// planStored checks that dK/dV tiling kvT (StoredDS) can store dS for dQ
// tiling dqT, lays out the tiles (query blocks of BR rows, key blocks of
// BC) and sizes the passes to the scratch cap.
func (op *Op) planStored(a *attention.Args, dqT, kvT shaders.BwdTiling) (dsPlan, error) {
	var p dsPlan
	if err := kvT.Validate(); err != nil {
		return p, err
	}
	br, bc := dqT.BR(), dqT.BC()
	if kvT.BR() != br || kvT.BC() != br || bc != br {
		return p, fmt.Errorf("the dK/dV and dQ tiles must be square and of one size; they are %dx%d and %dx%d", kvT.BR(), kvT.BC(), br, bc)
	}
	if 2*dqT.VC > bc {
		return p, fmt.Errorf("the dQ kernel's key chunk VC = %d must be at most half its BC = %d (pt holds two chunks)", dqT.VC, bc)
	}
	if n := op.dev.Limits().MaxStorageBuffersPerStage; n <= backwardBuffers {
		return p, fmt.Errorf("it binds %d storage buffers; the adapter allows %d", backwardBuffers+1, n)
	}
	for b := 0; b < a.Batch(); b++ {
		qLen, kLen := a.Segment(b)
		p.qoff = append(p.qoff, uint32(len(p.poff)))
		for q0 := 0; q0 < qLen; q0 += br {
			// The keys the block sees, as the dQ kernel's dq_tile counts them.
			end := kLen
			if a.Causal {
				end = min(max(min(q0+br, qLen)+kLen-qLen, 0), kLen)
			}
			p.poff = append(p.poff, uint32(p.tiles))
			p.tiles += (end + bc - 1) / bc
		}
	}
	budget := uint64(defaultDSScratch)
	if op.opts.DSScratch > 0 {
		budget = uint64(op.opts.DSScratch)
	}
	budget = min(budget, op.dev.MaxBufferBytes())
	perKV := uint64(a.NumHeadsQ/a.NumHeadsKV) * uint64(p.tiles) * uint64(dqT.DSTileBytes())
	if perKV == 0 {
		p.heads = a.NumHeadsKV
		return p, nil
	}
	if perKV > budget {
		return p, fmt.Errorf("%w: the dS tiles of one KV head need %d bytes; the scratch cap is %d (Options.DSScratch, the adapter's buffer limit)", wgpu.ErrTooLarge, perKV, budget)
	}
	fit := int(budget / perKV)
	passes := (a.NumHeadsKV + fit - 1) / fit
	p.heads = (a.NumHeadsKV + passes - 1) / passes // as even as the passes allow
	p.bytes = uint64(p.heads) * perKV
	return p, nil
}

// maxAutoPasses is the most passes over the KV heads with which DQAuto
// still stores dS (see preferStored).
const maxAutoPasses = 16

// preferStored reports whether DQAuto stores dS, given a plan that works:
// on GPUs, in at most maxAutoPasses passes (on the H200 it beat the fused
// dQ by 4-13% in one to six passes, by nothing in eleven small ones). CPU
// adapters (lavapipe) keep the fused dQ, which writes no dS.
func preferStored(cpu bool, passes int) bool {
	return !cpu && passes <= maxAutoPasses
}

// passes is the number of passes over the KV heads.
func (p dsPlan) passes(hkv int) int { return (hkv + p.heads - 1) / p.heads }

// dqEntry is the entry point of the dQ kernel that goes with dK/dV tiling
// kvT.
func dqEntry(kvT shaders.BwdTiling) shaders.BwdEntry {
	if kvT.StoredDS {
		return shaders.DQStoredEntry
	}
	return shaders.DQEntry
}

// storedBuffers are the buffers of DQStored's passes; dqK is the K that
// the dQ kernel reads (t.K, or its f32 copy for a WideK tiling), wideK
// that copy where the dK/dV kernel writes it (else nil).
type storedBuffers struct {
	t                       BackwardTensors
	dqK, meta, delta, dsBuf *wgpu.Buffer
	wideK                   *wgpu.Buffer
}

// wideKBytes is the size of K as f32 (shaders.BwdTiling.WideK).
func wideKBytes(a *attention.Args) uint64 {
	return uint64(a.TotalK()) * uint64(a.NumHeadsKV) * uint64(a.HeadDim) * 4
}

// storedPasses appends DQStored's passes to call, each over plan.heads KV
// heads and their query heads: the dK/dV kernel, which stores the heads'
// dS tiles in b.dsBuf (and, with b.wideK, writes its K rows as f32), then
// the dQ kernel, which reads them. Each pass has
// parameters of its own (params with its first KV head).
func (op *Op) storedPasses(call *Call, a *attention.Args, plan dsPlan, params shaders.BwdParams, b storedBuffers, k bwdPipelines, dqY, nq, kvY, nkv int) (*Call, error) {
	group := a.NumHeadsQ / a.NumHeadsKV
	for hk0 := 0; hk0 < a.NumHeadsKV; hk0 += plan.heads {
		heads := min(plan.heads, a.NumHeadsKV-hk0)
		params.HK0 = uint32(hk0)
		pbuf, err := op.uniform(call, fmt.Sprintf("attn_bwd params, KV heads %d-%d", hk0, hk0+heads-1), params.Words())
		if err != nil {
			call.Release()
			return nil, fmt.Errorf("attention: %w", err)
		}
		if nkv > 0 {
			bufs := []*wgpu.Buffer{pbuf, b.meta, b.t.Q, b.t.K, b.t.V, b.t.DO, b.t.LSE, b.delta, b.t.DK, b.t.DV, b.dsBuf}
			if b.wideK != nil {
				bufs = append(bufs, b.wideK)
			}
			call.dispatches = append(call.dispatches, wgpu.Dispatch{
				Label:      fmt.Sprintf("attn_bwd dkv, stores dS of KV heads %d-%d", hk0, hk0+heads-1),
				Pipeline:   k.dkv,
				Buffers:    bufs,
				Workgroups: [3]uint32{uint32(heads), uint32(kvY), uint32((nkv + kvY - 1) / kvY)},
			})
		}
		if nq > 0 {
			call.dispatches = append(call.dispatches, wgpu.Dispatch{
				Label:      fmt.Sprintf("attn_bwd dq from stored dS, query heads %d-%d", hk0*group, (hk0+heads)*group-1),
				Pipeline:   k.dq,
				Buffers:    []*wgpu.Buffer{pbuf, b.meta, b.dqK, b.t.DQ, b.dsBuf},
				Bindings:   []uint32{0, 1, 3, 8, 9},
				Workgroups: [3]uint32{uint32(heads * group), uint32(dqY), uint32((nq + dqY - 1) / dqY)},
			})
		}
	}
	return call, nil
}
