// Package gowebgpu is coreattn's WebGPU runtime over go-webgpu v0.17.1
// (wgpu-native 0.17, statically linked): the zero-setup default. It
// implements package backend's interfaces; package wgpu is its only user.
//
// wgpu-native 0.17 gives WGSL no f16, no subgroups and no subgroup
// matrices, so its adapters report none of them.
package gowebgpu

import (
	"fmt"
	"sort"
	"strings"

	webgpu "github.com/rajveermalviya/go-webgpu/wgpu"

	"github.com/coreattn/coreattn/wgpu/internal/backend"
	"github.com/coreattn/coreattn/wgpu/internal/quiet"
	"github.com/coreattn/coreattn/wgpu/internal/vulkan"
)

// Name is the runtime's name in reports and options.
const Name = "go-webgpu"

// Runtime is the go-webgpu runtime. Its zero value is ready to use.
type Runtime struct{}

var _ backend.Runtime = Runtime{}

// Name is "go-webgpu".
func (Runtime) Name() string { return Name }

// instance creates a go-webgpu instance restricted to the requested backends.
func instance(opts backend.Options) *webgpu.Instance {
	if opts.Verbose {
		webgpu.SetLogLevel(webgpu.LogLevel_Warn)
	} else {
		webgpu.SetLogLevel(webgpu.LogLevel_Off)
	}
	backends := webgpu.InstanceBackend_Vulkan | webgpu.InstanceBackend_Metal | webgpu.InstanceBackend_DX12
	if opts.IncludeGL {
		backends |= webgpu.InstanceBackend_GL
	}
	var inst *webgpu.Instance
	quiet.Stderr(!opts.Verbose, func() {
		inst = webgpu.CreateInstance(&webgpu.InstanceDescriptor{Backends: backends})
	})
	return inst
}

// enumerate lists adapters in a stable order: discrete GPUs first, then
// integrated, virtual and CPU adapters; ties keep the driver's order.
func enumerate(inst *webgpu.Instance, opts backend.Options) []*webgpu.Adapter {
	var list []*webgpu.Adapter
	quiet.Stderr(!opts.Verbose, func() { list = inst.EnumerateAdapters(nil) })
	rank := func(a *webgpu.Adapter) int {
		switch a.GetProperties().AdapterType {
		case webgpu.AdapterType_DiscreteGPU:
			return 0
		case webgpu.AdapterType_IntegratedGPU:
			return 1
		case webgpu.AdapterType_CPU:
			return 3
		default:
			return 2
		}
	}
	sort.SliceStable(list, func(i, j int) bool { return rank(list[i]) < rank(list[j]) })
	return list
}

// Adapters lists the usable adapters, best first.
func (Runtime) Adapters(opts backend.Options) ([]backend.Info, error) {
	inst := instance(opts)
	defer inst.Release()
	list := enumerate(inst, opts)
	vk := vulkan.Devices()
	infos := make([]backend.Info, len(list))
	for i, a := range list {
		infos[i] = describe(a, vk)
		a.Release()
	}
	if len(infos) == 0 {
		return nil, backend.ErrNoAdapter
	}
	return infos, nil
}

// describe reads an adapter's properties; vk are the Vulkan physical
// devices, which give its timestamp period.
func describe(a *webgpu.Adapter, vk []vulkan.Device) backend.Info {
	p := a.GetProperties()
	l := a.GetLimits().Limits
	vendor := p.VendorName
	if vendor == "" {
		vendor = fmt.Sprintf("0x%04x", p.VendorId)
	}
	info := backend.Info{
		Runtime:    Name,
		Name:       p.Name,
		Vendor:     vendor,
		VendorID:   p.VendorId,
		DeviceID:   p.DeviceId,
		Backend:    strings.TrimPrefix(p.BackendType.String(), "BackendType_"),
		Type:       strings.TrimPrefix(p.AdapterType.String(), "AdapterType_"),
		Driver:     p.DriverDescription,
		Timestamps: a.HasFeature(webgpu.FeatureName_TimestampQuery),
		Limits:     limitsOf(l),
	}
	if info.Timestamps {
		info.TimestampPeriod = vulkan.TimestampPeriod(vk, info.Backend, p.VendorId, p.DeviceId, p.Name)
	}
	return info
}

func limitsOf(l webgpu.Limits) backend.Limits {
	return backend.Limits{
		MaxStorageBufferBindingSize: l.MaxStorageBufferBindingSize,
		MaxBufferSize:               l.MaxBufferSize,
		MaxWorkgroupStorageSize:     l.MaxComputeWorkgroupStorageSize,
		MaxInvocationsPerWorkgroup:  l.MaxComputeInvocationsPerWorkgroup,
		MaxWorkgroupSizeX:           l.MaxComputeWorkgroupSizeX,
		MaxWorkgroupsPerDimension:   l.MaxComputeWorkgroupsPerDimension,
		MaxStorageBuffersPerStage:   l.MaxStorageBuffersPerShaderStage,
	}
}

// Open opens adapter index (as numbered by Adapters) with the adapter's own
// limits, so that large storage bindings and the full workgroup memory are
// available, and with timestamp queries enabled where supported.
func (Runtime) Open(index int, opts backend.Options) (backend.Device, error) {
	inst := instance(opts)
	list := enumerate(inst, opts)
	if len(list) == 0 {
		inst.Release()
		return nil, backend.ErrNoAdapter
	}
	if index < 0 || index >= len(list) {
		for _, a := range list {
			a.Release()
		}
		inst.Release()
		return nil, fmt.Errorf("wgpu: adapter %d does not exist (have %d: 0..%d; see `coreattn devices`)", index, len(list), len(list)-1)
	}
	for i, a := range list {
		if i != index {
			a.Release()
		}
	}
	adapter := list[index]
	var vk []vulkan.Device
	if adapter.HasFeature(webgpu.FeatureName_TimestampQuery) {
		vk = vulkan.Devices()
	}
	d := &Device{
		info:    describe(adapter, vk),
		inst:    inst,
		adapter: adapter,
	}
	var features []webgpu.FeatureName
	if d.info.Timestamps {
		features = append(features, webgpu.FeatureName_TimestampQuery)
	}
	limits := adapter.GetLimits().Limits
	if limits.MaxBufferSize == webgpu.LimitU64Undefined {
		// An adapter without a buffer-size limit reports the value that a
		// request reads as "undefined", and wgpu would then grant its
		// default of 256 MiB: ask for the largest defined value instead.
		limits.MaxBufferSize = webgpu.LimitU64Undefined - 1
	}
	dev, err := adapter.RequestDevice(&webgpu.DeviceDescriptor{
		Label:            "coreattn",
		RequiredFeatures: features,
		RequiredLimits:   &webgpu.RequiredLimits{Limits: limits},
		// No DeviceLostCallback: go-webgpu v0.17.1 passes it to C in a way
		// that trips cgo's pointer checks (see markLost).
	})
	if err != nil {
		adapter.Release()
		inst.Release()
		return nil, fmt.Errorf("wgpu: open %s: %w", d.info.Name, err)
	}
	d.dev = dev
	d.queue = dev.GetQueue()
	// The device may grant less than the adapter advertises (wgpu caps the
	// buffer size, for one): report what the device enforces.
	d.info.Limits = limitsOf(dev.GetLimits().Limits)
	return d, nil
}
