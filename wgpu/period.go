package wgpu

import (
	"math"
	"time"
)

// Timestamp queries count ticks of the adapter's clock, whose period in
// nanoseconds Vulkan reports as VkPhysicalDeviceLimits.timestampPeriod (1 on
// NVIDIA GPUs and lavapipe, 10 or more on others). wgpu-native 0.17 reads it
// but its C API has no call that returns it (no Queue.GetTimestampPeriod,
// nothing in the limits), so on the Vulkan backend it is read from the
// Vulkan driver directly (vulkanDevices), for the physical device that is
// the adapter. Where it cannot be read (other backends or platforms, no
// matching device), AdapterInfo.TimestampPeriod is 0 and timings assume 1
// nanosecond per tick, which is right for the adapters the project measures
// on and wrong by the period's factor elsewhere; Timing.PeriodKnown says
// which.

// vkDevice is what the period's lookup reads of a Vulkan physical device.
type vkDevice struct {
	vendorID, deviceID uint32
	name               string
	sharedMemory       uint32  // maxComputeSharedMemorySize
	invocations        uint32  // maxComputeWorkGroupInvocations
	timestampPeriodNs  float64 // timestampPeriod
}

// timestampPeriod is the period in nanoseconds of the timestamps of the
// adapter with the given backend, vendor and device IDs and name, read from
// the Vulkan device among devs that is the adapter: the one with its IDs,
// and its name where several have them. It is 0 where none is, the backend
// is not Vulkan, or the period read is not a positive finite number.
func timestampPeriod(devs []vkDevice, backend string, vendor, device uint32, name string) float64 {
	if backend != "Vulkan" {
		return 0
	}
	var match *vkDevice
	for i, d := range devs {
		if d.vendorID != vendor || d.deviceID != device {
			continue
		}
		if match == nil || d.name == name && match.name != name {
			match = &devs[i]
		}
	}
	if match == nil {
		return 0
	}
	p := match.timestampPeriodNs
	if math.IsNaN(p) || math.IsInf(p, 0) || p <= 0 {
		return 0
	}
	return p
}

// ticksDuration is the duration of ticks timestamp ticks of period ns each
// (1 where period is 0, unknown).
func ticksDuration(ticks uint64, period float64) time.Duration {
	if period == 0 {
		return time.Duration(ticks)
	}
	return time.Duration(math.Round(float64(ticks) * period))
}
