package wgpu

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/wgpu/internal/gowebgpu"
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
	g, ok := d.impl.(*gowebgpu.Device)
	if !ok {
		t.Skipf("the staging engine drives go-webgpu's buffers; %s runs on %s", d.Info(), d.Runtime())
	}
	for _, n := range []uint64{16, 4096, 1 << 20} {
		b, err := d.NewBuffer("raw", n)
		require.NoError(t, err)
		h := gowebgpu.Handle(b.impl)
		assert.Equal(t, h.GetSize(), rawSize(h))
		b.Release()
	}
	assert.NotNil(t, deviceRef(g.WGPU()))
	assert.NotNil(t, queueRef(g.Queue()))
}
