#!/usr/bin/env bash
# scripts/tc-gpu.sh: check and measure the tensor-core attention kernels
# (attention/tc, shaders/tc_*) on the accelerator machine in one call.
#
#   bash scripts/tc-gpu.sh prepare   here, in the repository root: builds
#                                    .dev/tc.test, copies Dawn's dawn.node
#                                    into .dev/ and fetches the Vulkan
#                                    loader into .gl/ (about 30 MiB in all)
#   bash scripts/tc-gpu.sh run       there, with carry [".gl", ".dev"]:
#                                    installs the loader, then runs the
#                                    GPU checks and the benchmark
#
# `run` takes at most 8 minutes (the parts are cut off by timeouts: checks
# 150 s, benchmark 210 s, anchors 75 + 45 s) and writes under $OUT: tc-test.log (TestForward, TestBackward and
# TestTilings against the float64 reference, robustness off for
# TestTilings), tc-bench.log and tc.jsonl (BenchmarkTC at S4096/D64/H32,
# S8192/D128/H32, S16384/D128/H16 causal, f16, robustness off, GPU
# timestamps; one JSON line per measurement). The benchmark runs even if a
# check fails. Where .dev/coreattn (go build ./cmd/coreattn) and
# .dev/sdpa_anchor.py are carried too, it adds the FFMA kernels' and
# PyTorch's same-run anchors (ffma.jsonl, torch.jsonl). Extra arguments of
# `run` go to the benchmark, e.g. -tc.sweep 2 or -tc.shapes S8192_D128_H32.
set -euo pipefail

die() { echo "tc-gpu.sh: $*" >&2; exit 1; }

case "${1:-}" in
prepare)
	[ -f go.mod ] && grep -q coreattn go.mod || die "run prepare in the repository root"
	mkdir -p .dev
	go test -c -o .dev/tc.test ./wgpu/internal/dawnrun
	node="$(bash scripts/dawn.sh 2>/dev/null || true)"
	[ -f "$node" ] || node="${XDG_CACHE_HOME:-$HOME/.cache}/coreattn/dawn/webgpu-0.6.2/dawn.node"
	[ -f "$node" ] || die "no dawn.node: run bash scripts/dawn.sh first"
	cp "$node" .dev/dawn.node
	if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
		# The GPU machine has the NVIDIA driver but no Vulkan loader.
		mkdir -p .gl /tmp/amd64/partial
		o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
		apt-get $o update >/dev/null
		(cd .gl && apt-get $o download libvulkan1)
	fi
	echo "tc-gpu.sh: ready: carry .gl and .dev; run: bash scripts/tc-gpu.sh run" >&2
	;;
run)
	shift
	out="${OUT:-/tmp/tc-out}"
	mkdir -p "$out"
	if [ -z "${TC_GPU_NO_INSTALL:-}" ]; then # set it to try run on a machine with a loader
		for f in .gl/*.deb; do dpkg -x "$f" /; done
		ldconfig
	fi
	export XDG_RUNTIME_DIR=/tmp
	icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
	if [ -e "$icd" ]; then export VK_DRIVER_FILES="$icd"; fi
	export COREATTN_DAWN="$PWD/.dev/dawn.node"
	nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv >"$out/gpu.txt" 2>&1 || true
	# Checks first (the benchmark alone would not run after a failed test).
	timeout 150 .dev/tc.test -test.v -test.timeout 145s -test.run 'TestForward$|TestBackward$|TestTilings$' 2>&1 |
		grep -v '^Warning: maxDynamic' >"$out/tc-test.log" || true
	tail -n 3 "$out/tc-test.log"
	timeout 210 .dev/tc.test -test.v -test.timeout 205s -test.run '^$' -test.bench BenchmarkTC -test.benchtime 1x \
		-tc.json "$out/tc.jsonl" "$@" 2>&1 | grep -v '^Warning: maxDynamic' >"$out/tc-bench.log" || true
	grep -E 'TFLOP/s  ' "$out/tc-bench.log" | sed 's/^ *bench_test.go:[0-9]*: //' || true
	if [ -x .dev/coreattn ]; then
		timeout 75 .dev/coreattn bench --json --dtype f32 >"$out/ffma.jsonl" 2>"$out/ffma.err" || true
	fi
	if [ -f .dev/sdpa_anchor.py ]; then
		timeout 45 python3 .dev/sdpa_anchor.py --quick >"$out/torch.jsonl" 2>"$out/torch.err" || true
	fi
	;;
*)
	sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
	;;
esac
