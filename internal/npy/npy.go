// Package npy reads and writes the NumPy .npy tensors that the coreattn
// command line exchanges: float32 tensors and int32 offset vectors.
//
// The reader accepts every header NumPy's own reader accepts (format
// versions 1.0, 2.0 and 3.0, keys in any order, any spacing, either quote,
// trailing commas, Python 2's 12L dimensions, the dtype spellings
// numpy.dtype takes) for the floating-point and integer types, and refuses
// what NumPy refuses. It checks the header, the shape and the size against
// [Limits] before it allocates anything, so a corrupt, hostile or endless
// file is an error, never a panic or a huge allocation. Errors wrap the
// sentinels below; match them with errors.Is.
//
// The writer emits the documented version 1.0 header and the data with
// encoding/binary, through a temporary file renamed into place (package
// internal/outfile), so a failed write leaves no partial file and replaces
// nothing.
package npy

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"

	"github.com/x448/float16"
)

// Errors of the reader, wrapped with the file and the detail.
var (
	// ErrNotNPY: the file does not start with NumPy's magic string.
	ErrNotNPY = errors.New("not a NumPy .npy file (no \\x93NUMPY magic)")
	// ErrVersion: a format version other than 1.0, 2.0 or 3.0.
	ErrVersion = errors.New("unsupported .npy format version")
	// ErrHeader: the header is truncated or not a dictionary NumPy reads.
	ErrHeader = errors.New("bad .npy header")
	// ErrDType: a dtype the reader does not know, or not the one asked for.
	ErrDType = errors.New("unsupported dtype")
	// ErrShape: a negative or overflowing shape, or a Fortran-order array
	// of more than one dimension.
	ErrShape = errors.New("bad shape")
	// ErrTooLarge: the array exceeds the reader's Limits.
	ErrTooLarge = errors.New("array too large")
	// ErrSize: the data is shorter or longer than the header says.
	ErrSize = errors.New("data size does not match the header")
	// ErrRange: a value does not fit the type it is converted to.
	ErrRange = errors.New("value out of range")
)

// Limits bound what a read accepts, checked before anything is allocated.
type Limits struct {
	// MaxElements bounds the element count of the array.
	MaxElements int64
	// MaxBytes bounds the size of its data in the file.
	MaxBytes int64
}

// DefaultLimits are what ReadFloat32 and ReadInt32 accept: as many elements
// as one attention tensor may hold (attention.MaxElements, int32 indices
// on the device), up to 16 GiB of data (that many float64 elements).
var DefaultLimits = Limits{MaxElements: math.MaxInt32, MaxBytes: 16 << 30}

// maxHeaderBytes bounds the header dictionary (NumPy's np.load refuses
// headers over 10000 bytes by default; a longer one is still read, up to
// this).
const maxHeaderBytes = 1 << 20

// magic opens every .npy file.
const magic = "\x93NUMPY"

// ReadFloat32 reads a floating-point tensor in C order with DefaultLimits,
// returning its data and shape. float16 and float64 files are converted; a
// finite float64 out of float32 range is an ErrRange error.
func ReadFloat32(path string) ([]float32, []int, error) {
	return DefaultLimits.ReadFloat32(path)
}

// ReadInt32 reads an integer tensor in C order with DefaultLimits,
// returning its data and shape. Other integer types are converted; a value
// out of int32 range is an ErrRange error.
func ReadInt32(path string) ([]int32, []int, error) {
	return DefaultLimits.ReadInt32(path)
}

// ReadFloat32 is the package's ReadFloat32 within l.
func (l Limits) ReadFloat32(path string) (data []float32, shape []int, err error) {
	err = l.readFile(path, func(r io.Reader, h header, dt dtype, n int) error {
		if dt.kind != 'f' {
			return fmt.Errorf("%w: dtype %q (%s) is not float32 or float64", ErrDType, h.descr, dt.name)
		}
		data, err = decodeFloats(r, dt, n)
		return err
	}, &shape)
	if err != nil {
		return nil, nil, err
	}
	return data, shape, nil
}

// ReadInt32 is the package's ReadInt32 within l.
func (l Limits) ReadInt32(path string) (data []int32, shape []int, err error) {
	err = l.readFile(path, func(r io.Reader, h header, dt dtype, n int) error {
		if dt.kind != 'i' && dt.kind != 'u' {
			return fmt.Errorf("%w: dtype %q (%s) is not an integer type", ErrDType, h.descr, dt.name)
		}
		data, err = decodeInts(r, dt, n)
		return err
	}, &shape)
	if err != nil {
		return nil, nil, err
	}
	return data, shape, nil
}

// decodeFunc reads the n elements of an array of type dt from r.
type decodeFunc func(r io.Reader, h header, dt dtype, n int) error

// readFile opens path and reads it with read, naming the file in errors.
func (l Limits) readFile(path string, decode decodeFunc, shape *[]int) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("npy: %s: %w", path, pathErr(err))
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("npy: %s: %w", path, pathErr(err))
	}
	if info.IsDir() {
		return fmt.Errorf("npy: %s: is a directory", path)
	}
	size := int64(-1) // unknown for a pipe or a device: read to the end
	if info.Mode().IsRegular() {
		size = info.Size()
	}
	if err := l.read(bufio.NewReaderSize(f, 1<<20), size, decode, shape); err != nil {
		return fmt.Errorf("npy: %s: %w", path, err)
	}
	return nil
}

// read reads one .npy array from r, whose total size is size bytes (-1:
// unknown), checking the preamble, header, shape and size within l before
// decode allocates, and that nothing follows the data.
func (l Limits) read(r io.Reader, size int64, decode decodeFunc, shape *[]int) error {
	var pre [8]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil || string(pre[:6]) != magic {
		return ErrNotNPY
	}
	var hlen, preamble int64 // preamble: magic, version and header length
	switch major, minor := pre[6], pre[7]; {
	case major == 1 && minor == 0:
		preamble = 10
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return fmt.Errorf("%w: truncated header", ErrHeader)
		}
		hlen = int64(binary.LittleEndian.Uint16(b[:]))
	case (major == 2 || major == 3) && minor == 0: // 3.0 only differs in its utf8 header
		preamble = 12
		var b [4]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return fmt.Errorf("%w: truncated header", ErrHeader)
		}
		hlen = int64(binary.LittleEndian.Uint32(b[:]))
	default:
		return fmt.Errorf("%w %d.%d (want 1.0, 2.0 or 3.0)", ErrVersion, major, minor)
	}
	if hlen > maxHeaderBytes {
		return fmt.Errorf("%w: header of %d bytes is longer than %d", ErrHeader, hlen, maxHeaderBytes)
	}
	if size >= 0 && preamble+hlen > size {
		return fmt.Errorf("%w: truncated header: it needs %d bytes, the file has %d", ErrHeader, preamble+hlen, size)
	}
	text := make([]byte, hlen)
	if _, err := io.ReadFull(r, text); err != nil {
		return fmt.Errorf("%w: truncated header", ErrHeader)
	}
	h, err := parseHeader(string(text))
	if err != nil {
		return err
	}
	dt, err := parseDescr(h.descr)
	if err != nil {
		return err
	}
	n, err := l.elements(h.shape, dt)
	if err != nil {
		return err
	}
	if h.fortran && len(h.shape) > 1 {
		return fmt.Errorf("%w: Fortran-order array of shape %v; only C order is supported (save np.ascontiguousarray(x))", ErrShape, h.shape)
	}
	if size >= 0 {
		if body := size - preamble - hlen; body != n*int64(dt.size) {
			return fmt.Errorf("%w: data is %d bytes, want %d elements of %d bytes for shape %v (truncated or corrupt file)", ErrSize, body, n, dt.size, h.shape)
		}
	}
	if err := decode(r, h, dt, int(n)); err != nil {
		return err
	}
	var extra [1]byte
	if k, _ := r.Read(extra[:]); k > 0 {
		return fmt.Errorf("%w: data continues past the %d elements of shape %v", ErrSize, n, h.shape)
	}
	*shape = h.shape
	return nil
}

// elements returns the element count of shape, checked against l.
func (l Limits) elements(shape []int, dt dtype) (int64, error) {
	n := int64(1)
	for _, d := range shape {
		if d == 0 {
			return 0, nil
		}
	}
	for _, d := range shape {
		if n > l.MaxElements/int64(d) {
			return 0, fmt.Errorf("%w: shape %v has more than %d elements", ErrTooLarge, shape, l.MaxElements)
		}
		n *= int64(d)
	}
	if n > l.MaxBytes/int64(dt.size) {
		return 0, fmt.Errorf("%w: shape %v of %s needs %d bytes, more than %d", ErrTooLarge, shape, dt.name, n*int64(dt.size), l.MaxBytes)
	}
	return n, nil
}

// chunk is how many elements are decoded per read.
const chunk = 1 << 14

// eachChunk reads n elements of size bytes from r a chunk at a time and
// calls f with each chunk's bytes and the index of its first element. A
// short read is an ErrSize error.
func eachChunk(r io.Reader, n, size int, f func(b []byte, at int) error) error {
	buf := make([]byte, chunk*size)
	for at := 0; at < n; at += chunk {
		b := buf[:min(chunk, n-at)*size]
		if _, err := io.ReadFull(r, b); err != nil {
			return fmt.Errorf("%w: data ends before element %d of %d", ErrSize, at, n)
		}
		if err := f(b, at); err != nil {
			return err
		}
	}
	return nil
}

// decodeFloats reads n floats of type dt as float32.
func decodeFloats(r io.Reader, dt dtype, n int) ([]float32, error) {
	out := make([]float32, n)
	err := eachChunk(r, n, dt.size, func(b []byte, at int) error {
		for i := range len(b) / dt.size {
			e := b[i*dt.size:]
			switch dt.size {
			case 2:
				out[at+i] = float16.Frombits(dt.order.Uint16(e)).Float32()
			case 4:
				out[at+i] = math.Float32frombits(dt.order.Uint32(e))
			case 8:
				x := math.Float64frombits(dt.order.Uint64(e))
				y := float32(x)
				if math.IsInf(float64(y), 0) && !math.IsInf(x, 0) {
					return fmt.Errorf("%w: element %d = %g overflows float32", ErrRange, at+i, x)
				}
				out[at+i] = y
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// decodeInts reads n integers of type dt as int32.
func decodeInts(r io.Reader, dt dtype, n int) ([]int32, error) {
	out := make([]int32, n)
	err := eachChunk(r, n, dt.size, func(b []byte, at int) error {
		for i := range len(b) / dt.size {
			e := b[i*dt.size:]
			var x int64
			var u uint64
			signed := dt.kind == 'i'
			switch dt.size {
			case 1:
				u, x = uint64(e[0]), int64(int8(e[0]))
			case 2:
				v := dt.order.Uint16(e)
				u, x = uint64(v), int64(int16(v))
			case 4:
				v := dt.order.Uint32(e)
				u, x = uint64(v), int64(int32(v))
			case 8:
				u = dt.order.Uint64(e)
				x = int64(u)
			}
			if !signed {
				if u > math.MaxInt32 {
					return fmt.Errorf("%w: element %d = %d overflows int32", ErrRange, at+i, u)
				}
				x = int64(u)
			}
			if x < math.MinInt32 || x > math.MaxInt32 {
				return fmt.Errorf("%w: element %d = %d overflows int32", ErrRange, at+i, x)
			}
			out[at+i] = int32(x)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
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
