package train

import (
	"regexp"
	"strconv"
	"testing"

	"github.com/coreattn/coreattn/model"
	"github.com/coreattn/coreattn/wgpu"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheckLimits(t *testing.T) {
	lavapipe := wgpu.AdapterInfo{Name: "lavapipe", Limits: wgpu.Limits{MaxBufferSize: 1 << 31, MaxStorageBufferBindingSize: 128 << 20}}
	h100 := wgpu.AdapterInfo{Name: "H100", Limits: wgpu.Limits{MaxBufferSize: 1 << 40, MaxStorageBufferBindingSize: 1<<32 - 1}}
	base, err := model.Preset("base")
	require.NoError(t, err)
	small, err := model.Preset("small")
	require.NoError(t, err)

	assert.NoError(t, CheckLimits(base, 16384, h100))
	assert.NoError(t, CheckLimits(small, 16384, lavapipe))

	err = CheckLimits(base, 1024, lavapipe)
	assert.ErrorIs(t, err, ErrTooLarge)
	assert.Contains(t, err.Error(), "parameters", "the flat parameter buffer is the largest")
	assert.Contains(t, err.Error(), "smaller preset")

	err = CheckLimits(small, 1<<20, lavapipe)
	require.ErrorIs(t, err, ErrTooLarge)
	m := regexp.MustCompile(`at most (\d+) tokens per step fit`).FindStringSubmatch(err.Error())
	require.Len(t, m, 2, err.Error())
	fit, _ := strconv.Atoi(m[1])
	limit := uint64(128 << 20)
	assert.LessOrEqual(t, Requirements(small, fit).Largest, limit)
	assert.Greater(t, Requirements(small, fit+1).Largest, limit)
	assert.NoError(t, CheckLimits(small, fit, lavapipe))

	assert.ErrorIs(t, CheckLimits(small, 0, h100), ErrTooLarge)
	need := Requirements(small, 16384)
	assert.Greater(t, need.Total, 4*uint64(small.NumParams())*4, "weights, gradients and moments, and the activations")
}
