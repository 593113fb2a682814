package dawn

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCandidatesExplicit(t *testing.T) {
	dir := t.TempDir()
	node := filepath.Join(dir, "dawn.node")
	require.NoError(t, os.WriteFile(node, []byte("x"), 0o644))

	tests := []struct {
		name, env, explicit string
		want                string
		wantErr             error
	}{
		{name: "option file", explicit: node, want: node},
		{name: "option dir", explicit: dir, want: node},
		{name: "env file", env: node, want: node},
		{name: "option beats env", env: "/nonexistent/x.so", explicit: node, want: node},
		{name: "env missing", env: filepath.Join(dir, "nope.so"), wantErr: ErrNotFound},
		{name: "dir without library", explicit: t.TempDir(), wantErr: ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvLibrary, tc.env)
			got, err := Candidates(tc.explicit)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Len(t, got, 1, "an explicit library is the only candidate")
			assert.Equal(t, tc.want, got[0].Path)
		})
	}
}

func TestCandidatesSearchOrder(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	t.Setenv(EnvLibrary, "")
	got, err := Candidates("")
	require.NoError(t, err)
	require.NotEmpty(t, got)
	assert.Equal(t, "libwebgpu_dawn.so.0", got[len(got)-1].Path, "the bare soname is the last resort")
	for _, c := range got {
		assert.NotEqual(t, "install cache", c.Source, "empty cache must not be a candidate")
	}

	dir, err := CacheDir()
	require.NoError(t, err)
	node := NodeAddonPath(dir)
	require.NoError(t, os.MkdirAll(filepath.Dir(node), 0o755))
	require.NoError(t, os.WriteFile(node, []byte("x"), 0o644))
	got, err = Candidates("")
	require.NoError(t, err)
	assert.Equal(t, Candidate{Path: node, Source: "install cache"}, got[0])
}

func TestDecodeConfigs(t *testing.T) {
	// Two configs as a 7-word build lays them out (two trailing words each).
	seven := []uint32{2, 1, 16, 16, 16, 0, 0, 2, 2, 16, 8, 16, 0, 0}
	want := []MatrixConfig{{F16, F32, 16, 16, 16}, {F16, F16, 16, 8, 16}}

	got, err := decodeConfigs(seven, 2, 7)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	assert.Equal(t, "16x16x16 f16->f32", got[0].String())

	_, err = decodeConfigs(seven, 2, 5)
	assert.ErrorIs(t, err, ErrUnsupportedLibrary, "a 5-word stride misreads a 7-word layout and must say so")

	five := []uint32{2, 1, 16, 16, 16, 5, 4, 16, 16, 32}
	got, err = decodeConfigs(five, 2, 5)
	require.NoError(t, err)
	assert.Equal(t, MatrixConfig{U8, I32, 16, 16, 32}, got[1])

	_, err = decodeConfigs(five, 3, 5)
	assert.ErrorIs(t, err, ErrUnsupportedLibrary, "more configs than words")
	got, err = decodeConfigs(nil, 0, 7)
	assert.NoError(t, err)
	assert.Nil(t, got)
}

func TestReadELFRejects(t *testing.T) {
	dir := t.TempDir()
	notELF := filepath.Join(dir, "dawn.node")
	require.NoError(t, os.WriteFile(notELF, []byte("not an ELF file"), 0o644))
	_, err := readELF(notELF, nil)
	assert.ErrorIs(t, err, ErrUnsupportedLibrary)

	// The test binary is ELF but neither exports the C API nor is an addon.
	exe, err := os.Executable()
	require.NoError(t, err)
	_, err = readELF(exe, nil)
	assert.ErrorIs(t, err, ErrUnsupportedLibrary)
}

func TestCapabilities(t *testing.T) {
	a := AdapterInfo{SubgroupMinSize: 8, SubgroupMaxSize: 32, Features: Features{F16: true, Subgroups: true, SubgroupMatrix: true},
		MatrixConfigs: []MatrixConfig{{F16, F32, 16, 16, 16}, {F16, F16, 16, 8, 16}}}
	assert.Equal(t, "f16 subgroups[8..32] subgroup-matrix[16x16x16 f16->f32, 16x8x16 f16->f16]", a.Capabilities())
	assert.Equal(t, "-", AdapterInfo{}.Capabilities())
}
