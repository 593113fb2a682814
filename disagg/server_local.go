package disagg

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/wgpu"
)

// LocalServer is an attention server on a wgpu device of this process: one
// attention.Op. Several LocalServers may share one device (logical servers,
// see Share), which is how a pool of N servers runs on a single adapter such
// as lavapipe in CI. It is safe for concurrent use.
type LocalServer struct {
	name string
	op   *attention.Op
	dev  *deviceRef // nil when the server does not own its device

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

// NewLocalServer returns a server named name that runs on op's device. The
// server does not own the device: Close leaves it open.
func NewLocalServer(name string, op *attention.Op) *LocalServer {
	return &LocalServer{name: name, op: op}
}

// OpenLocalServer opens adapter index (as numbered by wgpu.Adapters) and
// returns a server named name that owns the device: Close closes it, once no
// server made with Share uses it any more.
func OpenLocalServer(name string, index int, opts wgpu.Options) (*LocalServer, error) {
	dev, err := wgpu.Open(index, opts)
	if err != nil {
		return nil, fmt.Errorf("disagg: open server %q on adapter %d: %w", name, index, err)
	}
	return &LocalServer{name: name, op: attention.New(dev), dev: &deviceRef{dev: dev, refs: 1}}, nil
}

// Share returns another logical server named name on the same device and
// with the same Op. Its work queues behind the other servers' on the device.
func (s *LocalServer) Share(name string) *LocalServer {
	t := &LocalServer{name: name, op: s.op, dev: s.dev}
	if s.dev != nil {
		s.dev.mu.Lock()
		s.dev.refs++
		s.dev.mu.Unlock()
	}
	return t
}

// Op returns the operator the server runs.
func (s *LocalServer) Op() *attention.Op { return s.op }

// Info implements Server.
func (s *LocalServer) Info() ServerInfo {
	dev := s.op.Device()
	ai := dev.Info()
	return ServerInfo{
		Name:           s.name,
		Adapter:        ai.String(),
		CPU:            ai.IsCPU(),
		MaxTensorBytes: dev.MaxBufferBytes(),
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
	return DefaultServerFLOPS
}

// Close implements Server. It closes the device when the server owns it and
// is the last server using it.
func (s *LocalServer) Close() error {
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

func (s *LocalServer) usable() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("%w: %s is closed", ErrBadServer, s.name)
	}
	return nil
}

// Forward implements Server.
func (s *LocalServer) Forward(ctx context.Context, req *ForwardRequest) (*ForwardReply, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	a := req.Args
	if a == nil {
		return nil, errors.New("disagg: forward request without arguments")
	}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	if err := a.CheckSizes(len(req.Q), len(req.K), len(req.V)); err != nil {
		return nil, err
	}
	start := time.Now()
	dev := s.op.Device()
	var t attention.ForwardTensors
	defer func() { release(t.Q, t.K, t.V, t.O, t.LSE) }()
	var err error
	if t.Q, err = attention.Upload(dev, "q", a.DType, req.Q); err != nil {
		return nil, s.wrap(err)
	}
	if t.K, err = attention.Upload(dev, "k", a.DType, req.K); err != nil {
		return nil, s.wrap(err)
	}
	if t.V, err = attention.Upload(dev, "v", a.DType, req.V); err != nil {
		return nil, s.wrap(err)
	}
	rep := &ForwardReply{LSE: make([]float32, a.NumHeadsQ*a.TotalQ())}
	if t.O, err = attention.NewTensor(dev, "o", a.DType, len(req.Q)); err != nil {
		return nil, s.wrap(err)
	}
	if t.LSE, err = dev.NewBuffer("lse", 4*uint64(len(rep.LSE))); err != nil {
		return nil, s.wrap(err)
	}
	call, err := s.op.PrepareForward(a, t)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer call.Release()
	timing, err := dev.Run(ctx, call.Dispatches()...)
	if err != nil {
		return nil, s.wrap(err)
	}
	if rep.O, err = attention.Download(ctx, t.O, a.DType, len(req.Q)); err != nil {
		return nil, s.wrap(err)
	}
	if err := wgpu.Download(ctx, t.LSE, rep.LSE); err != nil {
		return nil, s.wrap(err)
	}
	rep.Stats = statsOf(start, timing)
	return rep, nil
}

// Backward implements Server.
func (s *LocalServer) Backward(ctx context.Context, req *BackwardRequest) (*BackwardReply, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	a := req.Args
	if a == nil {
		return nil, errors.New("disagg: backward request without arguments")
	}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	if err := a.CheckSizes(len(req.Q), len(req.K), len(req.V)); err != nil {
		return nil, err
	}
	if len(req.O) != len(req.Q) || len(req.DO) != len(req.Q) || len(req.LSE) != a.NumHeadsQ*a.TotalQ() {
		return nil, fmt.Errorf("disagg: backward request: o, do and lse hold %d, %d and %d elements, want %d, %d and %d",
			len(req.O), len(req.DO), len(req.LSE), len(req.Q), len(req.Q), a.NumHeadsQ*a.TotalQ())
	}
	start := time.Now()
	dev := s.op.Device()
	var t attention.BackwardTensors
	defer func() { release(t.Q, t.K, t.V, t.O, t.LSE, t.DO, t.DQ, t.DK, t.DV) }()
	var err error
	for _, in := range []struct {
		dst  **wgpu.Buffer
		name string
		data []float32
	}{{&t.Q, "q", req.Q}, {&t.K, "k", req.K}, {&t.V, "v", req.V}, {&t.O, "o", req.O}, {&t.LSE, "lse", req.LSE}, {&t.DO, "do", req.DO}} {
		dt := a.DType
		if in.name == "lse" {
			dt = attention.Float32
		}
		if *in.dst, err = attention.Upload(dev, in.name, dt, in.data); err != nil {
			return nil, s.wrap(err)
		}
	}
	rep := &BackwardReply{}
	for _, out := range []struct {
		dst  **wgpu.Buffer
		name string
		n    int
	}{{&t.DQ, "dq", len(req.Q)}, {&t.DK, "dk", len(req.K)}, {&t.DV, "dv", len(req.V)}} {
		if *out.dst, err = attention.NewTensor(dev, out.name, a.DType, out.n); err != nil {
			return nil, s.wrap(err)
		}
	}
	call, err := s.op.PrepareBackward(a, t)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer call.Release()
	timing, err := dev.Run(ctx, call.Dispatches()...)
	if err != nil {
		return nil, s.wrap(err)
	}
	for _, out := range []struct {
		buf *wgpu.Buffer
		dst *[]float32
		n   int
	}{{t.DQ, &rep.DQ, len(req.Q)}, {t.DK, &rep.DK, len(req.K)}, {t.DV, &rep.DV, len(req.V)}} {
		if *out.dst, err = attention.Download(ctx, out.buf, a.DType, out.n); err != nil {
			return nil, s.wrap(err)
		}
	}
	rep.Stats = statsOf(start, timing)
	return rep, nil
}

// wrap names the server in err.
func (s *LocalServer) wrap(err error) error { return fmt.Errorf("%s: %w", s.name, err) }

func statsOf(start time.Time, t wgpu.Timing) RunStats {
	st := RunStats{Total: time.Since(start), Kernel: t.Wall}
	if t.Passes != nil {
		st.GPU = t.GPU()
	}
	return st
}

func release(bufs ...*wgpu.Buffer) {
	for _, b := range bufs {
		if b != nil {
			b.Release()
		}
	}
}
