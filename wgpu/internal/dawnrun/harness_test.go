//go:build linux && cgo

package dawnrun

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/attention/tc"
	"github.com/coreattn/coreattn/wgpu/internal/dawn"
)

// TestMain points the Vulkan loader at the lavapipe that `scripts/dawn.sh
// --lavapipe` installs when no driver list is set (as package dawn's tests
// do). That Mesa has no cooperative matrices, so the numeric tests skip
// there; Mesa 26's lavapipe has them (see docs/tensorcores.md).
func TestMain(m *testing.M) {
	if os.Getenv("VK_DRIVER_FILES") == "" && os.Getenv("VK_ICD_FILENAMES") == "" {
		if cache, err := dawn.CacheDir(); err == nil {
			icd := filepath.Join(cache, "lavapipe", "lvp_icd.json")
			if _, err := os.Stat(icd); err == nil {
				os.Setenv("VK_DRIVER_FILES", icd)
			}
		}
	}
	os.Exit(m.Run())
}

// openDevice opens a device on the first adapter of backend, or skips the
// test where Dawn or the adapter is missing.
func openDevice(t testing.TB, backend dawn.Backend, robust bool) *dawn.Device {
	t.Helper()
	lib, err := dawn.Open("")
	if errors.Is(err, dawn.ErrNotFound) {
		t.Skipf("no Dawn library (%s, the install cache, libwebgpu_dawn.so.0): install one with scripts/dawn.sh", dawn.EnvLibrary)
	}
	require.NoError(t, err, "a Dawn library was found but does not load")
	in, err := lib.NewInstance(dawn.InstanceOptions{AllowUnsafeAPIs: true})
	require.NoError(t, err)
	t.Cleanup(in.Release)
	ctx := context.Background()
	adapters, err := in.Adapters(ctx, dawn.AdapterOptions{Backend: backend})
	if errors.Is(err, dawn.ErrNoAdapter) && backend != dawn.BackendNull {
		t.Skipf("Dawn (%s) offers no %v adapter: %v", lib.Path(), backend, err)
	}
	require.NoError(t, err)
	for _, a := range adapters[1:] {
		a.Release()
	}
	t.Cleanup(adapters[0].Release)
	d, err := adapters[0].NewDevice(ctx, dawn.DeviceOptions{Label: t.Name(), DisableRobustness: !robust})
	require.NoError(t, err)
	t.Cleanup(d.Release)
	return d
}

// matrixDevice opens the Vulkan device with subgroup matrices, or skips.
func matrixDevice(t testing.TB, robust bool) (*Runner, tc.Device) {
	t.Helper()
	d := openDevice(t, dawn.BackendVulkan, robust)
	td, err := TargetOf(d)
	if errors.Is(err, ErrNoMatrices) {
		t.Skipf("%v (Mesa 26's lavapipe or an NVIDIA GPU has them; see docs/tensorcores.md)", err)
	}
	require.NoError(t, err)
	t.Logf("%s: %s", d.Info(), d.Info().Capabilities())
	r := New(d)
	t.Cleanup(r.Release)
	return r, td
}

func randomF32(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

func wordBytes(w []uint32) []byte {
	b := make([]byte, 4*len(w))
	for i, v := range w {
		binary.LittleEndian.PutUint32(b[4*i:], v)
	}
	return b
}

func bytesWords(b []byte) []uint32 {
	w := make([]uint32, len(b)/4)
	for i := range w {
		w[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return w
}

// tensors holds a call's device buffers by name.
type tensors struct {
	d    *dawn.Device
	bufs map[string]*dawn.Buffer
}

func newTensors(t testing.TB, d *dawn.Device) *tensors {
	ts := &tensors{d: d, bufs: map[string]*dawn.Buffer{}}
	t.Cleanup(func() {
		for _, b := range ts.bufs {
			b.Release()
		}
	})
	return ts
}

// put creates tensor name holding x in dtype dt (at least 16 bytes).
func (ts *tensors) put(t testing.TB, name string, dt attention.DType, x []float32) {
	t.Helper()
	w := attention.Encode(dt, x)
	for len(w)%4 != 0 || len(w) == 0 {
		w = append(w, 0)
	}
	b, err := ts.d.NewBuffer(context.Background(), name, uint64(4*len(w)), dawn.UsageStorage|dawn.UsageCopySrc|dawn.UsageCopyDst)
	require.NoError(t, err)
	if old := ts.bufs[name]; old != nil {
		old.Release()
	}
	ts.bufs[name] = b
	require.NoError(t, ts.d.Write(b, 0, wordBytes(w)))
}

// poisoned creates output tensor name of n elements of dtype dt, all NaN.
func (ts *tensors) poisoned(t testing.TB, name string, dt attention.DType, n int) {
	t.Helper()
	nan := make([]float32, n)
	for i := range nan {
		nan[i] = float32(math.NaN())
	}
	ts.put(t, name, dt, nan)
}

// get reads n elements of dtype dt of tensor name.
func (ts *tensors) get(t testing.TB, name string, dt attention.DType, n int) []float32 {
	t.Helper()
	b := ts.bufs[name]
	raw := make([]byte, b.Size())
	require.NoError(t, ts.d.Read(context.Background(), b, 0, raw))
	return attention.Decode(dt, bytesWords(raw), n)
}

// segments builds cu_seqlens from (q_len, k_len) pairs.
func segments(lens ...[2]int) (cuQ, cuK []int32) {
	cuQ, cuK = []int32{0}, []int32{0}
	for _, l := range lens {
		cuQ = append(cuQ, cuQ[len(cuQ)-1]+int32(l[0]))
		cuK = append(cuK, cuK[len(cuK)-1]+int32(l[1]))
	}
	return cuQ, cuK
}

func (c fwdCase) String() string {
	return fmt.Sprintf("%s D%d Hq%d Hkv%d causal=%v %v", c.name, c.d, c.hq, c.hkv, c.causal, c.dt)
}
