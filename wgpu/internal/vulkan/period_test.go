package vulkan

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestTimestampPeriodMatch(t *testing.T) {
	devs := []Device{
		{VendorID: 0x10de, DeviceID: 0x2335, Name: "NVIDIA H200", TimestampPeriodNs: 1},
		{VendorID: 0x1002, DeviceID: 0x73bf, Name: "AMD Radeon RX 6800", TimestampPeriodNs: 10},
		{VendorID: 0x8086, DeviceID: 0x56a0, Name: "Intel Arc A770 (first)", TimestampPeriodNs: 52.083},
		{VendorID: 0x8086, DeviceID: 0x56a0, Name: "Intel Arc A770", TimestampPeriodNs: 83.333},
		{VendorID: 0x1234, DeviceID: 1, Name: "broken", TimestampPeriodNs: -1},
	}
	for _, tt := range []struct {
		name, backend  string
		vendor, device uint32
		want           float64
	}{
		{"NVIDIA H200", "Vulkan", 0x10de, 0x2335, 1},
		{"AMD Radeon RX 6800 (RADV NAVI21)", "Vulkan", 0x1002, 0x73bf, 10}, // the IDs match; the name need not
		{"Intel Arc A770", "Vulkan", 0x8086, 0x56a0, 83.333},               // several match: the one named so
		{"Intel Arc A770 (other)", "Vulkan", 0x8086, 0x56a0, 52.083},       // none named so: the first
		{"NVIDIA H200", "Metal", 0x10de, 0x2335, 0},                        // not read on other backends
		{"unknown", "Vulkan", 0x10de, 0x1, 0},
		{"broken", "Vulkan", 0x1234, 1, 0},
	} {
		assert.Equal(t, tt.want, TimestampPeriod(devs, tt.backend, tt.vendor, tt.device, tt.name), tt.name)
	}
}
