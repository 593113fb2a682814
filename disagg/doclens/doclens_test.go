package doclens

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBuiltin(t *testing.T) {
	// Document counts and maxima from the README's table.
	want := map[string][2]int{"pretrain": {99519, 124913}, "prolong": {77932, 340149}}
	assert.Equal(t, []string{"pretrain", "prolong"}, Names())
	for name, w := range want {
		lens, err := Builtin(name)
		require.NoError(t, err)
		assert.Len(t, lens, w[0], name)
		assert.Equal(t, w[1], maxOf(lens), name)
		lens[0] = -1 // a copy: the embedded data stays intact
		again, err := Load(name)
		require.NoError(t, err)
		assert.Positive(t, again[0])
	}
	_, err := Builtin("nope")
	assert.ErrorContains(t, err, `"nope"`)
}

func maxOf(v []int) int {
	m := v[0]
	for _, x := range v {
		m = max(m, x)
	}
	return m
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	require.NoError(t, os.WriteFile(good, []byte("[3, 1, 4]"), 0o644))
	lens, err := Load(good)
	require.NoError(t, err)
	assert.Equal(t, []int{3, 1, 4}, lens)

	for name, body := range map[string]string{"neg.json": "[3, -1]", "empty.json": "[]", "bad.json": "{"} {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
		_, err := Load(p)
		assert.ErrorContains(t, err, name)
	}
	_, err = Load(filepath.Join(dir, "missing.json"))
	assert.ErrorContains(t, err, "neither an embedded distribution")
}

func TestLoadBounded(t *testing.T) {
	_, err := Load("/dev/zero")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not a regular file")
	big := filepath.Join(t.TempDir(), "big.json")
	require.NoError(t, os.WriteFile(big, make([]byte, MaxFileBytes+1), 0o600))
	_, err = Load(big)
	assert.ErrorIs(t, err, ErrTooLarge)
}
