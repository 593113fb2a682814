package batchtest

import (
	"math/rand/v2"

	"github.com/coreattn/coreattn/attention"
)

// Args draws a varlen attention batch of 1 to 5 segments, 8 query and 2 KV
// heads of 64: keys up to 699 per segment, q_len <= k_len (CA-task shards),
// and one segment in six without queries.
func Args(r *rand.Rand, causal bool, dt attention.DType) *attention.Args {
	a := &attention.Args{CuSeqlensQ: []int32{0}, CuSeqlensK: []int32{0}, NumHeadsQ: 8, NumHeadsKV: 2, HeadDim: 64, Causal: causal, DType: dt}
	for range 1 + r.IntN(5) {
		k := r.IntN(700)
		q := r.IntN(k + 1)
		if r.IntN(6) == 0 {
			q = 0
		}
		a.CuSeqlensQ = append(a.CuSeqlensQ, a.CuSeqlensQ[len(a.CuSeqlensQ)-1]+int32(q))
		a.CuSeqlensK = append(a.CuSeqlensK, a.CuSeqlensK[len(a.CuSeqlensK)-1]+int32(k))
	}
	return a
}
