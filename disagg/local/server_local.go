package local

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/coreattn/coreattn/attention/gpu"
	"github.com/coreattn/coreattn/disagg/server"
	"github.com/coreattn/coreattn/wgpu"
)

// Server is an attention server on a wgpu device of this process: one
// gpu.Op. Several Servers may share one device (logical servers,
// see Share), which is how a pool of N servers runs on a single adapter such
// as lavapipe in CI. It is safe for concurrent use.
type Server struct {
	name string
	op   *gpu.Op
	dev  *deviceRef // nil when the server does not own its device
	// limit overrides the device's buffer limit when positive (tests).
	limit uint64

	mu     sync.Mutex
	closed bool
}

// deviceRef counts the logical servers using a device opened for them; the
// last one to close closes the device.
type deviceRef struct {
	mu   sync.Mutex
	dev  *wgpu.Device
	refs int
}

func (r *deviceRef) release() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refs--
	if r.refs == 0 {
		return r.dev.Close()
	}
	return nil
}

// NewServer returns a server named name that runs on op's device. The
// server does not own the device: Close leaves it open.
func NewServer(name string, op *gpu.Op) *Server {
	return &Server{name: name, op: op}
}

// OpenServer opens adapter index (as numbered by wgpu.Adapters) and
// returns a server named name that owns the device: Close closes it, once no
// server made with Share uses it any more.
func OpenServer(name string, index int, opts wgpu.Options) (*Server, error) {
	dev, err := wgpu.Open(index, opts)
	if err != nil {
		return nil, fmt.Errorf("local: open server %q on adapter %d: %w", name, index, err)
	}
	return &Server{name: name, op: gpu.New(dev), dev: &deviceRef{dev: dev, refs: 1}}, nil
}

// Share returns another logical server named name on the same device and
// with the same Op. Its work queues behind the other servers' on the device.
func (s *Server) Share(name string) *Server {
	t := &Server{name: name, op: s.op, dev: s.dev}
	if s.dev != nil {
		s.dev.mu.Lock()
		s.dev.refs++
		s.dev.mu.Unlock()
	}
	return t
}

// Op returns the operator the server runs.
func (s *Server) Op() *gpu.Op { return s.op }

// Info implements server.Server.
func (s *Server) Info() server.Info {
	dev := s.op.Device()
	ai := dev.Info()
	return server.Info{
		Name:           s.name,
		Adapter:        ai.String(),
		CPU:            ai.IsCPU(),
		MaxTensorBytes: s.maxBytes(),
		FLOPS:          nominalFLOPS(ai),
	}
}

// nominalFLOPS is a coarse prior on an adapter's forward attention
// throughput by its type, for the FLOP cost model; `coreattn profile`
// measures the real thing.
func nominalFLOPS(ai wgpu.AdapterInfo) float64 {
	switch ai.Type {
	case "DiscreteGPU":
		return 50e12
	case "IntegratedGPU":
		return 2e12
	case "CPU":
		return 20e9
	}
	return server.DefaultFLOPS
}

// Close implements server.Server. It closes the device when the server owns it and
// is the last server using it.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.dev != nil {
		return s.dev.release()
	}
	return nil
}

func (s *Server) usable() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("%w: %s is closed", server.ErrUnusable, s.name)
	}
	return nil
}

// Forward implements server.Server.
func (s *Server) Forward(ctx context.Context, req *server.ForwardRequest) (*server.ForwardReply, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	o, lse, st, err := s.forward(ctx, req.Args, req.Q, req.K, req.V)
	if err != nil {
		return nil, s.wrap(err)
	}
	return &server.ForwardReply{O: o, LSE: lse, Stats: st}, nil
}

// Backward implements server.Server.
func (s *Server) Backward(ctx context.Context, req *server.BackwardRequest) (*server.BackwardReply, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	dq, dk, dv, st, err := s.backward(ctx, req.Args, req.Q, req.K, req.V, req.O, req.LSE, req.DO)
	if err != nil {
		return nil, s.wrap(err)
	}
	return &server.BackwardReply{DQ: dq, DK: dk, DV: dv, Stats: st}, nil
}

// Ping implements server.Pinger: it fails with server.ErrUnusable when the
// server is closed or its device is closed or lost (a pool probes a server
// it took down this way before giving it work again).
func (s *Server) Ping(ctx context.Context) error {
	if err := s.usable(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b, err := s.op.Device().NewBuffer("ping", 16)
	if err != nil {
		return s.wrap(err)
	}
	b.Release()
	return nil
}

// wrap names the server in err, and marks it unusable when the device is
// lost or closed, or the server itself was closed during the call.
func (s *Server) wrap(err error) error {
	if errors.Is(err, server.ErrUnusable) {
		return err // already named
	}
	if errors.Is(err, wgpu.ErrDeviceLost) || errors.Is(err, wgpu.ErrClosed) || s.usable() != nil {
		return fmt.Errorf("%w: %s: %w", server.ErrUnusable, s.name, err)
	}
	return fmt.Errorf("%s: %w", s.name, err)
}
