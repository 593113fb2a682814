package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/checkpoint"
	"github.com/coreattn/coreattn/corpus"
	"github.com/coreattn/coreattn/model"
	"github.com/coreattn/coreattn/model/train"
)

// trainData is a small corpus of real text: a package of the Go
// distribution.
func trainData(t *testing.T) string {
	t.Helper()
	root, _, err := corpus.GoSrc(t.Context())
	require.NoError(t, err)
	return filepath.Join(root, "unicode", "utf8")
}

// tinyArgs trains tiny briefly on trainData into out.
func tinyArgs(t *testing.T, out string, extra ...string) []string {
	return append([]string{"train", "--preset", "tiny", "--tokens", "256", "--steps", "6", "--data", trainData(t),
		"--val-percent", "40", "--val-every", "3", "--val-batches", "1", "--out", out}, extra...)
}

// logLosses reads log.jsonl.
func logLosses(t *testing.T, dir string) []stepRecord {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "log.jsonl"))
	require.NoError(t, err)
	defer f.Close()
	var recs []stepRecord
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r stepRecord
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r), sc.Text())
		recs = append(recs, r)
	}
	return recs
}

// TestTrainResumeBitIdentical: a run stopped after 2 of 6 steps and resumed
// logs the same losses, bit for bit, and saves the same weights as a run
// that was never stopped; and it writes everything it promises. The
// stopped run is untimed, so each step is submitted before the previous
// one's results are read (the stop finds step 2 in flight, the resumed run
// validates at step 3 before submitting step 4); the whole run is timed,
// one step at a time.
func TestTrainResumeBitIdentical(t *testing.T) {
	dir := t.TempDir()
	whole, parts := filepath.Join(dir, "whole"), filepath.Join(dir, "parts")
	stdout, _, err := runCoreattn(t, tinyArgs(t, whole, "--dump-init", "--dump-batches")...)
	require.NoError(t, err)
	assert.Contains(t, stdout, "step 6: loss")

	stdout, _, err = runCoreattn(t, tinyArgs(t, parts, "--stop-after", "2", "--dump-batches", "--timing=false")...)
	require.NoError(t, err)
	assert.Contains(t, stdout, "stopped at step 2 of 6")
	_, _, err = runCoreattn(t, "train", "--resume", "--data", trainData(t), "--val-percent", "40", "--val-every", "3", "--val-batches", "1",
		"--out", parts, "--dump-batches", "--timing=false")
	require.NoError(t, err)

	want, got := logLosses(t, whole), logLosses(t, parts)
	require.Len(t, want, 6)
	require.Len(t, got, 6)
	for i := range want {
		assert.Equal(t, want[i].Step, got[i].Step)
		assert.Equal(t, want[i].Loss, got[i].Loss, "step %d", i+1)
		assert.Equal(t, want[i].GradNorm, got[i].GradNorm, "step %d", i+1)
		assert.Equal(t, want[i].LR, got[i].LR, "step %d", i+1)
	}
	require.NotNil(t, want[2].ValBPB, "validation at step 3")
	assert.Equal(t, *want[2].ValBPB, *got[2].ValBPB)
	require.NotNil(t, want[5].ValBPB, "the final validation")
	assert.Less(t, want[5].Loss, want[0].Loss)
	for _, f := range []string{"checkpoint/model.safetensors", "checkpoint/optim.safetensors", "batches.bin"} {
		a, err := os.ReadFile(filepath.Join(whole, f))
		require.NoError(t, err)
		b, err := os.ReadFile(filepath.Join(parts, f))
		require.NoError(t, err)
		assert.True(t, bytes.Equal(a, b), "%s differs", f)
	}
	var cfg trainConfig
	require.NoError(t, checkpoint.ReadConfig(filepath.Join(whole, "checkpoint"), &cfg))
	assert.Equal(t, 6, cfg.Step)
	assert.Equal(t, "tiny", cfg.Preset)

	// init/ holds the seed's initial weights; batches.bin the 6 batches.
	c, _ := model.Preset("tiny")
	w0, err := model.Init(c, 1)
	require.NoError(t, err)
	init, err := checkpoint.ReadModel(filepath.Join(whole, "init"), specs(c))
	require.NoError(t, err)
	assert.Equal(t, w0.Tensors, tensorData(init))
	f, err := os.Open(filepath.Join(whole, "batches.bin"))
	require.NoError(t, err)
	defer f.Close()
	r := corpus.NewBatchReader(f)
	n := 0
	for {
		b, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		assert.Len(t, b.Tokens, 256)
		n++
	}
	assert.Equal(t, 6, n)
	png, err := os.ReadFile(filepath.Join(whole, "loss.png"))
	require.NoError(t, err)
	assert.True(t, bytes.HasPrefix(png, []byte("\x89PNG")))

	// The checkpoint continues a prompt.
	stdout, _, err = runCoreattn(t, "sample", "--ckpt", filepath.Join(whole, "checkpoint"), "--prompt", "func main() {", "--length", "12")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(stdout, "func main() {"))
	assert.Len(t, strings.TrimSuffix(stdout, "\n"), len("func main() {")+12)
}

func TestTrainBench(t *testing.T) {
	stdout, _, err := runCoreattn(t, "train", "--bench", "--preset", "tiny", "--tokens", "256", "--bench-steps", "2", "--data", trainData(t), "--json")
	require.NoError(t, err)
	var r benchTrainResult
	require.NoError(t, json.Unmarshal([]byte(stdout), &r), stdout)
	assert.Equal(t, 256, r.Tokens)
	assert.Greater(t, r.TokensPerS, 0.0)
	assert.Greater(t, r.MFU, 0.0)
	assert.Less(t, r.MFU, 1.0)
	assert.Equal(t, "measured", r.PeakSource)
	if r.GPUMS != nil {
		assert.Greater(t, r.GPUMS["gemm"], 0.0)
		assert.Greater(t, r.GPUMS["attention"], 0.0)
	}
}

// TestTrainErrors: bad flags, an adapter too small for the model, a
// missing or malformed checkpoint: one-line errors, nothing trained.
func TestTrainErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	_, _, err := runCoreattn(t, tinyArgs(t, good, "--steps", "1")...)
	require.NoError(t, err)
	broken := filepath.Join(dir, "broken")
	require.NoError(t, os.MkdirAll(filepath.Join(broken, "checkpoint"), 0o755))
	for _, f := range []string{"config.json", "optim.safetensors"} {
		b, err := os.ReadFile(filepath.Join(good, "checkpoint", f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(broken, "checkpoint", f), b, 0o644))
	}
	require.NoError(t, os.WriteFile(filepath.Join(broken, "checkpoint", "model.safetensors"), []byte("not a safetensors file"), 0o644))

	for _, tt := range []struct {
		name string
		args []string
		is   error  // errors.Is target, if any
		text string // a word of the message
	}{
		{"unknown preset", []string{"train", "--preset", "huge"}, model.ErrUnknownPreset, "--preset"},
		{"bad heads", []string{"train", "--preset", "tiny", "--heads-q", "3"}, model.ErrConfig, "heads_q"},
		{"negative tokens", []string{"train", "--tokens", "-5"}, nil, "--tokens"},
		{"bad lr", []string{"train", "--preset", "tiny", "--lr", "-1"}, nil, "--lr"},
		{"too many tokens", []string{"train", "--preset", "small", "--tokens", "1048576"}, train.ErrTooLarge, "tokens per step fit"},
		{"no checkpoint", []string{"train", "--resume", "--out", filepath.Join(dir, "none")}, nil, "--resume"},
		{"malformed checkpoint", []string{"train", "--resume", "--out", broken, "--data", trainData(t), "--val-percent", "40"}, checkpoint.ErrHeader, "model.safetensors"},
		{"resume with other tokens", []string{"train", "--resume", "--out", good, "--tokens", "512"}, nil, "--tokens 512"},
		{"sample without checkpoint", []string{"sample", "--ckpt", filepath.Join(dir, "none")}, nil, "--ckpt"},
		{"sample malformed", []string{"sample", "--ckpt", filepath.Join(broken, "checkpoint")}, checkpoint.ErrHeader, "model.safetensors"},
		{"sample bad temperature", []string{"sample", "--ckpt", filepath.Join(good, "checkpoint"), "--temperature", "-1"}, nil, "--temperature"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runCoreattn(t, tt.args...)
			require.Error(t, err)
			if tt.is != nil {
				assert.ErrorIs(t, err, tt.is)
			}
			assert.Contains(t, err.Error(), tt.text)
			assert.NotContains(t, err.Error(), "\n")
		})
	}
}
