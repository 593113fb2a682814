//go:build linux && cgo

package dawn

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"unsafe"
)

// DefaultAdapterToggles are the adapter toggles NVIDIA needs for f16 and
// subgroup matrices through Vulkan (Chrome blocks f16 on NVIDIA by default);
// elsewhere they change nothing.
func DefaultAdapterToggles() []string {
	return []string{"vulkan_enable_f16_on_nvidia", "use_vulkan_memory_model"}
}

// AdapterOptions selects adapters.
type AdapterOptions struct {
	// Backend restricts the search (BackendVulkan on Linux for GPUs,
	// BackendNull to validate WGSL without one). BackendDefault lets Dawn choose.
	Backend Backend
	// Toggles are adapter toggles; nil means DefaultAdapterToggles.
	Toggles []string
}

// Adapter is one adapter Dawn offers.
type Adapter struct {
	in      *Instance
	c       C.WGPUAdapter
	info    AdapterInfo
	toggles []string

	once sync.Once
}

// Info describes the adapter.
func (a *Adapter) Info() AdapterInfo { return a.info }

// Release releases the adapter. Safe to call more than once, from any goroutine.
func (a *Adapter) Release() {
	a.once.Do(func() { C.ca_release_adapter(a.in.lib.procs, a.c) })
}

// Adapters lists the adapters for opts.Backend, best first (discrete GPUs,
// integrated, others, CPU). webgpu.h has no enumeration call, so Dawn is
// asked for its high-performance, low-power and fallback choices and
// duplicates are dropped: two identical GPUs in one machine show as one.
// With no adapter it returns an error wrapping ErrNoAdapter with Dawn's reason.
func (in *Instance) Adapters(ctx context.Context, opts AdapterOptions) ([]*Adapter, error) {
	toggles := opts.Toggles
	if toggles == nil {
		toggles = DefaultAdapterToggles()
	}
	type request struct {
		power    C.WGPUPowerPreference
		fallback C.int
	}
	reqs := []request{{C.WGPUPowerPreference_HighPerformance, 0}, {C.WGPUPowerPreference_LowPower, 0}, {C.WGPUPowerPreference_Undefined, 1}}
	var list []*Adapter
	var reasons []string
	seen := map[string]bool{}
	for _, rq := range reqs {
		a, reason, err := in.requestAdapter(ctx, opts.Backend, rq.power, rq.fallback, toggles)
		if err != nil {
			for _, x := range list {
				x.Release()
			}
			return nil, err
		}
		if a == nil {
			reasons = append(reasons, reason)
			continue
		}
		key := fmt.Sprintf("%v/%d/%d/%s/%s", a.info.Backend, a.info.VendorID, a.info.DeviceID, a.info.Name, a.info.Description)
		if seen[key] {
			a.Release()
			continue
		}
		seen[key] = true
		list = append(list, a)
	}
	if len(list) == 0 {
		reason := "no reason given"
		if len(reasons) > 0 && reasons[0] != "" {
			reason = reasons[0]
		}
		return nil, fmt.Errorf("%w for backend %v: %s", ErrNoAdapter, opts.Backend, reason)
	}
	rank := map[AdapterType]int{DiscreteGPU: 0, IntegratedGPU: 1, UnknownType: 2, CPU: 3}
	sort.SliceStable(list, func(i, j int) bool { return rank[list[i].info.Type] < rank[list[j].info.Type] })
	return list, nil
}

// requestAdapter returns nil and Dawn's reason when no adapter matches.
func (in *Instance) requestAdapter(ctx context.Context, backend Backend, power C.WGPUPowerPreference, fallback C.int, toggles []string) (*Adapter, string, error) {
	arr, n, free := cstrings(toggles)
	defer free()
	r, err := newResult()
	if err != nil {
		return nil, "", err
	}
	in.mu.Lock()
	if in.released {
		in.mu.Unlock()
		C.ca_result_release(r)
		C.ca_result_release(r)
		return nil, "", fmt.Errorf("dawn: adapters: instance: %w", ErrReleased)
	}
	f := C.ca_request_adapter(in.lib.procs, in.c, C.WGPUBackendType(backend), power, C.WGPUFeatureLevel_Core, fallback, arr, n, r)
	in.mu.Unlock()
	res, err := in.await(ctx, f, r)
	if err != nil {
		return nil, "", err
	}
	if res.status != C.WGPURequestAdapterStatus_Success || res.handle == nil {
		return nil, res.msg, nil
	}
	a := &Adapter{in: in, c: C.WGPUAdapter(res.handle), toggles: toggles}
	if a.info, err = in.describe(a.c); err != nil {
		a.Release()
		return nil, "", err
	}
	return a, "", nil
}

func (in *Instance) describe(c C.WGPUAdapter) (AdapterInfo, error) {
	ci := (*C.ca_adapter_info)(C.calloc(1, C.size_t(unsafe.Sizeof(C.ca_adapter_info{}))))
	if ci == nil {
		return AdapterInfo{}, fmt.Errorf("dawn: adapter info: %w", ErrOutOfMemory)
	}
	defer C.free(unsafe.Pointer(ci))
	if rc := C.ca_adapter_info_get(in.lib.procs, c, C.int(in.lib.configStride), ci); rc != 0 {
		return AdapterInfo{}, fmt.Errorf("%w: wgpuAdapterGetInfo failed (%d)", ErrUnsupportedLibrary, int(rc))
	}
	feats := make([]Feature, int(ci.nfeatures))
	for i := range feats {
		feats[i] = Feature(ci.features[i])
	}
	info := AdapterInfo{
		Name:            C.GoString(&ci.device[0]),
		Vendor:          C.GoString(&ci.vendor[0]),
		Architecture:    C.GoString(&ci.architecture[0]),
		Description:     C.GoString(&ci.description[0]),
		Backend:         Backend(ci.backend),
		Type:            AdapterType(ci.adapter_type),
		VendorID:        uint32(ci.vendor_id),
		DeviceID:        uint32(ci.device_id),
		SubgroupMinSize: uint32(ci.sg_min),
		SubgroupMaxSize: uint32(ci.sg_max),
		Features:        featuresOf(feats),
		Limits: Limits{
			MaxStorageBufferBindingSize: uint64(ci.max_storage_binding),
			MaxUniformBufferBindingSize: uint64(ci.max_uniform_binding),
			MaxBufferSize:               uint64(ci.max_buffer),
			MaxWorkgroupStorageSize:     uint32(ci.max_wg_storage),
			MaxInvocationsPerWorkgroup:  uint32(ci.max_invocations),
			MaxWorkgroupSize:            [3]uint32{uint32(ci.max_wg_x), uint32(ci.max_wg_y), uint32(ci.max_wg_z)},
			MaxWorkgroupsPerDimension:   uint32(ci.max_wg_per_dim),
			MaxStorageBuffersPerStage:   uint32(ci.max_storage_buffers),
			MaxBindGroups:               uint32(ci.max_bind_groups),
			MaxBindingsPerBindGroup:     uint32(ci.max_bindings),
			MinStorageOffsetAlignment:   uint32(ci.min_storage_align),
			MinUniformOffsetAlignment:   uint32(ci.min_uniform_align),
		},
	}
	if info.Features.SubgroupMatrix {
		if ci.config_status != C.WGPUStatus_Success {
			info.MatrixConfigsErr = fmt.Errorf("%w: subgroup-matrix config query failed (status %d)", ErrUnsupportedLibrary, int(ci.config_status))
		} else {
			n := int(ci.nconfigs)
			words := make([]uint32, len(ci.config_words))
			for i := range words {
				words[i] = uint32(ci.config_words[i])
			}
			info.MatrixConfigs, info.MatrixConfigsErr = decodeConfigs(words, n, in.lib.configStride)
		}
	}
	return info, nil
}
