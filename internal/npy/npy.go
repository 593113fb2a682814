// Package npy reads and writes the NumPy .npy tensors that the coreattn
// command line exchanges: float32 tensors and int32 offset vectors.
//
// Reading goes through codeberg.org/sbinet/npyio after the file's preamble,
// shape and size have been checked, so a corrupt or truncated file is an
// error rather than a panic or a huge allocation. Writing emits the
// documented version 1.0 header itself and the data with encoding/binary:
// npyio can only write the shape of a Go value (not a flat slice with an
// N-d shape) and converts element by element through reflection, which
// takes seconds for an attention-sized tensor.
package npy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"codeberg.org/sbinet/npyio/npy"
)

// magic opens every .npy file.
const magic = "\x93NUMPY"

// maxElements bounds the element count a file may declare.
const maxElements = math.MaxInt

// ReadFloat32 reads a float32 tensor in C order, returning its data and
// shape. float64 files are converted; a finite value out of float32 range
// is an error.
func ReadFloat32(path string) (data []float32, shape []int, err error) {
	err = read(path, "float32 or float64", func(t reflect.Type) bool {
		return t == reflect.TypeFor[float32]() || t == reflect.TypeFor[float64]()
	}, func(r *npy.Reader, t reflect.Type, n int) error {
		if t == reflect.TypeFor[float32]() {
			data = make([]float32, n)
			return r.Read(&data)
		}
		wide := make([]float64, n)
		if err := r.Read(&wide); err != nil {
			return err
		}
		data = make([]float32, n)
		for i, x := range wide {
			data[i] = float32(x)
			if math.IsInf(float64(data[i]), 0) && !math.IsInf(x, 0) {
				return fmt.Errorf("element %d = %g overflows float32", i, x)
			}
		}
		return nil
	}, &shape)
	if err != nil {
		return nil, nil, err
	}
	return data, shape, nil
}

// ReadInt32 reads an integer tensor in C order, returning its data and
// shape. Other integer types are converted; a value out of int32 range is
// an error.
func ReadInt32(path string) (data []int32, shape []int, err error) {
	err = read(path, "an integer type", func(t reflect.Type) bool {
		switch t.Kind() {
		case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			return t.PkgPath() == ""
		}
		return false
	}, func(r *npy.Reader, t reflect.Type, n int) error {
		var err error
		switch t.Kind() {
		case reflect.Int8:
			data, err = readInts[int8](r, n)
		case reflect.Int16:
			data, err = readInts[int16](r, n)
		case reflect.Int32:
			data = make([]int32, n)
			err = r.Read(&data)
		case reflect.Int64:
			data, err = readInts[int64](r, n)
		case reflect.Uint8:
			data, err = readInts[uint8](r, n)
		case reflect.Uint16:
			data, err = readInts[uint16](r, n)
		case reflect.Uint32:
			data, err = readInts[uint32](r, n)
		case reflect.Uint64:
			data, err = readInts[uint64](r, n)
		}
		return err
	}, &shape)
	if err != nil {
		return nil, nil, err
	}
	return data, shape, nil
}

// readInts reads n integers of type T and converts them to int32.
func readInts[T int8 | int16 | int64 | uint8 | uint16 | uint32 | uint64](r *npy.Reader, n int) ([]int32, error) {
	wide := make([]T, n)
	if err := r.Read(&wide); err != nil {
		return nil, err
	}
	out := make([]int32, n)
	for i, x := range wide {
		y := int32(x)
		if T(y) != x || (y < 0) != (x < 0) {
			return nil, fmt.Errorf("element %d = %d overflows int32", i, x)
		}
		out[i] = y
	}
	return out, nil
}

// read opens path, checks its preamble, header, dtype (with accept, wanted
// naming the accepted types) and size, and calls decode to read the n
// elements. It turns any panic of the library into an error.
func read(path, wanted string, accept func(reflect.Type) bool, decode func(r *npy.Reader, t reflect.Type, n int) error, shape *[]int) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("npy: %s: corrupt file: %v", path, p)
		}
	}()
	fail := func(format string, args ...any) error {
		return fmt.Errorf("npy: %s: "+format, append([]any{path}, args...)...)
	}
	f, err := os.Open(path)
	if err != nil {
		return fail("%w", pathErr(err))
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fail("%w", pathErr(err))
	}
	if info.IsDir() {
		return fail("is a directory")
	}
	size := info.Size()

	var pre [12]byte
	if _, err := io.ReadFull(f, pre[:min(int64(len(pre)), size)]); err != nil {
		return fail("%w", err)
	}
	if size < 10 || string(pre[:len(magic)]) != magic {
		return fail("not a NumPy .npy file (no \\x93NUMPY magic)")
	}
	var dataOff int64
	switch major, minor := pre[6], pre[7]; major {
	case 1:
		dataOff = 10 + int64(binary.LittleEndian.Uint16(pre[8:]))
	case 2, 3:
		if size < 12 {
			return fail("truncated header")
		}
		dataOff = 12 + int64(binary.LittleEndian.Uint32(pre[8:]))
	default:
		return fail("unsupported .npy format version %d.%d", major, minor)
	}
	if dataOff > size {
		return fail("truncated header: it needs %d bytes, the file has %d", dataOff, size)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fail("%w", err)
	}
	r, err := npy.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return fail("bad header: %v", err)
	}
	hdr := r.Header.Descr
	dtype, err := typeFrom(hdr.Type)
	if err != nil {
		return fail("unsupported dtype %s (want %s): %v", hdr.Type, wanted, err)
	}
	if !accept(dtype) {
		return fail("dtype %s (%v) is not %s", hdr.Type, dtype, wanted)
	}
	n := int64(1)
	for i, d := range hdr.Shape {
		if d < 0 {
			return fail("bad shape %v: dimension %d is negative", hdr.Shape, i)
		}
		if d != 0 && n > maxElements/int64(d) {
			return fail("bad shape %v: too many elements", hdr.Shape)
		}
		n *= int64(d)
	}
	if hdr.Fortran && len(hdr.Shape) > 1 {
		return fail("Fortran-order array of shape %v; only C order is supported (save np.ascontiguousarray(x))", hdr.Shape)
	}
	esize := int64(dtype.Size())
	if body := size - dataOff; body%esize != 0 || body/esize != n {
		return fail("data is %d bytes, want %d elements of %d bytes for shape %v (truncated or corrupt file)", body, n, esize, hdr.Shape)
	}
	if err := decode(r, dtype, int(n)); err != nil {
		return fail("%w", err)
	}
	*shape = append([]int{}, hdr.Shape...)
	return nil
}

// typeFrom returns the Go type of a header's dtype, turning the library's
// panic on an unknown dtype into an error.
func typeFrom(dtype string) (t reflect.Type, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	return npy.TypeFrom(dtype), nil
}

// pathErr strips the operation and path from an *fs.PathError, which the
// caller's message already names, keeping the cause for errors.Is.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// WriteFloat32 writes data as a little-endian float32 tensor of the given
// shape, whose product must equal len(data). It writes a temporary file in
// the same directory and renames it over path, so a failure never leaves a
// partly written file behind.
func WriteFloat32(path string, data []float32, shape []int) (err error) {
	n := 1
	for i, d := range shape {
		if d < 0 {
			return fmt.Errorf("npy: %s: bad shape %v: dimension %d is negative", path, shape, i)
		}
		if d != 0 && n > maxElements/d {
			return fmt.Errorf("npy: %s: bad shape %v: too many elements", path, shape)
		}
		n *= d
	}
	if n != len(data) {
		return fmt.Errorf("npy: %s: shape %v holds %d elements, data has %d", path, shape, n, len(data))
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("npy: %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
			err = fmt.Errorf("npy: %s: %w", path, err)
		}
	}()
	w := bufio.NewWriterSize(f, 1<<20)
	if err := writeHeader(w, "<f4", shape); err != nil {
		return err
	}
	if err := writeData(w, data); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// writeHeader writes the magic, version and header dictionary, padded with
// spaces and a newline so that the data starts at a multiple of 64 bytes.
func writeHeader(w io.Writer, descr string, shape []int) error {
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = strconv.Itoa(d)
	}
	tuple := "(" + strings.Join(dims, ", ") + ")"
	if len(shape) == 1 {
		tuple = "(" + dims[0] + ",)"
	}
	dict := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, tuple)

	var buf bytes.Buffer
	buf.WriteString(magic)
	pre := 10 // magic, version, uint16 length
	if len(dict)+1+64 > math.MaxUint16 {
		pre = 12 // version 2.0 has a uint32 length
	}
	total := (pre + len(dict) + 1 + 63) / 64 * 64
	hlen := total - pre
	if pre == 10 {
		buf.Write([]byte{1, 0})
		buf.Write(binary.LittleEndian.AppendUint16(nil, uint16(hlen)))
	} else {
		buf.Write([]byte{2, 0})
		buf.Write(binary.LittleEndian.AppendUint32(nil, uint32(hlen)))
	}
	buf.WriteString(dict)
	buf.WriteString(strings.Repeat(" ", hlen-len(dict)-1))
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// writeData writes data as little-endian float32, a chunk at a time.
func writeData(w io.Writer, data []float32) error {
	const chunk = 1 << 14
	buf := make([]byte, 0, 4*chunk)
	for len(data) > 0 {
		m := min(len(data), chunk)
		buf = buf[:0]
		for _, x := range data[:m] {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(x))
		}
		if _, err := w.Write(buf); err != nil {
			return err
		}
		data = data[m:]
	}
	return nil
}
