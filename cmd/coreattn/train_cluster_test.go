package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ranksArgs trains tiny on 4 ranks of 64 tokens on trainData into out.
func ranksArgs(t *testing.T, out string, steps string, extra ...string) []string {
	return append([]string{"train", "--preset", "tiny", "--ranks", "4", "--tokens-per-rank", "64", "--steps", steps, "--data", trainData(t),
		"--val-percent", "40", "--val-every", "0", "--val-batches", "1", "--block", "16", "--out", out}, extra...)
}

// TestTrainRanks: a run of 4 ranks logs each rank's time split and the
// plan's balance per step, checkpoints, resumes with the same losses bit
// for bit, and a lost attention server is re-planned in its step.
func TestTrainRanks(t *testing.T) {
	dir := t.TempDir()
	whole, parts := filepath.Join(dir, "whole"), filepath.Join(dir, "parts")
	stdout, stderr, err := runCoreattn(t, ranksArgs(t, whole, "4", "--fail-server", "2@3")...)
	require.NoError(t, err, stderr)
	assert.Contains(t, stdout, "step 4: loss")
	assert.Contains(t, stderr, "4 ranks × 64 tokens per step")
	assert.Contains(t, stderr, "step 3: attention server of rank [2] lost")
	recs := logLosses(t, whole)
	require.Len(t, recs, 4)
	for _, r := range recs {
		require.NotNil(t, r.RanksRecord, "step %d", r.Step)
		assert.Equal(t, "cad", r.Mode)
		assert.True(t, r.PingPong)
		assert.Equal(t, 256, r.Tokens)
		require.Len(t, r.Ranks, 4)
		for i, rr := range r.Ranks {
			require.NotNil(t, rr.AttentionMS, "step %d rank %d", r.Step, i)
			if r.Step >= 3 && i == 2 {
				assert.Zero(t, *rr.AttentionMS, "the lost server computes nothing")
			} else {
				assert.Positive(t, *rr.AttentionMS, "step %d rank %d", r.Step, i)
			}
			assert.Positive(t, *rr.LinearMS)
			assert.GreaterOrEqual(t, *rr.WaitMS, 0.0)
		}
		assert.GreaterOrEqual(t, r.ImbalancePredicted, 1.0)
		require.NotNil(t, r.ImbalanceMeasured)
		require.NotNil(t, r.ProjectedMS)
		assert.True(t, r.WaitProjected, "the ranks share the adapter")
	}
	assert.Zero(t, recs[1].Replans)
	assert.Equal(t, 1, recs[2].Replans)
	assert.Equal(t, []int{2}, recs[3].Lost)
	cfg, err := readTrainConfig(filepath.Join(whole, "checkpoint"))
	require.NoError(t, err)
	assert.Equal(t, 4, cfg.Ranks)
	assert.Equal(t, 64, cfg.TokensPerRank)
	assert.Equal(t, 256, cfg.Tokens)

	// Stopped after 2 steps and resumed: the same losses (no fault here).
	_, _, err = runCoreattn(t, ranksArgs(t, whole, "4", "--fail-server", "")...)
	require.NoError(t, err)
	want := logLosses(t, whole)
	_, _, err = runCoreattn(t, ranksArgs(t, parts, "4", "--stop-after", "2")...)
	require.NoError(t, err)
	_, stderr, err = runCoreattn(t, "train", "--resume", "--data", trainData(t), "--val-percent", "40", "--val-every", "0", "--val-batches", "1", "--block", "16", "--out", parts)
	require.NoError(t, err, stderr)
	got := logLosses(t, parts)
	require.Len(t, got, 4)
	for i := range want {
		assert.Equal(t, want[i].Loss, got[i].Loss, "step %d", i+1)
	}
}

// TestTrainCompare: --compare trains packing and CAD from the same seed
// and batches (the same losses), reports both, and draws the balance; the
// plot can be drawn again from the two logs.
func TestTrainCompare(t *testing.T) {
	dir := t.TempDir()
	png := filepath.Join(dir, "balance.png")
	stdout, stderr, err := runCoreattn(t, ranksArgs(t, dir, "4", "--compare", "--json", "--plot", png)...)
	require.NoError(t, err, stderr)
	var res compareResult
	require.NoError(t, json.Unmarshal([]byte(stdout), &res), stdout)
	require.Len(t, res.Modes, 2)
	assert.Equal(t, "packing", res.Modes[0].Mode)
	assert.Equal(t, "cad", res.Modes[1].Mode)
	assert.LessOrEqual(t, res.LossMaxRelDiff, 1e-5)
	for _, m := range res.Modes {
		assert.Equal(t, 4, m.Steps)
		require.Len(t, m.Ranks, 4)
		assert.Positive(t, m.ProjectedMS)
		assert.GreaterOrEqual(t, m.ImbalanceMeasured, 1.0)
	}
	assert.Less(t, res.Modes[1].ImbalancePredicted, res.Modes[0].ImbalancePredicted, "CAD's plan is better balanced")
	assert.Positive(t, res.ProjectedSpeedup)
	st, err := os.Stat(png)
	require.NoError(t, err)
	assert.Positive(t, st.Size())

	again := filepath.Join(dir, "again.png")
	stdout, _, err = runCoreattn(t, "train", "--plot", again, "--from", filepath.Join(dir, "cad", "log.jsonl"), "--from", filepath.Join(dir, "packing", "log.jsonl"))
	require.NoError(t, err)
	assert.Contains(t, stdout, again)
	_, err = os.Stat(again)
	require.NoError(t, err)
}

// TestTrainRanksBadFlags: bad flags of a run of several ranks are one-line
// errors naming the flag, before any work.
func TestTrainRanksBadFlags(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log.jsonl")
	require.NoError(t, os.WriteFile(log, []byte(`{"step":1,"loss":5}`+"\n"), 0o644))
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--ranks", "0"}, "--ranks"},
		{[]string{"--ranks", "4", "--tokens-per-rank", "-1"}, "--tokens-per-rank"},
		{[]string{"--ranks", "4", "--tokens-per-rank", "33"}, "--tokens-per-rank"},
		{[]string{"--ranks", "3", "--tokens", "100"}, "--tokens"},
		{[]string{"--ranks", "4", "--tokens", "256", "--tokens-per-rank", "32"}, "--tokens"},
		{[]string{"--ranks", "4", "--epsilon", "-1"}, "--epsilon"},
		{[]string{"--ranks", "4", "--block", "0"}, "--block"},
		{[]string{"--ranks", "4", "--fail-server", "9@1"}, "--fail-server"},
		{[]string{"--ranks", "4", "--fail-server", "x"}, "--fail-server"},
		{[]string{"--packing"}, "--packing"},
		{[]string{"--ranks", "4", "--compare", "--packing"}, "--packing"},
		{[]string{"--ranks", "4", "--bench"}, "--bench"},
		{[]string{"--plot", filepath.Join(dir, "x.png")}, "--plot"},
		{[]string{"--plot", filepath.Join(dir, "x.png"), "--from", log}, "--from"},
		{[]string{"--plot", filepath.Join(dir, "x.png"), "--from", log, "--from", log}, "--from"},
		{[]string{"--ranks", "4", "--link-gbps", "0"}, "--link-gbps"},
	} {
		args := append([]string{"train", "--preset", "tiny", "--out", filepath.Join(dir, "run")}, c.args...)
		_, _, err := runCoreattn(t, args...)
		require.Error(t, err, "%v", c.args)
		assert.Contains(t, err.Error(), c.want, "%v", c.args)
	}
}
