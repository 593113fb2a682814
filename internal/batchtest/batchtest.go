// Package batchtest builds random global batches (document lengths) and
// varlen attention batches for the tests of the planning packages.
package batchtest

import "math/rand/v2"

// Lengths returns document lengths that fill ranks×tokens tokens (a quarter
// of the time up to one rank's budget less): mostly short documents, one in
// six up to three ranks long, so that documents cross rank boundaries.
func Lengths(rng *rand.Rand, ranks, tokens int) []int {
	total := ranks * tokens
	if rng.IntN(4) == 0 {
		total -= rng.IntN(tokens)
	}
	var lens []int
	for total > 0 {
		n := 1 + rng.IntN(max(1, tokens/4))
		if rng.IntN(6) == 0 {
			n = 1 + rng.IntN(3*tokens)
		}
		n = min(n, total)
		lens = append(lens, n)
		total -= n
	}
	return lens
}
