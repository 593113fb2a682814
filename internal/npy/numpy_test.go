package npy

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wantFloats and wantInts are what testdata/gen.py stores in a file of n
// elements.
func wantFloats(n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(i)*0.5 - 1
	}
	return out
}

func wantInts(n int) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(i)
	}
	return out
}

// TestReadNumPyFiles reads files written by NumPy (testdata/gen.py, which
// also checks that NumPy loads every one of them): every format version,
// byte order and supported dtype as np.save writes them, and headers that
// NumPy reads but does not write.
func TestReadNumPyFiles(t *testing.T) {
	floats := []struct {
		file  string
		shape []int
	}{
		{"f4_v1.npy", []int{3, 2, 4}},
		{"f4_v2.npy", []int{3, 2, 4}},
		{"f4_v3.npy", []int{3, 2, 4}},
		{"f8.npy", []int{2, 3}},
		{"f2.npy", []int{5}},
		{"f4_be.npy", []int{2, 2}},
		{"f4_scalar.npy", []int{}},
		{"f4_empty.npy", []int{0, 4}},
		{"f4_fortran_1d.npy", []int{6}},
		{"h_key_order.npy", []int{3, 2, 4}},
		{"h_no_spaces.npy", []int{3, 2, 4}},
		{"h_double_quotes.npy", []int{3, 2, 4}},
		{"h_long_dims.npy", []int{3, 2, 4}},
		{"h_spacing.npy", []int{3, 2, 4}},
		{"h_native_order.npy", []int{3, 2, 4}},
		{"h_v3_utf8.npy", []int{3, 2, 4}},
		{"h_v2_reordered.npy", []int{3, 2, 4}},
		{"h_name_descr.npy", []int{3, 2, 4}},
	}
	for _, tt := range floats {
		t.Run(tt.file, func(t *testing.T) {
			data, shape, err := ReadFloat32(filepath.Join("testdata", tt.file))
			require.NoError(t, err)
			assert.Equal(t, tt.shape, shape)
			n := 1
			for _, d := range tt.shape {
				n *= d
			}
			assert.Equal(t, wantFloats(n), data)
		})
	}
	for _, file := range []string{"i1.npy", "i2.npy", "i4.npy", "i8.npy", "u1.npy", "u2.npy", "u4.npy", "u8.npy"} {
		t.Run(file, func(t *testing.T) {
			data, shape, err := ReadInt32(filepath.Join("testdata", file))
			require.NoError(t, err)
			assert.Equal(t, []int{5}, shape)
			assert.Equal(t, wantInts(5), data)
		})
	}
}

// TestRefuseWhatNumPyRefuses reads the headers NumPy refuses, and the
// NumPy files the command cannot use, with typed errors.
func TestRefuseWhatNumPyRefuses(t *testing.T) {
	for _, tt := range []struct {
		file string
		want error
	}{
		{"bad_list_shape.npy", ErrHeader},
		{"bad_extra_key.npy", ErrHeader},
		{"bad_missing_key.npy", ErrHeader},
		{"bad_float_dim.npy", ErrHeader},
		{"bad_order_not_bool.npy", ErrHeader},
		{"f4_fortran_2d.npy", ErrShape},
		{"b1.npy", ErrDType},
		{"c8.npy", ErrDType},
	} {
		t.Run(tt.file, func(t *testing.T) {
			_, _, err := ReadFloat32(filepath.Join("testdata", tt.file))
			assert.ErrorIs(t, err, tt.want)
		})
	}
}

// TestReadLimits: the limits are checked before anything is allocated, for
// a regular file and for a stream of unknown size.
func TestReadLimits(t *testing.T) {
	path := filepath.Join("testdata", "f4_v1.npy")
	_, _, err := Limits{MaxElements: 23, MaxBytes: 1 << 20}.ReadFloat32(path)
	assert.ErrorIs(t, err, ErrTooLarge)
	_, _, err = Limits{MaxElements: 1 << 20, MaxBytes: 95}.ReadFloat32(path)
	assert.ErrorIs(t, err, ErrTooLarge)
	_, _, err = Limits{MaxElements: 24, MaxBytes: 96}.ReadFloat32(path)
	assert.NoError(t, err)

	// A stream (size unknown): the header's shape bounds what is read, and
	// data past it is an error, so an endless stream is refused.
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var shape []int
	var got []float32
	decode := func(r io.Reader, h header, dt dtype, n int) error {
		got, err = decodeFloats(r, dt, n)
		return err
	}
	require.NoError(t, DefaultLimits.read(bytes.NewReader(raw), -1, decode, &shape))
	assert.Equal(t, wantFloats(24), got)
	endless := io.MultiReader(bytes.NewReader(raw), zeros{})
	assert.ErrorIs(t, DefaultLimits.read(endless, -1, decode, &shape), ErrSize)
	assert.ErrorIs(t, DefaultLimits.read(bytes.NewReader(raw[:len(raw)-1]), -1, decode, &shape), ErrSize)
}

// zeros is an endless stream of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// FuzzParseHeader checks the header parser on any text: it never panics
// (nothing recovers one), and a header it accepts means the same once
// written out again by the package's writer.
func FuzzParseHeader(f *testing.F) {
	for _, s := range []string{
		"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2, 4), }",
		"{'shape': (3L,), 'fortran_order': True, 'descr': '=f8'}",
		`{"descr":"|i1","fortran_order":False,"shape":()}`,
		"{ 'descr' : 'float32' , 'fortran_order' : False , 'shape' : ( 1 , ) , }",
		"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}",
		"{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}",
		"{",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		h, err := parseHeader(text)
		if err != nil {
			return
		}
		for _, d := range h.shape {
			if d < 0 {
				t.Fatalf("accepted negative dimension in %q", text)
			}
		}
		if _, err := parseDescr(h.descr); err != nil || h.fortran {
			return
		}
		var b bytes.Buffer
		require.NoError(t, writeHeader(&b, h.descr, h.shape))
		again, err := parseHeader(strings.TrimRight(b.String()[10:], " \n"))
		require.NoError(t, err, "the writer's header of %q", text)
		assert.Equal(t, h, again)
	})
}

// FuzzReadFloat32 checks that no file content makes the reader panic and
// that what it returns matches the shape it reports.
func FuzzReadFloat32(f *testing.F) {
	f.Add(rawNPY("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", make([]byte, 24)))
	f.Add(rawNPY("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", make([]byte, 16)))
	f.Add([]byte("\x93NUMPY\x01\x00\x05\x00{}  \n"))
	f.Fuzz(func(t *testing.T, content []byte) {
		lim := Limits{MaxElements: 1 << 16, MaxBytes: 1 << 20}
		var data []float32
		var shape []int
		err := lim.read(bytes.NewReader(content), int64(len(content)), func(r io.Reader, h header, dt dtype, n int) error {
			if dt.kind != 'f' {
				return ErrDType
			}
			var err error
			data, err = decodeFloats(r, dt, n)
			return err
		}, &shape)
		if err != nil {
			return
		}
		n := 1
		for _, d := range shape {
			n *= d
		}
		if n != len(data) {
			t.Fatalf("shape %v does not match %d elements", shape, len(data))
		}
	})
}
