package tc

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/internal/batchtest"
	"github.com/coreattn/coreattn/shaders"
)

var (
	h100 = Device{
		Target: shaders.TCTarget{
			Shapes:       []shaders.MatrixShape{{M: 16, N: 16, K: 16}, {M: 16, N: 8, K: 16}, {M: 16, N: 8, K: 8}},
			SubgroupSize: 32, WorkgroupBytes: 48 << 10, MaxThreads: 1024, MaxRegisters: shaders.TCRegisterBudget,
		},
		MaxBufferBytes: 2 << 30, MaxWorkgroupsPerDimension: 65535,
	}
	lavapipe = Device{
		Target:         shaders.TCTarget{Shapes: []shaders.MatrixShape{{M: 8, N: 8, K: 8}}, SubgroupSize: 8, WorkgroupBytes: 32 << 10, MaxThreads: 1024, CPU: true},
		MaxBufferBytes: 128 << 20, MaxWorkgroupsPerDimension: 65535, CPU: true,
	}
)

// sees reports whether query i of segment b sees key j (bottom-right causal).
func sees(a *attention.Args, b, i, j int) bool {
	qLen, kLen := a.Segment(b)
	return j < kLen && (!a.Causal || j <= i+kLen-qLen)
}

func TestBackwardPlanTiles(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	tl := shaders.TCBwdTiling{D: 64, Shape: shaders.MatrixShape{M: 16, N: 8, K: 16}, SG: 32, NP: 4, BQ: 32, NQS: 4, DT: attention.Float16}
	for range 40 {
		a := batchtest.Args(r, r.IntN(2) == 0, attention.Float16)
		p, err := backwardPlan(a, tl, 1<<40)
		require.NoError(t, err)
		bq, bkv := tl.BQ, tl.BKV()
		step := 0
		for b := range a.Batch() {
			qLen, kLen := a.Segment(b)
			require.Equal(t, uint32(step), p.meta[p.qoffOff+b], "segment %d's first step", b)
			for qs := 0; qs < qLen; qs += bq {
				// Brute force: the key blocks some query of the step sees.
				n := 0
				for k0 := 0; k0 < kLen; k0 += bkv {
					if sees(a, b, min(qs+bq, qLen)-1, k0) {
						n = k0/bkv + 1
					}
				}
				got := int(p.meta[p.poffOff+step+1] - p.meta[p.poffOff+step])
				require.Equal(t, n, got, "segment %d step at %d", b, qs)
				step++
			}
		}
		assert.Equal(t, step, p.nsteps)
		assert.Equal(t, uint32(p.tiles), p.meta[p.poffOff+p.nsteps], "poff ends with the total")
	}
}

func TestBackwardPasses(t *testing.T) {
	a := &attention.Args{CuSeqlensQ: []int32{0, 256}, CuSeqlensK: []int32{0, 256}, NumHeadsQ: 8, NumHeadsKV: 4, HeadDim: 64, DType: attention.Float16}
	tl := shaders.TCBwdTiling{D: 64, Shape: shaders.MatrixShape{M: 16, N: 8, K: 16}, SG: 32, NP: 4, BQ: 32, NQS: 4, DT: attention.Float16}
	// 8 steps x 4 key blocks = 32 tiles of 4 KiB per head; 2 heads per KV head.
	perKV := uint64(2 * 32 * 4096)
	for _, c := range []struct {
		budget uint64
		heads  int
	}{{4 * perKV, 4}, {3 * perKV, 2}, {perKV, 1}} {
		p, err := backwardPlan(a, tl, c.budget)
		require.NoError(t, err)
		assert.Equal(t, c.heads, p.heads, "budget %d", c.budget)
		assert.LessOrEqual(t, p.bytes, c.budget)
	}
	_, err := backwardPlan(a, tl, perKV-1)
	assert.ErrorContains(t, err, "scratch cap")
}

// TestLaunches checks that every launch binds only names it owns or
// lists, with buffers of whole 16-byte words, grids within the limits,
// and the casts exactly where the call stores f32.
func TestLaunches(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, dev := range []Device{h100, lavapipe} {
		for i := range 20 {
			dt := []attention.DType{attention.Float16, attention.Float32}[i%2]
			a := batchtest.Args(r, i%3 != 0, dt)
			a.HeadDim = []int{64, 128, 96}[i%3]
			p := New(dev, Options{SplitKV: []int{0, 128, -1}[i%3]})
			for _, plan := range []func(*attention.Args) (*Launch, error){p.Forward, p.Backward} {
				l, err := plan(a)
				require.NoError(t, err)
				names := map[string]bool{}
				for _, tn := range l.Tensors {
					names[tn.Name] = true
				}
				for _, b := range l.Buffers {
					assert.False(t, names[b.Name], "buffer %s named twice", b.Name)
					names[b.Name] = true
					assert.True(t, b.Bytes > 0 && b.Bytes%16 == 0, "%s: %d bytes", b.Name, b.Bytes)
					assert.LessOrEqual(t, uint64(4*len(b.Init)), b.Bytes, "%s", b.Name)
				}
				casts := 0
				for _, d := range l.Dispatches {
					for _, bd := range d.Bindings {
						assert.True(t, names[bd.Name], "%s binds %q", d.Label, bd.Name)
					}
					for _, g := range d.Workgroups {
						assert.True(t, g >= 1 && int(g) <= dev.MaxWorkgroupsPerDimension, "%s: grid %v", d.Label, d.Workgroups)
					}
					if d.Entry == shaders.TCCastEntry {
						casts++
					}
				}
				if dt == attention.Float16 {
					assert.Zero(t, casts, "f16 calls need no casts")
				} else if a.TotalQ() > 0 {
					assert.Positive(t, casts, "f32 calls convert their operands")
				}
			}
		}
	}
}

func TestPlannerRejects(t *testing.T) {
	a := &attention.Args{CuSeqlensQ: []int32{0, 64}, CuSeqlensK: []int32{0, 64}, NumHeadsQ: 2, NumHeadsKV: 2, HeadDim: 64, DType: attention.BFloat16}
	p := New(h100, Options{})
	_, err := p.Forward(a)
	assert.ErrorIs(t, err, shaders.ErrNoTensorCores)
	_, err = p.Backward(a)
	assert.ErrorIs(t, err, shaders.ErrNoTensorCores)

	a.DType, a.HeadDim = attention.Float16, 60
	_, err = p.Forward(a)
	assert.ErrorIs(t, err, shaders.ErrNoTensorCores)

	a.HeadDim = 64
	_, err = New(Device{MaxWorkgroupsPerDimension: 65535}, Options{}).Forward(a)
	assert.ErrorIs(t, err, shaders.ErrNoTensorCores, "no matrix shapes")

	_, err = New(h100, Options{DSScratch: -1}).Backward(a)
	assert.ErrorContains(t, err, "DSScratch")

	few := h100
	few.MaxStorageBuffers = 8
	_, err = New(few, Options{}).Backward(a)
	assert.ErrorIs(t, err, shaders.ErrNoTensorCores, "too few storage bindings")

	a.HeadDim = 0
	_, err = p.Forward(a)
	assert.ErrorContains(t, err, "head_dim", "arguments are validated first")

	a.HeadDim = 64
	bad := Options{Forward: shaders.TCFwdTiling{Shape: shaders.MatrixShape{M: 16, N: 8, K: 16}, SG: 8, NS: 4, MT: 1, BC: 32}}
	_, err = New(h100, bad).Forward(a)
	assert.ErrorContains(t, err, "subgroups of 8", "a fixed tiling must match the adapter")
}
