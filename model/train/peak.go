package train

import (
	"context"
	"fmt"
	"time"

	"github.com/coreattn/coreattn/wgpu"
)

// FMAPeak measures dev's float32 FMA throughput in FLOP/s (2 per FMA)
// with a kernel of independent fma chains, the ceiling of WGSL arithmetic
// (no tensor cores): the best of a few runs, timed by timestamp queries
// where the adapter has them (else by the host).
func FMAPeak(ctx context.Context, dev *wgpu.Device) (float64, error) {
	k, err := compileKernels(dev)
	if err != nil {
		return 0, err
	}
	groups, iters := 4096, 4096 // 1M invocations, 275 GFLOP: ~5 ms on an H100
	if dev.Info().IsCPU() {
		groups, iters = 64, 256
	}
	a := &arena{dev: dev}
	defer a.release()
	sink, err := a.storage("fma sink", groups*256*4)
	if err != nil {
		return 0, err
	}
	b := &builder{k: k, a: a}
	d := b.dispatch("fma_peak", b.grid(groups), u32(iters), sink)
	if b.err != nil {
		return 0, b.err
	}
	flops := float64(groups) * 256 * float64(iters) * 8 * 4 * 2
	best := time.Duration(0)
	for i := range 4 {
		t, err := dev.Run(ctx, d)
		if err != nil {
			return 0, fmt.Errorf("train: fma peak: %w", err)
		}
		if i == 0 {
			continue // warm-up
		}
		if g := t.GPU(); best == 0 || g < best {
			best = g
		}
	}
	return flops / best.Seconds(), nil
}
