// Package vulkan reads what the WebGPU runtimes do not report of a Vulkan
// adapter: its physical device's properties, above all the period of its
// timestamps.
//
// Timestamp queries count ticks of the adapter's clock, whose period in
// nanoseconds Vulkan reports as VkPhysicalDeviceLimits.timestampPeriod (1
// on NVIDIA GPUs and lavapipe, 10 or more on others). wgpu-native 0.17
// reads it but its C API has no call that returns it, and webgpu.h has
// none either (Dawn applies it itself), so it is read from the Vulkan
// driver directly, for the physical device that is the adapter.
package vulkan

import "math"

// Device is what the period's lookup reads of a Vulkan physical device.
type Device struct {
	VendorID, DeviceID uint32
	Name               string
	SharedMemory       uint32  // maxComputeSharedMemorySize
	Invocations        uint32  // maxComputeWorkGroupInvocations
	TimestampPeriodNs  float64 // timestampPeriod
}

// TimestampPeriod is the period in nanoseconds of the timestamps of the
// adapter with the given backend, vendor and device IDs and name, read from
// the Vulkan device among devs that is the adapter: the one with its IDs,
// and its name where several have them. It is 0 where none is, the backend
// is not Vulkan, or the period read is not a positive finite number.
func TimestampPeriod(devs []Device, backend string, vendor, device uint32, name string) float64 {
	if backend != "Vulkan" {
		return 0
	}
	var match *Device
	for i, d := range devs {
		if d.VendorID != vendor || d.DeviceID != device {
			continue
		}
		if match == nil || d.Name == name && match.Name != name {
			match = &devs[i]
		}
	}
	if match == nil {
		return 0
	}
	p := match.TimestampPeriodNs
	if math.IsNaN(p) || math.IsInf(p, 0) || p <= 0 {
		return 0
	}
	return p
}
