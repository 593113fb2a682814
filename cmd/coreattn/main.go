// Command coreattn runs portable, disaggregated core attention on any WebGPU adapter.
//
// Usage:
//
//	coreattn devices                 list adapters
//	coreattn attention ...           run varlen attention on .npy inputs
//	coreattn bench [--json]          measure throughput
//	coreattn demo                    the README's main job
//	coreattn simulate ...            CAD scheduling at cluster scale
//	coreattn train ...               train the byte-level model
//	coreattn sample ...              continue a prompt with a checkpoint
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/coreattn/coreattn/wgpu"
)

func main() {
	root := newRootCmd()
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "coreattn:", err)
		os.Exit(1)
	}
}

// globalFlags are the flags every subcommand understands.
type globalFlags struct {
	verbose bool
	runtime string // --runtime: "" (COREATTN_RUNTIME, else auto), auto, dawn, go-webgpu
}

// options are the wgpu options the global flags ask for.
func (g *globalFlags) options() wgpu.Options {
	return wgpu.Options{Runtime: wgpu.Runtime(g.runtime), Verbose: g.verbose}
}

func newRootCmd() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:           "coreattn",
		Short:         "Portable, disaggregated core attention on any WebGPU adapter",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			if g.runtime == "" {
				return nil
			}
			if _, err := wgpu.ParseRuntime(g.runtime); err != nil {
				return flagError("runtime", fmt.Sprintf("%q", g.runtime), "want auto, dawn or go-webgpu")
			}
			return nil
		},
	}
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "show wgpu and driver log output")
	root.PersistentFlags().StringVar(&g.runtime, "runtime", "", "WebGPU runtime: auto (Dawn where installed and it offers the adapter f16, subgroups or subgroup matrices, else go-webgpu), dawn or go-webgpu; default $"+wgpu.EnvRuntime+", else auto")
	root.AddCommand(
		// Each subcommand lives in its own file as newXxxCmd(g).
		newDevicesCmd(g),
		newAttentionCmd(g),
		newDemoCmd(g),
		newBenchCmd(g),
		newProfileCmd(g),
		newSimulateCmd(g),
		newTrainCmd(g), newSampleCmd(g),
	)
	return root
}
