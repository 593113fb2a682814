package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func runCoreattn(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := newRootCmd()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err = root.Execute()
	return out.String(), errb.String(), err
}

// small is a quick paper-shaped setting: 4 TP-8 servers, 64K contexts.
var small = []string{"simulate", "--gpus", "32", "--context", "65536", "--batches", "1"}

func TestSimulateJSONPlotAndDump(t *testing.T) {
	dir := t.TempDir()
	plotPath, dumpPath := filepath.Join(dir, "steps.png"), filepath.Join(dir, "batches.json")
	out, stderr, err := runCoreattn(t, append(small, "--dist", "prolong", "--json", "--plot", plotPath, "--dump-batches", dumpPath)...)
	require.NoError(t, err)
	assert.Contains(t, stderr, "step 1/1", "progress goes to stderr")
	strategies := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var row map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &row), "line %q", sc.Text())
		for _, key := range []string{"strategy", "step_time_s", "imbalance", "memory_gb", "bytes_per_step"} {
			assert.Contains(t, row, key)
		}
		s := row["strategy"].(string)
		strategies[s]++
		if s == "distca" {
			assert.Contains(t, row, "epsilon_per_batch")
			assert.Contains(t, row, "buffer_gb")
			assert.Contains(t, row, "buffer_gb_per_batch")
			assert.Contains(t, row, "speedup_vs_wlbllm")
		}
		if s == "wlbllm" {
			assert.Contains(t, row, "cp_per_batch")
		}
	}
	assert.Equal(t, map[string]int{"packing": 1, "per-seq-cp": 1, "per-doc-cp": 1, "wlbllm": 1, "distca": 1, "cad": 5}, strategies)

	f, err := os.Open(plotPath)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	assert.Greater(t, img.Bounds().Dx(), 300)

	var dump dumpFile
	b, err := os.ReadFile(dumpPath)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &dump))
	require.Len(t, dump.Steps, 1)
	require.Len(t, dump.Steps[0].Ranks, 4)
	total := 0
	for _, r := range dump.Steps[0].Ranks {
		s := 0
		for _, d := range r {
			s += d
			assert.LessOrEqual(t, d, 65536)
		}
		assert.Equal(t, 65536, s, "4 contexts of 64K over 4 servers")
		total += s
	}
	assert.Equal(t, 4*65536, total)
}

func TestSimulateTable(t *testing.T) {
	out, _, err := runCoreattn(t, append(small, "--strategies", "wlbllm,distca")...)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3+2)
	header := lines[2]
	for _, l := range lines[3:] {
		assert.Equal(t, utf8.RuneCountInString(header), utf8.RuneCountInString(l), "aligned row %q", l)
	}
	assert.Contains(t, out, "buffer GB")
	assert.Contains(t, lines[4], "ε 0.05")
}

func TestSimulateStressLabelled(t *testing.T) {
	out, _, err := runCoreattn(t, "simulate", "--recipe", "stress", "--gpus", "16", "--tp", "1", "--tokens-per-server", "32768",
		"--batches", "1", "--strategies", "packing,distca")
	require.NoError(t, err)
	assert.Contains(t, out, "STRESS TEST outside the paper's regime")
}

func TestSimulateBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"version":1,"heads_q":32,"heads_kv":8,"head_dim":128,"q_lens":[128],"kv_lens":[128],"forward_s":[[1e300]]}`), 0o600))
	cases := []struct {
		args []string
		flag string
	}{
		{[]string{"--model", "gpt-9"}, "--model"},
		{[]string{"--dist", filepath.Join(dir, "missing.json")}, "--dist"},
		{[]string{"--dist", "/dev/zero"}, "--dist"},
		{[]string{"--gpus", "1000000000"}, "--gpus"},
		{[]string{"--gpus", "-8"}, "--gpus"},
		{[]string{"--context", "-1"}, "--context"},
		{[]string{"--batch", "-3"}, "--batch"},
		{[]string{"--max-doc", "-5"}, "--max-doc"},
		{[]string{"--batch", "1048576", "--context", "1073741824"}, "too many"},
		{[]string{"--tokens-per-server", "1000"}, "--tokens-per-server"},
		{[]string{"--recipe", "stress", "--gpus", "1048576", "--tp", "1", "--tokens-per-server", "1073741824"}, "--tokens-per-server"},
		{[]string{"--epsilons", "-1"}, "--epsilons"},
		{[]string{"--tp", "3"}, "--tp"},
		{[]string{"--buffer-gb", "0"}, "--buffer-gb"},
		{[]string{"--recipe", "magic"}, "--recipe"},
		{[]string{"--profile", filepath.Join(dir, "nope.json")}, "--profile"},
		{[]string{"--profile", bad}, "--profile"},
		{[]string{"--plot", filepath.Join(dir, "x.bmp")}, "--plot"},
		{[]string{"--cp-degree", "3"}, "--cp-degree"},
	}
	for _, c := range cases {
		out, _, err := runCoreattn(t, append(small, c.args...)...)
		require.Error(t, err, "%v", c.args)
		assert.Contains(t, err.Error(), c.flag, "%v", c.args)
		assert.NotContains(t, err.Error(), "\n", "one clear line")
		assert.NotContains(t, err.Error(), "NaN")
		assert.Empty(t, out)
	}
	_, err := os.Stat(filepath.Join(dir, "x.bmp"))
	assert.ErrorIs(t, err, os.ErrNotExist, "an unknown --plot extension leaves no file")
}

func TestSimulateProfileClasses(t *testing.T) {
	// Two classes: the FLOP-model-equivalent built-in and a half-speed copy.
	args := append(small, "--json", "--strategies", "distca")
	one, _, err := runCoreattn(t, args...)
	require.NoError(t, err)
	two, _, err := runCoreattn(t, append(args, "--profile", "fa2-h100-bf16-provisional,fa2-h100-bf16-provisional")...)
	require.NoError(t, err)
	first := func(out string) map[string]any {
		var row map[string]any
		require.NoError(t, json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &row))
		return row
	}
	assert.InDelta(t, first(one)["step_time_s"].(float64), first(two)["step_time_s"].(float64), 1e-9)
	flop, _, err := runCoreattn(t, append(args, "--profile", "flop", "--attn-tflops", "100")...)
	require.NoError(t, err)
	assert.Greater(t, first(flop)["attention_s"].(float64), first(one)["attention_s"].(float64))
}
