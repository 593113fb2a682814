package sim

import (
	"fmt"
	"math/bits"
)

// numpyRNG reproduces, bit for bit, the random numbers that NumPy's
// default_rng(seed) (a Generator over PCG64, seeded through SeedSequence)
// gives for the calls DistCA's batch recipe makes: random() and
// choice(n, size, replace=False). Matching them is what lets the simulator
// draw exactly DistCA's batches (pinned in testdata/distca/recipe_ref.json).
type numpyRNG struct {
	hi, lo       uint64 // 128-bit LCG state
	incHi, incLo uint64 // 128-bit increment (odd)
	hasU32       bool   // a buffered upper half of the last 64-bit output
	u32          uint32
}

// PCG64's 128-bit LCG multiplier.
const (
	pcgMulHi = 0x2360ed051fc65da4
	pcgMulLo = 0x4385df649fccf645
)

// SeedSequence constants (NumPy's bit_generator.pyx).
const (
	ssInitA  = 0x43b0d7e5
	ssMultA  = 0x931e8875
	ssInitB  = 0x8b51f9dd
	ssMultB  = 0x58f38ded
	ssMixL   = 0xca01f9dd
	ssMixR   = 0x4973f715
	ssXShift = 16
	ssPool   = 4
)

// seedSequenceState returns SeedSequence(seed).generate_state(n, uint64).
func seedSequenceState(seed uint64, n int) []uint64 {
	// Entropy: the seed as little-endian 32-bit words (at least one).
	ent := []uint32{uint32(seed)}
	if seed>>32 != 0 {
		ent = append(ent, uint32(seed>>32))
	}
	hashConst := uint32(ssInitA)
	hashmix := func(v uint32) uint32 {
		v ^= hashConst
		hashConst *= ssMultA
		v *= hashConst
		v ^= v >> ssXShift
		return v
	}
	mix := func(x, y uint32) uint32 {
		r := x*ssMixL - y*ssMixR
		r ^= r >> ssXShift
		return r
	}
	var pool [ssPool]uint32
	for i := range pool {
		if i < len(ent) {
			pool[i] = hashmix(ent[i])
		} else {
			pool[i] = hashmix(0)
		}
	}
	for src := range pool {
		for dst := range pool {
			if src != dst {
				pool[dst] = mix(pool[dst], hashmix(pool[src]))
			}
		}
	}
	for src := ssPool; src < len(ent); src++ {
		for dst := range pool {
			pool[dst] = mix(pool[dst], hashmix(ent[src]))
		}
	}
	hc := uint32(ssInitB)
	words := make([]uint32, 2*n)
	for i := range words {
		v := pool[i%ssPool]
		v ^= hc
		hc *= ssMultB
		v *= hc
		v ^= v >> ssXShift
		words[i] = v
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = uint64(words[2*i]) | uint64(words[2*i+1])<<32
	}
	return out
}

// newNumpyRNG returns the generator of numpy.random.default_rng(seed).
func newNumpyRNG(seed uint64) *numpyRNG {
	s := seedSequenceState(seed, 4)
	r := &numpyRNG{}
	// pcg64_srandom_r: inc = initseq<<1 | 1; state = 0; step; state += initstate; step.
	r.incHi = s[2]<<1 | s[3]>>63
	r.incLo = s[3]<<1 | 1
	r.step()
	var c uint64
	r.lo, c = bits.Add64(r.lo, s[1], 0)
	r.hi, _ = bits.Add64(r.hi, s[0], c)
	r.step()
	return r
}

func (r *numpyRNG) step() {
	// state = state*mul + inc, modulo 2^128.
	hi, lo := bits.Mul64(r.lo, pcgMulLo)
	hi += r.hi*pcgMulLo + r.lo*pcgMulHi
	var c uint64
	r.lo, c = bits.Add64(lo, r.incLo, 0)
	r.hi, _ = bits.Add64(hi, r.incHi, c)
}

// next64 is PCG64's XSL-RR output of the stepped state.
func (r *numpyRNG) next64() uint64 {
	r.step()
	return bits.RotateLeft64(r.hi^r.lo, -int(r.hi>>58))
}

// next32 hands out each 64-bit output as two 32-bit halves, low first.
func (r *numpyRNG) next32() uint32 {
	if r.hasU32 {
		r.hasU32 = false
		return r.u32
	}
	v := r.next64()
	r.hasU32, r.u32 = true, uint32(v>>32)
	return uint32(v)
}

// Random returns Generator.random(): a float64 in [0, 1).
func (r *numpyRNG) Random() float64 {
	return float64(r.next64()>>11) * (1.0 / 9007199254740992.0)
}

// bounded returns a uniform integer in [0, rng] by Lemire's method (NumPy's
// random_bounded_uint64 without masking), for rng < 2^32-1.
func (r *numpyRNG) bounded(rng uint64) uint64 {
	if rng == 0 {
		return 0
	}
	excl := uint32(rng) + 1
	m := uint64(r.next32()) * uint64(excl)
	if left := uint32(m); left < excl {
		threshold := (^uint32(0) - uint32(rng)) % excl
		for left < threshold {
			m = uint64(r.next32()) * uint64(excl)
			left = uint32(m)
		}
	}
	return m >> 32
}

// shuffleTail shuffles data[first:] in place as the Generator's
// _shuffle_int does: for i from n-1 down to first, swap data[i] with
// data[bounded(i)].
func (r *numpyRNG) shuffleTail(data []int64, first int) {
	for i := len(data) - 1; i >= first; i-- {
		j := r.bounded(uint64(i))
		data[i], data[j] = data[j], data[i]
	}
}

// ChoiceIndices returns Generator.choice(pop, size=k, replace=False)
// (shuffle=True): a tail shuffle when pop > 10000 and k > pop/50, otherwise
// Floyd's algorithm followed by a shuffle.
func (r *numpyRNG) ChoiceIndices(pop, k int) ([]int64, error) {
	if k < 0 || k > pop {
		return nil, fmt.Errorf("sample %d of %d without replacement", k, pop)
	}
	if pop >= 1<<32-1 {
		return nil, fmt.Errorf("population %d is too large", pop)
	}
	if k == 0 {
		return nil, nil
	}
	if pop > 10000 && k > pop/50 {
		idx := make([]int64, pop)
		for i := range idx {
			idx[i] = int64(i)
		}
		r.shuffleTail(idx, max(pop-k, 1))
		return idx[pop-k:], nil
	}
	// Floyd's algorithm with NumPy's open-addressing hash set.
	setSize := uint64(1.2 * float64(k))
	mask := uint64(0)
	for mask < setSize {
		mask = mask<<1 | 1
	}
	const empty = ^uint64(0)
	set := make([]uint64, mask+1)
	for i := range set {
		set[i] = empty
	}
	out := make([]int64, k)
	for j := uint64(pop - k); j < uint64(pop); j++ {
		val := r.bounded(j)
		loc := val & mask
		for set[loc] != empty && set[loc] != val {
			loc = (loc + 1) & mask
		}
		if set[loc] == empty {
			set[loc] = val
			out[j-uint64(pop-k)] = int64(val)
			continue
		}
		loc = j & mask
		for set[loc] != empty {
			loc = (loc + 1) & mask
		}
		set[loc] = j
		out[j-uint64(pop-k)] = int64(j)
	}
	r.shuffleTail(out, 1)
	return out, nil
}
