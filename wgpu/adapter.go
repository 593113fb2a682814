package wgpu

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	webgpu "github.com/rajveermalviya/go-webgpu/wgpu"
)

// Options selects which adapters are visible and how chatty the layers below are.
type Options struct {
	// IncludeGL also lists OpenGL adapters. They duplicate the Vulkan ones on
	// Linux and lack compute features, so they are hidden by default.
	IncludeGL bool
	// Verbose lets wgpu's own log (warnings and errors) through to stderr.
	Verbose bool
}

// Limits are the adapter limits that matter for compute kernels.
type Limits struct {
	MaxStorageBufferBindingSize uint64 // bytes one storage binding may cover
	MaxBufferSize               uint64 // bytes of one buffer
	MaxWorkgroupStorageSize     uint32 // bytes of var<workgroup> memory
	MaxInvocationsPerWorkgroup  uint32
	MaxWorkgroupSizeX           uint32
	MaxWorkgroupsPerDimension   uint32
	MaxStorageBuffersPerStage   uint32
}

// AdapterInfo describes one adapter.
type AdapterInfo struct {
	Index      int    // position in the list returned by Adapters; pass it to Open
	Name       string // e.g. "NVIDIA H200", "llvmpipe (LLVM 15.0.6, 256 bits)"
	Vendor     string
	Backend    string // Vulkan, Metal, D3D12, OpenGL
	Type       string // DiscreteGPU, IntegratedGPU, CPU, ...
	Driver     string
	Limits     Limits
	Timestamps bool // timestamp queries are available
	// TimestampPeriod is the nanoseconds one tick of the adapter's
	// timestamps lasts, as its Vulkan driver reports it, or 0 where it
	// cannot be read; timings then assume 1 (see Timing.PeriodKnown).
	TimestampPeriod float64
}

// String formats the adapter on one line.
func (a AdapterInfo) String() string {
	return fmt.Sprintf("[%d] %s (%s, %s)", a.Index, a.Name, a.Backend, a.Type)
}

// IsCPU reports whether the adapter is a software rasteriser such as lavapipe.
func (a AdapterInfo) IsCPU() bool { return a.Type == "CPU" }

// ErrNoAdapter is returned when no usable adapter exists.
var ErrNoAdapter = errors.New("wgpu: no WebGPU adapter found (on Debian: apt-get install mesa-vulkan-drivers libvulkan1)")

// instance creates a go-webgpu instance restricted to the requested backends.
func instance(opts Options) *webgpu.Instance {
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
	quietStderr(!opts.Verbose, func() {
		inst = webgpu.CreateInstance(&webgpu.InstanceDescriptor{Backends: backends})
	})
	return inst
}

// enumerate lists adapters in a stable order: discrete GPUs first, then
// integrated, virtual and CPU adapters; ties keep the driver's order.
func enumerate(inst *webgpu.Instance, opts Options) []*webgpu.Adapter {
	var list []*webgpu.Adapter
	quietStderr(!opts.Verbose, func() { list = inst.EnumerateAdapters(nil) })
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
func Adapters(opts Options) ([]AdapterInfo, error) {
	inst := instance(opts)
	defer inst.Release()
	list := enumerate(inst, opts)
	vk := vulkanDevices()
	infos := make([]AdapterInfo, len(list))
	for i, a := range list {
		infos[i] = describe(i, a, vk)
		a.Release()
	}
	if len(infos) == 0 {
		return nil, ErrNoAdapter
	}
	return infos, nil
}

// describe reads an adapter's properties; vk are the Vulkan physical
// devices, which give its timestamp period.
func describe(index int, a *webgpu.Adapter, vk []vkDevice) AdapterInfo {
	p := a.GetProperties()
	l := a.GetLimits().Limits
	vendor := p.VendorName
	if vendor == "" {
		vendor = fmt.Sprintf("0x%04x", p.VendorId)
	}
	info := AdapterInfo{
		Index:      index,
		Name:       p.Name,
		Vendor:     vendor,
		Backend:    strings.TrimPrefix(p.BackendType.String(), "BackendType_"),
		Type:       strings.TrimPrefix(p.AdapterType.String(), "AdapterType_"),
		Driver:     p.DriverDescription,
		Timestamps: a.HasFeature(webgpu.FeatureName_TimestampQuery),
		Limits:     limitsOf(l),
	}
	if info.Timestamps {
		info.TimestampPeriod = timestampPeriod(vk, info.Backend, p.VendorId, p.DeviceId, p.Name)
	}
	return info
}

func limitsOf(l webgpu.Limits) Limits {
	return Limits{
		MaxStorageBufferBindingSize: l.MaxStorageBufferBindingSize,
		MaxBufferSize:               l.MaxBufferSize,
		MaxWorkgroupStorageSize:     l.MaxComputeWorkgroupStorageSize,
		MaxInvocationsPerWorkgroup:  l.MaxComputeInvocationsPerWorkgroup,
		MaxWorkgroupSizeX:           l.MaxComputeWorkgroupSizeX,
		MaxWorkgroupsPerDimension:   l.MaxComputeWorkgroupsPerDimension,
		MaxStorageBuffersPerStage:   l.MaxStorageBuffersPerShaderStage,
	}
}
