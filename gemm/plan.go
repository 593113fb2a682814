package gemm

import (
	"fmt"

	"github.com/coreattn/coreattn/shaders"
	"github.com/coreattn/coreattn/wgpu"
)

// Split-K policy: a product whose C has fewer than splitWorkgroups tiles is
// split along K into parts of at least splitMinK (and at most maxSplit
// parts), as many as bring the grid to splitWorkgroups, within
// splitScratchBytes of partials. WebGPU does not say how many workgroups
// run at once; 1024 are about four waves of an H100's 132 SMs at two
// workgroups each, so the last, partly filled wave costs at most a few
// percent. Parts of at least 512 (32 K steps of the large tile) keep the
// partials' traffic (8 bytes per element of C per part: written, read)
// under a tenth of the product's time at ~35 TFLOP/s and ~3 TB/s.
const (
	splitWorkgroups   = 1024
	splitMinK         = 512
	maxSplit          = 64
	splitScratchBytes = 512 << 20
)

// plan is how one product runs: the tiling, and K cut into split parts of
// kChunk (split 1: not cut, kChunk >= K).
type plan struct {
	tiling shaders.GemmTiling
	split  int
	kChunk int
}

// plan chooses the tiling and the split for s on g's adapter.
func (g *Op) plan(s Spec) (plan, error) {
	m, n, k := s.dims()
	info := g.dev.Info()
	lim := info.Limits
	if _, ok, err := g.tensorCoreTiling(s); err != nil || ok {
		// ok: the subgroup-matrix engine's plan goes here once it exists.
		return plan{}, err
	}
	t := g.opts.Tiling
	if t.BM == 0 {
		var err error
		if t, err = shaders.ChooseGemm(m, n, int(lim.MaxWorkgroupStorageSize), int(lim.MaxInvocationsPerWorkgroup)); err != nil {
			return plan{}, fmt.Errorf("%w: %w", ErrLimit, err)
		}
	} else {
		// Keep the forced tile shape; the layout is the product's.
		t = shaders.GemmTiling{BM: t.BM, BN: t.BN, BK: t.BK, TM: t.TM, TN: t.TN, WX: t.WX, Rolled: t.Rolled}
		if err := t.Validate(); err != nil {
			return plan{}, fmt.Errorf("gemm: %w", err)
		}
		if !t.Fits(int(lim.MaxWorkgroupStorageSize), int(lim.MaxInvocationsPerWorkgroup)) {
			return plan{}, fmt.Errorf("%w: tiling %s needs %d bytes of workgroup memory and %d invocations; the adapter has %d and %d",
				ErrLimit, t.Shape(), t.WorkgroupBytes(), t.Threads(), lim.MaxWorkgroupStorageSize, lim.MaxInvocationsPerWorkgroup)
		}
	}
	t.TransA, t.TransB, t.Accumulate = s.TransA, s.TransB, s.Accumulate
	t.VecA, t.VecB, t.VecC = s.A.aligned(), s.B.aligned(), s.C.aligned()
	p := plan{tiling: t, split: g.splitCount(m, n, k, t, info), kChunk: k}
	if p.split > 1 {
		p.kChunk = ceilDiv(ceilDiv(k, p.split), t.BK) * t.BK
		p.split = ceilDiv(k, p.kChunk)
	}
	if p.split > 1 {
		// The splits write partials, dense rows of n, that the reduction
		// adds into C (with C's old value where Accumulate); C's buffer is
		// not bound to the product.
		p.tiling.Accumulate = false
		p.tiling.VecC = n%4 == 0
		return p, nil
	}
	// An operand in C's buffer is read through C's binding, with C's
	// access width (16 bytes only where both allow it).
	p.tiling.AliasA, p.tiling.AliasB = s.A.Buf == s.C.Buf, s.B.Buf == s.C.Buf
	if p.tiling.AliasA {
		p.tiling.VecA = p.tiling.VecA && p.tiling.VecC
		p.tiling.VecC = p.tiling.VecA
	}
	if p.tiling.AliasB {
		p.tiling.VecB = p.tiling.VecB && p.tiling.VecC
		p.tiling.VecC = p.tiling.VecB
		if p.tiling.AliasA {
			p.tiling.VecA = p.tiling.VecB
		}
	}
	return p, nil
}

// splitCount is how many parts K is split into (1: none).
func (g *Op) splitCount(m, n, k int, t shaders.GemmTiling, info wgpu.AdapterInfo) int {
	if k < 2*t.BK {
		return 1
	}
	split := g.opts.Split
	if split == 0 {
		if info.IsCPU() {
			return 1 // a CPU's few cores are full at any grid
		}
		tiles := ceilDiv(m, t.BM) * ceilDiv(n, t.BN)
		if tiles >= splitWorkgroups {
			return 1
		}
		split = min(ceilDiv(splitWorkgroups, tiles), k/splitMinK, maxSplit)
	}
	// Keep the partials within the scratch budget and one buffer.
	budget := min(int64(splitScratchBytes), int64(g.dev.MaxBufferBytes()))
	for split > 1 && int64(split)*int64(m)*int64(n)*4 > budget {
		split--
	}
	return max(split, 1)
}
