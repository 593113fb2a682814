#!/usr/bin/env bash
# A/B two coreattn binaries' kernels in one device call: the old and the new
# binary alternate ROUNDS times, each benchmarking every storage type and
# both passes, then a table gives per (dtype, pass, shape) the median ms of
# each and their ratio, and flags a cell whose tiling differs.
#
# Run on the accelerator machine from the repo root (see
# ../shared/device/README.md for the binaries in .dev/):
#   scripts/kernels_ab.sh OUTDIR OLD_BINARY NEW_BINARY
# Environment: ROUNDS (default 2), SHAPES (bench --shapes filter), DTYPES
# (default f32,f16,bf16).
set -uo pipefail
out=${1:?usage: scripts/kernels_ab.sh OUTDIR OLD_BINARY NEW_BINARY}
old=${2:?usage: scripts/kernels_ab.sh OUTDIR OLD_BINARY NEW_BINARY}
new=${3:?usage: scripts/kernels_ab.sh OUTDIR OLD_BINARY NEW_BINARY}
mkdir -p "$out"
: > "$out/ab.jsonl"
"$new" devices > "$out/devices.txt" 2>&1 || true
for r in $(seq "${ROUNDS:-2}"); do
	for v in old new; do
		bin=$old
		[ "$v" = new ] && bin=$new
		echo "== round $r, $v" >&2
		"$bin" bench --json --pass all --dtype "${DTYPES:-f32,f16,bf16}" --shapes "${SHAPES:-}" |
			sed "s/^{/{\"variant\":\"$v\",\"round\":$r,/" >> "$out/ab.jsonl" || echo "round $r, $v failed" >&2
	done
done
python3 - "$out/ab.jsonl" <<'PY' | tee "$out/ab.md"
import json, statistics, sys
cells = {}
for line in open(sys.argv[1]):
    if not line.startswith("{"):
        continue
    r = json.loads(line)
    c = cells.setdefault((r["dtype"], r["pass"], r["shape"]), {"old": [], "new": [], "tiling": {}})
    c[r["variant"]].append(r["ms"])
    c["tiling"].setdefault(r["variant"], set()).add(r.get("tiling", ""))
print("| dtype | pass | shape | old ms | new ms | new/old | same tiling |")
print("|---|---|---|---|---|---|---|")
for (dt, p, shape), c in sorted(cells.items()):
    if not c["old"] or not c["new"]:
        continue
    o, n = statistics.median(c["old"]), statistics.median(c["new"])
    same = c["tiling"].get("old") == c["tiling"].get("new")
    print(f"| {dt} | {p} | {shape} | {o:.3f} | {n:.3f} | {n / o:.3f} | {'yes' if same else 'NO'} |")
PY
