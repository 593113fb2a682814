//go:build ignore

// wgsl writes the generated WGSL of the attention kernels for one head
// dimension, storage type and set of adapter limits, so that they can be
// compiled offline (naga, tint) or fed to scripts/vkstats.c:
//
//	go run scripts/wgsl.go -d 128 -out /tmp/wgsl
//	go run scripts/wgsl.go -d 128 -fwd-tiling 16,8,4,32,16 -out /tmp/wgsl
//	naga --index-bounds-check-policy Restrict --buffer-bounds-check-policy Unchecked \
//	    --entry-point main --compact /tmp/wgsl/fwd.wgsl /tmp/wgsl/fwd.spv
//
// It writes fwd.wgsl, dq.wgsl, dkv.wgsl (the fused dQ), dkv-stored.wgsl and
// dqs.wgsl (entry point dqs_main: the dQ kernel for stored dS).
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/coreattn/coreattn/shaders"
)

func main() {
	d := flag.Int("d", 128, "head dimension")
	dtype := flag.String("dtype", "f32", "storage type: f32, f16 or bf16")
	wg := flag.Int("wg-bytes", 48<<10, "the adapter's workgroup memory in bytes")
	threads := flag.Int("threads", 256, "the adapter's invocations per workgroup")
	cpu := flag.Bool("cpu", false, "the forward's fetch pattern for CPU drivers")
	force := flag.String("fwd-tiling", "", "force the forward tiling as TX,TY,RM,KC,VC (as coreattn bench --fwd-tiling)")
	kt := flag.Bool("kt", false, "with -fwd-tiling: stage K transposed (FwdTiling.TransposedK)")
	out := flag.String("out", ".", "output directory")
	flag.Parse()
	dt, err := shaders.ParseDType(*dtype)
	if err != nil {
		log.Fatal(err)
	}
	fwd, err := shaders.ChooseFwd(*d, dt, *wg, *threads)
	if err != nil {
		log.Fatal(err)
	}
	if *force != "" {
		fwd = shaders.FwdTiling{D: *d, DType: dt, TransposedK: *kt}
		if _, err := fmt.Sscanf(*force, "%d,%d,%d,%d,%d", &fwd.TX, &fwd.TY, &fwd.RM, &fwd.KC, &fwd.VC); err != nil {
			log.Fatalf("-fwd-tiling %q: want TX,TY,RM,KC,VC: %v", *force, err)
		}
	}
	fwd.CPU = *cpu
	write(*out, "fwd.wgsl", fwd.String(), fwd.Source)
	for _, k := range []shaders.BwdKernel{shaders.BwdDQ, shaders.BwdDKV} {
		t, err := shaders.ChooseBwd(k, *d, dt, *wg, *threads)
		if err != nil {
			log.Fatal(err)
		}
		t.FusedDQ = k == shaders.BwdDKV
		if t.Validate() != nil {
			t.FusedDQ = false // this tiling cannot fuse dQ: the separate dQ kernel runs
		}
		write(*out, k.String()+".wgsl", t.String(), t.Source)
	}
	// The stored-dS pair (gpu.DQStored): the dK/dV kernel that writes
	// dS, and the dQ kernel whose entry point is dqs_main.
	kv, err := shaders.ChooseBwd(shaders.BwdDKV, *d, dt, *wg, *threads)
	if err != nil {
		log.Fatal(err)
	}
	kv.StoredDS = true
	if err := kv.Validate(); err != nil {
		log.Fatal(err)
	}
	write(*out, "dkv-stored.wgsl", kv.String(), kv.Source)
	dqs, err := shaders.ChooseDQStored(*d, dt, *wg, *threads)
	if err != nil {
		log.Fatal(err)
	}
	write(*out, "dqs.wgsl", dqs.String()+" entry "+shaders.DQStoredEntry.Name(), dqs.Source)
}

func write(dir, name, tiling string, source func() (string, error)) {
	src, err := source()
	if err != nil {
		log.Fatalf("%s: %v", name, err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\t%s\n", path, tiling)
}
