package main

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/disagg"
	"github.com/coreattn/coreattn/disagg/doclens"
)

// Upper bounds of the size flags, checked before anything is allocated.
const (
	// maxLocalServers bounds the logical attention servers on this
	// machine's adapters: they share the adapters, so more only add
	// planning and host-copy overhead.
	maxLocalServers = 1024
	// maxReps bounds the timed runs per measurement.
	maxReps = 10000
	// maxJSONBytes bounds a --dist or --profile file.
	maxJSONBytes = 64 << 20
	// maxTiling bounds each number of a forced tiling.
	maxTiling = 1024
	// maxSplitKV bounds a forced split-KV piece, in keys: one segment has
	// at most as many keys as an int32 offset holds.
	maxSplitKV = math.MaxInt32
	// maxScratchMiB bounds --ds-scratch (1 TiB, beyond any adapter's
	// buffer limit, which caps the scratch anyway).
	maxScratchMiB = 1 << 20
	// maxAxis bounds the points of a profile axis.
	maxAxis = 64
)

// flagErr is a bad flag value: it names the flag and the value.
type flagErr struct {
	flag   string // without dashes
	value  any
	reason string
}

func (e *flagErr) Error() string { return fmt.Sprintf("--%s %v: %s", e.flag, e.value, e.reason) }

// flagError returns an error naming --flag and its value.
func flagError(flag string, value any, format string, args ...any) error {
	return &flagErr{flag: flag, value: value, reason: fmt.Sprintf(format, args...)}
}

// checkRange checks lo <= v <= hi for --flag.
func checkRange(flag string, v, lo, hi int) error {
	if v < lo || v > hi {
		return flagError(flag, v, "want %d to %d", lo, hi)
	}
	return nil
}

// checkHeads checks --heads, --kv-heads and --head-dim (after defaults)
// the way the attention arguments do, with the row tokens of a batch:
// Args.Validate's rules, before any tensor is allocated.
func checkHeads(heads, kvHeads, headDim, tokens int) error {
	for _, x := range []struct {
		flag string
		v    int
	}{{"heads", heads}, {"kv-heads", kvHeads}, {"head-dim", headDim}} {
		if x.v < 1 {
			return flagError(x.flag, x.v, "want a positive number")
		}
	}
	if tokens < 1 || tokens > math.MaxInt32 {
		return fmt.Errorf("%d tokens in one batch: want 1 to %d", tokens, math.MaxInt32)
	}
	a := attention.Args{CuSeqlensQ: []int32{0, 1}, CuSeqlensK: []int32{0, 1},
		NumHeadsQ: heads, NumHeadsKV: kvHeads, HeadDim: headDim, Causal: true}
	if err := a.Validate(); err != nil {
		return fmt.Errorf("--heads %d, --kv-heads %d, --head-dim %d: %w", heads, kvHeads, headDim, err)
	}
	if n := int64(tokens) * int64(heads) * int64(headDim); n > attention.MaxElements {
		return fmt.Errorf("--heads %d × --head-dim %d × %d tokens = %d elements per tensor, more than %d",
			heads, headDim, tokens, n, int64(attention.MaxElements))
	}
	return nil
}

// readCapped reads the file of --flag, refusing one larger than limit
// bytes (a device or a pipe is read up to the limit).
func readCapped(flag, path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", flag, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("--%s %s: %w", flag, path, err)
	}
	if int64(len(b)) > limit {
		return nil, flagError(flag, path, "file larger than %d bytes", limit)
	}
	return b, nil
}

// loadDist returns the document lengths of --dist: an embedded
// distribution, or a JSON file of at most maxJSONBytes.
func loadDist(name string) ([]int, error) {
	if lens, err := doclens.Builtin(name); err == nil {
		return lens, nil
	}
	b, err := readCapped("dist", name, maxJSONBytes)
	if err != nil {
		return nil, fmt.Errorf("%w (embedded distributions: %v)", err, doclens.Names())
	}
	lens, err := doclens.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("--dist %s: %w", name, err)
	}
	return lens, nil
}

// loadProfile reads the --profile file, of at most maxJSONBytes.
func loadProfile(path string) (*disagg.Profile, error) {
	b, err := readCapped("profile", path, maxJSONBytes)
	if err != nil {
		return nil, err
	}
	p, err := disagg.ReadProfile(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("--profile %s: %w", path, err)
	}
	return p, nil
}
