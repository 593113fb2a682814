package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/coreattn/coreattn/wgpu"
)

type devicesFlags struct {
	gl   bool
	json bool
}

// deviceRow is one adapter as `coreattn devices --json` prints it.
type deviceRow struct {
	Index                       int    `json:"index"`
	Name                        string `json:"name"`
	Vendor                      string `json:"vendor"`
	Backend                     string `json:"backend"`
	Type                        string `json:"type"`
	Driver                      string `json:"driver"`
	MaxStorageBufferBindingSize uint64 `json:"max_storage_buffer_binding_size"`
	MaxBufferSize               uint64 `json:"max_buffer_size"`
	MaxWorkgroupStorageSize     uint32 `json:"max_workgroup_storage_size"`
	MaxInvocationsPerWorkgroup  uint32 `json:"max_invocations_per_workgroup"`
	MaxWorkgroupsPerDimension   uint32 `json:"max_workgroups_per_dimension"`
	Timestamps                  bool   `json:"timestamps"`
}

func newDevicesCmd(g *globalFlags) *cobra.Command {
	f := &devicesFlags{}
	cmd := &cobra.Command{
		Use:   "devices",
		Short: "List the WebGPU adapters, best first, with their key limits",
		Long: `Lists every usable adapter (Vulkan, Metal, D3D12; OpenGL with --gl), best
first: a discrete GPU, then an integrated GPU, then a software adapter such as
lavapipe. The index is what --adapter takes in the other commands.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDevices(g, f, cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&f.gl, "gl", false, "include OpenGL adapters")
	cmd.Flags().BoolVar(&f.json, "json", false, "print one JSON object per adapter and line")
	return cmd
}

func runDevices(g *globalFlags, f *devicesFlags, out io.Writer) error {
	list, err := wgpu.Adapters(wgpu.Options{IncludeGL: f.gl, Verbose: g.verbose})
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
	fmt.Fprintln(tw, "INDEX\tNAME\tBACKEND\tTYPE\tDRIVER\tSTORAGE BINDING\tWG STORAGE\tINVOCATIONS\tTIMESTAMPS")
	for _, a := range list {
		r := newDeviceRow(a)
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n",
			r.Index, r.Name, r.Backend, r.Type, orDash(r.Driver),
			byteSize(r.MaxStorageBufferBindingSize), byteSize(uint64(r.MaxWorkgroupStorageSize)),
			r.MaxInvocationsPerWorkgroup, yesNo(r.Timestamps))
	}
	return tw.Flush()
}

func newDeviceRow(a wgpu.AdapterInfo) deviceRow {
	return deviceRow{
		Index:                       a.Index,
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
	}
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
