package wgpu_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/wgpu"
)

// TestPipelineFor checks the keyed pipeline cache: the kernel is generated
// once per key, keys share compiled pipelines by source, errors are not
// cached, and the cache closes with the device.
func TestPipelineFor(t *testing.T) {
	d := openTest(t)
	type key struct{ n int }
	gens := 0
	gen := func() (wgpu.Kernel, error) {
		gens++
		return wgpu.Kernel{Label: "axpy", Source: axpy, Entry: "main"}, nil
	}
	p1, err := d.PipelineFor(key{1}, gen)
	require.NoError(t, err)
	p2, err := d.PipelineFor(key{1}, gen)
	require.NoError(t, err)
	assert.Same(t, p1, p2)
	assert.Equal(t, 1, gens, "a cached key generates nothing")
	p3, err := d.PipelineFor(key{2}, gen)
	require.NoError(t, err)
	assert.Same(t, p1, p3, "another key with the same source shares the pipeline")
	assert.Equal(t, 2, gens)

	bad := errors.New("no such tiling")
	_, err = d.PipelineFor(key{3}, func() (wgpu.Kernel, error) { return wgpu.Kernel{}, bad })
	require.ErrorIs(t, err, bad)
	_, err = d.PipelineFor(key{3}, gen)
	require.NoError(t, err, "a failed generation is not cached")

	_, err = d.PipelineFor([]int{1}, gen)
	require.ErrorContains(t, err, "not comparable")

	require.NoError(t, d.Close())
	_, err = d.PipelineFor(key{1}, gen)
	require.ErrorIs(t, err, wgpu.ErrClosed)
}

// TestCheckModule checks that CheckModule has naga validate a module: a
// module with a type error fails it, though it parses.
func TestCheckModule(t *testing.T) {
	d := openTest(t)
	require.NoError(t, d.CheckModule("axpy", axpy))
	err := d.CheckModule("type error", `@compute @workgroup_size(1) fn main() { let x: u32 = 1.5; }`)
	require.ErrorContains(t, err, "type error")
	require.NoError(t, d.Close())
	require.ErrorIs(t, d.CheckModule("axpy", axpy), wgpu.ErrClosed)
}
