// Package server is the contract between an attention-server pool and its
// servers, as database/sql/driver is for database/sql: a [Server] runs one
// fused varlen batch of core attention, forward or backward, on
// host-resident tensors. Package disagg/pool schedules over servers; package
// disagg/local implements one on a wgpu device of this process; a remote
// server (over gRPC, say) only has to move the request and reply messages.
package server

import (
	"context"
	"errors"

	"github.com/coreattn/coreattn/attention"
)

// ErrUnusable is what a server's call returns, wrapped, when the server
// itself can no longer do work (its device was lost, its process or
// connection is gone, it was closed), as opposed to a problem with the
// request. A pool marks such a server down and runs its tasks elsewhere, the
// way database/sql retries a call that failed with driver.ErrBadConn.
var ErrUnusable = errors.New("attention server unusable")

// Server is one attention server: something that runs a fused varlen batch of
// core attention, forward or backward, on host-resident tensors.
//
// Implementations must be safe for concurrent use, and should return soon
// after their context ends. A call that fails because the server is
// unusable (including a request it can never take within its limits) must
// return an error wrapping [ErrUnusable]; any other error is taken to be
// the request's fault and is not retried on another server. A pool also
// takes a server down that panics or overruns its per-call deadline.
type Server interface {
	// Info describes the server. It must not block.
	Info() Info
	// Forward runs the forward pass of req and returns O and LSE.
	Forward(ctx context.Context, req *ForwardRequest) (*ForwardReply, error)
	// Backward runs the backward pass of req and returns dQ, dK and dV.
	Backward(ctx context.Context, req *BackwardRequest) (*BackwardReply, error)
	// Close releases the server. Calls after Close fail with ErrUnusable.
	Close() error
}

// Pinger is implemented by servers that can check, cheaply, that they can
// take work, the way database/sql/driver.Pinger does for connections. A
// pool probes a server it marked down with Ping (or, for a server without
// it, with a one-row forward call) before it plans work on it again. Ping
// returns an error wrapping ErrUnusable while the server cannot work.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Info describes an attention server to the pool.
type Info struct {
	// Name identifies the server in reports and errors, e.g. "server 1".
	Name string `json:"name"`
	// Adapter describes the hardware it runs on, for reports.
	Adapter string `json:"adapter,omitempty"`
	// CPU is true for a software adapter such as lavapipe.
	CPU bool `json:"cpu,omitempty"`
	// MaxTensorBytes is the largest tensor one call can take (the device's
	// buffer limit); the pool splits a server's work into several calls to
	// stay below it. 0 means no limit.
	MaxTensorBytes uint64 `json:"max_tensor_bytes,omitempty"`
	// FLOPS is a rough forward core-attention throughput in FLOP/s, used by
	// the FLOP cost model when the pool has no measured Profile for this
	// server. 0 means DefaultFLOPS.
	FLOPS float64 `json:"flops,omitempty"`
}

// DefaultFLOPS is the throughput the FLOP cost model assumes for a
// server that states none. Only ratios between servers matter to the
// scheduler, so with identical servers its value is immaterial.
const DefaultFLOPS = 10e12

// ForwardRequest is one fused varlen forward batch. Tensors are laid out as
// the attention package documents: Q [total_q, Hq, D], K and V
// [total_k, Hkv, D].
type ForwardRequest struct {
	Args    *attention.Args
	Q, K, V []float32
}

// ForwardReply is the result of a ForwardRequest: O [total_q, Hq, D] and
// LSE [Hq, total_q].
type ForwardReply struct {
	O, LSE []float32
	Stats  attention.Stats
}

// BackwardRequest is one fused varlen backward batch: the forward's inputs,
// its outputs O and LSE, and the upstream gradient DO (shaped like Q).
type BackwardRequest struct {
	Args                *attention.Args
	Q, K, V, O, LSE, DO []float32
}

// BackwardReply is the result of a BackwardRequest: dQ [total_q, Hq, D], dK
// and dV [total_k, Hkv, D].
type BackwardReply struct {
	DQ, DK, DV []float32
	Stats      attention.Stats
}
