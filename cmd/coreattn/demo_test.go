package main

import (
	"math/rand/v2"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/attention"
)

func TestDemoBatch(t *testing.T) {
	for _, tokens := range []int{32, 100, 2048, 16384} {
		segs := demoBatch(tokens, rand.New(rand.NewPCG(5, 5)))
		again := demoBatch(tokens, rand.New(rand.NewPCG(5, 5)))
		assert.Equal(t, segs, again, "deterministic for a seed")
		total, minDoc := 0, tokens
		kinds := map[string]int{}
		for _, s := range segs {
			total += s.q
			kinds[s.kind]++
			switch s.kind {
			case "doc":
				assert.Equal(t, s.q, s.k)
				assert.Positive(t, s.q)
				minDoc = min(minDoc, s.q)
			case "shard":
				assert.Less(t, s.q, s.k, "a CA-task shard attends a longer KV prefix")
				assert.Positive(t, s.q)
			case "empty":
				assert.Zero(t, s.q)
				assert.Positive(t, s.k)
			}
		}
		assert.Equal(t, tokens, total, "query tokens")
		assert.Equal(t, 2, kinds["shard"])
		assert.Equal(t, 1, kinds["empty"])
		assert.GreaterOrEqual(t, kinds["doc"], 2)
		assert.LessOrEqual(t, minDoc, 16, "a short document")
	}
}

func TestDemoCheckSubset(t *testing.T) {
	a := &attention.Args{CuSeqlensQ: []int32{0, 100, 101, 101, 140}, CuSeqlensK: []int32{0, 100, 101, 110, 200},
		NumHeadsQ: 2, NumHeadsKV: 1, HeadDim: 8, Causal: true}
	all := newDemoCheck(a, 1e12)
	assert.Equal(t, []int{0, 1, 2, 3}, all.segs)
	assert.Equal(t, a.CuSeqlensQ, all.sub.CuSeqlensQ)
	assert.Equal(t, a.CuSeqlensK, all.sub.CuSeqlensK)

	some := newDemoCheck(a, 1) // room for the cheapest segment only, plus free empty ones
	assert.Equal(t, []int{2}, some.segs)
	some = newDemoCheck(a, segArgsFLOPs(a, 1)+segArgsFLOPs(a, 3))
	assert.Equal(t, []int{1, 2, 3}, some.segs)
	assert.Equal(t, []int32{0, 1, 1, 40}, some.sub.CuSeqlensQ)
	assert.Equal(t, []int32{0, 1, 10, 100}, some.sub.CuSeqlensK)
	assert.Equal(t, [][2]int{{100, 101}, {101, 101}, {101, 140}}, some.qRows)
	require.NoError(t, some.sub.Validate())
}

func segArgsFLOPs(a *attention.Args, b int) float64 {
	s := segmentArgs(a, []int{b})
	return s.FLOPs()
}

func TestDemoRuns(t *testing.T) {
	stdout, _, err := execRoot(t, "demo", "--check", "--tokens", "128", "--seed", "2")
	require.NoError(t, err, stdout)
	assert.Contains(t, stdout, "PASS")
	m := regexp.MustCompile(`O rel err (\S+),`).FindStringSubmatch(stdout)
	require.NotNil(t, m, stdout)
	rel, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	assert.LessOrEqual(t, rel, 1e-4)
	assert.Regexp(t, `forward\s+[0-9.]+ ms\s+[0-9.e+-]+ TFLOP/s`, stdout)
}

func TestDemoBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"demo", "--check", "--tokens", "3"}, "--tokens"},
		{[]string{"demo", "--check", "--tokens", "-5"}, "--tokens"},
		{[]string{"demo", "--check", "--adapter", "-2"}, "--adapter"},
		{[]string{"demo", "--check", "--adapter", "42"}, "--adapter"},
		{[]string{"demo", "--tokens", "128"}, "--tokens"},
		{[]string{"demo", "--adapter", "-2"}, "--adapter"},
		{[]string{"demo", "--adapter", "42"}, "--adapter"},
		{[]string{"demo", "--steps", "1"}, "--steps"},
		{[]string{"demo", "--tokens-per-rank", "33"}, "--tokens-per-rank"},
		{[]string{"demo", "--ranks", "-1"}, "--ranks"},
	} {
		_, _, err := execRoot(t, c.args...)
		require.Error(t, err, "%v", c.args)
		assert.Contains(t, err.Error(), c.want)
	}
}

// TestDemoTrains runs the training demo small: the loss falls, every rank
// gets a line of the balance table, and packing and CAD give the same loss
// on the same batch and weights.
func TestDemoTrains(t *testing.T) {
	stdout, _, err := execRoot(t, "demo", "--steps", "6", "--tokens-per-rank", "64")
	require.NoError(t, err, stdout)
	assert.Contains(t, stdout, "4 logical ranks share it")
	losses := regexp.MustCompile(`step +\d+  loss ([0-9.]+)`).FindAllStringSubmatch(stdout, -1)
	require.GreaterOrEqual(t, len(losses), 2, stdout)
	first, err := strconv.ParseFloat(losses[0][1], 64)
	require.NoError(t, err)
	last, err := strconv.ParseFloat(losses[len(losses)-1][1], 64)
	require.NoError(t, err)
	assert.Less(t, last, first, "the loss falls")
	for r := range 4 {
		assert.Regexp(t, regexp.MustCompile(`(?m)^ +`+strconv.Itoa(r)+` +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+$`), stdout, "rank %d's balance", r)
	}
	m := regexp.MustCompile(`largest relative difference ([0-9.e+-]+)\)`).FindStringSubmatch(stdout)
	require.NotNil(t, m, stdout)
	rel, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	assert.LessOrEqual(t, rel, 1e-5, "packing and CAD give the same loss")
	assert.Regexp(t, `imbalance \(max/mean\) +packing [0-9.]+ measured, [0-9.]+ predicted; +CAD [0-9.]+ measured, [0-9.]+ predicted`, stdout)
}
