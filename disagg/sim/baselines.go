package sim

import "github.com/coreattn/coreattn/disagg"

// HeadTailShards cuts n tokens into 2·parts shards as evenly as possible
// (the first n mod 2·parts shards one token longer) and returns, for each part
// i, its shards i and 2·parts-1-i: the zigzag (head-tail) sharding of context
// parallelism. Shards may be empty when n < 2·parts.
func HeadTailShards(n, parts int) [][2]disagg.Range {
	if parts <= 0 || n < 0 {
		return nil
	}
	k := 2 * parts
	base, extra := n/k, n%k
	start := func(i int) int { return i*base + min(i, extra) }
	out := make([][2]disagg.Range, parts)
	for i := range parts {
		j := k - 1 - i
		out[i] = [2]disagg.Range{{Start: start(i), End: start(i + 1)}, {Start: start(j), End: start(j + 1)}}
	}
	return out
}
