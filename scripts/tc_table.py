#!/usr/bin/env python3
"""Join the JSON lines of one tc-gpu.sh run into a markdown table of TFLOP/s.

    python3 scripts/tc_table.py OUT/tc.jsonl OUT/ffma.jsonl ... OUT/torch.jsonl

Rows are (shape, pass); a column is one implementation: ours named by
kernels, storage type and runtime (from `coreattn bench --json`), PyTorch's
by impl and dtype (from sdpa_anchor.py). Files that are missing or empty
are skipped; lines that do not parse are counted on stderr.
"""
import json
import sys


def column(r):
    if r.get("impl", "").startswith("coreattn"):
        dt = {"float16": "f16", "float32": "f32", "bfloat16": "bf16"}.get(r.get("dtype"), r.get("dtype"))
        tag = r.get("tag", "")
        return f"{r.get('kernels', '?')} {dt} ({r.get('runtime', '?')}{tag})"
    return f"{r.get('impl', '?')} {r.get('dtype', '?')}"


def main(paths):
    cells, cols, rows, bad = {}, [], [], 0
    for p in paths:
        try:
            lines = open(p).read().splitlines()
        except OSError:
            continue
        tag = " unchecked" if "unchecked" in p else ""
        for line in lines:
            try:
                r = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if "tflops" not in r or "shape" not in r:
                continue
            if tag:
                r["tag"] = tag
            c, k = column(r), (r["shape"], r.get("pass", "?"))
            if c not in cols:
                cols.append(c)
            if k not in rows:
                rows.append(k)
            cells[(k, c)] = max(cells.get((k, c), 0), r["tflops"])  # a sweep: its best tiling
    if bad:
        print(f"tc_table: {bad} lines did not parse", file=sys.stderr)
    print("| shape | pass | " + " | ".join(cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for k in rows:
        vals = [f"{cells[(k, c)]:.4g}" if (k, c) in cells else "" for c in cols]
        print(f"| {k[0]} | {k[1]} | " + " | ".join(vals) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
