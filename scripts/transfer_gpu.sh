#!/usr/bin/env bash
# One device call's worth of host<->device transfer measurements (issue 22
# point 3, issue 25 point 1): coreattn bench transfer over every GPU adapter,
# alone and all at once, with every upload method; a sweep of the engine's
# options (copiers, chunk, depth) at 256 MiB on adapter 0; the PCIe ceiling
# from CUDA pinned memcpy (memcpy_anchor.py) in the same call; a joined
# table. About 1.5 minutes on one H100, at most 7.5 by its timeouts.
#
# Run on the accelerator machine from the repo root, with the binary in
# .dev/ (see ../shared/device/README.md and docs/transfer.md):
#   scripts/transfer_gpu.sh OUTDIR
set -uo pipefail
out=${1:?usage: scripts/transfer_gpu.sh OUTDIR}
mkdir -p "$out"
bin=${COREATTN:-.dev/coreattn}
"$bin" devices > "$out/devices.txt" 2>&1 || true
nproc > "$out/nproc.txt" 2>&1 || true
echo "== bench transfer, every method" >&2
timeout 240 "$bin" bench transfer --json --method all > "$out/transfer.jsonl" 2> "$out/transfer.err" ||
	echo "bench transfer failed (see transfer.err)" >&2
echo "== engine options at 256 MiB" >&2
for opt in "--copiers 1" "--copiers 2" "--copiers 8" "--chunk 4" "--chunk 64" "--depth 2" "--depth 8"; do
	# shellcheck disable=SC2086 # opt is two words on purpose
	timeout 40 "$bin" bench transfer --json --adapter 0 --mode alone --direction up,down --sizes 256MiB $opt 2>> "$out/sweep.err" |
		sed "s/^{/{\"sweep\":\"$opt\",/" >> "$out/sweep.jsonl" || echo "sweep $opt failed" >&2
done
echo "== anchor" >&2
PYTHONUNBUFFERED=1 timeout 120 python3 scripts/memcpy_anchor.py > "$out/memcpy.jsonl" 2> "$out/memcpy.err" || true
python3 scripts/transfer_table.py "$out/transfer.jsonl" "$out/memcpy.jsonl" "$out/sweep.jsonl" | tee "$out/table.md"
true
