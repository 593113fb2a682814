//go:build linux && cgo

package dawngemm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/gemm"
	"github.com/coreattn/coreattn/shaders"
	"github.com/coreattn/coreattn/wgpu/internal/dawn"
)

// TestMain points the Vulkan loader at the lavapipe that scripts/dawn.sh
// --lavapipe installs when no driver list is set, as package dawn's tests
// do (that Mesa has no subgroup matrices: the tests then skip).
func TestMain(m *testing.M) {
	if os.Getenv("VK_DRIVER_FILES") == "" && os.Getenv("VK_ICD_FILENAMES") == "" {
		if cache, err := dawn.CacheDir(); err == nil {
			icd := filepath.Join(cache, "lavapipe", "lvp_icd.json")
			if _, err := os.Stat(icd); err == nil {
				os.Setenv("VK_DRIVER_FILES", icd)
			}
		}
	}
	os.Exit(m.Run())
}

// target is what a device offers the subgroup-matrix engine.
type target struct {
	configs  []shaders.MMAConfig
	subgroup int
	wgBytes  int
	threads  int
	maxBytes int64
	cpu      bool
}

// openDevice opens the first Vulkan adapter with f16→f32 subgroup matrices
// of one subgroup size, or skips the test.
func openDevice(tb testing.TB, robust bool) (*dawn.Device, target) {
	tb.Helper()
	lib, err := dawn.Open("")
	if errors.Is(err, dawn.ErrNotFound) {
		tb.Skipf("no Dawn library (%s, the install cache, libwebgpu_dawn.so.0): install one with scripts/dawn.sh", dawn.EnvLibrary)
	}
	require.NoError(tb, err, "a Dawn library was found but does not load")
	in, err := lib.NewInstance(dawn.InstanceOptions{AllowUnsafeAPIs: true})
	require.NoError(tb, err)
	tb.Cleanup(in.Release)
	ctx := context.Background()
	adapters, err := in.Adapters(ctx, dawn.AdapterOptions{Backend: dawn.BackendVulkan})
	if errors.Is(err, dawn.ErrNoAdapter) {
		tb.Skipf("Dawn (%s) offers no Vulkan adapter: %v", lib.Path(), err)
	}
	require.NoError(tb, err)
	for _, a := range adapters[1:] {
		a.Release()
	}
	tb.Cleanup(adapters[0].Release)
	d, err := adapters[0].NewDevice(ctx, dawn.DeviceOptions{Label: tb.Name(), DisableRobustness: !robust})
	require.NoError(tb, err)
	tb.Cleanup(d.Release)
	info, f := d.Info(), d.Features()
	tg := target{
		subgroup: int(info.SubgroupMaxSize),
		wgBytes:  int(info.Limits.MaxWorkgroupStorageSize),
		threads:  int(info.Limits.MaxInvocationsPerWorkgroup),
		maxBytes: int64(min(info.Limits.MaxBufferSize, info.Limits.MaxStorageBufferBindingSize)),
		cpu:      info.Type == dawn.CPU,
	}
	for _, c := range info.MatrixConfigs {
		if c.Component == dawn.F16 && c.Result == dawn.F32 {
			tg.configs = append(tg.configs, shaders.MMAConfig{M: int(c.M), N: int(c.N), K: int(c.K)})
		}
	}
	switch {
	case !f.F16 || !f.Subgroups || !f.SubgroupMatrix || len(tg.configs) == 0:
		tb.Skipf("%s offers no f16->f32 subgroup matrices (%s; Mesa 26's lavapipe or an NVIDIA GPU has them)", info.Name, info.Capabilities())
	case info.SubgroupMinSize != info.SubgroupMaxSize:
		tb.Skipf("%s has subgroups of %d to %d invocations; the kernel needs one size", info.Name, info.SubgroupMinSize, info.SubgroupMaxSize)
	}
	tb.Logf("%s: %s", info, info.Capabilities())
	return d, tg
}

// chosen is the tiling the chooser picks for the device; on a CPU adapter
// its loops stay rolled (lavapipe compiles the unrolled kernel for minutes).
func (tg target) chosen(tb testing.TB) shaders.GemmTiling {
	t, ok := shaders.ChooseGemmMMA(tg.configs, tg.subgroup, tg.wgBytes, tg.threads)
	require.True(tb, ok, "no subgroup-matrix tiling fits the device (%+v)", tg)
	t.Rolled = tg.cpu
	return t
}

// small is a small tiling of the device's first configuration: 2×2
// subgroups of 2×2 fragments, K steps of two slices, rolled on CPUs.
func (tg target) small() shaders.GemmTiling {
	c := tg.configs[0]
	return shaders.GemmTiling{BM: 4 * c.M, BN: 4 * c.N, BK: 2 * c.K, Rolled: tg.cpu,
		MMA: shaders.GemmMMA{M: c.M, N: c.N, K: c.K, Subgroup: tg.subgroup, FM: 2, FN: 2}}
}

// runner compiles each module and pipeline once.
type runner struct {
	d     *dawn.Device
	tg    target
	pipes map[string]*dawn.ComputePipeline
}

func newRunner(tb testing.TB, d *dawn.Device, tg target) *runner {
	r := &runner{d: d, tg: tg, pipes: map[string]*dawn.ComputePipeline{}}
	tb.Cleanup(func() {
		for _, p := range r.pipes {
			p.Release()
		}
	})
	return r
}

func (r *runner) pipeline(ctx context.Context, label, src string) (*dawn.ComputePipeline, error) {
	if p, ok := r.pipes[src]; ok {
		return p, nil
	}
	mod, err := r.d.ShaderModule(ctx, label, src)
	if err != nil {
		return nil, err
	}
	defer mod.Release()
	p, err := r.d.ComputePipeline(ctx, label, mod, "main", nil)
	if err != nil {
		return nil, err
	}
	r.pipes[src] = p
	return p, nil
}

// product is one prepared product on dense row-major matrices in a, b and
// c (A stored M×K or K×M, B K×N or N×K), split along K as gemm.SplitK says
// (forced as in gemm.Options.Split), with the reduction of package gemm.
type product struct {
	passes []dawn.Pass
	tiling string
	owned  []interface{ Release() }
}

func (p *product) release() {
	for i := len(p.owned) - 1; i >= 0; i-- {
		p.owned[i].Release()
	}
}

func (r *runner) prepare(ctx context.Context, t shaders.GemmTiling, s gemm.Shape, forced int, a, b, c *dawn.Buffer) (*product, error) {
	m, n, k := s.M, s.N, s.K
	lda, ldb := k, n
	if s.TransA {
		lda = m
	}
	if s.TransB {
		ldb = k
	}
	t.TransA, t.TransB, t.Accumulate = s.TransA, s.TransB, s.Accumulate
	t.VecA, t.VecB, t.VecC = lda%4 == 0, ldb%4 == 0, n%4 == 0
	parts, chunk := gemm.SplitK(m, n, k, t, forced, r.tg.cpu, r.tg.maxBytes)
	p := &product{tiling: t.String()}
	params := shaders.GemmParams{M: uint32(m), N: uint32(n), K: uint32(k), KChunk: uint32(chunk),
		LDA: uint32(lda), LDB: uint32(ldb), LDC: uint32(n), Splits: uint32(parts), LDO: uint32(n)}
	out := c
	if parts > 1 {
		// The splits write dense partials; the reduction adds them into C.
		t.Accumulate = false
		p.tiling += fmt.Sprintf(" split %d", parts)
		scratch, err := r.d.NewBuffer(ctx, "partials", uint64(parts*m*n*4), dawn.UsageStorage)
		if err != nil {
			return nil, err
		}
		p.owned = append(p.owned, scratch)
		out, params.SplitStride = scratch, uint32(m*n)
	}
	items := m * ((n + 3) / 4)
	gx := min((items+shaders.GemmReduceThreads-1)/shaders.GemmReduceThreads, 65535)
	params.ReduceGridX = uint32(gx)
	words := params.Words()
	pbuf, err := r.d.NewBuffer(ctx, "params", uint64(4*len(words)), dawn.UsageUniform|dawn.UsageCopyDst)
	if err != nil {
		p.release()
		return nil, err
	}
	p.owned = append(p.owned, pbuf)
	pb := make([]byte, 4*len(words))
	for i, w := range words {
		binary.LittleEndian.PutUint32(pb[4*i:], w)
	}
	if err := r.d.Write(pbuf, 0, pb); err != nil {
		p.release()
		return nil, err
	}
	src, err := t.Source()
	if err != nil {
		p.release()
		return nil, err
	}
	pipe, err := r.pipeline(ctx, t.String(), src)
	if err != nil {
		p.release()
		return nil, err
	}
	group, err := r.d.BindGroup(ctx, t.String(), pipe, []dawn.Binding{{Binding: 0, Buffer: pbuf}, {Binding: 1, Buffer: a}, {Binding: 2, Buffer: b}, {Binding: 3, Buffer: out}})
	if err != nil {
		p.release()
		return nil, err
	}
	p.owned = append(p.owned, group)
	p.passes = append(p.passes, dawn.Pass{Pipeline: pipe, BindGroup: group,
		Workgroups: [3]uint32{uint32((n + t.BN - 1) / t.BN), uint32((m + t.BM - 1) / t.BM), uint32(parts)}})
	if parts == 1 {
		return p, nil
	}
	red := shaders.GemmReduce{VecPart: n%4 == 0, VecC: n%4 == 0, Accumulate: s.Accumulate}
	rsrc, err := red.Source()
	if err != nil {
		p.release()
		return nil, err
	}
	rpipe, err := r.pipeline(ctx, red.String(), rsrc)
	if err != nil {
		p.release()
		return nil, err
	}
	rgroup, err := r.d.BindGroup(ctx, red.String(), rpipe, []dawn.Binding{{Binding: 0, Buffer: pbuf}, {Binding: 1, Buffer: out}, {Binding: 2, Buffer: c}})
	if err != nil {
		p.release()
		return nil, err
	}
	p.owned = append(p.owned, rgroup)
	gy := ((items+shaders.GemmReduceThreads-1)/shaders.GemmReduceThreads + gx - 1) / gx
	p.passes = append(p.passes, dawn.Pass{Pipeline: rpipe, BindGroup: rgroup, Workgroups: [3]uint32{uint32(gx), uint32(gy), 1}})
	return p, nil
}

// upload creates a storage buffer holding x.
func upload(ctx context.Context, d *dawn.Device, name string, x []float32) (*dawn.Buffer, error) {
	b, err := d.NewBuffer(ctx, name, uint64(max(16, (4*len(x)+15)/16*16)), dawn.UsageStorage|dawn.UsageCopySrc|dawn.UsageCopyDst)
	if err != nil {
		return nil, err
	}
	if err := writeFloats(d, b, x); err != nil {
		b.Release()
		return nil, err
	}
	return b, nil
}

// writeFloats writes x at the start of b.
func writeFloats(d *dawn.Device, b *dawn.Buffer, x []float32) error {
	raw := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return d.Write(b, 0, raw)
}

// download reads n floats from b.
func download(ctx context.Context, d *dawn.Device, b *dawn.Buffer, n int) ([]float32, error) {
	raw := make([]byte, 4*n)
	if err := d.Read(ctx, b, 0, raw); err != nil {
		return nil, err
	}
	x := make([]float32, n)
	for i := range x {
		x[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return x, nil
}
