package checkpoint

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nlpodyssey/safetensors"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// randomTensors returns tensors named and shaped like a small model, with
// fresh random values and a few special ones.
func randomTensors(seed uint64, prefix string) []Tensor {
	r := rand.New(rand.NewPCG(seed, 99))
	shapes := []struct {
		name  string
		shape []int
	}{
		{"tok_emb", []int{256, 8}},
		{"layers.0.attn_norm", []int{8}},
		{"layers.0.wq", []int{8, 8}},
		{"layers.0.wk", []int{4, 8}},
		{"layers.10.w2", []int{8, 12}},
		{"norm", []int{8}},
		{"lm_head", []int{256, 8}},
	}
	var ts []Tensor
	for _, s := range shapes {
		n := 1
		for _, d := range s.shape {
			n *= d
		}
		data := make([]float32, n)
		for i := range data {
			data[i] = float32(r.NormFloat64())
		}
		ts = append(ts, Tensor{Name: prefix + s.name, Shape: s.shape, Data: data})
	}
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)), math.SmallestNonzeroFloat32, math.MaxFloat32}
	copy(ts[0].Data, special)
	return ts
}

func encodeBytes(t *testing.T, ts []Tensor) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, Encode(&buf, ts))
	return buf.Bytes()
}

// sameBits compares tensors bit for bit (so -0 and NaN payloads count).
func sameBits(t *testing.T, want, got []Tensor) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		require.Equal(t, want[i].Name, got[i].Name)
		require.Equal(t, want[i].Shape, got[i].Shape, want[i].Name)
		require.Len(t, got[i].Data, len(want[i].Data))
		for j := range want[i].Data {
			require.Equal(t, math.Float32bits(want[i].Data[j]), math.Float32bits(got[i].Data[j]), "%s[%d]", want[i].Name, j)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	ts := randomTensors(1, "")
	ts[1].Data[0] = math.Float32frombits(0x7fc01234) // a NaN with a payload
	ts = append(ts, Tensor{Name: "scalar", Shape: []int{}, Data: []float32{3.5}}, Tensor{Name: "empty", Shape: []int{0, 4}, Data: []float32{}})
	data := encodeBytes(t, ts)

	got, err := Decode("x", data, Specs(ts))
	require.NoError(t, err)
	sameBits(t, ts, got)

	all, err := Decode("x", data, nil)
	require.NoError(t, err)
	byName := slices.Clone(ts)
	slices.SortFunc(byName, func(a, b Tensor) int { return strings.Compare(a.Name, b.Name) })
	sameBits(t, byName, all) // the file orders tensors by name

	// Reading back a subset is an error: every tensor must be expected.
	_, err = Decode("x", data, Specs(ts[:3]))
	require.ErrorIs(t, err, ErrUnexpected)
}

// TestLibraryInterop checks our files against the library's own writer and
// reader, and against a file built by hand from the format's definition.
func TestLibraryInterop(t *testing.T) {
	ts := randomTensors(2, "")
	ours := encodeBytes(t, ts)
	_, meta, err := safetensors.ReadMetadata(ours)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"format": "pt"}, meta.Metadata())
	st, err := safetensors.Deserialize(ours)
	require.NoError(t, err)
	for _, want := range ts {
		tv, ok := st.Tensor(want.Name)
		require.True(t, ok, want.Name)
		assert.Equal(t, safetensors.F32, tv.DType())
		assert.Equal(t, ints(tv.Shape()), want.Shape)
		for j, x := range want.Data {
			require.Equal(t, math.Float32bits(x), binary.LittleEndian.Uint32(tv.Data()[4*j:]))
		}
	}
	assert.Zero(t, binary.LittleEndian.Uint64(ours)%8, "the header is padded to 8 bytes")

	views := map[string]safetensors.TensorView{}
	for _, x := range ts {
		tv, err := safetensors.NewTensorView(safetensors.F32, f32View{&x}.Shape(), f32View{&x}.Data())
		require.NoError(t, err)
		views[x.Name] = tv
	}
	theirs, err := safetensors.Serialize(views, nil)
	require.NoError(t, err)
	got, err := Decode("theirs", theirs, Specs(ts))
	require.NoError(t, err)
	sameBits(t, ts, got)

	// By hand: tensors in reverse name order and a header with odd spacing.
	b := handFile(`{"z": {"dtype":"F32","shape":[2],"data_offsets":[0,8]}, "a":{"shape":[1,1],"dtype":"F32","data_offsets":[8,12]}}`,
		f32bytes(1.5, -2), f32bytes(7))
	got, err = Decode("hand", b, []Spec{{"a", []int{1, 1}}, {"z", []int{2}}})
	require.NoError(t, err)
	assert.Equal(t, []Tensor{{Name: "a", Shape: []int{1, 1}, Data: []float32{7}}, {Name: "z", Shape: []int{2}, Data: []float32{1.5, -2}}}, got)
}

// handFile builds a safetensors file from a header and data blobs.
func handFile(header string, blobs ...[]byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	for _, x := range blobs {
		b = append(b, x...)
	}
	return b
}

func f32bytes(xs ...float32) []byte {
	var b []byte
	for _, x := range xs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

func TestDecodeErrors(t *testing.T) {
	ts := []Tensor{{"a", []int{2, 3}, []float32{1, 2, 3, 4, 5, 6}}, {"b", []int{4}, []float32{1, 2, 3, 4}}}
	good := encodeBytes(t, ts)
	hdr := int(binary.LittleEndian.Uint64(good))
	want := Specs(ts)
	for _, tc := range []struct {
		name   string
		data   []byte
		want   []Spec
		err    error
		tensor string
	}{
		{"empty file", nil, want, ErrTruncated, ""},
		{"inside the length", good[:5], want, ErrTruncated, ""},
		{"inside the header", good[:8+hdr/2], want, ErrTruncated, ""},
		{"inside the data", good[:len(good)-3], want, ErrTruncated, ""},
		{"header only", good[:8+hdr], want, ErrTruncated, ""},
		{"trailing bytes", append(slices.Clone(good), 0, 0, 0, 0), want, ErrHeader, ""},
		{"huge header length", append(binary.LittleEndian.AppendUint64(nil, 1<<40), good[8:]...), want, ErrHeader, ""},
		{"header not JSON", handFile(`{"a": nope}`, f32bytes(1)), want, ErrHeader, ""},
		{"header an array", handFile(`[1, 2]`), want, ErrHeader, ""},
		{"offsets overlap", handFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, f32bytes(1)), nil, ErrHeader, ""},
		{"offsets disagree with the shape", handFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, f32bytes(1)), nil, ErrHeader, ""},
		{"unknown dtype", handFile(`{"a":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}}`, f32bytes(1)), nil, ErrHeader, ""},
		{"wrong dtype", handFile(`{"a":{"dtype":"F16","shape":[2, 3],"data_offsets":[0,12]},"b":{"dtype":"F32","shape":[4],"data_offsets":[12,28]}}`, make([]byte, 28)), want, ErrDType, "a"},
		{"wrong shape", good, []Spec{{"a", []int{3, 2}}, {"b", []int{4}}}, ErrShape, "a"},
		{"wrong rank", good, []Spec{{"a", []int{6}}, {"b", []int{4}}}, ErrShape, "a"},
		{"missing tensor", good, []Spec{{"a", []int{2, 3}}, {"b", []int{4}}, {"c", []int{1}}}, ErrMissing, "c"},
		{"unexpected tensor", good, []Spec{{"a", []int{2, 3}}}, ErrUnexpected, "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode("ckpt/model.safetensors", tc.data, tc.want)
			require.ErrorIs(t, err, tc.err)
			var ce *Error
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, "ckpt/model.safetensors", ce.Path)
			assert.Equal(t, tc.tensor, ce.Tensor)
			assert.NotContains(t, err.Error(), "\n")
			if tc.tensor != "" {
				assert.Contains(t, err.Error(), "tensor "+tc.tensor+": ")
			}
		})
	}
	_, err := Decode("m", good, []Spec{{"a", []int{3, 2}}, {"b", []int{4}}})
	assert.Contains(t, err.Error(), "shape [2 3], want [3 2]")
}

func TestEncodeRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		ts   []Tensor
	}{
		{"no name", []Tensor{{"", []int{1}, []float32{1}}}},
		{"reserved name", []Tensor{{"__metadata__", []int{1}, []float32{1}}}},
		{"duplicate", []Tensor{{"a", []int{1}, []float32{1}}, {"a", []int{1}, []float32{2}}}},
		{"shape holds more", []Tensor{{"a", []int{2, 2}, []float32{1, 2, 3}}}},
		{"negative dimension", []Tensor{{"a", []int{-1, -2}, []float32{1, 2}}}},
	} {
		var buf bytes.Buffer
		err := Encode(&buf, tc.ts)
		assert.ErrorIs(t, err, ErrBadTensor, tc.name)
		assert.Zero(t, buf.Len(), "%s: nothing written", tc.name)
	}
}

// TestPythonReader checks that the pure-Python reader twin.py uses reads our
// files, and that we read what it writes.
func TestPythonReader(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	script := filepath.Join("..", "scripts", "coreattn_io.py")
	dir := t.TempDir()
	ts := randomTensors(3, "")
	ts[0].Data[2] = 1 // no infinities: the Python check sums the values
	ts[0].Data[3] = -1
	ts[0].Data[5] = 2
	path := filepath.Join(dir, "model.safetensors")
	require.NoError(t, WriteFile(path, ts))
	out, err := exec.Command(py, script, "safetensors", path).CombinedOutput()
	require.NoError(t, err, "%s", out)
	var want strings.Builder
	sorted := slices.Clone(ts)
	slices.SortFunc(sorted, func(a, b Tensor) int { return strings.Compare(a.Name, b.Name) })
	for _, x := range sorted {
		var s float64
		for i, v := range x.Data {
			s += float64(v) * float64(i+1)
		}
		dims := make([]string, len(x.Shape))
		for i, d := range x.Shape {
			dims[i] = strconv.Itoa(d)
		}
		fmt.Fprintf(&want, "%s F32 %s %d\n", x.Name, strings.Join(dims, "x"), math.Float64bits(s))
	}
	want.WriteString(`__metadata__ {"format": "pt"}` + "\n")
	assert.Equal(t, want.String(), string(out))

	pyFile := filepath.Join(dir, "py.safetensors")
	out, err = exec.Command(py, script, "write-safetensors", pyFile).CombinedOutput()
	require.NoError(t, err, "%s", out)
	got, err := ReadFile(pyFile, []Spec{{"a.weight", []int{2, 2}}, {"b.bias", []int{3}}})
	require.NoError(t, err)
	assert.Equal(t, []float32{1, 2, -3.5, 1e-30}, got[0].Data)
	assert.Equal(t, []float32{0.5, -1.25, 3}, got[1].Data)

	trunc := filepath.Join(dir, "trunc.safetensors")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(trunc, data[:len(data)-1], 0o644))
	out, err = exec.Command(py, script, "safetensors", trunc).CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), "truncated")
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte{})
	var buf bytes.Buffer
	_ = Encode(&buf, []Tensor{{"a", []int{2}, []float32{1, 2}}, {"b", []int{1, 1}, []float32{3}}})
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Decode("fuzz", data, nil)
		if err != nil {
			var ce *Error
			require.ErrorAs(t, err, &ce)
			return
		}
		var again bytes.Buffer
		require.NoError(t, Encode(&again, got))
		back, err := Decode("again", again.Bytes(), Specs(got))
		require.NoError(t, err)
		require.Len(t, back, len(got))
	})
}
