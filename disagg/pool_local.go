package disagg

import (
	"context"
	"fmt"

	"github.com/coreattn/coreattn/wgpu"
)

// LocalPoolOptions configure OpenLocalPool.
type LocalPoolOptions struct {
	PoolOptions
	// Adapters are the adapter indices (as numbered by wgpu.Adapters) that
	// servers are opened on, in order; nil means every adapter listed.
	Adapters []int
	// WGPU is passed to wgpu.Adapters and wgpu.Open.
	WGPU wgpu.Options
}

// OpenLocalPool opens a pool of attention servers on the adapters of this
// machine. With n = 0 there is one server per adapter; otherwise there are n
// servers, dealt round-robin over the adapters, so that several logical
// servers share an adapter when n exceeds their number (one device is
// opened per adapter and shared). Server i is named "server i".
func OpenLocalPool(ctx context.Context, n int, opts LocalPoolOptions) (_ *Pool, err error) {
	if n < 0 {
		return nil, fmt.Errorf("disagg: open local pool: %d servers: want 0 (one per adapter) or more", n)
	}
	adapters := opts.Adapters
	if adapters == nil {
		list, err := wgpu.Adapters(opts.WGPU)
		if err != nil {
			return nil, fmt.Errorf("disagg: open local pool: %w", err)
		}
		for _, a := range list {
			adapters = append(adapters, a.Index)
		}
	}
	if len(adapters) == 0 {
		return nil, fmt.Errorf("disagg: open local pool: %w", wgpu.ErrNoAdapter)
	}
	if n == 0 {
		n = len(adapters)
	}
	servers := make([]Server, 0, n)
	defer func() {
		if err != nil {
			for _, s := range servers {
				s.Close()
			}
		}
	}()
	first := make(map[int]*LocalServer)
	for i := range n {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("disagg: open local pool: %w", err)
		}
		idx := adapters[i%len(adapters)]
		name := fmt.Sprintf("server %d", i)
		if s, ok := first[idx]; ok {
			servers = append(servers, s.Share(name))
			continue
		}
		s, err := OpenLocalServer(name, idx, opts.WGPU)
		if err != nil {
			return nil, err
		}
		first[idx] = s
		servers = append(servers, s)
	}
	return NewPool(servers, opts.PoolOptions)
}
