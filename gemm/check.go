package gemm

import (
	"errors"
	"fmt"
	"math"

	"github.com/coreattn/coreattn/wgpu"
)

// Errors that Prepare and Run wrap, for errors.Is.
var (
	// ErrShape: the shapes of op(A), op(B) and C do not agree, or a
	// dimension is negative.
	ErrShape = errors.New("gemm: shapes do not agree")
	// ErrLayout: a matrix does not fit its buffer (offset, stride, rows),
	// has no buffer, or lives on another device.
	ErrLayout = errors.New("gemm: bad matrix layout")
	// ErrOverlap: C shares elements with A or B.
	ErrOverlap = errors.New("gemm: C overlaps an operand")
	// ErrLimit: the product exceeds the adapter's limits (workgroups per
	// dimension, buffer size, workgroup memory).
	ErrLimit = errors.New("gemm: beyond the adapter's limits")
)

// maxElems bounds a matrix's extent in its buffer, so that the kernels'
// 32-bit element indices cannot overflow.
const maxElems = math.MaxInt32

// stride is the matrix's row stride with 0 read as Cols.
func (x Matrix) stride() int {
	if x.Stride == 0 {
		return x.Cols
	}
	return x.Stride
}

// empty reports whether the matrix has no elements.
func (x Matrix) empty() bool { return x.Rows == 0 || x.Cols == 0 }

// end is one past the last element the matrix covers (Offset if empty).
func (x Matrix) end() int64 {
	if x.empty() {
		return int64(x.Offset)
	}
	return int64(x.Offset) + int64(x.Rows-1)*int64(x.stride()) + int64(x.Cols)
}

// aligned reports whether the matrix can be accessed as vec4s: offset,
// stride and width multiples of 4.
func (x Matrix) aligned() bool {
	return x.Offset%4 == 0 && x.stride()%4 == 0 && x.Cols%4 == 0
}

// String describes the layout, e.g. "7×13 (stride 16, offset 4) in \"x\"".
func (x Matrix) String() string {
	s := fmt.Sprintf("%d×%d", x.Rows, x.Cols)
	if x.Stride != 0 && x.Stride != x.Cols || x.Offset != 0 {
		s += fmt.Sprintf(" (stride %d, offset %d)", x.stride(), x.Offset)
	}
	if x.Buf != nil {
		s += fmt.Sprintf(" in %q", x.Buf.Label())
	}
	return s
}

// check validates one matrix's layout against its buffer and dev.
func (x Matrix) check(name string, dev *wgpu.Device) error {
	switch {
	case x.Rows < 0 || x.Cols < 0:
		return fmt.Errorf("%w: %s is %d×%d: dimensions must be >= 0", ErrShape, name, x.Rows, x.Cols)
	case x.Buf == nil:
		return fmt.Errorf("%w: %s (%d×%d) has no buffer", ErrLayout, name, x.Rows, x.Cols)
	case x.Buf.Device() != dev:
		return fmt.Errorf("%w: %s's buffer %q lives on another device", ErrLayout, name, x.Buf.Label())
	case x.Offset < 0:
		return fmt.Errorf("%w: %s: offset %d is negative", ErrLayout, name, x.Offset)
	case x.Stride < 0 || x.Stride != 0 && x.Stride < x.Cols && x.Rows > 1:
		return fmt.Errorf("%w: %s: stride %d is less than its %d columns", ErrLayout, name, x.Stride, x.Cols)
	}
	have := int64(x.Buf.Size() / 4)
	if end := x.end(); end > have {
		return fmt.Errorf("%w: %s %s needs %d elements; the buffer holds %d", ErrLayout, name, x, end, have)
	} else if end > maxElems {
		return fmt.Errorf("%w: %s %s ends at element %d, beyond the kernels' 32-bit indices (%d)", ErrLimit, name, x, end, int64(maxElems))
	}
	return nil
}

// overlaps reports whether matrices x and y, in the same buffer, share an
// element. Matrices with one stride are compared exactly (the column
// slices of one fused buffer are disjoint); others by their extents.
func overlaps(x, y Matrix) bool {
	if x.empty() || y.empty() || x.end() <= int64(y.Offset) || y.end() <= int64(x.Offset) {
		return false
	}
	s := x.stride()
	if y.stride() != s || (x.Rows == 1 && y.Rows == 1) {
		return true // extents intersect; be conservative
	}
	// Same stride: row i of x starts delta + (i-j)*s elements after row j
	// of y, delta = Offset_x - Offset_y, and the two rows share an element
	// iff -Cols_x < delta + d*s < Cols_y for d = i - j. Both widths are at
	// most s, so only the d nearest -delta/s can qualify.
	delta := int64(x.Offset) - int64(y.Offset)
	d0 := floorDiv(-delta, int64(s))
	for d := d0 - 1; d <= d0+1; d++ {
		if d < -int64(y.Rows-1) || d > int64(x.Rows-1) {
			continue
		}
		if v := delta + d*int64(s); -int64(x.Cols) < v && v < int64(y.Cols) {
			return true
		}
	}
	return false
}

// floorDiv is a/b rounded down, for b > 0.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}
