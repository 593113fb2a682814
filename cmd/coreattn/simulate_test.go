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

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/disagg"
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

func TestSimulateJSONAndPlot(t *testing.T) {
	plotPath := filepath.Join(t.TempDir(), "imbalance.png")
	out, stderr, err := runCoreattn(t, "simulate", "--dist", "prolong", "--servers", "16", "--tokens-per-server", "65536",
		"--batches", "2", "--epsilon", "0.15", "--json", "--plot", plotPath)
	require.NoError(t, err)
	assert.Contains(t, stderr, "batch 2/2", "progress goes to stderr")

	var rows []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var row map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &row), "line %q", sc.Text())
		rows = append(rows, row)
	}
	require.Len(t, rows, 8, "packing, wlb, per-doc-cp and cad at 0, 0.05, 0.1, 0.15, 0.2")
	strategies := map[string]int{}
	for _, row := range rows {
		for _, key := range []string{"strategy", "imbalance", "bytes_per_step", "step_time_s", "memory_imbalance"} {
			assert.Contains(t, row, key)
		}
		s := row["strategy"].(string)
		strategies[s]++
		_, hasEps := row["epsilon"]
		assert.Equal(t, s == "cad", hasEps, "epsilon only on cad rows")
		if row["headline"] == true {
			assert.Equal(t, 0.15, row["epsilon"])
		}
		assert.Equal(t, "prolong", row["dist"])
	}
	assert.Equal(t, map[string]int{"packing": 1, "wlb": 1, "per-doc-cp": 1, "cad": 5}, strategies)

	f, err := os.Open(plotPath)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	assert.Greater(t, img.Bounds().Dx(), 300)
}

func TestSimulateTable(t *testing.T) {
	out, _, err := runCoreattn(t, "simulate", "--dist", "pretrain", "--servers", "8", "--tokens-per-server", "16384", "--batches", "1")
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3+7)
	header := lines[2]
	assert.True(t, strings.HasPrefix(strings.TrimSpace(header), "strategy"))
	// Aligned: every row as wide as the header.
	for _, l := range lines[3:] {
		assert.Equal(t, len(header), len(l), "row %q", l)
	}
	assert.Contains(t, out, "cad *")
}

func TestSimulateBadInput(t *testing.T) {
	cases := [][]string{
		{"--model", "gpt-9"},
		{"--dist", filepath.Join(t.TempDir(), "missing.json")},
		{"--servers", "0"},
		{"--epsilon", "-1"},
		{"--pass", "sideways"},
		{"--block", "0"},
		{"--replace-long-prob", "2"},
		{"--profile", filepath.Join(t.TempDir(), "nope.json")},
		{"--cp-degree", "3", "--servers", "8"},
	}
	for _, c := range cases {
		args := append([]string{"simulate", "--servers", "8", "--tokens-per-server", "4096", "--batches", "1"}, c...)
		out, _, err := runCoreattn(t, args...)
		require.Error(t, err, "%v", c)
		assert.NotContains(t, err.Error(), "\n", "one clear line")
		assert.Empty(t, out)
	}
}

func TestSimulateWithProfile(t *testing.T) {
	// A profile in which every kernel runs at 100 TFLOP/s: the attention
	// times must be four times the FLOP model's at 400 TFLOP/s.
	p := &disagg.Profile{Version: disagg.ProfileVersion, HeadsQ: 32, HeadsKV: 8, HeadDim: 128,
		QLens: []int{128, 4096}, KVLens: []int{4096, 65536}}
	for _, grid := range []*[][]float64{&p.Forward, &p.Backward} {
		factor := 1.0
		if grid == &p.Backward {
			factor = disagg.BackwardFLOPFactor
		}
		*grid = [][]float64{{0, 0}, {0, 0}}
		for i, q := range p.QLens {
			for j, k := range p.KVLens {
				(*grid)[i][j] = factor * disagg.Llama8B.AttentionFLOPs(q, k, disagg.PassForward) / 100e12
			}
		}
	}
	path := filepath.Join(t.TempDir(), "profile.json")
	require.NoError(t, p.Save(path))
	args := []string{"simulate", "--dist", "pretrain", "--servers", "8", "--tokens-per-server", "16384", "--batches", "1", "--json"}
	withProfile, _, err := runCoreattn(t, append(args, "--profile", path)...)
	require.NoError(t, err)
	plain, _, err := runCoreattn(t, args...)
	require.NoError(t, err)
	first := func(out string) map[string]any {
		var row map[string]any
		require.NoError(t, json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &row))
		return row
	}
	assert.InEpsilon(t, 4*first(plain)["attention_s"].(float64), first(withProfile)["attention_s"].(float64), 1e-6)
}
