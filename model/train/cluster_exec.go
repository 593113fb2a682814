package train

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"
)

// times are what a program's run measured: per rank and span kind, per
// interval and rank (the busy time between two attention phases), and the
// host's waits on other devices.
type times struct {
	span       [][numSpans]time.Duration
	interval   map[int32][]time.Duration
	wait       []time.Duration
	timestamps bool
}

func newTimes(ranks int) *times {
	return &times{span: make([][numSpans]time.Duration, ranks), interval: map[int32][]time.Duration{}, wait: make([]time.Duration, ranks)}
}

func (t *times) add(g tag, d time.Duration) {
	t.span[g.rank][g.kind] += d
	iv := t.interval[g.interval]
	if iv == nil {
		iv = make([]time.Duration, len(t.span))
		t.interval[g.interval] = iv
	}
	iv[g.rank] += d
}

func (t *times) merge(o *times) {
	for r := range t.span {
		for k := range numSpans {
			t.span[r][k] += o.span[r][k]
		}
		t.wait[r] += o.wait[r]
	}
	for i, iv := range o.interval {
		dst := t.interval[i]
		if dst == nil {
			dst = make([]time.Duration, len(t.span))
			t.interval[i] = dst
		}
		for r, d := range iv {
			dst[r] += d
		}
	}
	t.timestamps = t.timestamps || o.timestamps
}

// maxTimedDispatches bounds the dispatches of one timed submission (two
// timestamp queries each; wgpu's query sets hold 8192).
const maxTimedDispatches = 2048

// execute runs a step's program: on one device in this goroutine, on
// several one goroutine per device, the sends posting the rows they
// downloaded to the receives that wait for them.
func (cl *Cluster) execute(ctx context.Context, p *program) (*times, error) {
	all := newTimes(cl.o.Ranks)
	if len(cl.devs) == 1 {
		return all, cl.runOps(ctx, 0, p.ops[0], nil, all)
	}
	boxes := make([]chan struct{}, p.boxes)
	for i := range boxes {
		boxes[i] = make(chan struct{}, 1)
	}
	per := make([]*times, len(cl.devs))
	g, gctx := errgroup.WithContext(ctx)
	for d := range cl.devs {
		per[d] = newTimes(cl.o.Ranks)
		g.Go(func() error { return cl.runOps(gctx, d, p.ops[d], boxes, per[d]) })
	}
	err := g.Wait()
	for _, t := range per {
		all.merge(t)
	}
	return all, err
}

// runOps runs device d's ops in order.
func (cl *Cluster) runOps(ctx context.Context, d int, ops []op, boxes []chan struct{}, t *times) error {
	dev := cl.devs[d].dev
	for _, o := range ops {
		switch o.kind {
		case opRun:
			if !cl.o.Timed {
				if err := dev.Submit(o.ds...); err != nil {
					return fmt.Errorf("train: %w", err)
				}
				continue
			}
			// A query set holds a bounded number of timestamps: time long
			// programs in pieces.
			for lo := 0; lo < len(o.ds); lo += maxTimedDispatches {
				hi := min(lo+maxTimedDispatches, len(o.ds))
				tm, err := dev.Run(ctx, o.ds[lo:hi]...)
				if err != nil {
					return fmt.Errorf("train: %w", err)
				}
				if tm.Passes == nil {
					t.add(o.tags[0], tm.Wall) // one tag per op without timestamps
					continue
				}
				t.timestamps = true
				for i, p := range tm.Passes {
					t.add(o.tags[lo+i], p)
				}
			}
		case opSend:
			// The gathers into the send buffer are submitted: the receiver
			// may copy it (the copy sees them).
			boxes[o.box] <- struct{}{}
		case opRecv:
			t0 := time.Now()
			select {
			case <-boxes[o.box]:
			case <-ctx.Done():
				return ctx.Err()
			}
			t.wait[o.tag.rank] += time.Since(t0)
			t1 := time.Now()
			if err := cl.xfer.Copy(ctx, o.buf, 0, o.src, o.n); err != nil {
				return fmt.Errorf("train: rows from another adapter: %w", err)
			}
			t.add(spanTag(o.tag, spanTransfer), time.Since(t1))
		case opCheck:
			if err := cl.o.ServerFault(o.fault); err != nil {
				return &lostError{fault: o.fault, err: err}
			}
		}
	}
	return nil
}

func spanTag(t tag, k spanKind) tag {
	t.kind = k
	return t
}

// lostError is a fault hook's error for one server.
type lostError struct {
	fault Fault
	err   error
}

func (e *lostError) Error() string {
	kind := "forward"
	if e.fault.Backward {
		kind = "backward"
	}
	return fmt.Sprintf("train: step %d, layer %d %s: attention server of rank %d: %v", e.fault.Step, e.fault.Layer, kind, e.fault.Rank, e.err)
}

func (e *lostError) Unwrap() error { return e.err }
