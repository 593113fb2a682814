package gemm

import (
	"fmt"

	"github.com/coreattn/coreattn/wgpu"
)

// scratch is a split-K scratch buffer shared by the launches that hold a
// reference to it. Launches of one Op may share it because a device runs
// submitted dispatches in order, each launch's product and reduction
// together: no launch's partials are live while another's are written.
type scratch struct {
	buf  *wgpu.Buffer
	refs int // guarded by Op.mu
}

// acquireScratch returns a scratch buffer of at least bytes, with a
// reference for the caller: the Op's current one if it is large enough,
// otherwise a new one (twice the old size, at least), which becomes
// current. A replaced buffer lives on until its last launch releases it.
func (g *Op) acquireScratch(bytes int64) (*scratch, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if s := g.scratch; s != nil && int64(s.buf.Size()) >= bytes {
		s.refs++
		return s, nil
	}
	size := bytes
	if g.scratch != nil {
		size = max(size, min(2*int64(g.scratch.buf.Size()), int64(g.dev.MaxBufferBytes())))
	}
	buf, err := g.dev.NewBuffer("gemm split-k scratch", uint64(size))
	if err != nil {
		return nil, fmt.Errorf("%w: split-K scratch of %d bytes: %w", ErrLimit, size, err)
	}
	g.scratch = &scratch{buf: buf, refs: 1}
	return g.scratch, nil
}

// releaseScratch drops a launch's reference and frees the buffer with the
// last one.
func (g *Op) releaseScratch(s *scratch) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s.refs--
	if s.refs > 0 {
		return
	}
	s.buf.Release()
	if g.scratch == s {
		g.scratch = nil
	}
}
