#!/usr/bin/env bash
# One device call's worth of FFMA GEMM measurements: coreattn bench gemm at
# the default tilings (4096^3 and the model shapes at T=16384), a tiling
# sweep at 4096^3 and at the model's thin shapes, a split-K sweep on the
# base preset's weight gradients, PyTorch's fp32 matmul anchor (TF32 off)
# from the same machine, and a joined table. (The f16/bf16 anchors run
# beside the tensor-core kernels: scripts/gemm-tc-gpu.sh.)
#
# Run on the accelerator machine from the repo root, with the binary in
# .dev/ (see ../shared/device/README.md):
#   scripts/gemm_perf.sh OUTDIR
# Environment: QUICK=1 measures only the defaults and the anchor (about 3
# minutes; the full run about 6, at most 9.5 by its timeouts); PEAK
# (TFLOP/s, default 58.4: the H100's f32 FMA loop through go-webgpu) for
# the table's share.
set -uo pipefail
out=${1:?usage: scripts/gemm_perf.sh OUTDIR}
mkdir -p "$out"
bin=${COREATTN:-.dev/coreattn}
"$bin" devices > "$out/devices.txt" 2>&1 || true
echo "== defaults" >&2
timeout 150 "$bin" bench gemm --json > "$out/ours.jsonl" 2> "$out/ours.err" || echo "bench gemm failed" >&2
if [ "${QUICK:-0}" != 1 ]; then
	echo "== tiling sweep" >&2
	timeout 90 "$bin" bench gemm --json --shapes 4096x --tiling \
		128x128x16/8x8,128x128x16/8x8/w16,128x128x8/8x8,64x128x16/8x8,128x64x16/8x8,256x128x16/8x8,128x128x16/8x8/rolled \
		> "$out/sweep.jsonl" 2> "$out/sweep.err" || echo "tiling sweep failed" >&2
	echo "== tile sweep at the model's thin shapes (few 128x128 tiles)" >&2
	timeout 75 "$bin" bench gemm --json --tiling 128x128x16/8x8,64x128x16/8x8,128x64x16/8x8 \
		--shapes "small T16384 wq fwd,small T16384 wk/wv fwd,small T16384 wq dx,base T16384 wk/wv fwd,T16384 lm_head fwd" \
		> "$out/thin.jsonl" 2> "$out/thin.err" || echo "thin sweep failed" >&2
	echo "== split sweep" >&2
	timeout 100 "$bin" bench gemm --json --split 0,1,8,32 \
		--shapes "TN 768x768x16384,TN 256x768x16384,TN 2048x768x16384,TN 768x2048x16384" \
		> "$out/split.jsonl" 2> "$out/split.err" || echo "split sweep failed" >&2
fi
echo "== anchor" >&2
PYTHONUNBUFFERED=1 timeout 150 python3 scripts/matmul_anchor.py --dtypes fp32 > "$out/torch.jsonl" 2> "$out/torch.err" || true
peak=(--peak "${PEAK:-58.4}")
python3 scripts/gemm_table.py "${peak[@]}" "$out"/ours.jsonl "$out"/torch.jsonl | tee "$out/table.md"
for x in sweep thin split; do
	[ -s "$out/$x.jsonl" ] && { echo; echo "$x:"; python3 scripts/gemm_table.py "${peak[@]}" "$out/$x.jsonl" "$out"/torch.jsonl; } | tee -a "$out/table.md"
done
true
