package corpus

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// packed returns n batches of a packer over the test documents.
func packed(t *testing.T, tokens, n int) []Batch {
	t.Helper()
	p, err := NewPacker(testDocs(t, 0), tokens, 5)
	require.NoError(t, err)
	var out []Batch
	for range n {
		b := p.Next()
		b.Segments = nil // not stored in the file
		out = append(out, b)
	}
	return out
}

func encode(t *testing.T, batches []Batch) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewBatchWriter(&buf)
	for _, b := range batches {
		require.NoError(t, w.Write(b))
	}
	require.NoError(t, w.Flush())
	assert.Equal(t, len(batches), w.Steps())
	return buf.Bytes()
}

func decodeAll(data []byte) ([]Batch, error) {
	r := NewBatchReader(bytes.NewReader(data))
	var out []Batch
	for {
		b, err := r.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, b)
	}
}

func TestBatchFileRoundTrip(t *testing.T) {
	batches := packed(t, 333, 40)
	data := encode(t, batches)

	// The layout, spelled out: per step T, B, B+1 cu_seqlens, T tokens, int32 LE.
	var want []byte
	for _, b := range batches {
		want = binary.LittleEndian.AppendUint32(want, uint32(len(b.Tokens)))
		want = binary.LittleEndian.AppendUint32(want, uint32(len(b.CuSeqlens)-1))
		for _, v := range append(append([]int32{}, b.CuSeqlens...), b.Tokens...) {
			want = binary.LittleEndian.AppendUint32(want, uint32(v))
		}
	}
	assert.Equal(t, want, data)

	got, err := decodeAll(data)
	require.NoError(t, err)
	assert.Equal(t, batches, got)
}

func TestBatchFileMalformed(t *testing.T) {
	batches := packed(t, 64, 3)
	data := encode(t, batches)
	var bounds []int
	off := 0
	for _, b := range batches {
		bounds = append(bounds, off)
		off += 4 * (2 + len(b.CuSeqlens) + len(b.Tokens))
	}
	bounds = append(bounds, off)

	t.Run("truncated anywhere", func(t *testing.T) {
		for cut := 0; cut < len(data); cut++ {
			got, err := decodeAll(data[:cut])
			complete := 0
			for complete+1 < len(bounds) && bounds[complete+1] <= cut {
				complete++
			}
			require.Len(t, got, complete, "cut at %d", cut)
			if cut == bounds[complete] {
				require.NoError(t, err, "cut at a record boundary %d", cut)
				continue
			}
			require.ErrorIs(t, err, ErrTruncated, "cut at %d", cut)
			var fe *FormatError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, complete, fe.Step)
			assert.Equal(t, int64(bounds[complete]), fe.Offset)
		}
	})

	put := func(at int, v int32) []byte {
		d := bytes.Clone(data)
		binary.LittleEndian.PutUint32(d[at:], uint32(v))
		return d
	}
	b1 := bounds[1]
	nb := len(batches[1].CuSeqlens) - 1
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"T zero", put(b1, 0)},
		{"T negative", put(b1, -64)},
		{"T huge", put(b1, 1<<30)},
		{"B zero", put(b1+4, 0)},
		{"B above T", put(b1+4, 65)},
		{"cu_seqlens not from 0", put(b1+8, 1)},
		{"cu_seqlens not to T", put(b1+8+4*nb, 63)},
		{"token above 255", put(b1+8+4*(nb+1), 256)},
		{"token negative", put(b1+8+4*(nb+1)+8, -1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeAll(tc.data)
			assert.Len(t, got, 1, "the good first step is read")
			var fe *FormatError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, 1, fe.Step)
			assert.NotContains(t, err.Error(), "\n")
			assert.True(t, errors.Is(err, ErrBadBatch) || errors.Is(err, ErrTruncated), "%v", err)
		})
	}
	if nb >= 2 {
		_, err := decodeAll(put(b1+8+4, 0)) // an empty first document
		assert.ErrorIs(t, err, ErrBadBatch)
	}

	var buf bytes.Buffer
	err := NewBatchWriter(&buf).Write(Batch{Tokens: []int32{1, 2}, CuSeqlens: []int32{0, 1}})
	assert.ErrorIs(t, err, ErrBadBatch, "the writer checks too")
}

// TestBatchFilePython reads a Go-written batches.bin with the pure-Python
// reader of scripts/coreattn_io.py (the one twin.py uses).
func TestBatchFilePython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	batches := packed(t, 500, 7)
	dir := t.TempDir()
	path := filepath.Join(dir, "batches.bin")
	require.NoError(t, os.WriteFile(path, encode(t, batches), 0o644))
	out, err := exec.Command(py, "../scripts/coreattn_io.py", "batches", path).CombinedOutput()
	require.NoError(t, err, "%s", out)
	// One line per step: T B sum(cu_seqlens) sum(tokens*(i+1)).
	var want strings.Builder
	for _, b := range batches {
		var cs, ts int64
		for _, c := range b.CuSeqlens {
			cs += int64(c)
		}
		for i, v := range b.Tokens {
			ts += int64(v) * int64(i+1)
		}
		want.WriteString(strings.Join([]string{itoa(len(b.Tokens)), itoa(len(b.CuSeqlens) - 1), itoa(int(cs)), itoa(int(ts))}, " ") + "\n")
	}
	assert.Equal(t, want.String(), string(out))

	require.NoError(t, os.WriteFile(path, encode(t, batches)[:100], 0o644))
	out, err = exec.Command(py, "../scripts/coreattn_io.py", "batches", path).CombinedOutput()
	require.Error(t, err, "a truncated file fails in Python too")
	assert.Contains(t, string(out), "truncated")
}

func itoa(n int) string { return strconv.Itoa(n) }

func FuzzBatchReader(f *testing.F) {
	f.Add([]byte{})
	var buf bytes.Buffer
	w := NewBatchWriter(&buf)
	_ = w.Write(Batch{Tokens: []int32{104, 105, 10}, CuSeqlens: []int32{0, 2, 3}})
	_ = w.Flush()
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decodeAll(data)
		for _, b := range got {
			require.NoError(t, b.Check())
		}
		if err != nil {
			var fe *FormatError
			require.ErrorAs(t, err, &fe)
			return
		}
		assert.True(t, bytes.Equal(data, encodeFuzz(got)), "a file read without error writes back the same")
	})
}

func encodeFuzz(batches []Batch) []byte {
	var buf bytes.Buffer
	w := NewBatchWriter(&buf)
	for _, b := range batches {
		if w.Write(b) != nil {
			return nil
		}
	}
	_ = w.Flush()
	return buf.Bytes()
}
