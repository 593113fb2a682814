package main

import (
	"bytes"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"codeberg.org/sbinet/npyio"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/internal/npy"
)

// execRoot runs the coreattn root command in-process with args and returns
// what it printed and its error. A panic fails the test.
func execRoot(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := newRootCmd()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	assert.NotPanics(t, func() { err = root.Execute() }, "coreattn %s", strings.Join(args, " "))
	return out.String(), errb.String(), err
}

// attnCase is one `coreattn attention` problem written to .npy files.
type attnCase struct {
	args       attention.Args
	q, k, v    []float32
	do         []float32
	dir        string
	files      map[string]string // flag name -> path
	extraFlags []string
}

// newAttnCase draws random tensors for a and writes them under a fresh
// temporary directory.
func newAttnCase(t *testing.T, a attention.Args, seed uint64) *attnCase {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0xa77))
	nq := a.TotalQ() * a.NumHeadsQ * a.HeadDim
	nk := a.TotalK() * a.NumHeadsKV * a.HeadDim
	c := &attnCase{args: a, q: randn(rng, nq), k: randn(rng, nk), v: randn(rng, nk), do: randn(rng, nq),
		dir: t.TempDir(), files: map[string]string{}}
	qs := []int{a.TotalQ(), a.NumHeadsQ, a.HeadDim}
	ks := []int{a.TotalK(), a.NumHeadsKV, a.HeadDim}
	c.writeF32(t, "q", c.q, qs)
	c.writeF32(t, "k", c.k, ks)
	c.writeF32(t, "v", c.v, ks)
	c.writeF32(t, "do", c.do, qs)
	c.writeAny(t, "cu-seqlens-q", a.CuSeqlensQ)
	c.writeAny(t, "cu-seqlens-k", a.CuSeqlensK)
	for _, o := range []string{"out", "lse", "dq", "dk", "dv"} {
		c.files[o] = filepath.Join(c.dir, o+".out.npy")
	}
	return c
}

func (c *attnCase) writeF32(t *testing.T, flag string, data []float32, shape []int) {
	t.Helper()
	p := filepath.Join(c.dir, flag+".npy")
	require.NoError(t, npy.WriteFloat32(p, data, shape))
	c.files[flag] = p
}

// writeAny writes a 1-D slice with npyio (int32, int64, float32, ...).
func (c *attnCase) writeAny(t *testing.T, flag string, val any) {
	t.Helper()
	p := filepath.Join(c.dir, flag+".npy")
	f, err := os.Create(p)
	require.NoError(t, err)
	require.NoError(t, npyio.Write(f, val))
	require.NoError(t, f.Close())
	c.files[flag] = p
}

// writeRaw writes bytes as the file of flag.
func (c *attnCase) writeRaw(t *testing.T, flag string, b []byte) {
	t.Helper()
	p := filepath.Join(c.dir, flag+".npy")
	require.NoError(t, os.WriteFile(p, b, 0o644))
	c.files[flag] = p
}

// cmdArgs is the command line of the case, forward only or with backward.
func (c *attnCase) cmdArgs(backward bool) []string {
	args := []string{"attention"}
	flags := []string{"q", "k", "v", "cu-seqlens-q", "cu-seqlens-k", "out", "lse"}
	if backward {
		flags = append(flags, "do", "dq", "dk", "dv")
	}
	for _, f := range flags {
		args = append(args, "--"+f, c.files[f])
	}
	if c.args.Causal {
		args = append(args, "--causal")
	}
	return append(args, c.extraFlags...)
}

func readOut(t *testing.T, path string, shape ...int) []float32 {
	t.Helper()
	data, got, err := npy.ReadFloat32(path)
	require.NoError(t, err)
	require.Equal(t, shape, got, "shape of %s", filepath.Base(path))
	return data
}

func requireLSEClose(t *testing.T, got []float32, want []float64) {
	t.Helper()
	require.Len(t, got, len(want))
	assert.LessOrEqual(t, maxAbsErr(got, want), 1e-4, "largest absolute error of LSE")
}

var attnGoodCases = []struct {
	name  string
	args  attention.Args
	extra []string
}{
	{
		name: "causal GQA 2:1 with a CA-task shard and an empty segment",
		args: attention.Args{CuSeqlensQ: []int32{0, 5, 8, 8, 25}, CuSeqlensK: []int32{0, 5, 14, 18, 35},
			NumHeadsQ: 4, NumHeadsKV: 2, HeadDim: 32, Causal: true},
	},
	{
		name: "non-causal custom scale with a segment of no keys",
		args: attention.Args{CuSeqlensQ: []int32{0, 7, 9, 12}, CuSeqlensK: []int32{0, 3, 3, 16},
			NumHeadsQ: 2, NumHeadsKV: 1, HeadDim: 20, SoftmaxScale: 0.3},
		extra: []string{"--scale", "0.3"},
	},
}

func TestAttentionForwardMatchesReference(t *testing.T) {
	for i, tc := range attnGoodCases {
		t.Run(tc.name, func(t *testing.T) {
			c := newAttnCase(t, tc.args, uint64(i))
			c.extraFlags = tc.extra
			if i == 1 {
				c.writeAny(t, "cu-seqlens-k", []int64{0, 3, 3, 16}) // int64 offsets are converted
			}
			stdout, stderr, err := execRoot(t, c.cmdArgs(false)...)
			require.NoError(t, err)
			assert.Empty(t, stdout)
			assert.Empty(t, stderr)

			a := &c.args
			wantO, wantLSE, err := attention.ReferenceForward(a, c.q, c.k, c.v)
			require.NoError(t, err)
			o := readOut(t, c.files["out"], a.TotalQ(), a.NumHeadsQ, a.HeadDim)
			lse := readOut(t, c.files["lse"], a.NumHeadsQ, a.TotalQ())
			assert.LessOrEqual(t, attention.RelError(o, wantO), 1e-4, "relative error of O")
			requireLSEClose(t, lse, wantLSE)
			assert.NoFileExists(t, c.files["dq"], "no backward outputs without --do")
		})
	}
}

func TestAttentionBackwardMatchesReference(t *testing.T) {
	tc := attnGoodCases[0]
	c := newAttnCase(t, tc.args, 7)
	_, _, err := execRoot(t, c.cmdArgs(true)...)
	require.NoError(t, err)
	c.backwardErrors(t).assertWithin(t, 1e-4)
}

// attnErrors are the errors of a forward+backward run of the CLI against
// the float64 reference: relative for O and the gradients, the largest
// absolute for LSE.
type attnErrors struct{ o, lse, dq, dk, dv float64 }

// assertWithin asserts every error is at most tol.
func (e attnErrors) assertWithin(t *testing.T, tol float64) {
	t.Helper()
	assert.LessOrEqual(t, e.o, tol, "O")
	assert.LessOrEqual(t, e.lse, tol, "largest absolute error of LSE")
	assert.LessOrEqual(t, e.dq, tol, "dQ")
	assert.LessOrEqual(t, e.dk, tol, "dK")
	assert.LessOrEqual(t, e.dv, tol, "dV")
}

// backwardErrors reads the outputs of a run of c.cmdArgs(true) and compares
// them with the reference.
func (c *attnCase) backwardErrors(t *testing.T) attnErrors {
	t.Helper()
	a := &c.args
	wantO, wantLSE, err := attention.ReferenceForward(a, c.q, c.k, c.v)
	require.NoError(t, err)
	wantDQ, wantDK, wantDV, err := attention.ReferenceBackward(a, c.q, c.k, c.v, c.do)
	require.NoError(t, err)
	tq, tk, hq, hkv, d := a.TotalQ(), a.TotalK(), a.NumHeadsQ, a.NumHeadsKV, a.HeadDim
	lse := readOut(t, c.files["lse"], hq, tq)
	require.Len(t, lse, len(wantLSE))
	return attnErrors{
		o:   attention.RelError(readOut(t, c.files["out"], tq, hq, d), wantO),
		lse: maxAbsErr(lse, wantLSE),
		dq:  attention.RelError(readOut(t, c.files["dq"], tq, hq, d), wantDQ),
		dk:  attention.RelError(readOut(t, c.files["dk"], tk, hkv, d), wantDK),
		dv:  attention.RelError(readOut(t, c.files["dv"], tk, hkv, d), wantDV),
	}
}

// TestAttentionHalfStorage runs forward and backward with half storage on
// the device, on one device and through a pool of 3 servers: within 1e-2 of
// the float64 reference (relative; absolute for LSE).
func TestAttentionHalfStorage(t *testing.T) {
	for i, tc := range []struct{ dtype, servers string }{{"bf16", "1"}, {"f16", "3"}} {
		t.Run(tc.dtype+"/servers="+tc.servers, func(t *testing.T) {
			c := newAttnCase(t, attnGoodCases[0].args, uint64(40+i))
			_, _, err := execRoot(t, append(c.cmdArgs(true), "--dtype", tc.dtype, "--servers", tc.servers)...)
			require.NoError(t, err)
			e := c.backwardErrors(t)
			e.assertWithin(t, 1e-2)
			assert.Greater(t, e.o, 1e-5, "O as exact as float32: was the storage type ignored?")
		})
	}
}

// TestAttentionBadInput checks that every bad input is one clear error line
// that names the bad value, with nothing written and nothing printed.
func TestAttentionBadInput(t *testing.T) {
	base := attention.Args{CuSeqlensQ: []int32{0, 4, 6}, CuSeqlensK: []int32{0, 4, 10},
		NumHeadsQ: 2, NumHeadsKV: 1, HeadDim: 8, Causal: true}
	f32 := func(n int) []float32 { return make([]float32, n) }
	cases := []struct {
		name     string
		backward bool
		edit     func(t *testing.T, c *attnCase) []string // returns the command line
		want     string
	}{
		{name: "missing --q", want: "--q", edit: func(t *testing.T, c *attnCase) []string {
			return without(c.cmdArgs(false), "--q")
		}},
		{name: "missing --lse", want: "--lse", edit: func(t *testing.T, c *attnCase) []string {
			return without(c.cmdArgs(false), "--lse")
		}},
		{name: "missing --cu-seqlens-k", want: "--cu-seqlens-k", edit: func(t *testing.T, c *attnCase) []string {
			return without(c.cmdArgs(false), "--cu-seqlens-k")
		}},
		{name: "q file does not exist", want: "--q", edit: func(t *testing.T, c *attnCase) []string {
			c.files["q"] = filepath.Join(c.dir, "nope.npy")
			return c.cmdArgs(false)
		}},
		{name: "corrupt q", want: "--q", edit: func(t *testing.T, c *attnCase) []string {
			c.writeRaw(t, "q", []byte("this is not a numpy file at all"))
			return c.cmdArgs(false)
		}},
		{name: "truncated k", want: "--k", edit: func(t *testing.T, c *attnCase) []string {
			b, err := os.ReadFile(c.files["k"])
			require.NoError(t, err)
			c.writeRaw(t, "k", b[:len(b)-12])
			return c.cmdArgs(false)
		}},
		{name: "corrupt cu_seqlens_q", want: "--cu-seqlens-q", edit: func(t *testing.T, c *attnCase) []string {
			c.writeRaw(t, "cu-seqlens-q", []byte("\x93NUMPY\x01\x00garbage"))
			return c.cmdArgs(false)
		}},
		{name: "q of rank 2", want: "--q", edit: func(t *testing.T, c *attnCase) []string {
			c.writeF32(t, "q", f32(6*16), []int{6, 16})
			return c.cmdArgs(false)
		}},
		{name: "v shape differs from k", want: "--v", edit: func(t *testing.T, c *attnCase) []string {
			c.writeF32(t, "v", f32(10*2*8), []int{10, 2, 8})
			return c.cmdArgs(false)
		}},
		{name: "k head dim differs from q", want: "--k", edit: func(t *testing.T, c *attnCase) []string {
			c.writeF32(t, "k", f32(10*12), []int{10, 1, 12})
			c.writeF32(t, "v", f32(10*12), []int{10, 1, 12})
			return c.cmdArgs(false)
		}},
		{name: "D not a multiple of 4", want: "head_dim", edit: func(t *testing.T, c *attnCase) []string {
			c.writeF32(t, "q", f32(6*2*6), []int{6, 2, 6})
			c.writeF32(t, "k", f32(10*6), []int{10, 1, 6})
			c.writeF32(t, "v", f32(10*6), []int{10, 1, 6})
			return c.cmdArgs(false)
		}},
		{name: "Hq not a multiple of Hkv", want: "num_heads_q", edit: func(t *testing.T, c *attnCase) []string {
			c.writeF32(t, "q", f32(6*3*8), []int{6, 3, 8})
			c.writeF32(t, "k", f32(10*2*8), []int{10, 2, 8})
			c.writeF32(t, "v", f32(10*2*8), []int{10, 2, 8})
			return c.cmdArgs(false)
		}},
		{name: "non-monotonic cu_seqlens_q", want: "cu_seqlens_q", edit: func(t *testing.T, c *attnCase) []string {
			c.writeAny(t, "cu-seqlens-q", []int32{0, 7, 6})
			return c.cmdArgs(false)
		}},
		{name: "cu_seqlens_k not starting at 0", want: "cu_seqlens_k", edit: func(t *testing.T, c *attnCase) []string {
			c.writeAny(t, "cu-seqlens-k", []int32{1, 4, 10})
			return c.cmdArgs(false)
		}},
		{name: "cu_seqlens_q ends before total_q", want: "--cu-seqlens-q", edit: func(t *testing.T, c *attnCase) []string {
			c.writeAny(t, "cu-seqlens-q", []int32{0, 4, 5})
			return c.cmdArgs(false)
		}},
		{name: "cu_seqlens_k ends after total_k", want: "--cu-seqlens-k", edit: func(t *testing.T, c *attnCase) []string {
			c.writeAny(t, "cu-seqlens-k", []int32{0, 4, 11})
			return c.cmdArgs(false)
		}},
		{name: "offsets of different batch sizes", want: "cu_seqlens_k", edit: func(t *testing.T, c *attnCase) []string {
			c.writeAny(t, "cu-seqlens-k", []int32{0, 10})
			return c.cmdArgs(false)
		}},
		{name: "float offsets", want: "--cu-seqlens-q", edit: func(t *testing.T, c *attnCase) []string {
			c.writeAny(t, "cu-seqlens-q", []float32{0, 4, 6})
			return c.cmdArgs(false)
		}},
		{name: "causal q_len > k_len", want: "q_len", edit: func(t *testing.T, c *attnCase) []string {
			c.writeAny(t, "cu-seqlens-k", []int32{0, 3, 10})
			return c.cmdArgs(false)
		}},
		{name: "NaN scale", want: "--scale", edit: func(t *testing.T, c *attnCase) []string {
			return append(c.cmdArgs(false), "--scale", "NaN")
		}},
		{name: "infinite scale", want: "--scale", edit: func(t *testing.T, c *attnCase) []string {
			return append(c.cmdArgs(false), "--scale", "-Inf")
		}},
		{name: "scale not a number", want: "scale", edit: func(t *testing.T, c *attnCase) []string {
			return append(c.cmdArgs(false), "--scale", "big")
		}},
		{name: "--do without --dq", want: "--dq", edit: func(t *testing.T, c *attnCase) []string {
			return without(c.cmdArgs(true), "--dq")
		}},
		{name: "--dk without --do", want: "--do", edit: func(t *testing.T, c *attnCase) []string {
			return append(c.cmdArgs(false), "--dk", c.files["dk"])
		}},
		{name: "dO shape differs from q", backward: true, want: "--do", edit: func(t *testing.T, c *attnCase) []string {
			c.writeF32(t, "do", f32(5*2*8), []int{5, 2, 8})
			return c.cmdArgs(true)
		}},
		{name: "unknown dtype", want: "--dtype", edit: func(t *testing.T, c *attnCase) []string {
			return append(c.cmdArgs(false), "--dtype", "int8")
		}},
		{name: "negative adapter", want: "--adapter", edit: func(t *testing.T, c *attnCase) []string {
			return append(c.cmdArgs(false), "--adapter", "-1")
		}},
		{name: "adapter that does not exist", want: "--adapter", edit: func(t *testing.T, c *attnCase) []string {
			return append(c.cmdArgs(false), "--adapter", "99")
		}},
		{name: "zero servers", want: "--servers", edit: func(t *testing.T, c *attnCase) []string {
			return append(c.cmdArgs(false), "--servers", "0")
		}},
		{name: "output directory missing", want: "--out", edit: func(t *testing.T, c *attnCase) []string {
			c.files["out"] = filepath.Join(c.dir, "no", "such", "dir", "o.npy")
			return c.cmdArgs(false)
		}},
		{name: "two outputs in one file", want: "--lse", edit: func(t *testing.T, c *attnCase) []string {
			c.files["lse"] = c.files["out"]
			return c.cmdArgs(false)
		}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newAttnCase(t, base, uint64(100+i))
			outs := []string{c.files["out"], c.files["lse"], c.files["dq"], c.files["dk"], c.files["dv"]}
			args := tc.edit(t, c)
			stdout, stderr, err := execRoot(t, args...)
			require.Error(t, err)
			msg := err.Error()
			t.Log(msg)
			assert.Contains(t, msg, tc.want)
			assert.NotContains(t, msg, "\n", "one line")
			assert.Empty(t, stdout, "no usage dump")
			assert.Empty(t, stderr, "no usage dump")
			for _, p := range outs {
				assert.NoFileExists(t, p, "nothing written on error")
			}
		})
	}
}

// without drops flag and its value from a command line.
func without(args []string, flag string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		if args[i] == flag {
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out
}

func TestMaxAbsErr(t *testing.T) {
	inf := math.Inf(1)
	assert.Equal(t, 0.0, maxAbsErr([]float32{1, float32(inf)}, []float64{1, inf}))
	assert.InDelta(t, 0.5, maxAbsErr([]float32{1, 2.5}, []float64{1, 2}), 1e-12)
	assert.True(t, math.IsInf(maxAbsErr([]float32{float32(inf)}, []float64{1}), 1))
	assert.True(t, math.IsInf(maxAbsErr([]float32{float32(math.NaN())}, []float64{1}), 1))
	assert.True(t, math.IsInf(maxAbsErr([]float32{1}, []float64{1, 2}), 1))
}
