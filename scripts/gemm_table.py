#!/usr/bin/env python3
"""Joins `coreattn bench gemm --json` lines with matmul_anchor.py's on
`shape` and prints a markdown table: our TFLOP/s beside PyTorch's fp32
(TF32 off), and bf16/f16 where measured.

    python3 scripts/gemm_table.py [--peak TFLOPS] ours.jsonl torch.jsonl

--peak adds our share of that FMA peak (H100 through go-webgpu: 58.4).
"""
import json
import sys


def read(path):
    rows = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    rows.append(json.loads(line))
    except FileNotFoundError:
        pass
    return rows


def main():
    args = sys.argv[1:]
    peak = 0.0
    if len(args) >= 2 and args[0] == "--peak":
        peak, args = float(args[1]), args[2:]
    if not args:
        sys.exit(__doc__)
    ours = read(args[0])
    torch = {}
    for path in args[1:]:
        for r in read(path):
            torch[(r["shape"], r["impl"])] = r
    adapter = ours[0]["adapter"] if ours else "?"
    impl = f"{ours[0]['impl']}, {ours[0].get('dtype', '')}" if ours else "?"
    print(f"GEMM TFLOP/s on {adapter} (ours: {impl}; torch fp32 with TF32 off)\n")
    share = f" | % of {peak:g}" if peak else ""
    print(f"| shape | ours{share} | torch fp32 | ours/fp32 | torch bf16 | torch f16 | tiling |")
    print("|---|---|---|---|---|---|---|" + ("---|" if peak else ""))
    for r in ours:
        if r.get("error"):
            print(f"| {r['shape']} | error{' |' if peak else ''} | | | | | {r['tiling']}: {r['error']} |")
            continue
        fp = torch.get((r["shape"], "torch-fp32"))
        bf = torch.get((r["shape"], "torch-bf16"))
        hf = torch.get((r["shape"], "torch-f16"))
        ratio = f"{r['tflops'] / fp['tflops']:.2f}" if fp and fp["tflops"] else ""
        cell = lambda x: f"{x['tflops']:.3g}" if x else ""
        pct = f" | {100 * r['tflops'] / peak:.0f}%" if peak else ""
        print(f"| {r['shape']} | {r['tflops']:.3g}{pct} | {cell(fp)} | {ratio} | {cell(bf)} | {cell(hf)} | {r['tiling']} |")


if __name__ == "__main__":
    main()
