//go:build !(linux && cgo && (amd64 || arm64))

package vulkan

// Devices reads no Vulkan properties on this platform: timestamps fall
// back to the period of TimestampPeriod's documentation.
func Devices() []Device { return nil }
