package npy

import (
	"bytes"
	"encoding/binary"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"codeberg.org/sbinet/npyio/npy"

	"github.com/coreattn/coreattn/internal/outfile"
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
	assert.ErrorIs(t, err, ErrShape)
	assert.ErrorContains(t, err, path)
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
		name  string
		path  string
		data  []float32
		shape []int
		want  error
	}{
		{"shape mismatch", filepath.Join(dir, "a.npy"), make([]float32, 6), []int{2, 4}, ErrShape},
		{"negative dim", filepath.Join(dir, "b.npy"), nil, []int{3, -1}, ErrShape},
		{"overflowing shape", filepath.Join(dir, "c.npy"), nil, []int{1 << 40, 1 << 40}, ErrShape},
		{"missing directory", filepath.Join(dir, "nope", "d.npy"), []float32{1}, []int{1}, outfile.ErrNoDir},
		{"directory", dir, []float32{1}, []int{1}, outfile.ErrIsDir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := WriteFloat32(tt.path, tt.data, tt.shape)
			require.ErrorIs(t, err, tt.want)
			assert.Contains(t, err.Error(), tt.path)
			if tt.path != dir {
				_, statErr := os.Stat(tt.path)
				assert.ErrorIs(t, statErr, fs.ErrNotExist, "file was created")
			}
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
	assert.ErrorIs(t, err, ErrRange)
	assert.ErrorContains(t, err, "element 1 = 1e+300")
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
		name string
		v    any
		want []int32
		err  error
	}{
		{"int32", []int32{0, 5, -9}, []int32{0, 5, -9}, nil},
		{"int64", []int64{0, 3, 3, 7}, []int32{0, 3, 3, 7}, nil},
		{"uint32", []uint32{0, 1 << 20}, []int32{0, 1 << 20}, nil},
		{"uint8", []uint8{0, 255}, []int32{0, 255}, nil},
		{"int16", []int16{-300, 4}, []int32{-300, 4}, nil},
		{"uint64", []uint64{0, 9}, []int32{0, 9}, nil},
		{"int64 too large", []int64{0, 1 << 31}, nil, ErrRange},
		{"int64 too small", []int64{-1 << 40}, nil, ErrRange},
		{"uint32 too large", []uint32{1 << 31}, nil, ErrRange},
		{"uint64 huge", []uint64{math.MaxUint64}, nil, ErrRange},
		{"float", []float32{1}, nil, ErrDType},
		{"bool", []bool{true}, nil, ErrDType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := libWrite(t, "i.npy", tt.v)
			got, shape, err := ReadInt32(path)
			if tt.err != nil {
				assert.ErrorIs(t, err, tt.err)
				assert.ErrorContains(t, err, path)
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
		want    error
	}{
		{"empty file", nil, ErrNotNPY},
		{"bad magic", append([]byte("PK\x03\x04"), good[4:]...), ErrNotNPY},
		{"truncated header", good[:40], ErrHeader},
		{"truncated data", good[:len(good)-3], ErrSize},
		{"missing element", good[:len(good)-4], ErrSize},
		{"trailing bytes", append(append([]byte{}, good...), 0, 0, 0, 0), ErrSize},
		{"bad version", append([]byte("\x93NUMPY\x07\x00"), good[8:]...), ErrVersion},
		{"bad minor version", append([]byte("\x93NUMPY\x01\x01"), good[8:]...), ErrVersion},
		{"huge header length", []byte("\x93NUMPY\x02\x00\xff\xff\xff\xff{}"), ErrHeader},
		{"garbled dictionary", rawNPY("{'descr': '<f4'}", f4(1)), ErrHeader},
		{"unparseable shape", rawNPY("{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", f4(2)), ErrHeader},
		{"float dimension", rawNPY("{'descr': '<f4', 'fortran_order': False, 'shape': (2.0,), }", f4(2)), ErrHeader},
		{"list shape", rawNPY("{'descr': '<f4', 'fortran_order': False, 'shape': [2], }", f4(2)), ErrHeader},
		{"extra key", rawNPY("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", f4(2)), ErrHeader},
		{"duplicate key", rawNPY("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", f4(2)), ErrHeader},
		{"fortran_order not a bool", rawNPY("{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}", f4(2)), ErrHeader},
		{"structured dtype", rawNPY("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,)}", f4(2)), ErrHeader},
		{"huge shape", rawNPY("{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 4), }", f4(2)), ErrTooLarge},
		{"overflowing shape", rawNPY("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", f4(2)), ErrTooLarge},
		{"dimension beyond int64", rawNPY("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", f4(2)), ErrShape},
		{"negative shape", rawNPY("{'descr': '<f4', 'fortran_order': False, 'shape': (-2, 3), }", f4(2)), ErrShape},
		{"complex dtype", rawNPY("{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", f4(4)), ErrDType},
		{"bool dtype", rawNPY("{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }", make([]byte, 2)), ErrDType},
		{"string dtype", rawNPY("{'descr': '<U3', 'fortran_order': False, 'shape': (1,), }", make([]byte, 12)), ErrDType},
		{"unknown dtype", rawNPY("{'descr': '<z9', 'fortran_order': False, 'shape': (1,), }", f4(1)), ErrDType},
		{"| on a wide type", rawNPY("{'descr': '|f4', 'fortran_order': False, 'shape': (1,), }", f4(1)), ErrDType},
		{"fortran order", rawNPY("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", f4(6)), ErrShape},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "q.npy", tt.content)
			_, _, err := ReadFloat32(path)
			require.ErrorIs(t, err, tt.want)
			assert.True(t, strings.HasPrefix(err.Error(), "npy: "+path+": "), "error %q does not name the file", err)
			assert.NotContains(t, err.Error(), "\n")
			_, _, err = ReadInt32(path)
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
	assert.ErrorIs(t, err, fs.ErrNotExist)
	assert.Equal(t, "npy: "+path+": no such file or directory", err.Error())
	_, _, err = ReadInt32(t.TempDir())
	assert.ErrorContains(t, err, "is a directory")
}
