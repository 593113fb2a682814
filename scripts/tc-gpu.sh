#!/usr/bin/env bash
# scripts/tc-gpu.sh: issue 21 on the GPU machine in one device call: the
# runtimes, the tensor-core attention checked and measured, today's FFMA
# kernels, GEMM on both runtimes, and PyTorch's anchors, all in one run.
#
#   bash scripts/tc-gpu.sh prepare   here, in the repository root: builds
#                                    coreattn and the attention/gpu test
#                                    binary, compresses them and Dawn's
#                                    dawn.node into .dev/*.xz, fetches the
#                                    Vulkan loader into .gl/ (about 25 MiB;
#                                    the carry limit is 64)
#   bash scripts/tc-gpu.sh run       there, with carry [".gl", ".dev"]: at
#                                    most 7.5 minutes (TC_GPU_BUDGET seconds,
#                                    default 450), each step cut off by a
#                                    timeout and skipped when time runs out
#
# `run` writes under $OUT (default /tmp/tc-out):
#   gpu.txt, devices.txt, devices.jsonl   the GPU; coreattn devices (both runtimes)
#   tc-test.log        the tensor-core checks on the GPU against the float64
#                      reference (attention/gpu: TestTensorCoreForward, -Backward,
#                      -Host, -Tilings with two tilings of each matrix shape,
#                      TestKernelsOption, TestRuntimeKeyCases), over Dawn
#   tc-unchecked.jsonl coreattn bench --runtime dawn --kernels tensor-core, f16
#                      and f32, fwd and fwd+bwd, --no-robustness
#   tc.jsonl           the same with Dawn's bounds checks on, f16
#   ffma.jsonl         today's kernels: --runtime go-webgpu, f32
#   ffma-dawn.jsonl    the FFMA kernels over Dawn, f32 forward (the auto rule's premise)
#   torch.jsonl        scripts/sdpa_anchor.py: f32, bf16 (flash = FlashAttention-2), f16
#   gemm-*.jsonl       coreattn bench gemm on both runtimes (FMA engine), on Dawn with
#                      the subgroup-matrix engine (gemm-tc), scripts/matmul_anchor.py
#   table.md           the joined TFLOP/s (scripts/tc_table.py, scripts/gemm_table.py)
#   steps.log          each step's exit status and seconds
set -uo pipefail

die() { echo "tc-gpu.sh: $*" >&2; exit 1; }

case "${1:-}" in
prepare)
	[ -f go.mod ] && grep -q coreattn go.mod || die "run prepare in the repository root"
	command -v xz >/dev/null || die "xz not found (apt-get install xz-utils)"
	mkdir -p .dev
	rm -rf .dev/*.xz .dev/bin # .dev/bin: what a run unpacked, if one ran here
	go build -trimpath -ldflags "-s -w" -o .dev/coreattn ./cmd/coreattn || die "go build failed"
	go test -c -trimpath -ldflags "-s -w" -o .dev/gpu.test ./attention/gpu || die "go test -c failed"
	node="$(bash scripts/dawn.sh 2>/dev/null || true)"
	[ -f "$node" ] || node="${XDG_CACHE_HOME:-$HOME/.cache}/coreattn/dawn/webgpu-0.6.2/dawn.node"
	[ -f "$node" ] || die "no dawn.node: run bash scripts/dawn.sh first"
	cp "$node" .dev/dawn.node
	xz -T0 -6 .dev/coreattn .dev/gpu.test .dev/dawn.node || die "xz failed"
	if ! ls .gl/libvulkan1_*.deb .gl/libglvnd0_*.deb >/dev/null 2>&1; then
		# The GPU machine has the NVIDIA driver but no Vulkan loader.
		mkdir -p .gl /tmp/amd64/partial
		o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
		apt-get $o update >/dev/null
		(cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2) ||
			die "apt-get download of the loaders failed"
	fi
	size=$(du -cb .dev .gl | tail -n 1 | cut -f1)
	[ "$size" -lt $((60 << 20)) ] || die ".dev and .gl hold $((size >> 20)) MiB: over the carry limit (64 MiB)"
	echo "tc-gpu.sh: ready ($((size >> 20)) MiB): carry [\".gl\", \".dev\"]; run: bash scripts/tc-gpu.sh run" >&2
	;;
run)
	out="${OUT:-/tmp/tc-out}"
	budget="${TC_GPU_BUDGET:-450}"
	mkdir -p "$out" .dev/bin
	if [ -z "${TC_GPU_NO_INSTALL:-}" ]; then # set it to try run on a machine with a loader
		# All of them: NVIDIA's Vulkan driver loads through libGLX_nvidia,
		# which needs glvnd's dispatch library.
		for f in .gl/*.deb; do dpkg -x "$f" /; done
		ldconfig
	fi
	export XDG_RUNTIME_DIR=/tmp
	icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
	if [ -e "$icd" ]; then export VK_DRIVER_FILES="$icd"; fi
	python3 - <<'EOF' || die "unpacking .dev/*.xz failed"
import lzma, os, shutil
for name in ("coreattn", "gpu.test", "dawn.node"):
    dst = ".dev/bin/" + name
    with lzma.open(".dev/" + name + ".xz") as f, open(dst, "wb") as g:
        shutil.copyfileobj(f, g)
    os.chmod(dst, 0o755)
EOF
	export COREATTN_DAWN="$PWD/.dev/bin/dawn.node"
	bin=.dev/bin/coreattn
	# step NAME CAP CMD...: CMD's stdout to $out/NAME, stderr to $out/NAME.err,
	# cut off after CAP seconds or what is left of the budget.
	step() {
		local name=$1 cap=$2
		shift 2
		local t=$((budget - SECONDS - 10))
		[ "$t" -gt "$cap" ] && t=$cap
		if [ "$t" -lt 5 ]; then
			echo "$name: skipped, out of time" | tee -a "$out/steps.log"
			return
		fi
		local s=$SECONDS
		timeout -k 5 "$t" "$@" >"$out/$name" 2>"$out/$name.err"
		echo "$name: exit $? after $((SECONDS - s)) s (limit $t s)" | tee -a "$out/steps.log"
	}
	nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv >"$out/gpu.txt" 2>&1 || true
	step devices.txt 20 "$bin" devices
	step devices.jsonl 20 "$bin" devices --json
	cat "$out/devices.txt" "$out/devices.txt.err"
	step tc-test.log 110 env COREATTN_RUNTIME=dawn .dev/bin/gpu.test -test.v -test.timeout 105s \
		-test.run '^(TestTensorCore|TestKernelsOption$|TestRuntimeKeyCases$)' -tc.sweep 2
	grep -E '^(--- |ok|FAIL|PASS)' "$out/tc-test.log" | grep -v '^    ' | tail -n 12
	tc=(bench --runtime dawn --kernels tensor-core --pass all --json)
	step tc-unchecked.jsonl 110 "$bin" "${tc[@]}" --dtype f16,f32 --no-robustness
	step ffma.jsonl 60 "$bin" bench --runtime go-webgpu --pass all --dtype f32 --json
	step torch.jsonl 90 python3 scripts/sdpa_anchor.py --dtypes float32,bfloat16,float16
	step gemm-go-webgpu.jsonl 40 "$bin" bench gemm --runtime go-webgpu --shapes 4096x,base --json
	step gemm-dawn.jsonl 40 "$bin" bench gemm --runtime dawn --shapes 4096x,base --json
	step gemm-tc.jsonl 40 "$bin" bench gemm --runtime dawn --kernels tensor-core --no-robustness --shapes 4096x,base --json
	step gemm-torch.jsonl 50 python3 scripts/matmul_anchor.py --dtypes fp32,f16,bf16 --shapes 4096x,base
	step tc.jsonl 40 "$bin" "${tc[@]}" --dtype f16
	step ffma-dawn.jsonl 35 "$bin" bench --runtime dawn --kernels ffma --pass fwd --dtype f32 --json
	{
		python3 scripts/tc_table.py "$out"/tc-unchecked.jsonl "$out"/tc.jsonl "$out"/ffma.jsonl "$out"/ffma-dawn.jsonl "$out"/torch.jsonl
		for rt in go-webgpu dawn tc; do
			echo
			echo "GEMM, $rt:"
			python3 scripts/gemm_table.py "$out/gemm-$rt.jsonl" "$out/gemm-torch.jsonl"
		done
	} >"$out/table.md" 2>&1
	cat "$out/table.md"
	;;
*)
	sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
	;;
esac
