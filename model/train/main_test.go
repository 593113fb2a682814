package train

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/coreattn/coreattn/wgpu"
	"github.com/stretchr/testify/require"
)

// testDev is the adapter the tests share (lavapipe in CI), so that each
// pipeline compiles once per run.
var testDev *wgpu.Device

func TestMain(m *testing.M) {
	dev, err := wgpu.OpenBest(wgpu.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "train tests need a WebGPU adapter:", err)
		os.Exit(1)
	}
	testDev = dev
	code := m.Run()
	dev.Close()
	os.Exit(code)
}

// kt is a kernel test's device state.
type kt struct {
	t *testing.T
	a *arena
	b *builder
}

func newKT(t *testing.T) *kt {
	t.Helper()
	k, err := compileKernels(testDev)
	require.NoError(t, err)
	a := &arena{dev: testDev}
	t.Cleanup(a.release)
	return &kt{t: t, a: a, b: &builder{k: k, a: a}}
}

// up uploads x as float32.
func (k *kt) up(label string, x []float64) *wgpu.Buffer {
	k.t.Helper()
	b, err := k.a.storage(label, len(x))
	require.NoError(k.t, err)
	require.NoError(k.t, wgpu.Write(b, 0, to32(x)))
	return b
}

// upInts uploads int32 or uint32 values.
func upInts[T int32 | uint32](k *kt, label string, x []T) *wgpu.Buffer {
	k.t.Helper()
	b, err := k.a.storage(label, len(x))
	require.NoError(k.t, err)
	require.NoError(k.t, wgpu.Write(b, 0, x))
	return b
}

// out allocates n floats poisoned with NaN, so that an element a kernel
// forgets to write fails the comparison.
func (k *kt) out(label string, n int) *wgpu.Buffer {
	k.t.Helper()
	return k.up(label, nans(n))
}

func nans(n int) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = math.NaN()
	}
	return x
}

// run submits the dispatches and waits.
func (k *kt) run(ds ...wgpu.Dispatch) {
	k.t.Helper()
	require.NoError(k.t, k.b.err)
	_, err := testDev.Run(context.Background(), ds...)
	require.NoError(k.t, err)
}

// get downloads n floats as float64.
func (k *kt) get(b *wgpu.Buffer, n int) []float64 {
	k.t.Helper()
	x := make([]float32, n)
	require.NoError(k.t, wgpu.Download(context.Background(), b, x))
	return to64(x)
}

func to64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

func randn(r *rand.Rand, n int, std float64) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = float64(float32(std * r.NormFloat64()))
	}
	return x
}

// relErr is ‖got-want‖/‖want‖; a NaN anywhere gives +Inf.
func relErr(got, want []float64) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	num, den := 0.0, 0.0
	for i := range want {
		d := got[i] - want[i]
		if math.IsNaN(d) {
			return math.Inf(1)
		}
		num += d * d
		den += want[i] * want[i]
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}
