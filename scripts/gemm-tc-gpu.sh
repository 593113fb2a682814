#!/usr/bin/env bash
# scripts/gemm-tc-gpu.sh: check and measure the tensor-core GEMM (package
# gemm's subgroup-matrix engine, shaders/gemm_sgmat.wgsl) on the
# accelerator machine through Dawn, beside the FFMA kernels and PyTorch, in
# one call.
#
#   bash scripts/gemm-tc-gpu.sh prepare   here, in the repository root:
#                                         builds .dev/gemmtc.test and
#                                         .dev/coreattn, copies Dawn's
#                                         dawn.node into .dev/, fetches the
#                                         Vulkan loader into .gl/ (about
#                                         55 MiB in all)
#   bash scripts/gemm-tc-gpu.sh run       there, with carry [".gl", ".dev"]
#
# `run` takes about 5 minutes, at most 9.5 (timeouts: checks 150 s,
# benchmark 120 s, FFMA 90 s, PyTorch 210 s), and writes under $OUT: gemmtc-test.log
# (TestProducts and TestChosen against float64, relative error <= 1e-3 for
# f16 operands), sgmat.jsonl (BenchmarkGemm: 4096^3 and the model shapes at
# T 16384, robustness off, GPU timestamps), ffma.jsonl (coreattn bench gemm
# at 4096^3 and the base preset), torch.jsonl (PyTorch fp32, bf16, f16 at
# the same shapes) and table.md. Extra arguments of `run` go to the
# benchmark, e.g. -gemm.shapes 4096x.
set -euo pipefail

die() { echo "gemm-tc-gpu.sh: $*" >&2; exit 1; }

case "${1:-}" in
prepare)
	[ -f go.mod ] && grep -q coreattn go.mod || die "run prepare in the repository root"
	mkdir -p .dev
	# Stripped: with dawn.node the three stay under the 64 MiB a call carries.
	go test -c -ldflags='-s -w' -o .dev/gemmtc.test ./wgpu/internal/dawngemm
	go build -ldflags='-s -w' -o .dev/coreattn ./cmd/coreattn
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
	echo "gemm-tc-gpu.sh: ready: carry .gl and .dev; run: bash scripts/gemm-tc-gpu.sh run" >&2
	;;
run)
	shift
	out="${OUT:-/tmp/gemm-tc-out}"
	mkdir -p "$out"
	if [ -z "${GEMM_TC_NO_INSTALL:-}" ]; then # set it to try run on a machine with a loader
		for f in .gl/*.deb; do dpkg -x "$f" /; done
		ldconfig
	fi
	export XDG_RUNTIME_DIR=/tmp
	icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
	if [ -e "$icd" ]; then export VK_DRIVER_FILES="$icd"; fi
	export COREATTN_DAWN="$PWD/.dev/dawn.node"
	timeout 150 .dev/gemmtc.test -test.v -test.timeout 145s -test.run 'TestProducts$|TestChosen$' 2>&1 |
		grep -v '^Warning: maxDynamic' >"$out/gemmtc-test.log" || true
	tail -n 3 "$out/gemmtc-test.log"
	shapes="4096x,base T16384"
	timeout 120 .dev/gemmtc.test -test.v -test.timeout 115s -test.run '^$' -test.bench BenchmarkGemm -test.benchtime 1x \
		-gemm.json "$out/sgmat.jsonl" -gemm.shapes "$shapes" "$@" 2>&1 | grep -v '^Warning: maxDynamic' >"$out/gemmtc-bench.log" || true
	if [ -x .dev/coreattn ]; then
		timeout 90 .dev/coreattn bench gemm --json --shapes "$shapes" >"$out/ffma.jsonl" 2>"$out/ffma.err" || true
	fi
	timeout 210 python3 scripts/matmul_anchor.py --dtypes fp32,bf16,f16 --shapes "$shapes" >"$out/torch.jsonl" 2>"$out/torch.err" || true
	{
		echo "tensor cores (f16 operands, f32 accumulation):"
		python3 scripts/gemm_table.py "$out/sgmat.jsonl" "$out/torch.jsonl"
		echo
		echo "FFMA (f32):"
		python3 scripts/gemm_table.py --peak 58.4 "$out/ffma.jsonl" "$out/torch.jsonl"
	} | tee "$out/table.md"
	;;
*)
	sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
	;;
esac
