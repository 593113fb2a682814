package dawn

import (
	"fmt"
	"strings"
)

// Backend is webgpu.h's WGPUBackendType.
type Backend uint32

// Backends. BackendNull validates and compiles WGSL without a GPU (nothing
// executes); CI uses it to check kernels no local adapter can run.
const (
	BackendDefault Backend = 0
	BackendNull    Backend = 1
	BackendD3D12   Backend = 4
	BackendMetal   Backend = 5
	BackendVulkan  Backend = 6
)

func (b Backend) String() string {
	switch b {
	case BackendDefault:
		return "default"
	case BackendNull:
		return "Null"
	case 2:
		return "WebGPU"
	case 3:
		return "D3D11"
	case BackendD3D12:
		return "D3D12"
	case BackendMetal:
		return "Metal"
	case BackendVulkan:
		return "Vulkan"
	case 7:
		return "OpenGL"
	case 8:
		return "OpenGLES"
	}
	return fmt.Sprintf("backend %d", uint32(b))
}

// AdapterType is webgpu.h's WGPUAdapterType, spelled as package wgpu
// spells it ("DiscreteGPU", "CPU", ...).
type AdapterType uint32

// Adapter types.
const (
	DiscreteGPU   AdapterType = 1
	IntegratedGPU AdapterType = 2
	CPU           AdapterType = 3
	UnknownType   AdapterType = 4
)

func (t AdapterType) String() string {
	switch t {
	case DiscreteGPU:
		return "DiscreteGPU"
	case IntegratedGPU:
		return "IntegratedGPU"
	case CPU:
		return "CPU"
	}
	return "Unknown"
}

// Limits are the adapter limits that matter for compute kernels. Devices
// are created with all of the adapter's limits, not WebGPU's defaults.
type Limits struct {
	MaxStorageBufferBindingSize uint64
	MaxUniformBufferBindingSize uint64
	MaxBufferSize               uint64
	MaxWorkgroupStorageSize     uint32
	MaxInvocationsPerWorkgroup  uint32
	MaxWorkgroupSize            [3]uint32
	MaxWorkgroupsPerDimension   uint32
	MaxStorageBuffersPerStage   uint32
	MaxBindGroups               uint32
	MaxBindingsPerBindGroup     uint32
	MinStorageOffsetAlignment   uint32
	MinUniformOffsetAlignment   uint32
}

// Feature is webgpu.h's WGPUFeatureName.
type Feature uint32

// The features the package asks for when the adapter has them.
const (
	FeatureTimestampQuery Feature = 0x09
	FeatureShaderF16      Feature = 0x0B
	FeatureSubgroups      Feature = 0x12
	// FeatureImplicitSync makes Dawn lock the device itself, so callbacks
	// delivered on one goroutine's wait never race another's device call.
	FeatureImplicitSync   Feature = 0x50004
	FeatureSubgroupMatrix Feature = 0x50034 // chromium_experimental_subgroup_matrix
)

// Features summarises what WGSL may use on an adapter or device.
type Features struct {
	F16            bool // enable f16;
	Subgroups      bool // enable subgroups;
	SubgroupMatrix bool // enable chromium_experimental_subgroup_matrix;
	Timestamps     bool // timestamp queries around compute passes
	ImplicitSync   bool
	All            []Feature // every feature the adapter reports
}

func featuresOf(ids []Feature) Features {
	f := Features{All: ids}
	for _, id := range ids {
		switch id {
		case FeatureShaderF16:
			f.F16 = true
		case FeatureSubgroups:
			f.Subgroups = true
		case FeatureSubgroupMatrix:
			f.SubgroupMatrix = true
		case FeatureTimestampQuery:
			f.Timestamps = true
		case FeatureImplicitSync:
			f.ImplicitSync = true
		}
	}
	return f
}

// ComponentType is webgpu.h's WGPUSubgroupMatrixComponentType.
type ComponentType uint32

// Subgroup-matrix component types.
const (
	F32 ComponentType = 1
	F16 ComponentType = 2
	U32 ComponentType = 3
	I32 ComponentType = 4
	U8  ComponentType = 5
	I8  ComponentType = 6
)

func (c ComponentType) String() string {
	switch c {
	case F32:
		return "f32"
	case F16:
		return "f16"
	case U32:
		return "u32"
	case I32:
		return "i32"
	case U8:
		return "u8"
	case I8:
		return "i8"
	}
	return fmt.Sprintf("type%d", uint32(c))
}

// MatrixConfig is one subgroup-matrix shape the adapter runs: an M×K left
// matrix times a K×N right matrix of Component elements, accumulated into an
// M×N Result matrix (WGSL subgroup_matrix_left<T, K, M>, _right<T, N, K>,
// _result<R, N, M>).
type MatrixConfig struct {
	Component, Result ComponentType
	M, N, K           uint32
}

func (c MatrixConfig) String() string {
	return fmt.Sprintf("%dx%dx%d %v->%v", c.M, c.N, c.K, c.Component, c.Result)
}

// decodeConfigs reads n subgroup-matrix configs of stride 32-bit words each.
// The first five words of an entry are componentType, resultComponentType,
// M, N, K in every Dawn so far; later builds append fields. An entry that does
// not decode to known types and power-of-two sizes means the stride is wrong
// for this library, and no configs are returned rather than wrong ones.
func decodeConfigs(words []uint32, n, stride int) ([]MatrixConfig, error) {
	if n == 0 {
		return nil, nil
	}
	if stride < 5 || len(words) < n*stride {
		return nil, fmt.Errorf("%w: %d subgroup-matrix configs of %d words do not fit %d words", ErrUnsupportedLibrary, n, stride, len(words))
	}
	pow2 := func(v uint32) bool { return v >= 1 && v <= 256 && v&(v-1) == 0 }
	out := make([]MatrixConfig, n)
	for i := range out {
		w := words[i*stride:]
		c := MatrixConfig{Component: ComponentType(w[0]), Result: ComponentType(w[1]), M: w[2], N: w[3], K: w[4]}
		if c.Component < F32 || c.Component > I8 || c.Result < F32 || c.Result > I8 || !pow2(c.M) || !pow2(c.N) || !pow2(c.K) {
			return nil, fmt.Errorf("%w: subgroup-matrix config %d decodes to %v with a %d-word stride", ErrUnsupportedLibrary, i, c, stride)
		}
		out[i] = c
	}
	return out, nil
}

// AdapterInfo describes one adapter as Dawn reports it.
type AdapterInfo struct {
	Name         string // e.g. "NVIDIA H100 80GB HBM3", "llvmpipe (LLVM 15.0.6, 256 bits)"
	Vendor       string
	Architecture string
	Description  string // driver description
	Backend      Backend
	Type         AdapterType
	VendorID     uint32
	DeviceID     uint32
	// SubgroupMinSize and SubgroupMaxSize bound @builtin(subgroup_size).
	SubgroupMinSize, SubgroupMaxSize uint32
	Limits                           Limits
	Features                         Features
	// MatrixConfigs lists the subgroup-matrix shapes (nil without the feature).
	MatrixConfigs []MatrixConfig
	// MatrixConfigsErr says why MatrixConfigs is empty on an adapter that
	// has the feature (a library whose config layout this package does not
	// know); nil otherwise.
	MatrixConfigsErr error
}

// String formats the adapter on one line.
func (a AdapterInfo) String() string {
	return fmt.Sprintf("%s (%v, %v)", a.Name, a.Backend, a.Type)
}

// Capabilities formats the WGSL features on one line, the form `coreattn
// devices` shows: "f16 subgroups[8..8] subgroup-matrix[16x16x16 f16->f32 ...]".
func (a AdapterInfo) Capabilities() string {
	var parts []string
	if a.Features.F16 {
		parts = append(parts, "f16")
	}
	if a.Features.Subgroups {
		parts = append(parts, fmt.Sprintf("subgroups[%d..%d]", a.SubgroupMinSize, a.SubgroupMaxSize))
	}
	if a.Features.SubgroupMatrix {
		cs := make([]string, len(a.MatrixConfigs))
		for i, c := range a.MatrixConfigs {
			cs[i] = c.String()
		}
		parts = append(parts, "subgroup-matrix["+strings.Join(cs, ", ")+"]")
	}
	if a.Features.Timestamps {
		parts = append(parts, "timestamps")
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

// BufferUsage is webgpu.h's WGPUBufferUsage bit set.
type BufferUsage uint64

// Buffer usages.
const (
	UsageMapRead      BufferUsage = 0x001
	UsageMapWrite     BufferUsage = 0x002
	UsageCopySrc      BufferUsage = 0x004
	UsageCopyDst      BufferUsage = 0x008
	UsageUniform      BufferUsage = 0x040
	UsageStorage      BufferUsage = 0x080
	UsageQueryResolve BufferUsage = 0x200
)
