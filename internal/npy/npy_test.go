package npy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"codeberg.org/sbinet/npyio/npy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rawNPY builds a version 1.0 .npy file by hand, independently of the
// package's writer, so tests can describe any header.
func rawNPY(dict string, data []byte) []byte {
	var b bytes.Buffer
	b.WriteString("\x93NUMPY\x01\x00")
	pad := 64 - (10+len(dict)+1)%64
	hdr := dict + strings.Repeat(" ", pad%64) + "\n"
	b.Write(binary.LittleEndian.AppendUint16(nil, uint16(len(hdr))))
	b.WriteString(hdr)
	b.Write(data)
	return b.Bytes()
}

func writeFile(t *testing.T, name string, content []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, content, 0o644))
	return path
}

// libWrite writes v with npyio, the independent writer.
func libWrite(t *testing.T, name string, v any) string {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, npy.Write(&b, v))
	return writeFile(t, name, b.Bytes())
}

func TestWriteReadRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name  string
		shape []int
	}{
		{"3-d", []int{5, 3, 8}},
		{"vector", []int{7}},
		{"scalar", []int{}},
		{"empty", []int{0, 4}},
		{"long header", []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := 1
			for _, d := range tt.shape {
				n *= d
			}
			data := make([]float32, n)
			for i := range data {
				data[i] = float32(rng.NormFloat64())
			}
			path := filepath.Join(t.TempDir(), "x.npy")
			require.NoError(t, WriteFloat32(path, data, tt.shape))

			got, shape, err := ReadFloat32(path)
			require.NoError(t, err)
			assert.Equal(t, tt.shape, shape)
			assert.Equal(t, len(data), len(got))
			assert.Equal(t, data, got[:len(data):len(data)])

			// The file is a valid .npy for the library too, with the data
			// 64-byte aligned.
			raw, err := os.ReadFile(path)
			require.NoError(t, err)
			r, err := npy.NewReader(bytes.NewReader(raw))
			require.NoError(t, err)
			assert.Equal(t, "'<f4'", r.Header.Descr.Type)
			assert.False(t, r.Header.Descr.Fortran)
			if len(tt.shape) > 0 {
				assert.Equal(t, tt.shape, r.Header.Descr.Shape)
			}
			assert.Zero(t, (len(raw)-4*n)%64, "data offset not 64-byte aligned")
			var lib []float32
			require.NoError(t, r.Read(&lib))
			assert.Equal(t, data, lib[:n:n])
		})
	}
}

func TestWriteReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "o.npy")
	require.NoError(t, WriteFloat32(path, []float32{1, 2, 3}, []int{3}))
	require.NoError(t, WriteFloat32(path, []float32{4, 5}, []int{1, 2}))
	got, shape, err := ReadFloat32(path)
	require.NoError(t, err)
	assert.Equal(t, []float32{4, 5}, got)
	assert.Equal(t, []int{1, 2}, shape)

	// A failed write leaves the old file intact and no temporary file.
	err = WriteFloat32(path, []float32{1, 2, 3}, []int{2, 2})
	assert.EqualError(t, err, "npy: "+path+": shape [2 2] holds 4 elements, data has 3")
	got, _, err = ReadFloat32(path)
	require.NoError(t, err)
	assert.Equal(t, []float32{4, 5}, got)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1)
}

func TestWriteErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		path    string
		data    []float32
		shape   []int
		wantErr string
	}{
		{"shape mismatch", filepath.Join(dir, "a.npy"), make([]float32, 6), []int{2, 4}, "shape [2 4] holds 8 elements, data has 6"},
		{"negative dim", filepath.Join(dir, "b.npy"), nil, []int{3, -1}, "bad shape [3 -1]: dimension 1 is negative"},
		{"overflowing shape", filepath.Join(dir, "c.npy"), nil, []int{1 << 40, 1 << 40}, "too many elements"},
		{"missing directory", filepath.Join(dir, "nope", "d.npy"), []float32{1}, []int{1}, "no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := WriteFloat32(tt.path, tt.data, tt.shape)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "npy: "+tt.path+": ")
			assert.Contains(t, err.Error(), tt.wantErr)
			_, statErr := os.Stat(tt.path)
			assert.True(t, errors.Is(statErr, fs.ErrNotExist), "file was created")
		})
	}
}

func TestReadFloat32Converts(t *testing.T) {
	wide := [][]float64{{1.5, -2.25, 1e-3}, {3, math.Inf(-1), 1e30}}
	path := libWrite(t, "f8.npy", wide)
	got, shape, err := ReadFloat32(path)
	require.NoError(t, err)
	assert.Equal(t, []int{2, 3}, shape)
	assert.Equal(t, []float32{1.5, -2.25, 1e-3, 3, float32(math.Inf(-1)), 1e30}, got)

	path = libWrite(t, "big.npy", []float64{1, 1e300})
	_, _, err = ReadFloat32(path)
	assert.EqualError(t, err, "npy: "+path+": element 1 = 1e+300 overflows float32")
}

func TestReadFloat32BigEndian(t *testing.T) {
	var data []byte
	for _, x := range []float32{1, -2, 0.5} {
		data = binary.BigEndian.AppendUint32(data, math.Float32bits(x))
	}
	path := writeFile(t, "be.npy", rawNPY("{'descr': '>f4', 'fortran_order': False, 'shape': (3,), }", data))
	got, shape, err := ReadFloat32(path)
	require.NoError(t, err)
	assert.Equal(t, []int{3}, shape)
	assert.Equal(t, []float32{1, -2, 0.5}, got)
}

func TestReadInt32Converts(t *testing.T) {
	tests := []struct {
		name    string
		v       any
		want    []int32
		wantErr string
	}{
		{"int32", []int32{0, 5, -9}, []int32{0, 5, -9}, ""},
		{"int64", []int64{0, 3, 3, 7}, []int32{0, 3, 3, 7}, ""},
		{"uint32", []uint32{0, 1 << 20}, []int32{0, 1 << 20}, ""},
		{"uint8", []uint8{0, 255}, []int32{0, 255}, ""},
		{"int16", []int16{-300, 4}, []int32{-300, 4}, ""},
		{"uint64", []uint64{0, 9}, []int32{0, 9}, ""},
		{"int64 too large", []int64{0, 1 << 31}, nil, "element 1 = 2147483648 overflows int32"},
		{"int64 too small", []int64{-1 << 40}, nil, "element 0 = -1099511627776 overflows int32"},
		{"uint32 too large", []uint32{1 << 31}, nil, "element 0 = 2147483648 overflows int32"},
		{"uint64 huge", []uint64{math.MaxUint64}, nil, "element 0 = 18446744073709551615 overflows int32"},
		{"float", []float32{1}, nil, "dtype '<f4' (float32) is not an integer type"},
		{"bool", []bool{true}, nil, "dtype '|b1' (bool) is not an integer type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := libWrite(t, "i.npy", tt.v)
			got, shape, err := ReadInt32(path)
			if tt.wantErr != "" {
				assert.EqualError(t, err, "npy: "+path+": "+tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, []int{len(tt.want)}, shape)
		})
	}
}

func TestReadErrors(t *testing.T) {
	f4 := func(n int) []byte { return make([]byte, 4*n) }
	good := rawNPY("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f4(6))
	tests := []struct {
		name    string
		content []byte
		wantErr string
	}{
		{"empty file", nil, "not a NumPy .npy file"},
		{"bad magic", append([]byte("PK\x03\x04"), good[4:]...), "not a NumPy .npy file"},
		{"truncated header", good[:40], "truncated header"},
		{"truncated data", good[:len(good)-3], "data is 21 bytes, want 6 elements of 4 bytes for shape [2 3] (truncated or corrupt file)"},
		{"missing element", good[:len(good)-4], "data is 20 bytes, want 6 elements"},
		{"trailing bytes", append(append([]byte{}, good...), 0, 0, 0, 0), "data is 28 bytes"},
		{"bad version", append([]byte("\x93NUMPY\x07\x00"), good[8:]...), "unsupported .npy format version 7.0"},
		{"huge header length", []byte("\x93NUMPY\x02\x00\xff\xff\xff\xff{}"), "truncated header"},
		{"garbled dictionary", rawNPY("{'descr': '<f4'}", f4(1)), "bad header"},
		{"unparseable shape", rawNPY("{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", f4(2)), "bad header"},
		{"huge shape", rawNPY("{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 4), }", f4(2)), "data is 8 bytes, want 4398046511104 elements"},
		{"overflowing shape", rawNPY("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", f4(2)), "too many elements"},
		{"negative shape", rawNPY("{'descr': '<f4', 'fortran_order': False, 'shape': (-2, 3), }", f4(2)), "dimension 0 is negative"},
		{"complex dtype", rawNPY("{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", f4(4)), "dtype '<c8' (complex64) is not float32 or float64"},
		{"bool dtype", rawNPY("{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }", make([]byte, 2)), "dtype '|b1' (bool) is not float32 or float64"},
		{"string dtype", rawNPY("{'descr': '<U3', 'fortran_order': False, 'shape': (1,), }", make([]byte, 12)), "is not float32 or float64"},
		{"unknown dtype", rawNPY("{'descr': '<z9', 'fortran_order': False, 'shape': (1,), }", f4(1)), "unsupported dtype '<z9'"},
		{"fortran order", rawNPY("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", f4(6)), "Fortran-order array of shape [2 3]; only C order is supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "q.npy", tt.content)
			var err error
			assert.NotPanics(t, func() { _, _, err = ReadFloat32(path) })
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), "npy: "+path+": "), "error %q does not name the file", err)
			assert.Contains(t, err.Error(), tt.wantErr)
			assert.NotPanics(t, func() { _, _, err = ReadInt32(path) })
			assert.Error(t, err)
		})
	}
}

func TestReadFortranVector(t *testing.T) {
	// A 1-d array is laid out the same in either order.
	data := binary.LittleEndian.AppendUint32(nil, math.Float32bits(2.5))
	path := writeFile(t, "v.npy", rawNPY("{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }", data))
	got, _, err := ReadFloat32(path)
	require.NoError(t, err)
	assert.Equal(t, []float32{2.5}, got)
}

func TestReadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.npy")
	_, _, err := ReadFloat32(path)
	require.Error(t, err)
	assert.True(t, errors.Is(err, fs.ErrNotExist))
	assert.Equal(t, "npy: "+path+": no such file or directory", err.Error())
	_, _, err = ReadInt32(t.TempDir())
	assert.ErrorContains(t, err, "is a directory")
}

// FuzzReadFloat32 checks that no file content makes the reader panic.
func FuzzReadFloat32(f *testing.F) {
	f.Add(rawNPY("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", make([]byte, 24)))
	f.Add(rawNPY("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", make([]byte, 16)))
	f.Add([]byte("\x93NUMPY\x01\x00\x05\x00{}  \n"))
	f.Fuzz(func(t *testing.T, content []byte) {
		path := filepath.Join(t.TempDir(), "f.npy")
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
		data, shape, err := ReadFloat32(path)
		if err == nil {
			n := 1
			for _, d := range shape {
				n *= d
			}
			if n != len(data) {
				t.Fatalf("shape %v does not match %d elements", shape, len(data))
			}
		}
		_, _, _ = ReadInt32(path)
	})
}
