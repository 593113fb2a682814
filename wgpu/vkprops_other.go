//go:build !(linux && cgo && (amd64 || arm64))

package wgpu

// vulkanDevices reads no Vulkan properties on this platform: timestamps
// fall back to the period of timestampPeriod's documentation.
func vulkanDevices() []vkDevice { return nil }
