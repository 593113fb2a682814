#!/usr/bin/env bash
# One device call's worth of measurements: coreattn's bench for every variant
# under test, PyTorch's anchor from the same machine, and a joined table.
#
# Run on the accelerator machine from the repo root, with the binary in
# .dev/coreattn (docs/device.md says how to build and carry it); PyTorch's
# anchor is scripts/sdpa_anchor.py:
#   scripts/perf.sh OUTDIR [VARIANT ...]
# A VARIANT is a --fwd-tiling value (TX,TY,RM,KC,VC) or "default".
# Environment: SHAPES (bench --shapes filter), PASS (bench --pass), ANCHOR=0 skips PyTorch.
set -uo pipefail
out=${1:?usage: scripts/perf.sh OUTDIR [VARIANT ...]}
shift
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(default)
mkdir -p "$out"
bin=${COREATTN:-.dev/coreattn}
"$bin" devices > "$out/devices.txt" 2>&1 || true
: > "$out/ours.jsonl"
for v in "${variants[@]}"; do
	args=(bench --json --pass "${PASS:-all}" --shapes "${SHAPES:-}")
	[ "$v" = default ] || args+=(--fwd-tiling "$v")
	echo "== variant $v" >&2
	"$bin" "${args[@]}" | sed "s/^{/{\"variant\":\"$v\",/" >> "$out/ours.jsonl" || echo "variant $v failed" >&2
done
if [ "${ANCHOR:-1}" = 1 ]; then
	PYTHONUNBUFFERED=1 python3 scripts/sdpa_anchor.py > "$out/torch.jsonl" 2> "$out/torch.err" || true
fi
python3 scripts/perf_table.py "$out/ours.jsonl" "$out/torch.jsonl" | tee "$out/table.md"
