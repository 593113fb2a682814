package npy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/coreattn/coreattn/internal/outfile"
)

// WriteFloat32 writes data as a little-endian float32 tensor of the given
// shape, whose product must equal len(data), through a temporary file
// renamed into place (see package internal/outfile): a failure leaves no
// partial file and replaces nothing, a symbolic link keeps pointing at the
// new file, and a target that is not a regular file is refused.
func WriteFloat32(path string, data []float32, shape []int) error {
	if err := checkShape(data, shape); err != nil {
		return fmt.Errorf("npy: %s: %w", path, err)
	}
	err := outfile.WriteAll([]outfile.Output{{
		Path:  outfile.Path{Name: path},
		Write: func(w io.Writer) error { return EncodeFloat32(w, data, shape) },
	}})
	if err != nil {
		return fmt.Errorf("npy: %w", err)
	}
	return nil
}

// checkShape checks that shape is valid and holds len(data) elements.
func checkShape(data []float32, shape []int) error {
	n := 1
	for i, d := range shape {
		if d < 0 {
			return fmt.Errorf("%w %v: dimension %d is negative", ErrShape, shape, i)
		}
		if d != 0 && n > math.MaxInt/d {
			return fmt.Errorf("%w %v: too many elements", ErrShape, shape)
		}
		n *= d
	}
	if n != len(data) {
		return fmt.Errorf("%w: shape %v holds %d elements, data has %d", ErrShape, shape, n, len(data))
	}
	return nil
}

// EncodeFloat32 writes data as a version 1.0 .npy file of a little-endian
// float32 tensor of the given shape, whose product must equal len(data).
func EncodeFloat32(w io.Writer, data []float32, shape []int) error {
	if err := checkShape(data, shape); err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	if err := writeHeader(bw, "<f4", shape); err != nil {
		return err
	}
	if err := writeData(bw, data); err != nil {
		return err
	}
	return bw.Flush()
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
