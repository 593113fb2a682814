#!/usr/bin/env python3
"""Joins `coreattn bench gemm --json` lines with matmul_anchor.py's on
`shape` and prints a markdown table: our TFLOP/s beside PyTorch's fp32
(TF32 off), and bf16/f16 where measured.

    python3 scripts/gemm_table.py ours.jsonl torch.jsonl
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
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    ours = read(sys.argv[1])
    torch = {}
    for path in sys.argv[2:]:
        for r in read(path):
            torch[(r["shape"], r["impl"])] = r
    adapter = ours[0]["adapter"] if ours else "?"
    print(f"GEMM TFLOP/s on {adapter} (ours: coreattn-wgsl f32; torch fp32 with TF32 off)\n")
    print("| shape | ours | torch fp32 | ours/fp32 | torch bf16 | torch f16 | tiling |")
    print("|---|---|---|---|---|---|---|")
    for r in ours:
        if r.get("error"):
            print(f"| {r['shape']} | error | | | | | {r['tiling']}: {r['error']} |")
            continue
        fp = torch.get((r["shape"], "torch-fp32"))
        bf = torch.get((r["shape"], "torch-bf16"))
        hf = torch.get((r["shape"], "torch-f16"))
        ratio = f"{r['tflops'] / fp['tflops']:.2f}" if fp and fp["tflops"] else ""
        cell = lambda x: f"{x['tflops']:.3g}" if x else ""
        print(f"| {r['shape']} | {r['tflops']:.3g} | {cell(fp)} | {ratio} | {cell(bf)} | {cell(hf)} | {r['tiling']} |")


if __name__ == "__main__":
    main()
