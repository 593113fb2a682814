package corpus

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeTree creates files (relative path -> content) below a new directory.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	return root
}

// latin1 is text with one byte in 200 that is not UTF-8: kept.
var latin1 = strings.Repeat("caf\xe9 au lait, ", 15) + strings.Repeat("x", 3000)

func TestLoadDir(t *testing.T) {
	root := writeTree(t, map[string]string{
		"a.txt":            "first document\n",
		"sub/b.txt":        "second document, in a subdirectory\n",
		"sub/deeper/c.md":  "# third\n",
		"latin1.txt":       latin1,
		"nul.bin":          "text with a \x00 NUL byte",
		"invalid.txt":      "\xff\xfe\xfa not UTF-8 at all \xc3\x28\xa0\xa1",
		"empty.txt":        "",
		"big.txt":          strings.Repeat("y", 5000),
		".hidden/skip.txt": "hidden directories are left out",
		".dotfile":         "hidden files too",
	})
	require.NoError(t, os.Symlink(filepath.Join(root, "gone.txt"), filepath.Join(root, "broken.txt")))
	require.NoError(t, os.Symlink(filepath.Join(root, "sub"), filepath.Join(root, "linkdir")))
	require.NoError(t, os.Symlink(filepath.Join(root, "a.txt"), filepath.Join(root, "z-link.txt")))

	c, err := Load(context.Background(), root, Options{MaxFileBytes: 4096})
	require.NoError(t, err)

	var paths []string
	for _, d := range c.Train {
		paths = append(paths, d.Path)
	}
	assert.Equal(t, []string{"a.txt", "latin1.txt", "sub/b.txt", "sub/deeper/c.md", "z-link.txt"}, paths)
	assert.Empty(t, c.Val)
	assert.Equal(t, map[Reason]int{Binary: 2, Empty: 1, TooLarge: 1, Unreadable: 1, NotRegular: 1}, c.Stats.Skipped)
	skipped := map[string]Reason{}
	for _, s := range c.Stats.Skips {
		skipped[s.Path] = s.Reason
	}
	assert.Equal(t, map[string]Reason{
		"nul.bin": Binary, "invalid.txt": Binary, "empty.txt": Empty,
		"big.txt": TooLarge, "broken.txt": Unreadable, "linkdir": NotRegular,
	}, skipped)
	assert.Equal(t, 5, c.Stats.Files)
	var total int64
	for _, d := range c.Train {
		total += int64(len(d.Data))
	}
	assert.Equal(t, total, c.Stats.Bytes)
	assert.Equal(t, Count{Docs: 5, Bytes: total}, c.Stats.Train)
	assert.Equal(t, "first document\n", string(c.Train[0].Data))
	assert.Contains(t, c.Stats.String(), "6 skipped")

	// The same paths however the root is spelled.
	wd, err := os.Getwd()
	require.NoError(t, err)
	t.Chdir(root)
	for _, spelling := range []string{".", "./", root + "/", "../" + filepath.Base(root)} {
		again, err := Load(context.Background(), spelling, Options{MaxFileBytes: 4096})
		require.NoError(t, err, spelling)
		assert.Equal(t, c.Train, again.Train, spelling)
		assert.Equal(t, c.Identity.SHA256, again.Identity.SHA256, spelling)
	}
	t.Chdir(wd)

	only, err := Load(context.Background(), root, Options{Exts: []string{".md"}})
	require.NoError(t, err)
	require.Len(t, only.Train, 1)
	assert.Equal(t, "sub/deeper/c.md", only.Train[0].Path)
}

func TestLoadErrors(t *testing.T) {
	ctx := context.Background()
	binaries := writeTree(t, map[string]string{"x.bin": "\x00\x01\x02", "y.txt": ""})
	t.Run("empty corpus", func(t *testing.T) {
		_, err := Load(ctx, binaries, Options{})
		require.ErrorIs(t, err, ErrEmpty)
		var ee *EmptyError
		require.ErrorAs(t, err, &ee)
		assert.Equal(t, 1, ee.Stats.Skipped[Binary])
		assert.Equal(t, 1, ee.Stats.Skipped[Empty])
		assert.NotContains(t, err.Error(), "\n")
	})
	t.Run("everything held out", func(t *testing.T) {
		_, err := Load(ctx, "testdata/docs", Options{ValPercent: 100})
		require.ErrorIs(t, err, ErrEmpty)
	})
	t.Run("missing source", func(t *testing.T) {
		_, err := Load(ctx, filepath.Join(binaries, "nope"), Options{})
		require.ErrorIs(t, err, os.ErrNotExist)
	})
	t.Run("total limit names the file", func(t *testing.T) {
		_, err := Load(ctx, "testdata/docs", Options{MaxTotalBytes: 1000})
		var le *LimitError
		require.ErrorAs(t, err, &le)
		assert.Equal(t, int64(1000), le.Limit)
		assert.FileExists(t, le.Path)
	})
	for _, o := range []Options{{ValPercent: -1}, {ValPercent: 101}, {MaxDoc: -5}, {MaxFileBytes: -1}} {
		_, err := Load(ctx, "testdata/docs", o)
		assert.ErrorIs(t, err, ErrBadOption, "%+v", o)
	}
	t.Run("canceled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := Load(cctx, "testdata/docs", Options{})
		require.ErrorIs(t, err, context.Canceled)
	})
}

func TestLoadJSONL(t *testing.T) {
	long := `{"text": "` + strings.Repeat("z", 300) + `"}`
	good := strings.Join([]string{
		`{"text": "one", "id": 1}`,
		``,
		`{"id": 2}`,
		`{"text": null}`,
		`{"text": ""}`,
		`{"text": "nul \u0000 inside"}`,
		long,
		"  {\"text\": \"two\\nlines\"}\r",
		`{"text": "last, no newline"}`,
	}, "\n")
	p := filepath.Join(t.TempDir(), "data.jsonl")
	require.NoError(t, os.WriteFile(p, []byte(good), 0o644))
	c, err := Load(context.Background(), p, Options{MaxFileBytes: 200})
	require.NoError(t, err)
	var got []string
	for _, d := range c.Train {
		got = append(got, d.Path+"="+string(d.Data))
	}
	assert.Equal(t, []string{"data.jsonl:1=one", "data.jsonl:8=two\nlines", "data.jsonl:9=last, no newline"}, got)
	assert.Equal(t, map[Reason]int{NoText: 3, Binary: 1, TooLarge: 1}, c.Stats.Skipped)
	assert.Equal(t, "data.jsonl:7", c.Stats.Skips[len(c.Stats.Skips)-1].Path)

	bad := []struct {
		name, line string
	}{
		{"not JSON", `{"text": "unterminated`},
		{"an array", `["text", "x"]`},
		{"a string", `"just a string"`},
		{"text is a number", `{"text": 42}`},
		{"text is an object", `{"text": {"a": 1}}`},
		{"trailing garbage", `{"text": "a"} x`},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "bad.jsonl")
			require.NoError(t, os.WriteFile(p, []byte(`{"text": "fine"}`+"\n\n"+tc.line+"\n"), 0o644))
			_, err := Load(context.Background(), p, Options{})
			var le *LineError
			require.ErrorAs(t, err, &le)
			assert.Equal(t, 3, le.Line)
			assert.Equal(t, p, le.Path)
			assert.Contains(t, err.Error(), "bad.jsonl:3: ")
			assert.NotContains(t, err.Error(), "\n")
		})
	}
}

func TestSplit(t *testing.T) {
	// fnv1a64 written out, independently of hash/fnv.
	fnv := func(s string) uint64 {
		h := uint64(14695981039346656037)
		for i := 0; i < len(s); i++ {
			h ^= uint64(s[i])
			h *= 1099511628211
		}
		return h
	}
	for _, p := range []string{"", "a", "net/http/server.go", "data.jsonl:17", "ünïcode/ök.go"} {
		for _, pct := range []int{0, 2, 50, 100} {
			assert.Equal(t, fnv(p)%100 < uint64(pct), InValidation(p, pct), "%q %d", p, pct)
		}
	}

	ctx := context.Background()
	files := map[string]string{}
	for i := range 300 {
		files[filepath.Join("d", string(rune('a'+i%26)), strings.Repeat("f", 1+i/26)+".txt")] = strings.Repeat("text ", 1+i%7)
	}
	root := writeTree(t, files)
	c, err := Load(ctx, root, Options{ValPercent: 20})
	require.NoError(t, err)
	train, val := pathSet(c.Train), pathSet(c.Val)
	for p := range val {
		assert.NotContains(t, train, p, "in both sides")
		assert.True(t, InValidation(p, 20))
	}
	assert.Equal(t, 300, len(train)+len(val))
	assert.InDelta(t, 60, len(val), 25, "about 20%% held out")

	// Stable: another file changes no other document's side.
	require.NoError(t, os.WriteFile(filepath.Join(root, "new.txt"), []byte("new"), 0o644))
	c2, err := Load(ctx, root, Options{ValPercent: 20})
	require.NoError(t, err)
	v2 := pathSet(c2.Val)
	delete(v2, "new.txt")
	assert.Equal(t, val, v2)
	assert.NotEqual(t, c.Identity.SHA256, c2.Identity.SHA256)
}

func pathSet(docs []Doc) map[string]bool {
	s := map[string]bool{}
	for _, d := range docs {
		s[d.Path] = true
	}
	return s
}

func TestCut(t *testing.T) {
	data := []byte("0123456789abcdefghij")
	for _, tc := range []struct {
		max  int
		lens []int
	}{
		{0, []int{20}}, {20, []int{20}}, {25, []int{20}}, {7, []int{7, 7, 6}}, {5, []int{5, 5, 5, 5}}, {1, slices.Repeat([]int{1}, 20)},
	} {
		pieces := Cut(Doc{Path: "p", Data: data}, tc.max)
		var lens []int
		var joined []byte
		for i, p := range pieces {
			lens = append(lens, len(p.Data))
			joined = append(joined, p.Data...)
			assert.Equal(t, i, p.Piece)
			assert.Equal(t, "p", p.Path)
		}
		assert.Equal(t, tc.lens, lens, "max %d", tc.max)
		assert.Equal(t, data, joined)
	}
	// Pieces cannot grow into their neighbour.
	pieces := Cut(Doc{Data: bytes.Clone(data)}, 7)
	_ = append(pieces[0].Data, 'X')
	assert.Equal(t, byte('7'), pieces[1].Data[0])
}

func TestLoadCutsAndIdentity(t *testing.T) {
	ctx := context.Background()
	whole, err := Load(ctx, "testdata/docs", Options{ValPercent: 30})
	require.NoError(t, err)
	cut, err := Load(ctx, "testdata/docs", Options{ValPercent: 30, MaxDoc: 100})
	require.NoError(t, err)
	assert.Equal(t, whole.Identity.SHA256, cut.Identity.SHA256, "the hash covers the files, not the cutting")
	assert.Equal(t, 100, cut.Identity.MaxDoc)
	for _, side := range []struct{ whole, cut []Doc }{{whole.Train, cut.Train}, {whole.Val, cut.Val}} {
		var w, c []byte
		for _, d := range side.whole {
			w = append(w, d.Data...)
		}
		for _, d := range side.cut {
			require.LessOrEqual(t, len(d.Data), 100)
			c = append(c, d.Data...)
		}
		assert.Equal(t, w, c, "pieces stay on their document's side, in order")
	}
	assert.Greater(t, len(cut.Train), len(whole.Train))
	assert.Equal(t, whole.Stats.Train.Bytes, cut.Stats.Train.Bytes)
}

func TestLoadGoroot(t *testing.T) {
	if testing.Short() {
		t.Skip("reads the whole Go distribution (90 MB)")
	}
	c, err := Load(context.Background(), "", Options{ValPercent: DefaultValPercent})
	require.NoError(t, err)
	assert.Contains(t, c.Identity.Source, "GOROOT/src")
	assert.Greater(t, c.Stats.Files, 5000)
	frac := float64(c.Stats.Val.Docs) / float64(c.Stats.Files)
	assert.InDelta(t, 0.02, frac, 0.01)
	for _, d := range append(c.Train[:50:50], c.Val...) {
		assert.True(t, strings.HasSuffix(d.Path, ".go"), d.Path)
		assert.False(t, filepath.IsAbs(d.Path))
	}
	l := Lengths(c.Train)
	assert.Greater(t, l.Max, 1<<20, "the long tail")
	assert.Less(t, l.Min, 100)
	t.Logf("%s; lengths: %s", c.Stats, l)
}

func TestLengths(t *testing.T) {
	var docs []Doc
	for _, n := range []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 1000} {
		docs = append(docs, Doc{Data: make([]byte, n)})
	}
	l := Lengths(docs)
	assert.Equal(t, 10, l.N)
	assert.Equal(t, 1, l.Min)
	assert.Equal(t, 1000, l.Max)
	assert.Equal(t, 5, l.P50)
	assert.Equal(t, 9, l.P90)
	assert.Equal(t, 1000, l.P99)
	assert.InDelta(t, 104.5, l.Mean, 1e-9)
	assert.Equal(t, []int{1, 2, 4, 2, 0, 0, 0, 0, 0, 1}, l.Log2Hist)
	assert.Equal(t, int64(1000), l.Top1Percent)
	assert.Equal(t, LengthStats{}, Lengths(nil))
}
