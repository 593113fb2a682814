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
}

func newRootCmd() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:           "coreattn",
		Short:         "Portable, disaggregated core attention on any WebGPU adapter",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "show wgpu and driver log output")
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
