package gemm

import (
	"fmt"

	"github.com/coreattn/coreattn/shaders"
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
	mma, useMMA, err := g.tensorCoreTiling()
	if err != nil {
		return plan{}, err
	}
	t := g.opts.Tiling
	if useMMA {
		t = mma
	} else if t.BM == 0 {
		var err error
		if t, err = shaders.ChooseGemm(m, n, int(lim.MaxWorkgroupStorageSize), int(lim.MaxInvocationsPerWorkgroup)); err != nil {
			return plan{}, fmt.Errorf("%w: %w", ErrLimit, err)
		}
	} else {
		// Keep the forced tile shape; the layout is the product's.
		t = shaders.GemmTiling{BM: t.BM, BN: t.BN, BK: t.BK, TM: t.TM, TN: t.TN, WX: t.WX, Rolled: t.Rolled, MMA: t.MMA}
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
	p := plan{tiling: t}
	p.split, p.kChunk = SplitK(m, n, k, t, g.opts.Split, info.IsCPU(), int64(g.dev.MaxBufferBytes()))
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

// SplitK is the split-K policy, for runtimes that plan products without
// an Op: how many parts the K range of an m×n×k product on tiling t is cut
// into and the K range of each (a whole number of t.BK steps; parts 1 and
// chunk k when not split). forced is Options.Split (0: choose; 1: never),
// cpu says the adapter is a CPU (never split by choice), and maxBytes
// bounds the partials' buffer (the adapter's limit for one buffer). The
// splits write m×n partials each, dense, that gemm_reduce.wgsl adds up.
func SplitK(m, n, k int, t shaders.GemmTiling, forced int, cpu bool, maxBytes int64) (parts, chunk int) {
	if k < 2*t.BK || forced == 1 || forced == 0 && cpu {
		return 1, k
	}
	parts = forced
	if parts == 0 {
		tiles := ceilDiv(m, t.BM) * ceilDiv(n, t.BN)
		if tiles >= splitWorkgroups {
			return 1, k
		}
		parts = min(ceilDiv(splitWorkgroups, tiles), k/splitMinK, maxSplit)
	}
	// Keep the partials within the scratch budget and one buffer.
	budget := min(int64(splitScratchBytes), maxBytes)
	for parts > 1 && int64(parts)*int64(m)*int64(n)*4 > budget {
		parts--
	}
	if parts <= 1 {
		return 1, k
	}
	chunk = ceilDiv(ceilDiv(k, parts), t.BK) * t.BK
	return ceilDiv(k, chunk), chunk
}
