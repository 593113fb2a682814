package local

import (
	"context"
	"fmt"

	"github.com/coreattn/coreattn/disagg/pool"
	"github.com/coreattn/coreattn/disagg/server"
	"github.com/coreattn/coreattn/wgpu"
)

// Placement says where OpenServers opens its servers.
type Placement struct {
	// Adapters are the adapter indices (as numbered by wgpu.Adapters) that
	// servers are dealt over, in order; nil means every adapter listed.
	Adapters []int
	// WGPU is passed to wgpu.Adapters and wgpu.Open.
	WGPU wgpu.Options
}

// OpenServers opens attention servers on the adapters of this machine. With
// n = 0 there is one server per adapter; otherwise there are n servers, dealt
// round-robin over the adapters, so that several logical servers share an
// adapter when n exceeds their number (one device is opened per adapter and
// shared; its work queues in submission order). Server i is named
// "server i". On error every server opened so far is closed.
func OpenServers(ctx context.Context, n int, pl Placement) (_ []server.Server, err error) {
	if n < 0 {
		return nil, fmt.Errorf("local: open servers: %d servers: want 0 (one per adapter) or more", n)
	}
	adapters := pl.Adapters
	if adapters == nil {
		list, err := wgpu.Adapters(pl.WGPU)
		if err != nil {
			return nil, fmt.Errorf("local: open servers: %w", err)
		}
		for _, a := range list {
			adapters = append(adapters, a.Index)
		}
	}
	if len(adapters) == 0 {
		return nil, fmt.Errorf("local: open servers: %w", wgpu.ErrNoAdapter)
	}
	if n == 0 {
		n = len(adapters)
	}
	servers := make([]server.Server, 0, n)
	defer func() {
		if err != nil {
			for _, s := range servers {
				s.Close()
			}
		}
	}()
	first := make(map[int]*Server)
	for i := range n {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("local: open servers: %w", err)
		}
		idx := adapters[i%len(adapters)]
		name := fmt.Sprintf("server %d", i)
		if s, ok := first[idx]; ok {
			servers = append(servers, s.Share(name))
			continue
		}
		s, err := OpenServer(name, idx, pl.WGPU)
		if err != nil {
			return nil, err
		}
		first[idx] = s
		servers = append(servers, s)
	}
	return servers, nil
}

// OpenPool opens n servers as OpenServers does and returns a pool over
// them, configured by opts. Closing the pool closes the servers.
func OpenPool(ctx context.Context, n int, pl Placement, opts pool.Options) (*pool.Pool, error) {
	servers, err := OpenServers(ctx, n, pl)
	if err != nil {
		return nil, err
	}
	p, err := pool.New(servers, opts)
	if err != nil {
		for _, s := range servers {
			s.Close()
		}
		return nil, fmt.Errorf("local: %w", err)
	}
	return p, nil
}
