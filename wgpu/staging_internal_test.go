package wgpu

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRawLayout guards the staging ring's reading of go-webgpu's structs:
// the version they mirror is the one built, and a buffer's C handle read
// through the mirror is the buffer (wgpu-native reports its size).
func TestRawLayout(t *testing.T) {
	mod, err := os.ReadFile("../go.mod")
	require.NoError(t, err)
	require.Contains(t, string(mod), "github.com/rajveermalviya/go-webgpu/wgpu "+rawVersion+"\n",
		"go-webgpu changed: check rawPair and rawDevice against its Buffer, Queue and Device structs")

	d, err := OpenBest(Options{})
	require.NoError(t, err)
	defer d.Close()
	for _, n := range []uint64{16, 4096, 1 << 20} {
		b, err := d.NewBuffer("raw", n)
		require.NoError(t, err)
		assert.Equal(t, b.buf.GetSize(), rawSize(b.buf))
		b.Release()
	}
	assert.NotNil(t, deviceRef(d.dev))
	assert.NotNil(t, queueRef(d.queue))
}
