package wgpu

import "sync"

// minCopyPart is the smallest piece of a host copy handed to another
// goroutine: below it, waking a helper costs more than it saves.
const minCopyPart = 1 << 20

// copier splits large host copies over n goroutines (the caller and n-1
// helpers, started on first need). One core's memmove moves 5-15 GB/s;
// a PCIe 5 link takes 50.
type copier struct {
	n     int
	once  sync.Once
	tasks chan copyTask
}

type copyTask struct {
	dst, src []byte
	wg       *sync.WaitGroup
}

// copy copies src into dst (of the same length), using wg, which is the
// caller's alone, to wait for the helpers.
func (c *copier) copy(wg *sync.WaitGroup, dst, src []byte) {
	n := len(src)
	parts := min(c.n, n/minCopyPart)
	if parts <= 1 {
		copy(dst, src)
		return
	}
	c.once.Do(c.start)
	per := (n/parts + 4095) &^ 4095 // page-aligned pieces
	for at := per; at < n; at += per {
		end := min(at+per, n)
		wg.Add(1)
		c.tasks <- copyTask{dst: dst[at:end], src: src[at:end], wg: wg}
	}
	copy(dst[:per], src[:per])
	wg.Wait()
}

func (c *copier) start() {
	c.tasks = make(chan copyTask, c.n)
	for range c.n - 1 {
		go func() {
			for t := range c.tasks {
				copy(t.dst, t.src)
				t.wg.Done()
			}
		}()
	}
}

// stop ends the helpers. No copy may run or follow.
func (c *copier) stop() {
	c.once.Do(func() {})
	if c.tasks != nil {
		close(c.tasks)
	}
}
