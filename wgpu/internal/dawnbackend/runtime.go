//go:build linux && cgo

// Package dawnbackend is coreattn's Dawn runtime: package backend's
// interfaces over package dawn (webgpu.h, Dawn loaded at run time). It
// gives kernels f16, subgroups and subgroup matrices where the adapter has
// them. Package wgpu is its only user.
package dawnbackend

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreattn/coreattn/wgpu/internal/backend"
	"github.com/coreattn/coreattn/wgpu/internal/dawn"
	"github.com/coreattn/coreattn/wgpu/internal/quiet"
	"github.com/coreattn/coreattn/wgpu/internal/vulkan"
)

// Name is the runtime's name in reports and options.
const Name = "dawn"

// Runtime is the Dawn runtime over one loaded library.
type Runtime struct {
	lib *dawn.Library
}

var _ backend.Runtime = (*Runtime)(nil)

// Load loads Dawn from path, or from where package dawn looks for it when
// path is empty ($COREATTN_DAWN, the install cache of scripts/dawn.sh, the
// system). Errors wrap dawn.ErrNotFound where there is none.
func Load(path string) (*Runtime, error) {
	lib, err := dawn.Open(path)
	if err != nil {
		return nil, err
	}
	return &Runtime{lib: lib}, nil
}

// Name is "dawn".
func (r *Runtime) Name() string { return Name }

// Path is the file Dawn was loaded from.
func (r *Runtime) Path() string { return r.lib.Path() }

// session is an instance and its adapters for one backend.
type session struct {
	in       *dawn.Instance
	adapters []*dawn.Adapter
}

func (s *session) release(keep *dawn.Adapter) {
	for _, a := range s.adapters {
		if a != keep {
			a.Release()
		}
	}
	if keep == nil {
		s.in.Release()
	}
}

// open creates an instance and lists the adapters of backend b (quietly:
// Dawn warns on stderr about the limits it lowers).
func (r *Runtime) open(b dawn.Backend, opts backend.Options) (*session, error) {
	in, err := r.lib.NewInstance(dawn.InstanceOptions{AllowUnsafeAPIs: true})
	if err != nil {
		return nil, err
	}
	var list []*dawn.Adapter
	quiet.Stderr(!opts.Verbose, func() {
		list, err = in.Adapters(context.Background(), dawn.AdapterOptions{Backend: b})
	})
	if err != nil {
		in.Release()
		if errors.Is(err, dawn.ErrNoAdapter) {
			return nil, &noAdapterError{err}
		}
		return nil, err
	}
	return &session{in: in, adapters: list}, nil
}

// noAdapterError is Dawn's "no adapter", which matches backend.ErrNoAdapter
// but says what Dawn needs rather than how to install lavapipe.
type noAdapterError struct{ err error }

func (e *noAdapterError) Error() string {
	return fmt.Sprintf("wgpu: Dawn sees no adapter it accepts (%v; it refuses Mesa 22.3's lavapipe, Debian 12's: bash scripts/dawn.sh --lavapipe fetches Mesa 25's for the tests)", e.err)
}

func (e *noAdapterError) Unwrap() []error { return []error{backend.ErrNoAdapter, e.err} }

// Adapters lists Dawn's Vulkan adapters, best first.
func (r *Runtime) Adapters(opts backend.Options) ([]backend.Info, error) {
	s, err := r.open(dawn.BackendVulkan, opts)
	if err != nil {
		return nil, err
	}
	defer s.release(nil)
	var vk []vulkan.Device
	out := make([]backend.Info, len(s.adapters))
	for i, a := range s.adapters {
		if a.Info().Features.Timestamps && vk == nil {
			vk = vulkan.Devices()
		}
		out[i] = infoOf(a.Info(), a.Info().Features, vk)
	}
	return out, nil
}

// Open opens adapter index of Adapters' list.
func (r *Runtime) Open(index int, opts backend.Options) (backend.Device, error) {
	s, err := r.open(dawn.BackendVulkan, opts)
	if err != nil {
		return nil, err
	}
	if index < 0 || index >= len(s.adapters) {
		n := len(s.adapters)
		s.release(nil)
		return nil, fmt.Errorf("wgpu: dawn adapter %d does not exist (have %d: 0..%d; see `coreattn devices`)", index, n, n-1)
	}
	return r.newDevice(s, s.adapters[index], opts)
}

// OpenNull opens a device on Dawn's Null backend, which compiles and
// validates WGSL (every extension Dawn knows) and executes nothing.
func (r *Runtime) OpenNull(opts backend.Options) (backend.Device, error) {
	s, err := r.open(dawn.BackendNull, opts)
	if err != nil {
		return nil, err
	}
	return r.newDevice(s, s.adapters[0], opts)
}

func (r *Runtime) newDevice(s *session, a *dawn.Adapter, opts backend.Options) (backend.Device, error) {
	s.release(a)
	var dev *dawn.Device
	var err error
	quiet.Stderr(!opts.Verbose, func() {
		dev, err = a.NewDevice(context.Background(), dawn.DeviceOptions{Label: "coreattn", DisableRobustness: opts.DisableRobustness})
	})
	if err != nil {
		a.Release()
		s.in.Release()
		return nil, fmt.Errorf("wgpu: open %s: %w", a.Info().Name, err)
	}
	var vk []vulkan.Device
	if dev.Features().Timestamps {
		vk = vulkan.Devices()
	}
	return &device{info: infoOf(dev.Info(), dev.Features(), vk), in: s.in, adapter: a, d: dev}, nil
}

// infoOf describes an adapter with features f (the adapter's, or those
// enabled on a device).
func infoOf(a dawn.AdapterInfo, f dawn.Features, vk []vulkan.Device) backend.Info {
	l := a.Limits
	info := backend.Info{
		Runtime:  Name,
		Name:     a.Name,
		Vendor:   a.Vendor,
		VendorID: a.VendorID,
		DeviceID: a.DeviceID,
		Backend:  a.Backend.String(),
		Type:     a.Type.String(),
		Driver:   a.Description,
		Limits: backend.Limits{
			MaxStorageBufferBindingSize: l.MaxStorageBufferBindingSize,
			MaxBufferSize:               l.MaxBufferSize,
			MaxWorkgroupStorageSize:     l.MaxWorkgroupStorageSize,
			MaxInvocationsPerWorkgroup:  l.MaxInvocationsPerWorkgroup,
			MaxWorkgroupSizeX:           l.MaxWorkgroupSize[0],
			MaxWorkgroupsPerDimension:   l.MaxWorkgroupsPerDimension,
			MaxStorageBuffersPerStage:   l.MaxStorageBuffersPerStage,
		},
		Timestamps: f.Timestamps,
		F16:        f.F16,
		Subgroups:  f.Subgroups,
	}
	if f.Subgroups {
		info.SubgroupMinSize, info.SubgroupMaxSize = a.SubgroupMinSize, a.SubgroupMaxSize
	}
	if f.SubgroupMatrix {
		for _, c := range a.MatrixConfigs {
			info.MatrixConfigs = append(info.MatrixConfigs, backend.MatrixConfig{
				M: int(c.M), N: int(c.N), K: int(c.K), Component: c.Component.String(), Result: c.Result.String(),
			})
		}
	}
	if f.Timestamps {
		info.TimestampPeriod = vulkan.TimestampPeriod(vk, info.Backend, a.VendorID, a.DeviceID, a.Name)
	}
	return info
}

// device is a Dawn device. Dawn's Device serialises its own calls; closed
// only turns the errors of calls after Close into ErrClosed.
type device struct {
	info    backend.Info
	in      *dawn.Instance
	adapter *dawn.Adapter
	d       *dawn.Device

	closeOnce sync.Once
	closed    atomic.Bool
	waited    atomic.Int64 // nanoseconds in Dawn's waits, reads and submissions (WaitTime)
	created   atomic.Int64 // buffers created through NewBuffer (BuffersCreated)
}

// timed runs f and adds its duration to WaitTime.
func (d *device) timed(f func() error) error {
	start := time.Now()
	err := f()
	d.waited.Add(int64(time.Since(start)))
	return err
}

// WaitTime is the time spent in Dawn's waits, reads and submissions.
func (d *device) WaitTime() time.Duration { return time.Duration(d.waited.Load()) }

// BuffersCreated counts the storage and uniform buffers created (Dawn's
// own staging and timestamp buffers are not seen here).
func (d *device) BuffersCreated() int64 { return d.created.Load() }

var _ backend.Device = (*device)(nil)

func (d *device) Info() backend.Info { return d.info }

func (d *device) Close() {
	d.closeOnce.Do(func() {
		d.closed.Store(true)
		d.d.Release()
		d.adapter.Release()
		d.in.Release()
	})
}

// Err reports why the device cannot take work, or nil.
func (d *device) Err() error {
	if d.closed.Load() {
		return fmt.Errorf("%w: %s", backend.ErrClosed, d.info.Name)
	}
	return d.wrap(d.d.Err())
}

// wrap maps package dawn's errors onto package backend's sentinels,
// keeping dawn's in the chain.
func (d *device) wrap(err error) error {
	switch {
	case err == nil:
		return nil
	case d.closed.Load():
		return fmt.Errorf("%w: %s: %w", backend.ErrClosed, d.info.Name, err)
	case errors.Is(err, dawn.ErrDeviceLost):
		return fmt.Errorf("%w: %w", backend.ErrDeviceLost, err)
	case errors.Is(err, dawn.ErrReleased):
		return fmt.Errorf("%w: %w", backend.ErrReleased, err)
	}
	return err
}

// buffer is a Dawn buffer; staging buffers are empty handles, since
// Dawn's Read keeps its own staging buffer.
type buffer struct {
	b *dawn.Buffer // nil for staging
}

func (b *buffer) Release() {
	if b != nil && b.b != nil {
		b.b.Release()
	}
}

func (d *device) buffer(b backend.Buffer, what string) (*dawn.Buffer, error) {
	x, ok := b.(*buffer)
	if !ok || x == nil || x.b == nil {
		return nil, fmt.Errorf("wgpu: %s is nil or not a Dawn storage or uniform buffer", what)
	}
	return x.b, nil
}

func (d *device) NewBuffer(label string, size uint64, kind backend.Kind, init []byte) (backend.Buffer, error) {
	if err := d.Err(); err != nil {
		return nil, err
	}
	var usage dawn.BufferUsage
	switch kind {
	case backend.Storage:
		usage = dawn.UsageStorage | dawn.UsageCopySrc | dawn.UsageCopyDst
	case backend.Uniform:
		usage = dawn.UsageUniform | dawn.UsageCopyDst
	case backend.Staging:
		return &buffer{}, nil
	default:
		return nil, fmt.Errorf("wgpu: buffer %q: kind %d does not exist", label, kind)
	}
	b, err := d.d.NewBuffer(context.Background(), label, size, usage)
	if err != nil {
		return nil, d.wrap(err)
	}
	d.created.Add(1)
	if len(init) > 0 {
		data := init
		if len(data)%4 != 0 {
			data = append(append([]byte(nil), init...), make([]byte, 4-len(data)%4)...)
		}
		if err := d.d.Write(b, 0, data); err != nil {
			b.Release()
			return nil, d.wrap(err)
		}
	}
	return &buffer{b: b}, nil
}

func (d *device) Write(b backend.Buffer, off uint64, data []byte) error {
	x, err := d.buffer(b, "write target")
	if err != nil {
		return err
	}
	return d.wrap(d.d.Write(x, off, data))
}

func (d *device) Read(ctx context.Context, src backend.Buffer, off uint64, dst []byte, _ backend.Buffer) error {
	x, err := d.buffer(src, "read source")
	if err != nil {
		return err
	}
	return d.wrap(d.timed(func() error { return d.d.Read(ctx, x, off, dst) }))
}

func (d *device) Copy(dst backend.Buffer, dstOff uint64, src backend.Buffer, srcOff, n uint64) error {
	s, err := d.buffer(src, "copy source")
	if err != nil {
		return err
	}
	t, err := d.buffer(dst, "copy target")
	if err != nil {
		return err
	}
	return d.wrap(d.d.Copy(context.Background(), t, dstOff, s, srcOff, n))
}

// pipeline is a module and its compute pipeline.
type pipeline struct {
	m *dawn.ShaderModule
	p *dawn.ComputePipeline
}

func (p *pipeline) Release() {
	p.p.Release()
	p.m.Release()
}

func (d *device) Pipeline(label, source, entry string) (backend.Pipeline, error) {
	ctx := context.Background()
	m, err := d.d.ShaderModule(ctx, label, source)
	if err != nil {
		return nil, fmt.Errorf("wgpu: %s: compile %s: %w", d.info.Name, label, d.wrap(err))
	}
	p, err := d.d.ComputePipeline(ctx, label, m, entry, nil)
	if err != nil {
		m.Release()
		return nil, fmt.Errorf("wgpu: %s: pipeline %s (entry %q): %w", d.info.Name, label, entry, d.wrap(err))
	}
	return &pipeline{m: m, p: p}, nil
}

func (d *device) CheckModule(label, source string) error {
	m, err := d.d.ShaderModule(context.Background(), label, source)
	if err != nil {
		return fmt.Errorf("wgpu: %s: compile %s: %w", d.info.Name, label, d.wrap(err))
	}
	m.Release()
	return nil
}

// passes binds the dispatches' buffers; release frees the bind groups
// (Dawn keeps what submitted work uses alive itself).
func (d *device) passes(ds []backend.Dispatch) (passes []dawn.Pass, release func(), err error) {
	var groups []*dawn.BindGroup
	release = func() {
		for _, g := range groups {
			g.Release()
		}
	}
	ctx := context.Background()
	for i, disp := range ds {
		p, ok := disp.Pipeline.(*pipeline)
		if !ok || p == nil {
			release()
			return nil, nil, fmt.Errorf("wgpu: dispatch %d (%s): no Dawn pipeline", i, disp.Label)
		}
		bs := make([]dawn.Binding, len(disp.Bindings))
		for j, bd := range disp.Bindings {
			b, err := d.buffer(bd.Buffer, fmt.Sprintf("binding %d", j))
			if err != nil {
				release()
				return nil, nil, fmt.Errorf("wgpu: dispatch %d (%s): %w", i, disp.Label, err)
			}
			bs[j] = dawn.Binding{Binding: bd.Slot, Buffer: b}
		}
		g, err := d.d.BindGroup(ctx, disp.Label, p.p, bs)
		if err != nil {
			release()
			return nil, nil, fmt.Errorf("wgpu: dispatch %d (%s): bind group: %w", i, disp.Label, d.wrap(err))
		}
		groups = append(groups, g)
		passes = append(passes, dawn.Pass{Pipeline: p.p, BindGroup: g, Workgroups: disp.Workgroups})
	}
	return passes, release, nil
}

func (d *device) Submit(ds []backend.Dispatch) error {
	if err := d.Err(); err != nil {
		return err
	}
	passes, release, err := d.passes(ds)
	if err != nil {
		return err
	}
	defer release()
	return d.wrap(d.timed(func() error { return d.d.Submit(context.Background(), passes...) }))
}

// SubmitCopy submits the dispatches, then a copy of the first n bytes of
// src into dst, a storage buffer that package wgpu's Collect later reads
// through Read (which maps a staging buffer of Dawn's own).
func (d *device) SubmitCopy(ds []backend.Dispatch, src, dst backend.Buffer, n uint64) error {
	if err := d.Submit(ds); err != nil {
		return err
	}
	return d.timed(func() error { return d.Copy(dst, 0, src, 0, n) })
}

func (d *device) Run(ctx context.Context, ds []backend.Dispatch) (backend.Timing, error) {
	if err := d.Err(); err != nil {
		return backend.Timing{}, err
	}
	passes, release, err := d.passes(ds)
	if err != nil {
		return backend.Timing{}, err
	}
	defer release()
	start := time.Now()
	times, err := d.d.Run(ctx, d.info.Timestamps, passes...)
	t := backend.Timing{Wall: time.Since(start), Passes: times, PeriodKnown: times != nil}
	d.waited.Add(int64(t.Wall))
	return t, d.wrap(err)
}

func (d *device) Wait(ctx context.Context) error {
	return d.wrap(d.timed(func() error { return d.d.Wait(ctx) }))
}
