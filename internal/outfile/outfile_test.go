package outfile

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// put writes content to dir/name and returns the path.
func put(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o640))
	return p
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

// text is an output writing s.
func text(flag, path, s string) Output {
	return Output{Path: Path{Flag: flag, Name: path}, Write: func(w io.Writer) error {
		_, err := io.WriteString(w, s)
		return err
	}}
}

// entries lists the names in dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	in := put(t, dir, "q.npy", "input")
	old := put(t, dir, "o.npy", "old output")
	require.NoError(t, os.Symlink(in, filepath.Join(dir, "link-to-q.npy")))
	require.NoError(t, os.Symlink(filepath.Join(dir, "gone.npy"), filepath.Join(dir, "dangling.npy")))
	require.NoError(t, os.Link(in, filepath.Join(dir, "hard-q.npy")))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	require.NoError(t, os.Symlink(filepath.Join(dir, "sub"), filepath.Join(dir, "sublink")))
	wd, err := os.Getwd()
	require.NoError(t, err)
	t.Cleanup(func() { os.Chdir(wd) })
	require.NoError(t, os.Chdir(dir))

	inputs := []Path{{"q", in}}
	tests := []struct {
		name string
		outs []Path
		want error
	}{
		{"new files", []Path{{"out", "x.npy"}, {"lse", "y.npy"}}, nil},
		{"replace an old output", []Path{{"out", old}}, nil},
		{"through a symlinked directory", []Path{{"out", "sublink/x.npy"}}, nil},
		{"empty", []Path{{"out", ""}}, ErrEmpty},
		{"missing directory", []Path{{"out", "nope/x.npy"}}, ErrNoDir},
		{"directory", []Path{{"out", "sub"}}, ErrIsDir},
		{"trailing slash", []Path{{"out", "new/"}}, ErrIsDir},
		{"device node", []Path{{"out", os.DevNull}}, ErrNotRegular},
		{"dangling symlink", []Path{{"out", "dangling.npy"}}, ErrNotRegular},
		{"output is the input", []Path{{"out", in}}, ErrSameFile},
		{"output is the input spelled differently", []Path{{"out", "./q.npy"}}, ErrSameFile},
		{"output is a symlink to the input", []Path{{"out", "link-to-q.npy"}}, ErrSameFile},
		{"output is a hard link to the input", []Path{{"out", "hard-q.npy"}}, ErrSameFile},
		{"two new outputs, two spellings", []Path{{"out", "x.npy"}, {"lse", "./x.npy"}}, ErrSameFile},
		{"two new outputs through a symlinked directory", []Path{{"out", "sub/x.npy"}, {"lse", "sublink/x.npy"}}, ErrSameFile},
		{"two existing outputs, two spellings", []Path{{"out", old}, {"lse", "./o.npy"}}, ErrSameFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(inputs, tt.outs)
			if tt.want == nil {
				assert.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.want)
			var e *Error
			require.ErrorAs(t, err, &e)
			assert.Contains(t, err.Error(), "--"+e.Flag, "the error names the flag")
		})
	}
	assert.Equal(t, "input", read(t, in))
	assert.Equal(t, "old output", read(t, old))
}

// TestWriteAllFailedWriteKeepsEverything: a later output that fails to
// write leaves every earlier target as it was (an old file intact, a new
// one absent) and no temporary file.
func TestWriteAllFailedWriteKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	old := put(t, dir, "o.npy", "old output")
	fresh := filepath.Join(dir, "lse.npy")
	boom := errors.New("disk full")
	err := WriteAll([]Output{
		text("out", old, "new output"),
		text("lse", fresh, "new lse"),
		{Path: Path{"dq", filepath.Join(dir, "dq.npy")}, Write: func(io.Writer) error { return boom }},
	})
	require.ErrorIs(t, err, boom)
	assert.ErrorContains(t, err, "--dq")
	assert.Equal(t, "old output", read(t, old))
	assert.NoFileExists(t, fresh)
	assert.Equal(t, []string{"o.npy"}, entries(t, dir))
}

// TestWriteAllFailedRenameRollsBack: a rename that fails after earlier ones
// succeeded puts the earlier targets back: the old file from its backup,
// and no file where there was none.
func TestWriteAllFailedRenameRollsBack(t *testing.T) {
	dir := t.TempDir()
	old := put(t, dir, "o.npy", "old output")
	fresh := filepath.Join(dir, "lse.npy")
	last := put(t, dir, "dq.npy", "old dq")
	boom := errors.New("injected rename failure")
	n := 0
	w := writer{rename: func(a, b string) error {
		n++
		if n == 3 { // the third output's rename
			return boom
		}
		return os.Rename(a, b)
	}}
	err := w.writeAll([]Output{text("out", old, "new output"), text("lse", fresh, "new lse"), text("dq", last, "new dq")})
	require.ErrorIs(t, err, boom)
	assert.Equal(t, "old output", read(t, old))
	assert.NoFileExists(t, fresh)
	assert.Equal(t, "old dq", read(t, last))
	assert.ElementsMatch(t, []string{"o.npy", "dq.npy"}, entries(t, dir))
}

// TestWriteAllSuccess: all outputs are written, a symlinked target keeps
// its link and gets the new content, an existing file keeps its mode, and
// nothing else is left in the directory.
func TestWriteAllSuccess(t *testing.T) {
	dir := t.TempDir()
	old := put(t, dir, "o.npy", "old output")
	real := put(t, dir, "real.npy", "old real")
	link := filepath.Join(dir, "link.npy")
	require.NoError(t, os.Symlink("real.npy", link))
	require.NoError(t, WriteAll([]Output{text("out", old, "new output"), text("lse", link, "via link"), text("dq", filepath.Join(dir, "dq.npy"), "dq")}))
	assert.Equal(t, "new output", read(t, old))
	assert.Equal(t, "via link", read(t, real))
	li, err := os.Lstat(link)
	require.NoError(t, err)
	assert.NotZero(t, li.Mode()&fs.ModeSymlink, "the link stays a link")
	st, err := os.Stat(old)
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o640), st.Mode().Perm(), "mode kept")
	st, err = os.Stat(filepath.Join(dir, "dq.npy"))
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o644), st.Mode().Perm())
	assert.ElementsMatch(t, []string{"o.npy", "real.npy", "link.npy", "dq.npy"}, entries(t, dir))
}

// TestWriteAllRefusesDeviceNode: /dev/null is refused, not replaced.
func TestWriteAllRefusesDeviceNode(t *testing.T) {
	err := WriteAll([]Output{text("out", os.DevNull, "x")})
	require.ErrorIs(t, err, ErrNotRegular)
	st, err := os.Stat(os.DevNull)
	require.NoError(t, err)
	assert.NotZero(t, st.Mode()&fs.ModeCharDevice, "still a device")
}
