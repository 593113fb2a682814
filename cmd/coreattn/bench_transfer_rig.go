package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/coreattn/coreattn/wgpu"
)

// transferCell is one measurement: a size, a direction and an upload
// method.
type transferCell struct {
	size   uint64
	dir    string
	method wgpu.UploadMethod
}

// transferRig is one adapter's device, its buffers and engines.
type transferRig struct {
	info    wgpu.AdapterInfo
	dev     *wgpu.Device
	sizes   []uint64
	skipped []uint64 // asked for, beyond the buffer limit
	engines map[wgpu.UploadMethod]*wgpu.Transfer
	up      *wgpu.Buffer // upload target
	down    *wgpu.Buffer // download source, holding want
	src     []byte       // what uploads send
	want    []byte       // what down holds
	dst     []byte       // where downloads land
	back    []byte       // for reading uploads back
}

func newTransferRig(g *globalFlags, a wgpu.AdapterInfo, p *transferPlan) (*transferRig, error) {
	dev, err := openAdapter(g, "bench transfer", a.Index)
	if err != nil {
		return nil, err
	}
	r := &transferRig{info: dev.Info(), dev: dev, engines: map[wgpu.UploadMethod]*wgpu.Transfer{}}
	sizes := p.sizes
	if sizes == nil {
		sizes = []uint64{1 << 20, 4 << 20, 16 << 20, 64 << 20, 256 << 20, 1 << 30}
		if r.info.IsCPU() {
			sizes = sizes[:4]
		}
	}
	for _, s := range sizes {
		if s > dev.MaxBufferBytes() {
			r.skipped = append(r.skipped, s)
			continue
		}
		r.sizes = append(r.sizes, s)
	}
	if len(r.sizes) == 0 {
		dev.Close()
		return nil, fmt.Errorf("bench transfer: %s: every size exceeds the adapter's buffer limit of %s", r.info, byteSize(dev.MaxBufferBytes()))
	}
	for _, m := range p.methods {
		opts := p.opts
		opts.Upload = m
		if r.engines[m], err = dev.NewTransfer(opts); err != nil {
			r.close()
			return nil, fmt.Errorf("bench transfer: %s: %w", r.info, err)
		}
	}
	if _, ok := r.engines[wgpu.UploadStaged]; !ok {
		if r.engines[wgpu.UploadStaged], err = dev.NewTransfer(p.opts); err != nil {
			r.close()
			return nil, fmt.Errorf("bench transfer: %s: %w", r.info, err)
		}
	}
	largest := slices.Max(r.sizes)
	if r.up, err = dev.NewBuffer("bench upload", largest); err == nil {
		r.down, err = dev.NewBuffer("bench download", largest)
	}
	if err != nil {
		r.close()
		return nil, fmt.Errorf("bench transfer: %w", err)
	}
	// Host memory touched before timing, with bytes no page-sharing can fake.
	r.src, r.want = patterned(largest, 1), patterned(largest, 2)
	r.dst, r.back = make([]byte, largest), make([]byte, largest)
	if err := r.engines[wgpu.UploadStaged].Upload(context.Background(), r.down, 0, r.want); err != nil {
		r.close()
		return nil, fmt.Errorf("bench transfer: %w", err)
	}
	return r, nil
}

// patterned fills n bytes from a cheap generator (xorshift).
func patterned(n uint64, seed uint64) []byte {
	b := make([]byte, n)
	x := seed*0x9e3779b97f4a7c15 + 1
	for i := 0; i+8 <= len(b); i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(b[i:], x)
	}
	return b
}

func (r *transferRig) close() {
	for _, e := range r.engines {
		e.Close()
	}
	r.up.Release()
	r.down.Release()
	r.dev.Close()
}

// cells lists this adapter's measurements.
func (r *transferRig) cells(p *transferPlan) []transferCell { return cellsFor(r.sizes, p) }

// cellsFor lists the measurements of sizes: downloads and "both" once
// (with the staged method), uploads once per method.
func cellsFor(sizes []uint64, p *transferPlan) []transferCell {
	var out []transferCell
	for _, s := range sizes {
		for _, d := range p.dirs {
			if d != dirUp {
				out = append(out, transferCell{s, d, wgpu.UploadStaged})
				continue
			}
			for _, m := range p.methods {
				out = append(out, transferCell{s, d, m})
			}
		}
	}
	return out
}

// repsFor is the number of timed transfers of a cell of size bytes.
func (p *transferPlan) repsFor(size uint64) int {
	if p.reps > 0 {
		return p.reps
	}
	return int(max(3, min(64, (256<<20+size-1)/size)))
}

// measure runs one cell and reports it; a failure is reported in the
// result's Error.
func (r *transferRig) measure(ctx context.Context, c transferCell, p *transferPlan, mode string, adapters int) *transferResult {
	e := r.engines[c.method]
	opts := e.Options()
	res := &transferResult{
		Impl: "coreattn-wgpu", Adapter: r.info.Name, Index: r.info.Index, Mode: mode, Adapters: adapters,
		Direction: c.dir, Method: c.method.String(), Bytes: c.size, Reps: p.repsFor(c.size),
		ChunkBytes: opts.ChunkBytes, Depth: opts.Depth, Copiers: opts.Copiers,
	}
	n := c.size
	de := r.engines[wgpu.UploadStaged] // downloads are staged whatever the upload method
	up := func() error { return e.Upload(ctx, r.up, 0, r.src[:n]) }
	down := func() error { return de.Download(ctx, r.dst[:n], r.down, 0) }
	run := func(f func() error, reps int, sync bool) (time.Duration, error) {
		start := time.Now()
		for range reps {
			if err := f(); err != nil {
				return 0, err
			}
		}
		if sync {
			if err := e.Sync(ctx); err != nil {
				return 0, err
			}
		}
		return time.Since(start), nil
	}
	fail := func(err error) *transferResult {
		res.Error = err.Error()
		return res
	}
	stats := func() wgpu.TransferStats {
		st := e.Stats()
		if de != e {
			d := de.Stats()
			st.HostCopy, st.Submit, st.Wait = st.HostCopy+d.HostCopy, st.Submit+d.Submit, st.Wait+d.Wait
		}
		return st
	}
	// Untimed: fills the staging rings and warms the link.
	if c.dir != dirDown {
		if _, err := run(up, 1, true); err != nil {
			return fail(err)
		}
	}
	if c.dir != dirUp {
		if _, err := run(down, 1, false); err != nil {
			return fail(err)
		}
	}
	before := stats()
	var wall time.Duration
	switch c.dir {
	case dirUp:
		d, err := run(up, res.Reps, true)
		if err != nil {
			return fail(err)
		}
		wall = d
		res.GBPerS = gbps(n*uint64(res.Reps), d)
	case dirDown:
		d, err := run(down, res.Reps, false)
		if err != nil {
			return fail(err)
		}
		wall = d
		res.GBPerS = gbps(n*uint64(res.Reps), d)
	case dirBoth:
		var du, dd time.Duration
		var eu, ed error
		start := time.Now()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			du, eu = run(up, res.Reps, true)
		}()
		dd, ed = run(down, res.Reps, false)
		wg.Wait()
		wall = time.Since(start)
		if eu != nil {
			return fail(eu)
		}
		if ed != nil {
			return fail(ed)
		}
		res.UpGBPerS, res.DownGBPerS = gbps(n*uint64(res.Reps), du), gbps(n*uint64(res.Reps), dd)
		res.GBPerS = gbps(2*n*uint64(res.Reps), wall)
	}
	after := stats()
	per := float64(res.Reps)
	res.MS = ms(wall) / per
	res.HostCopyMS = ms(after.HostCopy-before.HostCopy) / per
	res.SubmitMS = ms(after.Submit-before.Submit) / per
	res.WaitMS = ms(after.Wait-before.Wait) / per
	if err := r.verify(ctx, c); err != nil {
		return fail(err)
	}
	res.Verified = true
	return res
}

// verify reads back what the cell moved and compares it.
func (r *transferRig) verify(ctx context.Context, c transferCell) error {
	n := c.size
	if c.dir != dirUp && !bytes.Equal(r.dst[:n], r.want[:n]) {
		return fmt.Errorf("downloaded bytes differ from the buffer's")
	}
	if c.dir != dirDown {
		if err := r.engines[wgpu.UploadStaged].Download(ctx, r.back[:n], r.up, 0); err != nil {
			return err
		}
		if !bytes.Equal(r.back[:n], r.src[:n]) {
			return fmt.Errorf("uploaded bytes read back differ")
		}
	}
	return nil
}

// gbps is bytes over d in GB/s (1e9 bytes per second).
func gbps(bytes uint64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / d.Seconds() / 1e9
}

// transferPrinter prints results as JSON lines at once, or as a table at
// the end.
type transferPrinter struct {
	out    io.Writer
	json   bool
	rows   []*transferResult
	failed int
}

func newTransferPrinter(out io.Writer, asJSON bool) *transferPrinter {
	return &transferPrinter{out: out, json: asJSON}
}

func (p *transferPrinter) add(r *transferResult) {
	if r.Error != "" {
		p.failed++
	}
	if p.json {
		line, _ := json.Marshal(r)
		fmt.Fprintln(p.out, string(line))
		return
	}
	p.rows = append(p.rows, r)
}

// flush prints the table, and fails if a cell did.
func (p *transferPrinter) flush() error {
	if !p.json {
		p.table()
	}
	if p.failed > 0 {
		return fmt.Errorf("bench transfer: %d cells failed (see their error)", p.failed)
	}
	return nil
}

func (p *transferPrinter) table() {
	tw := tabwriter.NewWriter(p.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ADAPTER\tMODE\tSIZE\tDIRECTION\tMETHOD\tGB/s\tUP GB/s\tDOWN GB/s\tMS\tHOST COPY\tSUBMIT\tWAIT\tCHECK")
	for _, r := range p.rows {
		check := "ok"
		switch {
		case r.Error != "":
			check = "error: " + r.Error
		case r.Skipped != "":
			fmt.Fprintf(tw, "[%d] %s\t\t%s\tskipped: %s\n", r.Index, r.Adapter, byteSize(r.Bytes), r.Skipped)
			continue
		}
		upDown := "\t"
		if r.Direction == dirBoth {
			upDown = fmt.Sprintf("%.2f\t%.2f", r.UpGBPerS, r.DownGBPerS)
		}
		fmt.Fprintf(tw, "[%d] %s\t%s\t%s\t%s\t%s\t%.2f\t%s\t%.3f\t%.3f\t%.3f\t%.3f\t%s\n",
			r.Index, r.Adapter, r.Mode, byteSize(r.Bytes), r.Direction, r.Method, r.GBPerS, upDown, r.MS, r.HostCopyMS, r.SubmitMS, r.WaitMS, check)
	}
	tw.Flush()
}
