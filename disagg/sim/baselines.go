package sim

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/coreattn/coreattn/disagg"
)

// Stats is what the simulator compares across strategies: per-server
// predicted attention time, resident tokens and traffic, all for one layer.
type Stats struct {
	// Load is each server's predicted core-attention seconds.
	Load []float64
	// Tokens is each server's resident tokens (its activation memory).
	Tokens []int64
	// BytesIn and BytesOut are each server's received and sent bytes.
	BytesIn, BytesOut []int64
}

func newStats(n int) Stats {
	return Stats{Load: make([]float64, n), Tokens: make([]int64, n), BytesIn: make([]int64, n), BytesOut: make([]int64, n)}
}

// PlanStats returns the plan's per-server figures; every rank keeps its
// TokensPerRank budget of tokens resident.
func PlanStats(p *disagg.Plan) Stats {
	n := len(p.Load)
	st := Stats{Load: slices.Clone(p.Load), Tokens: make([]int64, n), BytesIn: slices.Clone(p.BytesIn), BytesOut: slices.Clone(p.BytesOut)}
	for r := range n {
		st.Tokens[r] = int64(p.Layout.RankTokens(r))
	}
	return st
}

// Imbalance returns max/mean of the attention loads.
func (s Stats) Imbalance() float64 { return disagg.MaxOverMean(s.Load) }

// MemoryImbalance returns max/mean of the resident tokens.
func (s Stats) MemoryImbalance() float64 {
	v := make([]float64, len(s.Tokens))
	for i, t := range s.Tokens {
		v[i] = float64(t)
	}
	return disagg.MaxOverMean(v)
}

// Bytes returns the bytes moved between servers.
func (s Stats) Bytes() int64 {
	var n int64
	for _, b := range s.BytesIn {
		n += b
	}
	return n
}

// WLB is the WLB-LLM baseline, variable-length chunking: whole documents (cut
// into pieces of at most tokensPerServer tokens, each keeping its causal
// prefix) go, heaviest first, to the server where they finish earliest, which
// balances attention time at the price of unequal token counts. maxTokens,
// when positive, caps a server's tokens (a piece that fits nowhere goes to the
// server with the fewest tokens). A piece whose prefix lives on other servers
// fetches it from them.
func WLB(docLens []int, servers, tokensPerServer int, costs []disagg.CostModel, opt disagg.Options, maxTokens int64) (Stats, error) {
	if servers <= 0 || tokensPerServer <= 0 {
		return Stats{}, fmt.Errorf("disagg: wlb: servers %d and tokens per server %d must be positive", servers, tokensPerServer)
	}
	if maxTokens < 0 {
		return Stats{}, fmt.Errorf("disagg: wlb: token cap %d must not be negative", maxTokens)
	}
	for i, n := range docLens {
		if n <= 0 {
			return Stats{}, fmt.Errorf("disagg: wlb: document %d has length %d, want > 0", i, n)
		}
	}
	if err := opt.Normalize(); err != nil {
		return Stats{}, err
	}
	costs, err := disagg.ExpandCosts(costs, servers)
	if err != nil {
		return Stats{}, err
	}
	type piece struct {
		doc int
		q   disagg.Range
		t   float64 // predicted time on server 0, the sort key
	}
	var pieces []piece
	for d, n := range docLens {
		for s := 0; s < n; s += tokensPerServer {
			q := disagg.Range{Start: s, End: min(n, s+tokensPerServer)}
			pieces = append(pieces, piece{doc: d, q: q, t: costs[0].TaskTime(q.Len(), q.End, opt.Pass)})
		}
	}
	slices.SortStableFunc(pieces, func(a, b piece) int { return cmp.Compare(b.t, a.t) })
	st := newStats(servers)
	where := make(map[int][]disagg.Chunk) // pieces placed so far, by document
	kIn, kOut := opt.Arch.KVRowBytes(opt.Pass)
	for _, pc := range pieces {
		best, bestFit := -1, false
		var bestEnd float64
		for s := range servers {
			fit := maxTokens <= 0 || st.Tokens[s]+int64(pc.q.Len()) <= maxTokens
			end := st.Load[s] + costs[s].TaskTime(pc.q.Len(), pc.q.End, opt.Pass)
			better := best < 0 || (fit && !bestFit)
			if !better && fit == bestFit {
				if fit {
					better = end < bestEnd
				} else {
					better = st.Tokens[s] < st.Tokens[best]
				}
			}
			if better {
				best, bestFit, bestEnd = s, fit, end
			}
		}
		st.Load[best] = bestEnd
		st.Tokens[best] += int64(pc.q.Len())
		where[pc.doc] = append(where[pc.doc], disagg.Chunk{Doc: pc.doc, Rank: best, Range: pc.q})
	}
	// Key/value rows of earlier pieces held elsewhere.
	for d := range docLens {
		ps := where[d]
		for _, p := range ps {
			for _, o := range ps {
				if o.Rank == p.Rank || o.Start >= p.Start {
					continue
				}
				rows := int64(o.Len())
				st.BytesIn[p.Rank] += kIn * rows
				st.BytesOut[o.Rank] += kIn * rows
				st.BytesOut[p.Rank] += kOut * rows
				st.BytesIn[o.Rank] += kOut * rows
			}
		}
	}
	return st, nil
}

// HeadTailShards cuts n tokens into 2·parts shards as evenly as possible
// (the first n mod 2·parts shards one token longer) and returns, for each part
// i, its shards i and 2·parts-1-i: the head-tail sharding of per-document
// context parallelism. Shards may be empty when n < 2·parts.
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

// PerDocCP is per-document context parallelism: servers form groups of
// degree consecutive servers (degree 0 means all of them), documents are
// placed sequentially onto groups of degree·tokensPerServer tokens, and every
// group shards each of its document chunks over all its servers with the
// head-tail split (HeadTailShards, rotated by document so short documents
// spread). Each server all-gathers the key/value rows of the chunk (and of its
// prefix in earlier groups) in the forward and again in the backward, and
// reduce-scatters dK, dV.
func PerDocCP(docLens []int, servers, tokensPerServer, degree int, costs []disagg.CostModel, opt disagg.Options) (Stats, error) {
	if degree == 0 {
		degree = servers
	}
	if servers <= 0 || degree <= 0 || servers%degree != 0 {
		return Stats{}, fmt.Errorf("disagg: per-doc cp: degree %d must be positive and divide servers %d", degree, servers)
	}
	if tokensPerServer <= 0 || int64(degree)*int64(tokensPerServer) > math.MaxInt {
		return Stats{}, fmt.Errorf("disagg: per-doc cp: tokens per server %d invalid", tokensPerServer)
	}
	groups := servers / degree
	l, err := disagg.Place(docLens, groups, degree*tokensPerServer)
	if err != nil {
		return Stats{}, fmt.Errorf("disagg: per-doc cp: %w", err)
	}
	if err := opt.Normalize(); err != nil {
		return Stats{}, err
	}
	if costs, err = disagg.ExpandCosts(costs, servers); err != nil {
		return Stats{}, err
	}
	st := newStats(servers)
	kIn, kOut := opt.Arch.KVRowBytes(opt.Pass)
	own := make([]int64, degree)
	for _, c := range l.Chunks() {
		base := c.Rank * degree
		n := c.Len()
		holders := int64(0)
		for i, sh := range HeadTailShards(n, degree) {
			s := base + (i+c.Doc)%degree
			own[(i+c.Doc)%degree] = 0
			for _, r := range sh {
				if r.Empty() {
					continue
				}
				q := disagg.Range{Start: c.Start + r.Start, End: c.Start + r.End}
				st.Load[s] += costs[s].TaskTime(q.Len(), q.End, opt.Pass)
				st.Tokens[s] += int64(q.Len())
				own[(i+c.Doc)%degree] += int64(q.Len())
			}
			if own[(i+c.Doc)%degree] > 0 {
				holders++
			}
		}
		// All-gather within the group: every holder receives the rows the
		// other holders own, and sends its own to each of them.
		for j, o := range own {
			if o == 0 {
				continue
			}
			s := base + j
			others := int64(n) - o
			st.BytesIn[s] += kIn*others + kOut*o*(holders-1)
			st.BytesOut[s] += kOut*others + kIn*o*(holders-1)
			if c.Start > 0 { // prefix held by earlier groups
				pre := int64(c.Start)
				st.BytesIn[s] += kIn * pre
				st.BytesOut[s] += kOut * pre
				spreadPrefix(&st, l, c, degree, kIn, kOut)
			}
		}
	}
	return st, nil
}

// spreadPrefix charges the earlier groups holding the prefix of chunk c for
// sending their rows to one server of c's group (and receiving its dK, dV),
// evenly over each such group's servers.
func spreadPrefix(st *Stats, l *disagg.Layout, c disagg.Chunk, degree int, kIn, kOut int64) {
	for g := l.HomeRank(c.Doc, 0); g < c.Rank; g++ {
		rows := int64(l.ChunkOn(c.Doc, g).Len())
		for j := range degree {
			share := rows / int64(degree)
			if int64(j) < rows%int64(degree) {
				share++
			}
			st.BytesOut[g*degree+j] += kIn * share
			st.BytesIn[g*degree+j] += kOut * share
		}
	}
}
