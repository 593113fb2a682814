package train

import (
	"embed"
	"fmt"
	"math"

	"github.com/coreattn/coreattn/wgpu"
)

//go:embed wgsl/*.wgsl
var wgslFiles embed.FS

// The kernel families (one WGSL file each) and their entry points.
var kernelEntries = map[string][]string{
	"norm":   {"norm_fwd", "add_norm_fwd", "norm_bwd", "norm_dw_partial", "colsum"},
	"rope":   {"rope_fwd", "rope_bwd"},
	"swiglu": {"swiglu_fwd", "swiglu_bwd"},
	"xent":   {"xent"},
	"embed":  {"embed_fwd", "embed_bwd"},
	"reduce": {"sum_partial", "finish_loss", "finish_norm"},
	"adamw":  {"adamw"},
	"peak":   {"fma_peak"},
}

// wg is the workgroup size of every kernel here (WG in common.wgsl).
const wg = 64

// kernels holds the compiled pipelines, by entry point.
type kernels struct {
	dev   *wgpu.Device
	pipes map[string]*wgpu.Pipeline
}

// compileKernels compiles every entry point (the device caches pipelines,
// so a second trainer on the same device compiles nothing).
func compileKernels(dev *wgpu.Device) (*kernels, error) {
	common, err := wgslFiles.ReadFile("wgsl/common.wgsl")
	if err != nil {
		return nil, err
	}
	k := &kernels{dev: dev, pipes: make(map[string]*wgpu.Pipeline)}
	for file, entries := range kernelEntries {
		src, err := wgslFiles.ReadFile("wgsl/" + file + ".wgsl")
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			p, err := dev.Pipeline("train "+e, string(common)+"\n"+string(src), e)
			if err != nil {
				return nil, fmt.Errorf("train: %w", err)
			}
			k.pipes[e] = p
		}
	}
	return k, nil
}

// arena allocates the device buffers of a trainer, all at construction,
// and frees them together.
type arena struct {
	dev   *wgpu.Device
	bufs  []*wgpu.Buffer
	bytes uint64
}

// storage allocates a zeroed buffer of n 4-byte elements.
func (a *arena) storage(label string, n int) (*wgpu.Buffer, error) {
	b, err := a.dev.NewBuffer(label, uint64(max(n, 1))*4)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	a.bufs = append(a.bufs, b)
	a.bytes += b.Size()
	return b, nil
}

// uniform allocates a kernel's parameter block, padded to 16 bytes.
func (a *arena) uniform(label string, vals []uint32) (*wgpu.Buffer, error) {
	for len(vals)%4 != 0 {
		vals = append(vals, 0)
	}
	b, err := wgpu.UploadUniform(a.dev, label, vals)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	a.bufs = append(a.bufs, b)
	return b, nil
}

func (a *arena) release() {
	for _, b := range a.bufs {
		b.Release()
	}
	a.bufs, a.bytes = nil, 0
}

// builder records dispatches of the kernels here, each with a parameter
// block allocated in the arena. The first error sticks: later calls do
// nothing and err reports it.
type builder struct {
	k   *kernels
	a   *arena
	err error
}

// dispatch returns entry's dispatch over grid with params and buffers
// bound at 1, 2, ... in order.
func (b *builder) dispatch(entry string, grid [3]uint32, params []uint32, bufs ...*wgpu.Buffer) wgpu.Dispatch {
	if b.err != nil {
		return wgpu.Dispatch{}
	}
	u, err := b.a.uniform(entry+" params", params)
	if err != nil {
		b.err = err
		return wgpu.Dispatch{}
	}
	return wgpu.Dispatch{Label: entry, Pipeline: b.k.pipes[entry], Buffers: append([]*wgpu.Buffer{u}, bufs...), Workgroups: grid}
}

// grid lays n workgroups out along x up to the adapter's limit, the rest
// along y (the kernels' flat()).
func (b *builder) grid(n int) [3]uint32 {
	max := int(b.k.dev.Limits().MaxWorkgroupsPerDimension)
	n = max1(n)
	x := min(n, max)
	return [3]uint32{uint32(x), uint32((n + x - 1) / x), 1}
}

func max1(n int) int { return max(n, 1) }

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func f32bits(x float64) uint32 { return math.Float32bits(float32(x)) }

func u32(xs ...int) []uint32 {
	out := make([]uint32, len(xs))
	for i, x := range xs {
		out[i] = uint32(x)
	}
	return out
}

func boolBit(v bool) int {
	if v {
		return 1
	}
	return 0
}

// normShape is what the norm kernels need to know.
type normShape struct {
	rows, d    int
	wOff, gOff int // the weight's offset in the parameters, its gradient's in the gradients
	eps        float64
	chunk      int // rows per weight-gradient block
}

func (s normShape) params(accumulate bool) []uint32 {
	p := u32(s.rows, s.d, s.wOff, s.gOff)
	return append(p, f32bits(s.eps), uint32(boolBit(accumulate)), uint32(s.chunk), uint32(ceilDiv(s.rows, s.chunk)))
}

// normFwd: h = rmsnorm(x) * w, rstd.
func (b *builder) normFwd(s normShape, x, w, h, rstd *wgpu.Buffer) wgpu.Dispatch {
	return b.dispatch("norm_fwd", b.grid(s.rows), s.params(false), x, w, h, rstd)
}

// addNormFwd: x = a + c stored, h = rmsnorm(x) * w, rstd.
func (b *builder) addNormFwd(s normShape, a, c, w, x, h, rstd *wgpu.Buffer) wgpu.Dispatch {
	return b.dispatch("add_norm_fwd", b.grid(s.rows), s.params(false), a, c, w, x, h, rstd)
}

// normBwd adds (or, first, stores) the gradient through the norm into dres.
func (b *builder) normBwd(s normShape, accumulate bool, x, w, rstd, dh, dres *wgpu.Buffer) wgpu.Dispatch {
	return b.dispatch("norm_bwd", b.grid(s.rows), s.params(accumulate), x, w, rstd, dh, dres)
}

// normDW writes the weight's gradient in two passes through part, which
// holds ceil(rows/chunk)*d floats.
func (b *builder) normDW(s normShape, x, rstd, dh, part, grads *wgpu.Buffer) []wgpu.Dispatch {
	cols := uint32(ceilDiv(s.d, wg))
	return []wgpu.Dispatch{
		b.dispatch("norm_dw_partial", [3]uint32{cols, uint32(ceilDiv(s.rows, s.chunk)), 1}, s.params(false), x, rstd, dh, part),
		b.dispatch("colsum", [3]uint32{cols, 1, 1}, s.params(false), part, grads),
	}
}

// ropeShape describes the attention projections.
type ropeShape struct{ rows, hq, hkv, dh, posOff int }

func (s ropeShape) params() []uint32 { return u32(s.rows, s.hq, s.hkv, s.dh, s.posOff) }

func (s ropeShape) invocations() int { return s.rows * (s.hq + 2*s.hkv) * s.dh / 2 }

// ropeFwd splits qkv into rotated q, rotated k and v.
func (b *builder) ropeFwd(s ropeShape, batch, table, qkv, q, k, v *wgpu.Buffer) wgpu.Dispatch {
	return b.dispatch("rope_fwd", b.grid(ceilDiv(s.invocations(), wg)), s.params(), batch, table, qkv, q, k, v)
}

// ropeBwd rotates dq and dk back and packs them with dv into dqkv.
func (b *builder) ropeBwd(s ropeShape, batch, table, dq, dk, dv, dqkv *wgpu.Buffer) wgpu.Dispatch {
	return b.dispatch("rope_bwd", b.grid(ceilDiv(s.invocations(), wg)), s.params(), batch, table, dq, dk, dv, dqkv)
}

// swigluFwd: act = silu(gate) * up from gu = gate|up [rows, 2f].
func (b *builder) swigluFwd(rows, f int, gu, act *wgpu.Buffer) wgpu.Dispatch {
	return b.dispatch("swiglu_fwd", b.grid(ceilDiv(rows*f, wg)), u32(rows*f, f), gu, act)
}

// swigluBwd: dgu from gu and dact.
func (b *builder) swigluBwd(rows, f int, gu, dact, dgu *wgpu.Buffer) wgpu.Dispatch {
	return b.dispatch("swiglu_bwd", b.grid(ceilDiv(rows*f, wg)), u32(rows*f, f), gu, dact, dgu)
}

// xent replaces logits [rows, vocab] by the gradient of the mean loss and
// writes each row's loss.
func (b *builder) xent(rows, vocab, tgtOff int, batch, step, logits, rowloss *wgpu.Buffer) wgpu.Dispatch {
	return b.dispatch("xent", b.grid(rows), u32(rows, vocab, tgtOff), batch, step, logits, rowloss)
}

// embedFwd gathers x = tok_emb[tokens].
func (b *builder) embedFwd(rows, d, off int, batch, weights, x *wgpu.Buffer) wgpu.Dispatch {
	return b.dispatch("embed_fwd", b.grid(ceilDiv(rows*d, wg)), u32(rows, d, off, 256), batch, weights, x)
}

// embedBwd writes tok_emb's gradient from dx through the CSR index.
func (b *builder) embedBwd(rows, d, off, vocab int, index, dx, grads *wgpu.Buffer) wgpu.Dispatch {
	return b.dispatch("embed_bwd", [3]uint32{uint32(vocab), uint32(ceilDiv(d, wg)), 1}, u32(rows, d, off, vocab), index, dx, grads)
}

// sumParts is the number of partials sumPartial writes for n elements:
// enough workgroups to fill a GPU, each summing at least 4096 elements.
func sumParts(n int) (parts, chunk int) {
	parts = max1(min(ceilDiv(n, 4096), 1024))
	return parts, ceilDiv(n, parts)
}

// sum writes the partial sums of src's first n elements (or of their
// squares) into part, and the finish kernel (finish_loss or finish_norm)
// writes the scalars.
func (b *builder) sum(finish string, n int, square bool, maxNorm float64, src, part, step, scalars *wgpu.Buffer) []wgpu.Dispatch {
	parts, chunk := sumParts(n)
	p := append(u32(n, chunk, boolBit(square), parts), f32bits(maxNorm))
	fin := b.dispatch(finish, [3]uint32{1, 1, 1}, p, part, step, scalars)
	return []wgpu.Dispatch{b.dispatch("sum_partial", b.grid(parts), p, src, part), fin}
}

// adamwShape is the optimizer's constant part.
type adamwShape struct {
	n, decayEnd         int
	beta1, beta2, eps64 float64
}

// adamw updates weights, m and v from grads.
func (b *builder) adamw(s adamwShape, step, scalars, grads, weights, m, v *wgpu.Buffer) wgpu.Dispatch {
	p := append(u32(s.n, s.decayEnd), f32bits(s.beta1), f32bits(s.beta2), f32bits(s.eps64))
	return b.dispatch("adamw", b.grid(ceilDiv(s.n, wg)), p, step, scalars, grads, weights, m, v)
}
