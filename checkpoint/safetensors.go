package checkpoint

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"

	"github.com/nlpodyssey/safetensors"
)

// Tensor is a named float32 tensor in C order.
type Tensor struct {
	Name  string
	Shape []int
	Data  []float32
}

// Spec names a tensor a reader expects and its shape.
type Spec struct {
	Name  string
	Shape []int
}

// Specs returns the names and shapes of ts.
func Specs(ts []Tensor) []Spec {
	s := make([]Spec, len(ts))
	for i, t := range ts {
		s[i] = Spec{Name: t.Name, Shape: slices.Clone(t.Shape)}
	}
	return s
}

// MomentSpecs returns the names and shapes of AdamW's moments for params:
// "m.<name>" for every parameter, then "v.<name>" for every parameter.
func MomentSpecs(params []Spec) []Spec {
	s := make([]Spec, 0, 2*len(params))
	for _, prefix := range []string{"m.", "v."} {
		for _, p := range params {
			s = append(s, Spec{Name: prefix + p.Name, Shape: slices.Clone(p.Shape)})
		}
	}
	return s
}

// maxHeader bounds the JSON header, as the safetensors format does.
const maxHeader = 100_000_000

// fileMetadata goes into every file's __metadata__, as PyTorch writers do.
var fileMetadata = map[string]string{"format": "pt"}

// f32View is a tensor as the safetensors writer sees it; its bytes are
// encoded only when written, so a save holds one tensor's copy at a time.
type f32View struct{ t *Tensor }

func (v f32View) DType() safetensors.DType { return safetensors.F32 }
func (v f32View) DataLen() uint64          { return 4 * uint64(len(v.t.Data)) }
func (v f32View) Shape() []uint64 {
	s := make([]uint64, len(v.t.Shape))
	for i, d := range v.t.Shape {
		s[i] = uint64(d)
	}
	return s
}
func (v f32View) Data() []byte {
	b := make([]byte, 4*len(v.t.Data))
	for i, x := range v.t.Data {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// check validates tensors before anything is written; path names the file
// they are meant for.
func check(path string, ts []Tensor) error {
	seen := make(map[string]bool, len(ts))
	for i := range ts {
		t := &ts[i]
		switch {
		case t.Name == "" || t.Name == "__metadata__":
			return errorf(path, "", ErrBadTensor, "tensor %d has the name %q", i, t.Name)
		case seen[t.Name]:
			return errorf(path, t.Name, ErrBadTensor, "the name appears twice")
		}
		seen[t.Name] = true
		n := 1
		for _, d := range t.Shape {
			if d < 0 {
				return errorf(path, t.Name, ErrBadTensor, "shape %v has a negative dimension", t.Shape)
			}
			n *= d
		}
		if n != len(t.Data) {
			return errorf(path, t.Name, ErrBadTensor, "shape %v holds %d values, data has %d", t.Shape, n, len(t.Data))
		}
	}
	return nil
}

// Encode writes ts as a safetensors file to w.
func Encode(w io.Writer, ts []Tensor) error {
	if err := check("safetensors", ts); err != nil {
		return err
	}
	views := make(map[string]f32View, len(ts))
	for i := range ts {
		views[ts[i].Name] = f32View{&ts[i]}
	}
	return safetensors.SerializeToWriter(views, fileMetadata, w)
}

// Decode parses a safetensors file's bytes; path only names it in errors.
// With want nil it returns every tensor in file order (which must all be
// F32); otherwise exactly the tensors of want, in want's order, each with
// want's shape, and no others.
func Decode(path string, data []byte, want []Spec) ([]Tensor, error) {
	if err := precheck(path, data); err != nil {
		return nil, err
	}
	st, err := safetensors.Deserialize(data)
	if err != nil {
		return nil, errorf(path, "", ErrHeader, "%v", err)
	}
	if want == nil {
		for _, nv := range st.Tensors() {
			want = append(want, Spec{Name: nv.Name, Shape: ints(nv.TensorView.Shape())})
		}
	}
	out := make([]Tensor, len(want))
	wanted := make(map[string]bool, len(want))
	for i, s := range want {
		wanted[s.Name] = true
		tv, ok := st.Tensor(s.Name)
		if !ok {
			return nil, errorf(path, s.Name, ErrMissing, "")
		}
		if tv.DType() != safetensors.F32 {
			return nil, errorf(path, s.Name, ErrDType, "it is %s", tv.DType())
		}
		if shape := ints(tv.Shape()); !slices.Equal(shape, s.Shape) {
			return nil, errorf(path, s.Name, ErrShape, "shape %v, want %v", shape, s.Shape)
		}
		raw := tv.Data()
		t := Tensor{Name: s.Name, Shape: slices.Clone(s.Shape), Data: make([]float32, len(raw)/4)}
		for j := range t.Data {
			t.Data[j] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*j:]))
		}
		out[i] = t
	}
	for _, name := range st.Names() {
		if !wanted[name] {
			return nil, errorf(path, name, ErrUnexpected, "not among the %d expected", len(want))
		}
	}
	return out, nil
}

// precheck tells a truncated file from a malformed one, which the library's
// errors do not.
func precheck(path string, data []byte) error {
	if len(data) < 8 {
		return errorf(path, "", ErrTruncated, "%d bytes, shorter than the header length", len(data))
	}
	n := binary.LittleEndian.Uint64(data)
	if n > maxHeader {
		return errorf(path, "", ErrHeader, "header length %d is over %d", n, maxHeader)
	}
	if n > uint64(len(data)-8) {
		return errorf(path, "", ErrTruncated, "header of %d bytes in a file of %d", n, len(data))
	}
	var header map[string]json.RawMessage
	if err := json.Unmarshal(data[8:8+n], &header); err != nil {
		return errorf(path, "", ErrHeader, "%v", err)
	}
	var end uint64
	for name, raw := range header {
		if name == "__metadata__" {
			continue
		}
		var info struct {
			Offsets []uint64 `json:"data_offsets"`
		}
		if err := json.Unmarshal(raw, &info); err != nil || len(info.Offsets) != 2 {
			return errorf(path, name, ErrHeader, "bad data_offsets in %.80s", raw)
		}
		end = max(end, info.Offsets[1])
	}
	if have := uint64(len(data)) - 8 - n; end > have {
		return errorf(path, "", ErrTruncated, "the tensors need %d bytes after the header, the file has %d", end, have)
	}
	return nil
}

func ints(s []uint64) []int {
	out := make([]int, len(s))
	for i, d := range s {
		out[i] = int(d)
	}
	return out
}

// ReadFile reads a safetensors file; see [Decode] for want.
func ReadFile(path string, want []Spec) ([]Tensor, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	return Decode(path, data, want)
}

// WriteFile writes ts to path atomically: a temporary file in the same
// directory, fsynced, renamed over path, and the directory fsynced.
func WriteFile(path string, ts []Tensor) error {
	if err := check(path, ts); err != nil {
		return err
	}
	return writeAtomic(osOps{}, path, func(w io.Writer) error { return Encode(w, ts) })
}

// writeSynced fills f with write through a buffer, fsyncs and closes it.
func writeSynced(o ops, f *os.File, write func(io.Writer) error) error {
	bw := bufio.NewWriterSize(f, 1<<20)
	err := write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = o.sync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("checkpoint: writing %s: %w", f.Name(), err)
	}
	return nil
}
