package gpu

import (
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/shaders"
)

// kernelLimits are the adapters whose chooser outputs TestKernelsCompile
// compiles: lavapipe's (CPU fetch pattern) and an H100's.
var kernelLimits = []struct {
	name            string
	wgBytes, thread int
	cpu             bool
}{
	{"lavapipe", 32 << 10, 1024, true},
	{"h100", 48 << 10, 1024, false},
}

// kernelDims are the head dimensions TestKernelsCompile covers: the common
// ones and some that are not multiples of 8 or of 16.
var kernelDims = []int{4, 12, 16, 20, 32, 44, 64, 80, 96, 100, 128, 196, 252, 256}

// kernelModule is one module the operator can compile.
type kernelModule struct {
	label string
	src   func() (string, error)
}

// chosenModules lists every module the operator can build from the
// choosers' tilings for head dimension d and dtype dt on an adapter with
// the given limits: the forward, and every backward kernel for each way of
// computing dQ (separate, fused, stored dS with and without the f32 copy of
// K written by the dK/dV kernel), as prepareBackwardChecked derives them.
func chosenModules(d int, dt shaders.DType, wgBytes, threads int, cpu bool) ([]kernelModule, error) {
	var out []kernelModule
	fwd, err := shaders.ChooseFwd(d, dt, wgBytes, threads)
	if err != nil {
		return nil, err
	}
	fwd.CPU = cpu
	out = append(out, kernelModule{"fwd " + fwd.String(), fwd.Source})
	bwd := func(t shaders.BwdTiling, e shaders.BwdEntry) {
		out = append(out, kernelModule{t.String() + " " + e.Name(), func() (string, error) { return t.Module(e) }})
	}
	dq, err := shaders.ChooseBwd(shaders.BwdDQ, d, dt, wgBytes, threads)
	if err != nil {
		return nil, err
	}
	kv, err := shaders.ChooseBwd(shaders.BwdDKV, d, dt, wgBytes, threads)
	if err != nil {
		return nil, err
	}
	dqs, err := shaders.ChooseDQStored(d, dt, wgBytes, threads)
	if err != nil {
		return nil, err
	}
	dq.CPU, kv.CPU, dqs.CPU = cpu, cpu, cpu
	for _, e := range []shaders.BwdEntry{shaders.DQEntry, shaders.DeltaEntry, shaders.BoundEntry} {
		bwd(dq, e)
	}
	bwd(kv, shaders.DKVEntry)
	fused := kv
	fused.FusedDQ = true
	if fused.Validate() == nil {
		bwd(fused, shaders.DKVEntry)
		bwd(fused, shaders.DQCastEntry)
	}
	stored := kv
	stored.StoredDS = true
	if stored.Validate() == nil {
		bwd(stored, shaders.DKVEntry)
		bwd(stored, shaders.WidenEntry)
		if dqs.WidensK() {
			stored.WideK = true
			bwd(stored, shaders.DKVEntry)
		}
		bwd(dqs, shaders.DQStoredEntry)
		if dqs.WideK {
			dqs.WideK = false // no room for the copy
			bwd(dqs, shaders.DQStoredEntry)
		}
	}
	return out, nil
}

// TestKernelsCompile has naga (through wgpu) compile every kernel module
// that the choosers' tilings give for the head dimensions of kernelDims,
// every dtype and the limits of lavapipe and an H100: each module is
// parsed and validated, as creating a pipeline would, but not run.
// Identical sources are compiled once.
func TestKernelsCompile(t *testing.T) {
	dev := testOp(t).Device()
	seen := map[[sha256.Size]byte]bool{}
	start, compiled := time.Now(), 0
	for _, lim := range kernelLimits {
		for _, dt := range shaders.DTypes {
			for _, d := range kernelDims {
				name := fmt.Sprintf("%s/%s/D%d", lim.name, dt, d)
				mods, err := chosenModules(d, dt, lim.wgBytes, lim.thread, lim.cpu)
				require.NoError(t, err, name)
				for _, m := range mods {
					src, err := m.src()
					require.NoError(t, err, "%s: %s", name, m.label)
					key := sha256.Sum256([]byte(src))
					if seen[key] {
						continue
					}
					seen[key] = true
					compiled++
					require.NoError(t, dev.CheckModule(m.label, src), "%s: %s", name, m.label)
				}
			}
		}
	}
	t.Logf("%d modules compiled in %s", compiled, time.Since(start).Round(time.Millisecond))
}
