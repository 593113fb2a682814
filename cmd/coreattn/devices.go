package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/coreattn/coreattn/wgpu"
)

type devicesFlags struct {
	gl   bool
	json bool
}

// deviceRow is one adapter under one runtime as `coreattn devices --json`
// prints it.
type deviceRow struct {
	Index                       int       `json:"index"`
	Runtime                     string    `json:"runtime"`
	Default                     bool      `json:"default"` // the runtime --runtime auto uses for the adapter
	Name                        string    `json:"name"`
	Vendor                      string    `json:"vendor"`
	Backend                     string    `json:"backend"`
	Type                        string    `json:"type"`
	Driver                      string    `json:"driver"`
	MaxStorageBufferBindingSize uint64    `json:"max_storage_buffer_binding_size"`
	MaxBufferSize               uint64    `json:"max_buffer_size"`
	MaxWorkgroupStorageSize     uint32    `json:"max_workgroup_storage_size"`
	MaxInvocationsPerWorkgroup  uint32    `json:"max_invocations_per_workgroup"`
	MaxWorkgroupsPerDimension   uint32    `json:"max_workgroups_per_dimension"`
	Timestamps                  bool      `json:"timestamps"`
	TimestampPeriodNs           float64   `json:"timestamp_period_ns"` // 0: unknown
	F16                         bool      `json:"f16"`
	Subgroups                   bool      `json:"subgroups"`
	SubgroupMinSize             uint32    `json:"subgroup_min_size"`
	SubgroupMaxSize             uint32    `json:"subgroup_max_size"`
	SubgroupMatrices            []matConf `json:"subgroup_matrices"`
}

// matConf is one subgroup-matrix configuration in --json.
type matConf struct {
	M         int    `json:"m"`
	N         int    `json:"n"`
	K         int    `json:"k"`
	Component string `json:"component"`
	Result    string `json:"result"`
}

func newDevicesCmd(g *globalFlags) *cobra.Command {
	f := &devicesFlags{}
	cmd := &cobra.Command{
		Use:   "devices",
		Short: "List the WebGPU adapters, best first, with their runtime, features and key limits",
		Long: `Lists every usable adapter (Vulkan, Metal, D3D12; OpenGL with --gl), best
first: a discrete GPU, then an integrated GPU, then a software adapter such as
lavapipe, once per WebGPU runtime that sees it: go-webgpu (built in) and Dawn
(where scripts/dawn.sh installed it). The columns F16, SUBGROUPS and SUBGROUP
MATRICES are the WGSL features each runtime offers there; '*' marks the runtime
that --runtime auto uses. The index is what --adapter takes in the other
commands, for the runtime --runtime names (auto: the starred rows, in order).
With --runtime dawn or go-webgpu only that runtime's adapters are listed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDevices(g, f, cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&f.gl, "gl", false, "include OpenGL adapters")
	cmd.Flags().BoolVar(&f.json, "json", false, "print one JSON object per adapter and runtime, one per line")
	return cmd
}

// listDevices is what `coreattn devices` lists: every runtime's adapters
// for RuntimeAuto, else the named runtime's; note says why Dawn lists none
// where it is not installed or sees no adapter ("" otherwise).
func listDevices(opts wgpu.Options) (list []wgpu.AdapterInfo, note string, err error) {
	rt, err := wgpu.RuntimeOf(opts)
	if err != nil {
		return nil, "", err
	}
	if rt == wgpu.RuntimeAuto {
		list, dawnErr, err := wgpu.AllAdapters(opts)
		if dawnErr != nil {
			note = "dawn: " + dawnErr.Error()
		}
		return list, note, err
	}
	list, err = wgpu.Adapters(opts)
	for i := range list {
		list[i].Chosen = true
	}
	return list, "", err
}

func runDevices(g *globalFlags, f *devicesFlags, out io.Writer) error {
	opts := g.options()
	opts.IncludeGL = f.gl
	list, note, err := listDevices(opts)
	if err != nil {
		return fmt.Errorf("devices: %w", err)
	}
	if f.json {
		enc := json.NewEncoder(out)
		for _, a := range list {
			if err := enc.Encode(newDeviceRow(a)); err != nil {
				return fmt.Errorf("devices: %w", err)
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "INDEX\tRUNTIME\tNAME\tBACKEND\tTYPE\tDRIVER\tSTORAGE BINDING\tWG STORAGE\tINVOCATIONS\tF16\tSUBGROUPS\tSUBGROUP MATRICES\tTIMESTAMPS")
	for _, a := range list {
		r := newDeviceRow(a)
		rt := r.Runtime
		if r.Default {
			rt += " *"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n",
			r.Index, rt, r.Name, r.Backend, r.Type, orDash(r.Driver),
			byteSize(r.MaxStorageBufferBindingSize), byteSize(uint64(r.MaxWorkgroupStorageSize)),
			r.MaxInvocationsPerWorkgroup, yesNo(r.F16), subgroupSizes(a), matrixList(a.MatrixConfigs), timestamps(a))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if note != "" {
		fmt.Fprintln(out, note)
	}
	return nil
}

func newDeviceRow(a wgpu.AdapterInfo) deviceRow {
	r := deviceRow{
		Index:                       a.Index,
		Runtime:                     string(a.Runtime),
		Default:                     a.Chosen,
		Name:                        a.Name,
		Vendor:                      a.Vendor,
		Backend:                     a.Backend,
		Type:                        a.Type,
		Driver:                      a.Driver,
		MaxStorageBufferBindingSize: a.Limits.MaxStorageBufferBindingSize,
		MaxBufferSize:               a.Limits.MaxBufferSize,
		MaxWorkgroupStorageSize:     a.Limits.MaxWorkgroupStorageSize,
		MaxInvocationsPerWorkgroup:  a.Limits.MaxInvocationsPerWorkgroup,
		MaxWorkgroupsPerDimension:   a.Limits.MaxWorkgroupsPerDimension,
		Timestamps:                  a.Timestamps,
		TimestampPeriodNs:           a.TimestampPeriod,
		F16:                         a.F16,
		Subgroups:                   a.Subgroups,
		SubgroupMinSize:             a.SubgroupMinSize,
		SubgroupMaxSize:             a.SubgroupMaxSize,
		SubgroupMatrices:            []matConf{},
	}
	for _, c := range a.MatrixConfigs {
		r.SubgroupMatrices = append(r.SubgroupMatrices, matConf(c))
	}
	return r
}

// subgroupSizes formats the subgroup sizes: "32", "8..64", or "-".
func subgroupSizes(a wgpu.AdapterInfo) string {
	switch {
	case !a.Subgroups:
		return "-"
	case a.SubgroupMinSize == a.SubgroupMaxSize:
		return fmt.Sprint(a.SubgroupMinSize)
	}
	return fmt.Sprintf("%d..%d", a.SubgroupMinSize, a.SubgroupMaxSize)
}

// matrixList formats subgroup-matrix configurations by type:
// "f16->f32 16x16x16 16x8x16; i8->i32 16x16x32", or "-".
func matrixList(cs []wgpu.MatrixConfig) string {
	if len(cs) == 0 {
		return "-"
	}
	byType := map[string][]string{}
	var types []string
	for _, c := range cs {
		t := c.Component + "->" + c.Result
		if byType[t] == nil {
			types = append(types, t)
		}
		byType[t] = append(byType[t], fmt.Sprintf("%dx%dx%d", c.M, c.N, c.K))
	}
	sort.SliceStable(types, func(i, j int) bool { return types[i] == "f16->f32" && types[j] != "f16->f32" })
	parts := make([]string, len(types))
	for i, t := range types {
		parts[i] = t + " " + strings.Join(byType[t], " ")
	}
	return strings.Join(parts, "; ")
}

// timestamps formats timestamp support with its period: "yes, 1 ns",
// "yes, period unknown", "no".
func timestamps(a wgpu.AdapterInfo) string {
	switch {
	case !a.Timestamps:
		return "no"
	case a.TimestampPeriod == 0:
		return "yes, period unknown"
	}
	return fmt.Sprintf("yes, %g ns", a.TimestampPeriod)
}

// byteSize formats a byte count with a binary unit: 128 MiB, 32 KiB, 2 GiB.
func byteSize(b uint64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	x := float64(b)
	i := 0
	for x >= 1024 && i < len(units)-1 {
		x /= 1024
		i++
	}
	if x == float64(int64(x)) {
		return fmt.Sprintf("%d %s", int64(x), units[i])
	}
	return fmt.Sprintf("%.1f %s", x, units[i])
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
