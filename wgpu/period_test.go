package wgpu

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPassDurations decodes resolved timestamps with the adapter's period:
// ticks of 10 ns (AMD's Vulkan drivers) or 52.08 ns (some Intel GPUs) are
// not nanoseconds.
func TestPassDurations(t *testing.T) {
	raw := make([]byte, 48)
	for i, tick := range []uint64{1000, 3000, 5000, 5500, 9000, 8000} {
		binary.LittleEndian.PutUint64(raw[8*i:], tick)
	}
	for _, tt := range []struct {
		period float64
		want   []time.Duration
	}{
		{1, []time.Duration{2000, 500, 0}},
		{0, []time.Duration{2000, 500, 0}}, // unknown: 1 ns assumed
		{10, []time.Duration{20000, 5000, 0}},
		{52.083333, []time.Duration{104167, 26042, 0}},
	} {
		assert.Equal(t, tt.want, passDurations(raw, tt.period), "period %g", tt.period)
	}
}

func TestTimestampPeriodMatch(t *testing.T) {
	devs := []vkDevice{
		{vendorID: 0x10de, deviceID: 0x2335, name: "NVIDIA H200", timestampPeriodNs: 1},
		{vendorID: 0x1002, deviceID: 0x73bf, name: "AMD Radeon RX 6800", timestampPeriodNs: 10},
		{vendorID: 0x8086, deviceID: 0x56a0, name: "Intel Arc A770 (first)", timestampPeriodNs: 52.083},
		{vendorID: 0x8086, deviceID: 0x56a0, name: "Intel Arc A770", timestampPeriodNs: 83.333},
		{vendorID: 0x1234, deviceID: 1, name: "broken", timestampPeriodNs: -1},
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
		assert.Equal(t, tt.want, timestampPeriod(devs, tt.backend, tt.vendor, tt.device, tt.name), tt.name)
	}
}

// TestVulkanDevices reads this machine's Vulkan devices and checks the
// fields read at fixed offsets against what wgpu reports of the same
// adapter (name, compute limits), then the period found for it.
func TestVulkanDevices(t *testing.T) {
	list, err := Adapters(Options{})
	require.NoError(t, err)
	a := list[0]
	if a.Backend != "Vulkan" {
		t.Skipf("adapter %s is not a Vulkan one", a)
	}
	devs := vulkanDevices()
	require.NotEmpty(t, devs, "the Vulkan loader lists no device")
	found := false
	for _, d := range devs {
		if d.name == a.Name {
			found = true
			assert.Equal(t, a.Limits.MaxWorkgroupStorageSize, d.sharedMemory, "maxComputeSharedMemorySize")
			assert.Equal(t, a.Limits.MaxInvocationsPerWorkgroup, d.invocations, "maxComputeWorkGroupInvocations")
			assert.Positive(t, d.timestampPeriodNs)
		}
	}
	require.True(t, found, "no Vulkan device is named %q", a.Name)
	if a.Timestamps {
		assert.Positive(t, a.TimestampPeriod)
		dev, err := Open(0, Options{})
		require.NoError(t, err)
		defer dev.Close()
		assert.Equal(t, a.TimestampPeriod, dev.Info().TimestampPeriod)
		if a.IsCPU() {
			assert.Equal(t, 1.0, a.TimestampPeriod, "lavapipe counts nanoseconds")
		}
	}
}
