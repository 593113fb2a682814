//go:build linux && cgo

package dawnrun

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/coreattn/coreattn/attention/tc"
	"github.com/coreattn/coreattn/shaders"
	"github.com/coreattn/coreattn/wgpu/internal/dawn"
)

// ErrNoMatrices reports a device whose adapter offers no subgroup matrices
// the kernels use.
var ErrNoMatrices = errors.New("dawnrun: no f16->f32 subgroup matrices")

// TargetOf describes a Dawn device for package tc: its f16→f32 matrix
// shapes, subgroup size and limits.
func TargetOf(d *dawn.Device) (tc.Device, error) {
	info := d.Info()
	f := d.Features()
	var shapes []shaders.MatrixShape
	for _, c := range info.MatrixConfigs {
		if c.Component == dawn.F16 && c.Result == dawn.F32 {
			shapes = append(shapes, shaders.MatrixShape{M: int(c.M), N: int(c.N), K: int(c.K)})
		}
	}
	switch {
	case !f.F16 || !f.Subgroups || !f.SubgroupMatrix || len(shapes) == 0:
		return tc.Device{}, fmt.Errorf("%w: %s offers %s", ErrNoMatrices, info.Name, info.Capabilities())
	case info.SubgroupMinSize != info.SubgroupMaxSize:
		return tc.Device{}, fmt.Errorf("%w: %s has subgroups of %d to %d invocations; the kernels need one size", ErrNoMatrices, info.Name, info.SubgroupMinSize, info.SubgroupMaxSize)
	}
	lim := info.Limits
	dev := tc.Device{
		Target: shaders.TCTarget{
			Shapes:         shapes,
			SubgroupSize:   int(info.SubgroupMaxSize),
			WorkgroupBytes: int(lim.MaxWorkgroupStorageSize),
			MaxThreads:     int(lim.MaxInvocationsPerWorkgroup),
		},
		MaxBufferBytes:            min(lim.MaxBufferSize, lim.MaxStorageBufferBindingSize),
		MaxWorkgroupsPerDimension: int(lim.MaxWorkgroupsPerDimension),
		MaxStorageBuffers:         int(lim.MaxStorageBuffersPerStage),
		CPU:                       info.Type == dawn.CPU,
	}
	if dev.CPU {
		dev.Target.CPU = true
	} else {
		dev.Target.MaxRegisters = shaders.TCRegisterBudget
	}
	return dev, nil
}

// Runner runs launches on one device, compiling each module and pipeline
// once. It is safe for concurrent use.
type Runner struct {
	dev *dawn.Device

	mu      sync.Mutex
	modules map[string]*dawn.ShaderModule // by source
	pipes   map[pipeKey]*dawn.ComputePipeline
}

type pipeKey struct{ source, entry string }

// New returns a Runner on dev.
func New(dev *dawn.Device) *Runner {
	return &Runner{dev: dev, modules: map[string]*dawn.ShaderModule{}, pipes: map[pipeKey]*dawn.ComputePipeline{}}
}

// Device is the runner's device.
func (r *Runner) Device() *dawn.Device { return r.dev }

// Release frees the compiled modules and pipelines.
func (r *Runner) Release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.pipes {
		p.Release()
	}
	for _, m := range r.modules {
		m.Release()
	}
	r.pipes, r.modules = map[pipeKey]*dawn.ComputePipeline{}, map[string]*dawn.ShaderModule{}
}

// pipeline compiles (or fetches) entry of m.
func (r *Runner) pipeline(ctx context.Context, m *tc.Module, entry string) (*dawn.ComputePipeline, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := pipeKey{m.Source, entry}
	if p, ok := r.pipes[key]; ok {
		return p, nil
	}
	mod, ok := r.modules[m.Source]
	if !ok {
		var err error
		if mod, err = r.dev.ShaderModule(ctx, m.Label, m.Source); err != nil {
			return nil, err
		}
		r.modules[m.Source] = mod
	}
	p, err := r.dev.ComputePipeline(ctx, m.Label+" "+entry, mod, entry, nil)
	if err != nil {
		return nil, err
	}
	r.pipes[key] = p
	return p, nil
}

// Prepared is a launch bound to buffers: its passes can be submitted any
// number of times, then Release frees what it owns.
type Prepared struct {
	r      *Runner
	passes []dawn.Pass
	labels []string
	owned  []*dawn.Buffer
	groups []*dawn.BindGroup
}

// Prepare creates the launch's buffers, pipelines and bind groups over
// tensors, which must hold the launch's tensors at their sizes.
func (r *Runner) Prepare(ctx context.Context, l *tc.Launch, tensors map[string]*dawn.Buffer) (*Prepared, error) {
	bufs := make(map[string]*dawn.Buffer, len(tensors)+len(l.Buffers))
	for _, t := range l.Tensors {
		b, ok := tensors[t.Name]
		if !ok || b == nil {
			return nil, fmt.Errorf("dawnrun: %s: tensor %s is missing", l.Tiling, t.Name)
		}
		if b.Size() < t.Bytes {
			return nil, fmt.Errorf("dawnrun: %s: tensor %s holds %d bytes, want at least %d", l.Tiling, t.Name, b.Size(), t.Bytes)
		}
		bufs[t.Name] = b
	}
	p := &Prepared{r: r}
	for _, spec := range l.Buffers {
		usage := dawn.UsageStorage | dawn.UsageCopySrc | dawn.UsageCopyDst
		if spec.Uniform {
			usage = dawn.UsageUniform | dawn.UsageCopyDst
		}
		b, err := r.dev.NewBuffer(ctx, spec.Name, spec.Bytes, usage)
		if err != nil {
			p.Release()
			return nil, err
		}
		p.owned = append(p.owned, b)
		if init := spec.InitBytes(); init != nil {
			if err := r.dev.Write(b, 0, init); err != nil {
				p.Release()
				return nil, err
			}
		}
		bufs[spec.Name] = b
	}
	for _, d := range l.Dispatches {
		pipe, err := r.pipeline(ctx, d.Module, d.Entry)
		if err != nil {
			p.Release()
			return nil, fmt.Errorf("dawnrun: %s: %w", d.Label, err)
		}
		bs := make([]dawn.Binding, len(d.Bindings))
		for i, bd := range d.Bindings {
			b, ok := bufs[bd.Name]
			if !ok {
				p.Release()
				return nil, fmt.Errorf("dawnrun: %s: binding %d names buffer %q, which the launch neither owns nor lists", d.Label, bd.Slot, bd.Name)
			}
			bs[i] = dawn.Binding{Binding: bd.Slot, Buffer: b}
		}
		g, err := r.dev.BindGroup(ctx, d.Label, pipe, bs)
		if err != nil {
			p.Release()
			return nil, fmt.Errorf("dawnrun: %s: %w", d.Label, err)
		}
		p.groups = append(p.groups, g)
		p.passes = append(p.passes, dawn.Pass{Pipeline: pipe, BindGroup: g, Workgroups: d.Workgroups})
		p.labels = append(p.labels, d.Label)
	}
	return p, nil
}

// Labels are the passes' labels, in order.
func (p *Prepared) Labels() []string { return p.labels }

// Run submits the passes, waits for them, and with timed returns each
// pass's GPU time (nil where the device has no timestamp queries).
func (p *Prepared) Run(ctx context.Context, timed bool) ([]time.Duration, error) {
	if len(p.passes) == 0 {
		return nil, nil
	}
	return p.r.dev.Run(ctx, timed, p.passes...)
}

// Repeat submits the passes n times back to back in one command buffer
// (as a benchmark wants: the GPU never idles between runs), waits, and with
// timed returns the n·len(passes) pass times in order.
func (p *Prepared) Repeat(ctx context.Context, n int, timed bool) ([]time.Duration, error) {
	if len(p.passes) == 0 || n < 1 {
		return nil, nil
	}
	all := make([]dawn.Pass, 0, n*len(p.passes))
	for range n {
		all = append(all, p.passes...)
	}
	return p.r.dev.Run(ctx, timed, all...)
}

// Release frees the buffers and bind groups the launch owns.
func (p *Prepared) Release() {
	for _, g := range p.groups {
		g.Release()
	}
	for _, b := range p.owned {
		b.Release()
	}
	p.groups, p.owned = nil, nil
}

// Run prepares l over tensors, runs it once and releases it.
func (r *Runner) Run(ctx context.Context, l *tc.Launch, tensors map[string]*dawn.Buffer, timed bool) ([]time.Duration, error) {
	p, err := r.Prepare(ctx, l, tensors)
	if err != nil {
		return nil, err
	}
	defer p.Release()
	return p.Run(ctx, timed)
}
