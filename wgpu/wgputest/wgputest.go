// Package wgputest runs a package's GPU tests over every WebGPU runtime
// the machine has: go-webgpu in the test process, then Dawn in a child
// process where Dawn is installed and sees an adapter, directly or through
// the Mesa 25 lavapipe that `scripts/dawn.sh --lavapipe` puts in its cache
// (Dawn refuses Debian 12's Mesa 22.3; the Vulkan loader reads the driver
// list once per process, hence the child).
//
// A package opts in with
//
//	func TestMain(m *testing.M) { wgputest.Main(m, "TestA|TestB") }
//
// and opens its devices with wgpu.Options{} (whose runtime comes from
// $COREATTN_RUNTIME, which Main sets). Setting COREATTN_RUNTIME yourself
// runs the tests once, in the process, on that runtime: that is how to run
// them under another loader (see docs/tensorcores.md for Debian sid's
// lavapipe, which has subgroup matrices).
package wgputest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coreattn/coreattn/wgpu"
	"github.com/coreattn/coreattn/wgpu/internal/dawn"
)

// Main runs m's tests on go-webgpu, then, where Dawn can run them, the
// tests that match dawnRun (a -test.run pattern; empty: all of them, and
// the caller's own -test.run wins) in a child process over Dawn, and exits
// with the first failure's code. Without Dawn it says on stdout why the
// Dawn run is skipped.
func Main(m *testing.M, dawnRun string) {
	os.Exit(run(m, dawnRun))
}

func run(m *testing.M, dawnRun string) int {
	if os.Getenv(wgpu.EnvRuntime) != "" {
		return m.Run() // chosen by the caller (or this is the child)
	}
	os.Setenv(wgpu.EnvRuntime, string(wgpu.RuntimeGoWebGPU))
	code := m.Run()
	args, ok := childArgs(os.Args[1:], dawnRun)
	if !ok {
		return code
	}
	env, why := dawnEnv()
	if env == nil {
		fmt.Printf("wgputest: no run over Dawn: %s\n", why)
		return code
	}
	fmt.Printf("wgputest: the tests again over Dawn (%s)\n", why)
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return max(code, exit.ExitCode(), 1)
		}
		fmt.Printf("wgputest: the Dawn run did not start: %v\n", err)
		return max(code, 1)
	}
	return code
}

// childArgs are the test binary's arguments for the Dawn run: the
// caller's, with -test.run dawnRun where the caller gave none; ok is false
// where the invocation lists, fuzzes or benchmarks instead of testing.
func childArgs(args []string, dawnRun string) (out []string, ok bool) {
	hasRun := false
	for _, a := range args {
		name, val, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch name {
		case "test.list", "test.fuzz", "test.bench":
			if val != "" {
				return nil, false
			}
		case "test.run":
			hasRun = true
		}
	}
	out = append([]string(nil), args...)
	if !hasRun && dawnRun != "" {
		out = append(out, "-test.run="+dawnRun)
	}
	return out, true
}

// dawnEnv is the environment for a child that runs over Dawn, and a line
// saying where; nil and why not where Dawn cannot run the tests.
func dawnEnv() (env []string, why string) {
	rt := wgpu.EnvRuntime + "=" + string(wgpu.RuntimeDawn)
	list, err := wgpu.Adapters(wgpu.Options{Runtime: wgpu.RuntimeDawn})
	if err == nil {
		return []string{rt}, list[0].String()
	}
	if errors.Is(err, wgpu.ErrNoRuntime) {
		return nil, "Dawn is not installed (bash scripts/dawn.sh installs it)"
	}
	if os.Getenv("VK_DRIVER_FILES") != "" || os.Getenv("VK_ICD_FILENAMES") != "" {
		return nil, fmt.Sprintf("Dawn sees no adapter of the Vulkan drivers given: %v", err)
	}
	cache, cerr := dawn.CacheDir()
	if cerr == nil {
		icd := filepath.Join(cache, "lavapipe", "lvp_icd.json")
		if _, serr := os.Stat(icd); serr == nil {
			return []string{rt, "VK_DRIVER_FILES=" + icd}, "Mesa 25's lavapipe from " + icd
		}
	}
	return nil, fmt.Sprintf("Dawn sees no adapter (%v); on Debian 12, bash scripts/dawn.sh --lavapipe fetches a lavapipe it accepts", err)
}
