package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/attention/gpu"
	"github.com/coreattn/coreattn/wgpu"
)

// errBackward is a backward failure whose text says "not implemented", as
// a driver's or a validation error's may.
var errBackward = errors.New("attention: backward: pipeline: feature not implemented by this driver")

// failingBackward is the operator with a backward that fails.
type failingBackward struct{ *gpu.Op }

func (failingBackward) PrepareBackward(*attention.Args, gpu.BackwardTensors) (*gpu.Call, error) {
	return nil, errBackward
}

func newFailingBackward(dev *wgpu.Device) kernels { return failingBackward{gpu.New(dev)} }

// TestDemoBackwardError checks that a failing backward fails the demo,
// whatever its error says, instead of being skipped with a PASS.
func TestDemoBackwardError(t *testing.T) {
	var out bytes.Buffer
	err := runDemo(context.Background(), &globalFlags{}, &demoFlags{tokens: 128, seed: 2, newOp: newFailingBackward}, &out)
	require.ErrorIs(t, err, errBackward)
	assert.NotContains(t, out.String(), "PASS")
}

// TestProfileBackwardError checks that a failing backward fails the
// profile, whatever its error says, instead of writing a profile without
// (or with zero) backward times.
func TestProfileBackwardError(t *testing.T) {
	f := &profileFlags{out: filepath.Join(t.TempDir(), "p.json"), qLens: []int{16}, kvLens: []int{64}, reps: 1, newOp: newFailingBackward}
	err := runProfile(context.Background(), &globalFlags{}, f, io.Discard, io.Discard)
	require.ErrorIs(t, err, errBackward)
	assert.NoFileExists(t, f.out)
}
