package gowebgpu

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/wgpu/internal/backend"
	"github.com/coreattn/coreattn/wgpu/internal/vulkan"
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

// TestVulkanDevices reads this machine's Vulkan devices and checks the
// fields read at fixed offsets against what wgpu reports of the same
// adapter (name, compute limits), then the period found for it.
func TestVulkanDevices(t *testing.T) {
	list, err := Runtime{}.Adapters(backend.Options{})
	require.NoError(t, err)
	a := list[0]
	if a.Backend != "Vulkan" {
		t.Skipf("adapter %s is not a Vulkan one", a.Name)
	}
	devs := vulkan.Devices()
	require.NotEmpty(t, devs, "the Vulkan loader lists no device")
	found := false
	for _, d := range devs {
		if d.Name == a.Name {
			found = true
			assert.Equal(t, a.Limits.MaxWorkgroupStorageSize, d.SharedMemory, "maxComputeSharedMemorySize")
			assert.Equal(t, a.Limits.MaxInvocationsPerWorkgroup, d.Invocations, "maxComputeWorkGroupInvocations")
			assert.Positive(t, d.TimestampPeriodNs)
		}
	}
	require.True(t, found, "no Vulkan device is named %q", a.Name)
	if a.Timestamps {
		assert.Positive(t, a.TimestampPeriod)
		dev, err := Runtime{}.Open(0, backend.Options{})
		require.NoError(t, err)
		defer dev.Close()
		assert.Equal(t, a.TimestampPeriod, dev.Info().TimestampPeriod)
		if a.Type == "CPU" {
			assert.Equal(t, 1.0, a.TimestampPeriod, "lavapipe counts nanoseconds")
		}
	}
}
