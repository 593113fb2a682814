package train

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/coreattn/coreattn/corpus"
	"github.com/coreattn/coreattn/model"
	"github.com/stretchr/testify/require"
)

// BenchmarkStepHost trains steps on real batches (documents cut at 2048
// bytes, as the GPU runs are) and reports, per step, the host's own time
// (host-ns/step: the wall time less the time spent waiting for the device,
// wgpu.Device.WaitTime, which counts a driver's blocking submit too) beside
// that wait (wait-ns/step). The host time is what the GPU idles for where
// the host does not run ahead of it: writing the batch, recording and
// preparing the attention launches, encoding and submitting, reading the
// scalars back. "sync" runs Step after Step; "ahead" submits step n+1
// before waiting for step n, as `coreattn train` does, so the host's time
// overlaps the GPU's (lavapipe, whose submissions wait for the previous
// one, overlaps only the recording). The batches come from a packer over
// one Go package, the same sequence on every run.
func BenchmarkStepHost(b *testing.B) {
	for _, bc := range []struct {
		preset string
		tokens int
	}{{"tiny", 512}, {"small", 256}} {
		for _, ahead := range []bool{false, true} {
			name := fmt.Sprintf("%s/sync", bc.preset)
			if ahead {
				name = fmt.Sprintf("%s/ahead", bc.preset)
			}
			b.Run(name, func(b *testing.B) { benchSteps(b, bc.preset, bc.tokens, ahead) })
		}
	}
}

func benchSteps(b *testing.B, preset string, tokens int, ahead bool) {
	c, err := model.Preset(preset)
	require.NoError(b, err)
	tr := newTestTrainer(b, c, tokens, 1)
	p, err := corpus.NewPacker(goPackage(b, "strings").Train, tokens, 1)
	require.NoError(b, err)
	ctx := context.Background()
	for range 2 { // compile the kernels, warm the workspaces
		_, err := tr.Step(ctx, toBatch(p.Next()), 1e-4)
		require.NoError(b, err)
	}
	wait0 := testDev.WaitTime()
	b.ResetTimer()
	start := time.Now()
	var prev *Pending
	for range b.N {
		if !ahead {
			_, err := tr.Step(ctx, toBatch(p.Next()), 1e-4)
			require.NoError(b, err)
			continue
		}
		next, err := tr.Submit(ctx, toBatch(p.Next()), 1e-4)
		require.NoError(b, err)
		if prev != nil {
			_, err := prev.Wait(ctx)
			require.NoError(b, err)
		}
		prev = next
	}
	if prev != nil {
		_, err := prev.Wait(ctx)
		require.NoError(b, err)
	}
	wall := time.Since(start)
	b.StopTimer()
	wait := testDev.WaitTime() - wait0
	b.ReportMetric(float64(wall-wait)/float64(b.N), "host-ns/step")
	b.ReportMetric(float64(wait)/float64(b.N), "wait-ns/step")
}
