// Package doclens embeds the empirical document-length distributions that the
// DistCA evaluation (arXiv 2510.18121) samples training batches from, so that
// the coreattn binary carries them without the repository.
//
// Source: the DistCA repository, files distca/simulator/data/dist_wlbllm.json
// (here pretrain.json) and distca/simulator/data/dist_prolong.json (here
// prolong.json), Apache License 2.0. See README.md beside this file.
package doclens

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
)

// MaxFileBytes bounds a file of lengths: 64 MiB holds millions of lengths,
// and an endless file (a device, a pipe) is refused instead of read forever.
const MaxFileBytes = 64 << 20

// ErrTooLarge is returned for a file of lengths over MaxFileBytes.
var ErrTooLarge = errors.New("doclens: file too large")

//go:embed pretrain.json
var pretrainJSON []byte

//go:embed prolong.json
var prolongJSON []byte

var builtin = map[string][]byte{"pretrain": pretrainJSON, "prolong": prolongJSON}

// Names lists the embedded distributions, sorted.
func Names() []string {
	out := make([]string, 0, len(builtin))
	for n := range builtin {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Builtin returns a fresh copy of the document lengths of an embedded
// distribution ("pretrain" or "prolong").
func Builtin(name string) ([]int, error) {
	b, ok := builtin[name]
	if !ok {
		return nil, fmt.Errorf("doclens: unknown distribution %q (embedded: %v)", name, Names())
	}
	return Parse(b)
}

// Load returns the embedded distribution called nameOrPath, or else reads a
// JSON file of document lengths from that path.
func Load(nameOrPath string) ([]int, error) {
	if _, ok := builtin[nameOrPath]; ok {
		return Builtin(nameOrPath)
	}
	b, err := readBounded(nameOrPath)
	if err != nil {
		return nil, fmt.Errorf("doclens: %q is neither an embedded distribution %v nor a readable file: %w", nameOrPath, Names(), err)
	}
	lens, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, nameOrPath)
	}
	return lens, nil
}

// Parse decodes a JSON array of positive document lengths.
func Parse(b []byte) ([]int, error) {
	var lens []int
	if err := json.Unmarshal(b, &lens); err != nil {
		return nil, fmt.Errorf("doclens: want a JSON array of positive integers: %w", err)
	}
	if len(lens) == 0 {
		return nil, fmt.Errorf("doclens: no document lengths")
	}
	for i, n := range lens {
		if n <= 0 {
			return nil, fmt.Errorf("doclens: length %d at index %d must be positive", n, i)
		}
	}
	return lens, nil
}

// readBounded reads a regular file of at most MaxFileBytes.
func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", st.Mode().Type())
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxFileBytes {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, MaxFileBytes)
	}
	return b, nil
}
