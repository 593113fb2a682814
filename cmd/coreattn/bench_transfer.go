package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/coreattn/coreattn/wgpu"
)

// transferResult is one line of `coreattn bench transfer --json`. Its impl,
// direction and gb_per_s keys match scripts/memcpy_anchor.py's.
type transferResult struct {
	Impl      string  `json:"impl"` // coreattn-wgpu
	Adapter   string  `json:"adapter"`
	Index     int     `json:"index"`
	Mode      string  `json:"mode"`     // alone, or together (all adapters at once)
	Adapters  int     `json:"adapters"` // adapters running this cell at the same time
	Direction string  `json:"direction"`
	Method    string  `json:"method"` // the upload method; downloads are always staged
	Bytes     uint64  `json:"bytes"`
	Reps      int     `json:"reps"`
	MS        float64 `json:"ms"`       // per transfer (both: per pair)
	GBPerS    float64 `json:"gb_per_s"` // both: the two directions' bytes over the wall time
	// UpGBPerS and DownGBPerS are the two directions of a "both" cell, each
	// over its own time.
	UpGBPerS   float64 `json:"up_gb_per_s,omitempty"`
	DownGBPerS float64 `json:"down_gb_per_s,omitempty"`
	// HostCopyMS, SubmitMS and WaitMS split a transfer's time (per transfer,
	// summed over concurrent goroutines): copying between Go memory and
	// staging, encoding/submitting/mapping under the device lock, waiting
	// for device copies.
	HostCopyMS float64 `json:"host_copy_ms"`
	SubmitMS   float64 `json:"submit_ms"`
	WaitMS     float64 `json:"wait_ms"`
	ChunkBytes uint64  `json:"chunk_bytes"`
	Depth      int     `json:"depth"`
	Copiers    int     `json:"copiers"`
	Verified   bool    `json:"verified"` // the bytes moved were read back and compared
	Error      string  `json:"error,omitempty"`
	Skipped    string  `json:"skipped,omitempty"` // why a size was not measured
}

const (
	dirUp   = "host-to-device"
	dirDown = "device-to-host"
	dirBoth = "both"
)

type benchTransferFlags struct {
	adapters string
	json     bool
	sizes    string
	reps     int
	methods  string
	dirs     string
	modes    string
	chunkMiB int
	depth    int
	copiers  int
}

func newBenchTransferCmd(g *globalFlags) *cobra.Command {
	f := &benchTransferFlags{}
	cmd := &cobra.Command{
		Use:   "transfer",
		Short: "Measure host<->device copy throughput (GB/s) per adapter, alone and all at once",
		Long: `Measures the transfer path (wgpu.Transfer: reused staging buffers, several
chunks in flight) in GB/s (1e9 bytes/s) for each adapter: host to device
(uploads, then a sync, so every byte has arrived), device to host, and both
at once (an upload and a download running together on one adapter). Each
cell runs once untimed, then --reps times back to back; its bytes are read
back and compared. Mode "alone" measures one adapter after another; mode
"together" starts one goroutine per adapter on the same cell at the same
instant, as attention servers on one host would move data.

Per transfer, the time is split into host copy (Go memory <-> staging),
submit (encoding, submitting, mapping, with the device lock's wait) and wait
(for device copies); with several copier goroutines they overlap, so they
may sum past the wall time.

Defaults: the GPU adapters (the CPU ones where there is no GPU); sizes 1 MiB
to 1 GiB, 64 MiB at most on a CPU adapter; sizes beyond an adapter's buffer
limit are skipped. The PCIe ceiling on the same machine: scripts/memcpy_anchor.py
(docs/transfer.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchTransfer(contextOf(cmd.Context()), g, f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.adapters, "adapter", "", "adapter indices, comma-separated (see 'coreattn devices'; one given twice opens two devices on it); default: every GPU adapter")
	fl.BoolVar(&f.json, "json", false, "print one JSON object per line")
	fl.StringVar(&f.sizes, "sizes", "", "transfer sizes, comma-separated, with a unit (KiB, MiB, GiB), e.g. 1MiB,256MiB")
	fl.IntVar(&f.reps, "reps", 0, "timed transfers per cell (0: enough for 256 MiB, at least 3)")
	fl.StringVar(&f.methods, "method", "staged", "upload methods, comma-separated: staged, queue-write, mapped-at-creation, or all")
	fl.StringVar(&f.dirs, "direction", "up,down,both", "directions, comma-separated: up, down, both")
	fl.StringVar(&f.modes, "mode", "alone,together", "alone, together (all adapters at once), or both comma-separated")
	fl.IntVar(&f.chunkMiB, "chunk", 0, "staging chunk in MiB (0: the engine's default, 16)")
	fl.IntVar(&f.depth, "depth", 0, "staging buffers per direction (0: the default, 4)")
	fl.IntVar(&f.copiers, "copiers", 0, "goroutines per host copy (0: the default for the adapter)")
	return cmd
}

// parseByteSizes reads a comma-separated list of sizes such as 1MiB,64KiB.
func parseByteSizes(s string) ([]uint64, error) {
	units := []struct {
		suffix string
		scale  uint64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	var out []uint64
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		ok := false
		for _, u := range units {
			if num, found := strings.CutSuffix(part, u.suffix); found {
				v, err := strconv.ParseUint(strings.TrimSpace(num), 10, 64)
				if err == nil && v > 0 {
					out, ok = append(out, v*u.scale), true
				}
				break
			}
		}
		if !ok {
			return nil, fmt.Errorf("bench transfer: --sizes %q: want positive sizes with a unit (B, KiB, MiB, GiB), comma-separated, e.g. 1MiB,256MiB", s)
		}
	}
	return out, nil
}

// Bounds of the flags: a cell moves at most maxTransferReps transfers of at
// most maxTransferBytes (the host holds four buffers of the largest size).
const (
	maxTransferReps  = 10000
	maxTransferBytes = 4 << 30
)

// transferPlan is what one run measures.
type transferPlan struct {
	sizes   []uint64 // nil: the defaults per adapter
	methods []wgpu.UploadMethod
	dirs    []string
	alone   bool
	tgther  bool
	opts    wgpu.TransferOptions
	reps    int
}

func (f *benchTransferFlags) plan() (*transferPlan, error) {
	p := &transferPlan{reps: f.reps}
	var err error
	if f.sizes != "" {
		if p.sizes, err = parseByteSizes(f.sizes); err != nil {
			return nil, err
		}
		if s := slices.Max(p.sizes); s > maxTransferBytes {
			return nil, fmt.Errorf("bench transfer: --sizes %q: %s is over the largest size measured, %s", f.sizes, byteSize(s), byteSize(maxTransferBytes))
		}
		for _, s := range p.sizes {
			if s%4 != 0 {
				return nil, fmt.Errorf("bench transfer: --sizes %q: %d bytes is not a multiple of 4 (uploads move whole words)", f.sizes, s)
			}
		}
	}
	if f.methods == "all" {
		p.methods = []wgpu.UploadMethod{wgpu.UploadStaged, wgpu.UploadQueueWrite, wgpu.UploadMappedAtCreation}
	} else {
		for _, name := range strings.Split(f.methods, ",") {
			m, err := wgpu.ParseUploadMethod(strings.TrimSpace(name))
			if err != nil {
				return nil, fmt.Errorf("bench transfer: --method %q: want staged, queue-write, mapped-at-creation or all", f.methods)
			}
			p.methods = append(p.methods, m)
		}
	}
	for _, d := range strings.Split(f.dirs, ",") {
		switch strings.TrimSpace(d) {
		case "up":
			p.dirs = append(p.dirs, dirUp)
		case "down":
			p.dirs = append(p.dirs, dirDown)
		case "both":
			p.dirs = append(p.dirs, dirBoth)
		default:
			return nil, fmt.Errorf("bench transfer: --direction %q: want up, down, both, comma-separated", f.dirs)
		}
	}
	for _, m := range strings.Split(f.modes, ",") {
		switch strings.TrimSpace(m) {
		case "alone":
			p.alone = true
		case "together":
			p.tgther = true
		default:
			return nil, fmt.Errorf("bench transfer: --mode %q: want alone, together, or both comma-separated", f.modes)
		}
	}
	switch {
	case f.reps < 0 || f.reps > maxTransferReps:
		return nil, flagError("reps", f.reps, "want 0 (automatic) to %d", maxTransferReps)
	case f.chunkMiB < 0 || f.chunkMiB > 1024:
		return nil, flagError("chunk", f.chunkMiB, "want 0 (the default) to 1024 MiB")
	case f.depth < 0 || f.depth > 16:
		return nil, flagError("depth", f.depth, "want 0 (the default) to 16")
	case f.copiers < 0 || f.copiers > 64:
		return nil, flagError("copiers", f.copiers, "want 0 (the default) to 64")
	}
	p.opts = wgpu.TransferOptions{ChunkBytes: uint64(f.chunkMiB) << 20, Depth: f.depth, Copiers: f.copiers}
	return p, nil
}

// transferAdapters picks the adapters to measure: those asked for, else
// every GPU adapter, else every adapter.
func transferAdapters(list []wgpu.AdapterInfo, spec string) ([]wgpu.AdapterInfo, error) {
	if spec == "" {
		var gpus []wgpu.AdapterInfo
		for _, a := range list {
			if !a.IsCPU() {
				gpus = append(gpus, a)
			}
		}
		if len(gpus) == 0 {
			return list, nil
		}
		return gpus, nil
	}
	var out []wgpu.AdapterInfo
	for _, part := range strings.Split(spec, ",") {
		i, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || i < 0 || i >= len(list) {
			return nil, fmt.Errorf("bench transfer: --adapter %q: want indices in [0, %d), comma-separated (see 'coreattn devices')", spec, len(list))
		}
		out = append(out, list[i]) // twice: two devices on one adapter, as logical ranks
	}
	return out, nil
}

func runBenchTransfer(ctx context.Context, g *globalFlags, f *benchTransferFlags, out, progress io.Writer) error {
	if !isTerminal(progress) {
		progress = io.Discard
	}
	p, err := f.plan()
	if err != nil {
		return err
	}
	list, err := wgpu.Adapters(g.options())
	if err != nil {
		return fmt.Errorf("bench transfer: %w", err)
	}
	chosen, err := transferAdapters(list, f.adapters)
	if err != nil {
		return err
	}
	var rigs []*transferRig
	defer func() {
		for _, r := range rigs {
			r.close()
		}
	}()
	for _, a := range chosen {
		r, err := newTransferRig(g, a, p)
		if err != nil {
			return err
		}
		rigs = append(rigs, r)
	}
	emit := newTransferPrinter(out, f.json)
	for _, r := range rigs {
		for _, size := range r.skipped {
			emit.add(&transferResult{Impl: "coreattn-wgpu", Adapter: r.info.Name, Index: r.info.Index, Bytes: size,
				Skipped: fmt.Sprintf("beyond the adapter's buffer limit of %s", byteSize(r.dev.MaxBufferBytes()))})
		}
	}
	if p.alone {
		for _, r := range rigs {
			for _, c := range r.cells(p) {
				fmt.Fprintf(progress, "\r%s: %s %s %s   ", r.info.Name, byteSize(c.size), c.dir, c.method)
				res := r.measure(ctx, c, p, "alone", 1)
				emit.add(res)
				if err := ctx.Err(); err != nil {
					return err
				}
			}
		}
	}
	if p.tgther && len(rigs) > 1 {
		// Every adapter runs the same cell at the same instant; an adapter
		// that cannot take a size sits that cell out.
		var sizes []uint64
		for _, r := range rigs {
			sizes = append(sizes, r.sizes...)
		}
		slices.Sort(sizes)
		for _, c := range cellsFor(slices.Compact(sizes), p) {
			fmt.Fprintf(progress, "\rtogether: %s %s %s   ", byteSize(c.size), c.dir, c.method)
			var in []*transferRig
			for _, r := range rigs {
				if slices.Contains(r.sizes, c.size) {
					in = append(in, r)
				}
			}
			results := make([]*transferResult, len(in))
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i, r := range in {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					results[i] = r.measure(ctx, c, p, "together", len(in))
				}()
			}
			close(start)
			wg.Wait()
			for _, res := range results {
				emit.add(res)
			}
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
	fmt.Fprint(progress, "\r\033[K")
	return emit.flush()
}
