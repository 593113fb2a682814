package main

import (
	"bytes"
	"encoding/binary"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/internal/npy"
	"github.com/coreattn/coreattn/internal/outfile"
)

// robustArgs is a small causal batch for the output-safety tests.
var robustArgs = attention.Args{CuSeqlensQ: []int32{0, 4, 6}, CuSeqlensK: []int32{0, 4, 10},
	NumHeadsQ: 2, NumHeadsKV: 1, HeadDim: 8, Causal: true}

// snapshot records the bytes of files, to check later that they are intact.
func snapshot(t *testing.T, paths ...string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		m[p] = b
	}
	return m
}

func assertIntact(t *testing.T, snap map[string][]byte) {
	t.Helper()
	for p, want := range snap {
		got, err := os.ReadFile(p)
		if assert.NoError(t, err, "%s is gone", p) {
			assert.True(t, bytes.Equal(want, got), "%s was changed", p)
		}
	}
}

// TestAttentionOutputsNeverLoseData: outputs that resolve to an input or to
// each other, directories, device nodes and dangling links are refused
// before any work, and a failed write keeps every file that was there.
func TestAttentionOutputsNeverLoseData(t *testing.T) {
	tests := []struct {
		name string
		edit func(t *testing.T, c *attnCase) // may change c.files
		want error
		flag string // named in the error
	}{
		{"--out is --q", func(t *testing.T, c *attnCase) { c.files["out"] = c.files["q"] }, outfile.ErrSameFile, "--q"},
		{"--lse is --cu-seqlens-k by another spelling", func(t *testing.T, c *attnCase) {
			c.files["lse"] = c.dir + "/./sub/../" + filepath.Base(c.files["cu-seqlens-k"]) // not cleaned
			require.NoError(t, os.Mkdir(filepath.Join(c.dir, "sub"), 0o755))
		}, outfile.ErrSameFile, "--cu-seqlens-k"},
		{"--out x.npy --lse ./x.npy", func(t *testing.T, c *attnCase) {
			c.files["out"] = filepath.Join(c.dir, "x.npy")
			c.files["lse"] = c.dir + "/./x.npy" // not cleaned
		}, outfile.ErrSameFile, "--lse"},
		{"--lse is a symlink to --v", func(t *testing.T, c *attnCase) {
			link := filepath.Join(c.dir, "v-link.npy")
			require.NoError(t, os.Symlink(c.files["v"], link))
			c.files["lse"] = link
		}, outfile.ErrSameFile, "--v"},
		{"--out is a directory", func(t *testing.T, c *attnCase) { c.files["out"] = c.dir }, outfile.ErrIsDir, "--out"},
		{"--out is a device node", func(t *testing.T, c *attnCase) { c.files["out"] = os.DevNull }, outfile.ErrNotRegular, "--out"},
		{"--lse is a dangling symlink", func(t *testing.T, c *attnCase) {
			link := filepath.Join(c.dir, "dangling.npy")
			require.NoError(t, os.Symlink(filepath.Join(c.dir, "gone.npy"), link))
			c.files["lse"] = link
		}, outfile.ErrNotRegular, "--lse"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newAttnCase(t, robustArgs, uint64(300+i))
			inputs := []string{c.files["q"], c.files["k"], c.files["v"], c.files["cu-seqlens-q"], c.files["cu-seqlens-k"]}
			snap := snapshot(t, inputs...)
			before, err := os.ReadDir(c.dir)
			require.NoError(t, err)
			tt.edit(t, c)
			_, _, err = execRoot(t, c.cmdArgs(false)...)
			require.ErrorIs(t, err, tt.want)
			assert.Contains(t, err.Error(), tt.flag)
			assert.NotContains(t, err.Error(), "\n")
			assertIntact(t, snap)
			after, err := os.ReadDir(c.dir)
			require.NoError(t, err)
			assert.LessOrEqual(t, len(after), len(before)+2, "nothing but the test's own link or directory was added")
			st, err := os.Stat(os.DevNull)
			require.NoError(t, err)
			assert.NotZero(t, st.Mode()&fs.ModeCharDevice, "/dev/null is still a device")
		})
	}

	t.Run("a failed write keeps the older outputs and the inputs", func(t *testing.T) {
		if st, err := os.Stat("/proc/self"); err != nil || !st.IsDir() {
			t.Skip("needs /proc/self, a directory no file can be created in")
		}
		c := newAttnCase(t, robustArgs, 320)
		require.NoError(t, os.WriteFile(c.files["out"], []byte("an older output"), 0o644))
		snap := snapshot(t, c.files["out"], c.files["q"], c.files["k"], c.files["v"])
		c.files["lse"] = "/proc/self/lse.npy" // passes the checks, fails to write
		_, _, err := execRoot(t, c.cmdArgs(false)...)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "--lse")
		assertIntact(t, snap)
		entries, err := os.ReadDir(c.dir)
		require.NoError(t, err)
		for _, e := range entries {
			assert.False(t, strings.Contains(e.Name(), ".tmp-"), "temporary file %s left behind", e.Name())
		}
	})

	t.Run("output through a symlink keeps the link", func(t *testing.T) {
		c := newAttnCase(t, robustArgs, 321)
		real := filepath.Join(c.dir, "real-o.npy")
		require.NoError(t, os.WriteFile(real, []byte("old"), 0o644))
		link := filepath.Join(c.dir, "o-link.npy")
		require.NoError(t, os.Symlink(real, link))
		c.files["out"] = link
		_, _, err := execRoot(t, c.cmdArgs(false)...)
		require.NoError(t, err)
		li, err := os.Lstat(link)
		require.NoError(t, err)
		assert.NotZero(t, li.Mode()&fs.ModeSymlink, "still a symlink")
		a := &c.args
		readOut(t, real, a.TotalQ(), a.NumHeadsQ, a.HeadDim)
	})
}

// TestAttentionRefusesBadNumbers: a scale not finite in float32, server
// counts beyond any machine, and .npy shapes whose product overflows are
// refused quickly, naming the flag.
func TestAttentionRefusesBadNumbers(t *testing.T) {
	tests := []struct {
		name  string
		extra []string
		edit  func(t *testing.T, c *attnCase)
		want  []string
	}{
		{name: "scale beyond float32", extra: []string{"--scale", "1e39"}, want: []string{"--scale", "1e+39"}},
		{name: "scale beyond float32 negative", extra: []string{"--scale", "-3.4e38"}, want: []string{"--scale", "-3.4e+38"}},
		{name: "servers beyond any machine", extra: []string{"--servers", "2147483647"}, want: []string{"--servers", "2147483647"}},
		{name: "q shape overflows", edit: func(t *testing.T, c *attnCase) {
			c.writeRaw(t, "q", rawHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4, 8), }"))
		}, want: []string{"--q"}},
		{name: "offsets of a huge shape", edit: func(t *testing.T, c *attnCase) {
			c.writeRaw(t, "cu-seqlens-q", rawHeader("{'descr': '<i8', 'fortran_order': False, 'shape': (3000000000,), }"))
		}, want: []string{"--cu-seqlens-q"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newAttnCase(t, robustArgs, uint64(330+i))
			if tt.edit != nil {
				tt.edit(t, c)
			}
			start := time.Now()
			_, _, err := execRoot(t, append(c.cmdArgs(false), tt.extra...)...)
			require.Error(t, err)
			assert.Less(t, time.Since(start), 20*time.Second)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.NotContains(t, err.Error(), "\n")
			assert.NoFileExists(t, c.files["out"])
			assert.NoFileExists(t, c.files["lse"])
		})
	}
}

// rawHeader is a version 1.0 .npy file with the header dictionary and no
// data.
func rawHeader(dict string) []byte {
	var b bytes.Buffer
	b.WriteString("\x93NUMPY\x01\x00")
	pad := (64 - (10+len(dict)+1)%64) % 64
	hdr := dict + strings.Repeat(" ", pad) + "\n"
	b.Write(binary.LittleEndian.AppendUint16(nil, uint16(len(hdr))))
	b.WriteString(hdr)
	return b.Bytes()
}

// TestSizeFlagsBounded: every size flag of the commands that run on an
// adapter is refused, naming the flag, when negative or beyond what the
// machine holds, before anything large is allocated or measured.
func TestSizeFlagsBounded(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		args []string
		flag string
	}{
		{[]string{"bench", "--reps", "-1"}, "--reps"},
		{[]string{"bench", "--reps", "2147483647"}, "--reps"},
		{[]string{"bench", "--split-kv", "-5"}, "--split-kv"},
		{[]string{"bench", "--ds-scratch", "9223372036854775807"}, "--ds-scratch"},
		{[]string{"bench", "--fwd-wx", "-2"}, "--fwd-wx"},
		{[]string{"bench", "--fwd-tiling", "16,8,8,32,99999"}, "--fwd-tiling"},
		{[]string{"bench", "--shapes", "no such shape"}, "--shapes"},
		{[]string{"bench", "pool", "--servers", "2147483647"}, "--servers"},
		{[]string{"bench", "pool", "--servers", "3", "--tokens-per-server", "2147483647"}, "--tokens-per-server"},
		{[]string{"bench", "pool", "--servers", "2", "--heads", "1048576", "--kv-heads", "1"}, "--heads"},
		{[]string{"bench", "pool", "--max-doc", "-1"}, "--max-doc"},
		{[]string{"bench", "pool", "--reps", "0"}, "--reps"},
		{[]string{"bench", "pool", "--block", "-4"}, "--block"},
		{[]string{"bench", "pool", "--dist", "/dev/zero"}, "--dist"},
		{[]string{"bench", "pool", "--profile", "/dev/zero"}, "--profile"},
		{[]string{"bench", "shards", "--reps", "-1"}, "--reps"},
		{[]string{"bench", "shards", "--doc", "-1"}, "--doc"},
		{[]string{"bench", "shards", "--doc", "2147483647"}, "--doc"},
		{[]string{"bench", "shards", "--max-bytes", "-1"}, "--max-bytes"},
		{[]string{"profile", "--reps", "-1", "--out", filepath.Join(dir, "p.json")}, "--reps"},
		{[]string{"profile", "--q-lens", "16,2147483648", "--kv-lens", "64", "--out", filepath.Join(dir, "p.json")}, "--q-lens"},
		{[]string{"profile", "--out", os.DevNull}, "--out"},
		{[]string{"profile", "--out", dir}, "--out"},
		{[]string{"demo", "--check", "--tokens", "-5"}, "--tokens"},
		{[]string{"demo", "--check", "--tokens", "9223372036854775807"}, "--tokens"},
		{[]string{"train", "--kernels", "tc", "--out", dir}, "--kernels"},
		{[]string{"train", "--loss-scale", "-1", "--out", dir}, "--loss-scale"},
		{[]string{"train", "--loss-scale", "NaN", "--out", dir}, "--loss-scale"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			if tt.args[0] == "bench" && len(tt.args) > 1 && tt.args[1] == "pool" && tt.args[2] == "--dist" {
				if _, err := os.Stat("/dev/zero"); err != nil {
					t.Skip("no /dev/zero")
				}
			}
			start := time.Now()
			stdout, _, err := execRoot(t, tt.args...)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.flag)
			assert.NotContains(t, err.Error(), "\n")
			assert.Less(t, time.Since(start), 60*time.Second, "refused before any measurement")
			assert.NotContains(t, stdout, "TFLOP/s", "nothing measured")
		})
	}
	_, err := os.Stat(filepath.Join(dir, "p.json"))
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

// TestHelpRendersFlags: no flag usage string holds a backquote, which cobra
// (pflag) would take for the flag's value name ("--adapter coreattn
// devices").
func TestHelpRendersFlags(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			name, _ := pflag.UnquoteUsage(f)
			assert.NotContains(t, f.Usage, "`", "%s --%s", c.CommandPath(), f.Name)
			assert.NotContains(t, name, " ", "%s --%s renders its value as %q", c.CommandPath(), f.Name, name)
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd())
	out, _, err := execRoot(t, "bench", "--help")
	require.NoError(t, err)
	assert.NotContains(t, out, "--adapter coreattn")
}

// TestWriteAllKeepsNpyReadable: the command's writer round-trips through
// the reader.
func TestWriteAllKeepsNpyReadable(t *testing.T) {
	dir := t.TempDir()
	p := outfile.Path{Flag: "out", Name: filepath.Join(dir, "o.npy")}
	require.NoError(t, writeAll([]outFile{{p, []float32{1, 2, 3, 4, 5, 6}, []int{2, 3}}}))
	data, shape, err := npy.ReadFloat32(p.Name)
	require.NoError(t, err)
	assert.Equal(t, []int{2, 3}, shape)
	assert.Equal(t, []float32{1, 2, 3, 4, 5, 6}, data)
}
