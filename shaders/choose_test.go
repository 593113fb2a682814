package shaders

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// chosen is what the choosers' tests need of either kernel's tiling.
type chosen interface {
	Validate() error
	WorkgroupBytes() int
	Threads() int
	Source() (string, error)
}

func TestChoosersFitLimits(t *testing.T) {
	choosers := []struct {
		name   string
		choose func(d int, dt DType, wgBytes, threads int) (chosen, DType, error)
	}{
		{"forward", func(d int, dt DType, wg, th int) (chosen, DType, error) {
			tl, err := ChooseFwd(d, dt, wg, th)
			return tl, tl.DType, err
		}},
		{"dq", func(d int, dt DType, wg, th int) (chosen, DType, error) {
			tl, err := ChooseBwd(BwdDQ, d, dt, wg, th)
			return tl, tl.DType, err
		}},
		{"dkv", func(d int, dt DType, wg, th int) (chosen, DType, error) {
			tl, err := ChooseBwd(BwdDKV, d, dt, wg, th)
			return tl, tl.DType, err
		}},
		{"dQ tiling for stored dS", func(d int, dt DType, wg, th int) (chosen, DType, error) {
			tl, err := ChooseDQStored(d, dt, wg, th)
			return tl, tl.DType, err
		}},
	}
	for _, c := range choosers {
		t.Run(c.name, func(t *testing.T) {
			for _, dt := range DTypes {
				for d := 4; d <= 256; d += 4 {
					for _, lim := range [][2]int{{16 << 10, 256}, {32 << 10, 1024}, {48 << 10, 1024}} {
						tl, got, err := c.choose(d, dt, lim[0], lim[1])
						require.NoError(t, err, "%s D=%d %v", dt, d, lim)
						require.NoError(t, tl.Validate())
						require.Equal(t, dt, got)
						require.LessOrEqual(t, tl.WorkgroupBytes(), lim[0])
						require.LessOrEqual(t, tl.Threads(), lim[1])
						_, err = tl.Source()
						require.NoError(t, err)
					}
				}
			}
			_, _, err := c.choose(128, Float32, 1024, 256)
			require.ErrorContains(t, err, "no "+c.name)
		})
	}
}

// TestChooseChunks pins the measured preference: 64 bytes of each fetched
// row per chunk where it fits (see chunkSizes), K and V chunks of 32 for
// D 128 in f32 and d-chunks of 16 with V chunks of 32 for halves at D 64
// (see measuredFwd), d-chunks of 32 for the dK/dV kernel of
// every storage type (see bwdChunks) with column chunks of 32, but 16 for
// halves at D 128 (see bwdColChunks), and the transposed staging in the
// forward only: for halves, and for f32 at D 64 (see measuredFwd).
func TestChooseChunks(t *testing.T) {
	cases := []struct {
		d            int
		dt           DType
		wgBytes      int
		fwdKC, fwdVC int
		dkvKC, dkvVC int
		fwdKT        bool
	}{
		{128, Float32, 48 << 10, 32, 32, 32, 32, false},
		{128, Float32, 32 << 10, 16, 16, 16, 16, false}, // chunks of 32 do not fit (lavapipe)
		{128, Float16, 48 << 10, 32, 32, 32, 16, true},
		{128, BFloat16, 48 << 10, 32, 32, 32, 16, true},
		{128, Float16, 32 << 10, 16, 16, 16, 16, true}, // chunks of 32 do not fit
		{64, Float16, 48 << 10, 16, 32, 32, 32, true},  // Br 96, V rows folded (see measuredFwd)
		{64, BFloat16, 48 << 10, 16, 32, 32, 32, true},
		{64, Float32, 48 << 10, 16, 16, 32, 32, true},  // the forward's Br 96 shape (see TestChooseFwdShape)
		{64, Float32, 32 << 10, 16, 16, 16, 16, false}, // lavapipe: no room for chunks of 32
		{64, BFloat16, 32 << 10, 16, 16, 16, 16, true},
	}
	for _, c := range cases {
		f, err := ChooseFwd(c.d, c.dt, c.wgBytes, 1024)
		require.NoError(t, err)
		require.Equal(t, [2]int{c.fwdKC, c.fwdVC}, [2]int{f.KC, f.VC}, "forward D%d %s %d", c.d, c.dt, c.wgBytes)
		b, err := ChooseBwd(BwdDKV, c.d, c.dt, c.wgBytes, 1024)
		require.NoError(t, err)
		require.Equal(t, [2]int{c.dkvKC, c.dkvVC}, [2]int{b.KC, b.VC}, "dK/dV D%d %s %d", c.d, c.dt, c.wgBytes)
		require.Equal(t, c.fwdKT, f.TransposedK, "forward D%d %s: K transposed", c.d, c.dt)
		require.False(t, b.Transposed, "dK/dV D%d %s: operands untransposed", c.d, c.dt)
	}
}

// TestChooseFwdShape pins the forward's workgroup shape: 384 threads (Br 96)
// and K transposed for D 64 where they fit with d-chunks of 16 (halves
// with V chunks of 32, folded), 256 otherwise; K and V chunks of 32 for D
// 128 in f32 where they fit.
func TestChooseFwdShape(t *testing.T) {
	cases := []struct {
		d               int
		dt              DType
		wgBytes, maxThr int
		tx, ty, kc, vc  int
		kt              bool
	}{
		{64, Float32, 48 << 10, 1024, 16, 24, 16, 16, true},
		{64, Float32, 48 << 10, 256, 16, 16, 16, 16, false},  // 384 threads not offered
		{64, Float32, 32 << 10, 1024, 16, 16, 16, 16, false}, // 44 KiB does not fit (lavapipe)
		{64, Float16, 48 << 10, 1024, 16, 24, 16, 32, true},  // halves: K transposed, V rows folded
		{64, BFloat16, 48 << 10, 256, 16, 16, 32, 32, true},  // 384 threads not offered
		{128, Float32, 48 << 10, 1024, 16, 16, 32, 32, false},
		{128, Float32, 48 << 10, 128, 8, 16, 16, 16, false}, // 256 threads not offered
		{32, Float32, 48 << 10, 1024, 16, 16, 16, 16, false},
	}
	for _, c := range cases {
		f, err := ChooseFwd(c.d, c.dt, c.wgBytes, c.maxThr)
		require.NoError(t, err)
		require.Equal(t, [4]int{c.tx, c.ty, c.kc, c.vc}, [4]int{f.TX, f.TY, f.KC, f.VC}, "D%d %s %d bytes %d threads", c.d, c.dt, c.wgBytes, c.maxThr)
		require.Equal(t, c.kt, f.TransposedK, "D%d %s %d bytes %d threads: K transposed", c.d, c.dt, c.wgBytes, c.maxThr)
	}
}

// TestChooseRowRegs pins where the dK/dV kernel holds its K and V rows in
// registers: D <= 64 (measured faster on the H200; slower at D 128), never
// in the dQ kernel, and never with the CPU fetch pattern.
func TestChooseRowRegs(t *testing.T) {
	cases := []struct {
		k    BwdKernel
		d    int
		dt   DType
		cpu  bool
		want bool
	}{
		{BwdDKV, 64, Float32, false, true},
		{BwdDKV, 32, BFloat16, false, true},
		{BwdDKV, 128, Float32, false, false},
		{BwdDKV, 64, Float32, true, false}, // CPU pattern: rows fetched each step
		{BwdDQ, 64, Float32, false, false},
	}
	for _, c := range cases {
		b, err := ChooseBwd(c.k, c.d, c.dt, 48<<10, 1024)
		require.NoError(t, err)
		b.CPU = c.cpu
		require.Equal(t, c.want, b.rowRegs(), "%s D%d %s cpu=%v", c.k, c.d, c.dt, c.cpu)
		require.Equal(t, c.want, strings.Contains(b.String(), "rowregs"), b.String())
		src, err := b.Source()
		require.NoError(t, err)
		require.Equal(t, c.want, strings.Contains(src, "const ROWS_IN_REGS: u32 = 1u;"), "%s: ROWS_IN_REGS constant", b)
	}
}
