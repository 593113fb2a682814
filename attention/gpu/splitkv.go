package gpu

import (
	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/attention/worklist"
	"github.com/coreattn/coreattn/shaders"
)

// Split-KV (see package worklist): the forward cuts long key ranges into
// pieces computed by separate workgroups and merged by their LSE.
//
// The scratch buffer part holds, for hq heads, blocks of br rows and head
// dimension d, every piece's O (slot, head, row, d) and then its rows'
// maxima and sums (slot, head, row group of 4: a vec4 of maxima, a vec4 of
// sums).

// lseOffset is where the pieces' maxima and sums start in part, in vec4s.
func lseOffset(f worklist.Forward, hq, br, d int) int { return f.Slots * hq * br * d / 4 }

// partBytes is the size of part: at least 16 bytes, as the kernel binds it
// even when nothing is split.
func partBytes(f worklist.Forward, hq, br, d int) uint64 {
	return uint64(max(16, 4*f.PartFloats(hq, br, d)))
}

// plan lays out the forward's workgroups, choosing the split-KV piece from
// the options, the work and the adapter: splitting pays only where the GPU
// runs many workgroups at once, and the partial results must fit one
// buffer (the piece doubles until they do).
func (op *Op) plan(a *attention.Args, tiling shaders.FwdTiling) worklist.Forward {
	return worklist.ChooseForward(a, tiling.BR(), tiling.BC(), op.opts.SplitKV, op.dev.Info().IsCPU(), op.dev.MaxBufferBytes())
}
