package main

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/attention/gpu"
	"github.com/coreattn/coreattn/internal/npy"
	"github.com/coreattn/coreattn/wgpu"
)

// openAdapter opens adapter index (as numbered by `coreattn devices`) with the
// global flags' verbosity. cmdName prefixes the error about a bad index.
func openAdapter(g *globalFlags, cmdName string, index int) (*wgpu.Device, error) {
	return openAdapterWith(g.options(), cmdName, index)
}

// openAdapterWith is openAdapter with the wgpu options given.
func openAdapterWith(opts wgpu.Options, cmdName string, index int) (*wgpu.Device, error) {
	if index < 0 {
		return nil, fmt.Errorf("%s: --adapter %d: want an index >= 0 (see `coreattn devices`)", cmdName, index)
	}
	dev, err := wgpu.Open(index, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: --adapter %d: %w", cmdName, index, err)
	}
	return dev, nil
}

// contextOf returns ctx, or a background context when ctx is nil (a command
// executed without one).
func contextOf(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
}

// readTensor reads the float32 tensor named by flag from path and checks that
// it has the given rank.
func readTensor(flag, path string, rank int) ([]float32, []int, error) {
	data, shape, err := npy.ReadFloat32(path)
	if err != nil {
		return nil, nil, fmt.Errorf("--%s: %w", flag, err)
	}
	if len(shape) != rank {
		return nil, nil, fmt.Errorf("--%s %s: shape %v has rank %d, want %d", flag, path, shape, len(shape), rank)
	}
	return data, shape, nil
}

// offsetLimits bound an offset vector: 16M segments, beyond any batch a
// device runs, stored as int64 at most.
var offsetLimits = npy.Limits{MaxElements: 1 << 24, MaxBytes: 8 << 24}

// readOffsets reads the int32 offset vector named by flag from path.
func readOffsets(flag, path string) ([]int32, error) {
	data, shape, err := offsetLimits.ReadInt32(path)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", flag, err)
	}
	if len(shape) != 1 {
		return nil, fmt.Errorf("--%s %s: shape %v has rank %d, want a vector [B+1]", flag, path, shape, len(shape))
	}
	return data, nil
}

// tflops converts a FLOP count done in d into TFLOP/s.
func tflops(flops float64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return flops / d.Seconds() / 1e12
}

// ms formats a duration in milliseconds.
func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// maxAbsErr returns the largest |got-want| over the entries, skipping entries
// that are the same infinity in both; a NaN, or an infinity in only one of
// them, gives +Inf.
func maxAbsErr(got []float32, want []float64) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	worst := 0.0
	for i, w := range want {
		g := float64(got[i])
		if math.IsInf(g, 0) && g == w {
			continue
		}
		d := math.Abs(g - w)
		if math.IsNaN(d) {
			return math.Inf(1)
		}
		worst = max(worst, d)
	}
	return worst
}

// kernels is what demo and profile need of the operator (gpu.Op); their
// tests substitute one whose calls fail.
type kernels interface {
	Device() *wgpu.Device
	PrepareForward(*attention.Args, gpu.ForwardTensors) (*gpu.Call, error)
	PrepareBackward(*attention.Args, gpu.BackwardTensors) (*gpu.Call, error)
}

// newKernels is newOp(dev), or gpu.New(dev) where newOp is nil.
func newKernels(dev *wgpu.Device, newOp func(*wgpu.Device) kernels) kernels {
	if newOp == nil {
		return gpu.New(dev)
	}
	return newOp(dev)
}

// shapeString formats a shape as [a, b, c].
func shapeString(shape ...int) string {
	parts := make([]string, len(shape))
	for i, s := range shape {
		parts[i] = fmt.Sprint(s)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// gqaString describes the head layout, e.g. "Hq=32 Hkv=8 (GQA 4:1)".
func gqaString(a *attention.Args) string {
	s := fmt.Sprintf("Hq=%d Hkv=%d", a.NumHeadsQ, a.NumHeadsKV)
	switch {
	case a.NumHeadsKV == a.NumHeadsQ:
		return s + " (MHA)"
	case a.NumHeadsKV == 1:
		return s + " (MQA)"
	default:
		return s + fmt.Sprintf(" (GQA %d:1)", a.NumHeadsQ/a.NumHeadsKV)
	}
}
