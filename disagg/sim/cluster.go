package sim

import (
	"fmt"
	"math"

	"github.com/coreattn/coreattn/disagg"
)

// Cluster is the hardware and parallel layout a step runs on. A server (an
// attention server, a trainer rank of DistCA's planner) is one
// tensor-parallel group of TP GPUs; GPUs hold heads 1/TP each, so a server's
// attention runs TP times faster than one GPU's and its traffic is spread
// over TP links.
type Cluster struct {
	// GPUs is the total GPU count: TP × PP × (DP·CP).
	GPUs int `json:"gpus"`
	// TP is the tensor-parallel degree; PP the pipeline-parallel degree.
	TP int `json:"tp"`
	PP int `json:"pp"`
	// GPUsPerNode places servers on nodes: traffic between two GPUs of one
	// node uses IntraBW, across nodes InterBW (bytes/s per GPU, each way).
	GPUsPerNode int     `json:"gpus_per_node"`
	IntraBW     float64 `json:"intra_bw"`
	InterBW     float64 `json:"inter_bw"`
	// PeakFLOPS is one GPU's dense bf16 peak; LinearMFU the fraction the
	// context-independent layers sustain (the paper assumes 50%).
	PeakFLOPS float64 `json:"peak_flops"`
	LinearMFU float64 `json:"linear_mfu"`
	// MemoryBytes is one GPU's memory; a strategy needing more is out of
	// memory. BufferBytes is DistCA's per-GPU all-to-all buffer
	// (EXPERIMENT_NVSHMEM_BUFFER_SIZE_GB, 2 GB in every benchmark script).
	MemoryBytes float64 `json:"memory_bytes"`
	BufferBytes float64 `json:"buffer_bytes"`
	// ActBytesPerHidden is the activation bytes kept per token, layer and
	// hidden unit (spread over TP): 16 with sequence parallelism and the MLP
	// recomputed (DistCA's EXPERIMENT_ADD_SELECTIVE_CKPT); 34 with only the
	// attention softmax recomputed (Korthikanti et al. 2022).
	ActBytesPerHidden float64 `json:"act_bytes_per_hidden"`
}

// DefaultCluster returns the paper's hardware: gpus H200s (140 GB, 989
// TFLOP/s dense bf16) in nodes of 8 with NVLink (450 GB/s per GPU each way)
// and 400 Gb/s InfiniBand per GPU (50 GB/s), TP 8, no PP, 50% MFU on the
// linear layers and a 2 GiB buffer.
func DefaultCluster(gpus int) Cluster {
	return Cluster{GPUs: gpus, TP: 8, PP: 1, GPUsPerNode: 8, IntraBW: 450e9, InterBW: 50e9,
		PeakFLOPS: 989e12, LinearMFU: 0.5, MemoryBytes: 140e9, BufferBytes: 2 << 30, ActBytesPerHidden: 16}
}

// MaxGPUs bounds Cluster.GPUs (a million GPUs is past any cluster the model
// describes, and keeps every per-server slice small).
const MaxGPUs = 1 << 20

// Validate reports the first bad field, named as the CLI flag.
func (c Cluster) Validate() error {
	switch {
	case c.GPUs <= 0 || c.GPUs > MaxGPUs:
		return fmt.Errorf("disagg: cluster: --gpus %d must be in [1, %d]", c.GPUs, MaxGPUs)
	case c.TP <= 0 || c.GPUs%c.TP != 0:
		return fmt.Errorf("disagg: cluster: --tp %d must be positive and divide --gpus %d", c.TP, c.GPUs)
	case c.PP <= 0 || (c.GPUs/c.TP)%c.PP != 0:
		return fmt.Errorf("disagg: cluster: --pp %d must be positive and divide the %d servers (gpus/tp)", c.PP, c.GPUs/c.TP)
	case c.GPUsPerNode <= 0:
		return fmt.Errorf("disagg: cluster: --gpus-per-node %d must be positive", c.GPUsPerNode)
	case !finitePos(c.IntraBW):
		return fmt.Errorf("disagg: cluster: --intra-gbs %g must be positive and finite", c.IntraBW/1e9)
	case !finitePos(c.InterBW):
		return fmt.Errorf("disagg: cluster: --inter-gbs %g must be positive and finite", c.InterBW/1e9)
	case !finitePos(c.PeakFLOPS):
		return fmt.Errorf("disagg: cluster: --peak-tflops %g must be positive and finite", c.PeakFLOPS/1e12)
	case !(c.LinearMFU > 0 && c.LinearMFU <= 1):
		return fmt.Errorf("disagg: cluster: --linear-mfu %g must be in (0, 1]", c.LinearMFU)
	case !finitePos(c.MemoryBytes):
		return fmt.Errorf("disagg: cluster: --memory-gb %g must be positive and finite", c.MemoryBytes/1e9)
	case !(c.ActBytesPerHidden > 0 && c.ActBytesPerHidden <= 1000):
		return fmt.Errorf("disagg: cluster: --act-bytes %g must be in (0, 1000]", c.ActBytesPerHidden)
	case !finitePos(c.BufferBytes):
		return fmt.Errorf("disagg: cluster: --buffer-gb %g must be positive and finite", c.BufferBytes/(1<<30))
	}
	return nil
}

func finitePos(x float64) bool { return x > 0 && !math.IsInf(x, 0) }

// Servers returns the number of tensor-parallel groups.
func (c Cluster) Servers() int { return c.GPUs / c.TP }

// node returns the node of server s's first GPU.
func (c Cluster) node(s int) int { return s * c.TP / c.GPUsPerNode }

// sameNode reports whether servers a and b share a node (a server wider
// than a node shares one with nobody).
func (c Cluster) sameNode(a, b int) bool { return c.TP <= c.GPUsPerNode && c.node(a) == c.node(b) }

// linearTime is the seconds server-wide of the context-independent layers
// of layers layers on tokens tokens for pass.
func (c Cluster) linearTime(m disagg.Arch, tokens float64, layers int, pass disagg.Pass) float64 {
	per := m.LinearFLOPs(1, pass) / float64(m.Layers) // per token per layer
	return per * tokens * float64(layers) / (float64(c.TP) * c.PeakFLOPS * c.LinearMFU)
}

// linkTime is the seconds a server needs to move its bytes: intra-node and
// inter-node links run concurrently, each direction on its own.
func (c Cluster) linkTime(t linkBytes) float64 {
	tp := float64(c.TP)
	return max(float64(t.intraIn)/(tp*c.IntraBW), float64(t.intraOut)/(tp*c.IntraBW),
		float64(t.interIn)/(tp*c.InterBW), float64(t.interOut)/(tp*c.InterBW))
}

// linkBytes is one server's bytes of one communication phase.
type linkBytes struct {
	intraIn, intraOut, interIn, interOut int64
	self                                 int64 // bytes a server passes to itself through the buffer
}

func (l *linkBytes) add(c Cluster, from, to int, b int64, in bool) {
	switch {
	case from == to:
		l.self += b
	case c.sameNode(from, to):
		if in {
			l.intraIn += b
		} else {
			l.intraOut += b
		}
	default:
		if in {
			l.interIn += b
		} else {
			l.interOut += b
		}
	}
}

// network returns the bytes received over links (self excluded).
func (l linkBytes) network() int64 { return l.intraIn + l.interIn }

// bufferBytes is what DistCA's all-to-all buffer must hold for this phase:
// the larger of what the server sends and receives, its own rows included
// (they pass through the buffer too).
func (l linkBytes) bufferBytes() int64 {
	return max(l.intraIn+l.interIn, l.intraOut+l.interOut) + l.self
}

// Bytes per parameter for bf16 weights with fp32 gradients (6, replicated
// over DP) plus Adam's fp32 master and moments (12, sharded over DP by the
// distributed optimizer).
const (
	paramBytesReplicated = 6
	paramBytesSharded    = 12
)

// staticBytes is one GPU's weights, gradients and optimizer state.
func (c Cluster) staticBytes(m disagg.Arch, dp int) float64 {
	perGPU := m.Params / float64(c.TP*c.PP)
	return perGPU * (paramBytesReplicated + paramBytesSharded/float64(max(dp, 1)))
}

// activationBytes is one GPU's activations for tokens tokens held across
// layers layers.
func (c Cluster) activationBytes(m disagg.Arch, tokens float64, layers int) float64 {
	hidden := float64(m.HeadsQ * m.HeadDim)
	return c.ActBytesPerHidden * hidden * tokens * float64(layers) / float64(c.TP)
}
