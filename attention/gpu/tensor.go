package gpu

import (
	"context"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/wgpu"
)

// Upload copies x to a new device buffer in dtype t.
func Upload(dev *wgpu.Device, name string, t attention.DType, x []float32) (*wgpu.Buffer, error) {
	if t == attention.Float32 {
		return wgpu.Upload(dev, name, x)
	}
	return wgpu.Upload(dev, name, attention.Encode(t, x))
}

// NewTensor allocates a zeroed device buffer for n elements of dtype t.
func NewTensor(dev *wgpu.Device, name string, t attention.DType, n int) (*wgpu.Buffer, error) {
	return dev.NewBuffer(name, uint64(n)*uint64(t.Size()))
}

// Download reads n elements of dtype t from b as float32.
func Download(ctx context.Context, b *wgpu.Buffer, t attention.DType, n int) ([]float32, error) {
	if t == attention.Float32 {
		x := make([]float32, n)
		return x, wgpu.Download(ctx, b, x)
	}
	w := make([]uint32, (n+1)/2)
	if err := wgpu.Download(ctx, b, w); err != nil {
		return nil, err
	}
	return attention.Decode(t, w, n), nil
}
