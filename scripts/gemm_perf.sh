#!/usr/bin/env bash
# One device call's worth of GEMM measurements: coreattn bench gemm at the
# default tilings (4096^3 and the model shapes at T=16384), a tiling sweep at
# 4096^3, a split-K sweep on the base preset's weight gradients, PyTorch's
# matmul anchor from the same machine, and a joined table.
#
# Run on the accelerator machine from the repo root, with the binary in
# .dev/ (see ../shared/device/README.md):
#   scripts/gemm_perf.sh OUTDIR
# Environment: QUICK=1 measures only the defaults and the fp32 anchor
# (about 3 minutes; the full run takes about 7).
set -uo pipefail
out=${1:?usage: scripts/gemm_perf.sh OUTDIR}
mkdir -p "$out"
bin=${COREATTN:-.dev/coreattn}
"$bin" devices > "$out/devices.txt" 2>&1 || true
echo "== defaults" >&2
"$bin" bench gemm --json > "$out/ours.jsonl" 2> "$out/ours.err" || echo "bench gemm failed" >&2
if [ "${QUICK:-0}" != 1 ]; then
	echo "== tiling sweep" >&2
	"$bin" bench gemm --json --shapes 4096x --tiling \
		128x128x16/8x8,128x128x16/8x8/w16,128x128x8/8x8,64x128x16/8x8,128x64x16/8x8,256x128x16/8x8,128x128x16/8x8/rolled \
		> "$out/sweep.jsonl" 2> "$out/sweep.err" || echo "tiling sweep failed" >&2
	echo "== split sweep" >&2
	"$bin" bench gemm --json --split 0,1,4,8,16,32 \
		--shapes "TN 768x768x16384,TN 256x768x16384,TN 2048x768x16384,TN 768x2048x16384" \
		> "$out/split.jsonl" 2> "$out/split.err" || echo "split sweep failed" >&2
fi
echo "== anchor" >&2
PYTHONUNBUFFERED=1 python3 scripts/matmul_anchor.py --dtypes fp32 > "$out/torch.jsonl" 2> "$out/torch.err" || true
if [ "${QUICK:-0}" != 1 ]; then
	PYTHONUNBUFFERED=1 python3 scripts/matmul_anchor.py --dtypes bf16,f16 --shapes 4096x,base >> "$out/torch.jsonl" 2>> "$out/torch.err" || true
fi
python3 scripts/gemm_table.py "$out"/ours.jsonl "$out"/torch.jsonl | tee "$out/table.md"
for x in sweep split; do
	[ -s "$out/$x.jsonl" ] && { echo; echo "$x:"; python3 scripts/gemm_table.py "$out/$x.jsonl" "$out"/torch.jsonl; } | tee -a "$out/table.md"
done
true
