#!/usr/bin/env python3
"""PyTorch matmul anchor for `coreattn bench gemm`: the same products, the
same labels, JSON lines with the same keys (impl, adapter, dtype, case,
shape, m, n, k, ms, tflops), so the two join on `shape`.

    python3 scripts/matmul_anchor.py                      # fp32 (TF32 off), f16, bf16
    python3 scripts/matmul_anchor.py --dtypes fp32 --tokens 16384,65536
    python3 scripts/matmul_anchor.py --from ours.jsonl    # exactly the shapes we ran

Shapes (as cmd/coreattn/bench_gemm.go builds them): NN, NT and TN at
cube^3, then for the presets small and base each distinct linear layer
(in -> out) at T tokens: forward NT T x out x in, input gradient NN
T x in x out, weight gradient TN out x in x T accumulated (C += A^T B).
fp32 runs with TF32 off (torch.backends.cuda.matmul.allow_tf32 = False):
true fp32 FMA, the same arithmetic as ours. f16 and bf16 run the same
products on half operands (tensor cores), for the tensor-core comparison.
Timing: about a second of untimed back-to-back runs, then the median of 5
rounds of back-to-back runs, timed with CUDA events.
"""
import argparse
import json
import sys

import torch

PRESETS = [  # name, d, Hq*Dh, Hkv*Dh, F, vocabulary (docs: MODEL_SPEC.md)
    ("small", 384, 384, 128, 1024, 256),
    ("base", 768, 768, 256, 2048, 256),
]


def case(ta, tb):
    return ("T" if ta else "N") + ("T" if tb else "N")


def cube_shapes(cube):
    out = []
    for ta, tb in [(False, False), (False, True), (True, False)]:
        out.append(dict(shape=f"{case(ta, tb)} {cube}x{cube}x{cube}", m=cube, n=cube, k=cube, ta=ta, tb=tb, acc=False))
    return out


def model_shapes(tokens):
    out = []
    for name, d, dq, dkv, f, voc in PRESETS:
        layers = [("wq", d, dq), ("wk/wv", d, dkv), ("wo", dq, d), ("w1/w3", d, f), ("w2", f, d), ("lm_head", d, voc)]
        for lname, fin, fout in layers:
            for pas, m, n, k, ta, tb, acc in [
                ("fwd", tokens, fout, fin, False, True, False),
                ("dx", tokens, fin, fout, False, False, False),
                ("dw", fout, fin, tokens, True, False, True),
            ]:
                out.append(dict(shape=f"{name} T{tokens} {lname} {pas} {case(ta, tb)} {m}x{n}x{k}", m=m, n=n, k=k, ta=ta, tb=tb, acc=acc))
    return out


def from_jsonl(path):
    shapes, seen = [], set()
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            if r["shape"] in seen:
                continue
            seen.add(r["shape"])
            c = r["case"]
            shapes.append(dict(shape=r["shape"], m=r["m"], n=r["n"], k=r["k"], ta=c[0] == "T", tb=c[1] == "T", acc=" dw " in r["shape"]))
    return shapes


def bench(s, dtype, rounds=5, budget=1.0):
    dev = "cuda"
    m, n, k = s["m"], s["n"], s["k"]
    a = torch.randn((k, m) if s["ta"] else (m, k), device=dev, dtype=dtype)
    b = torch.randn((n, k) if s["tb"] else (k, n), device=dev, dtype=dtype)
    c = torch.randn((m, n), device=dev, dtype=dtype)
    opa = a.t() if s["ta"] else a
    opb = b.t() if s["tb"] else b
    if s["acc"]:
        def run():
            c.addmm_(opa, opb)
    else:
        def run():
            torch.mm(opa, opb, out=c)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    # One run, then about `budget` seconds of untimed back-to-back runs.
    start.record(); run(); end.record(); torch.cuda.synchronize()
    one = max(start.elapsed_time(end) / 1e3, 1e-6)
    warm = max(1, int(budget / one))
    for _ in range(warm):
        run()
    torch.cuda.synchronize()
    reps = max(1, min(50, int(budget / rounds / one)))
    times = []
    for _ in range(rounds):
        start.record()
        for _ in range(reps):
            run()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / reps)
    times.sort()
    ms = times[len(times) // 2]
    return ms, 2.0 * m * n * k / (ms * 1e9)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dtypes", default="fp32,f16,bf16", help="comma-separated: fp32 (TF32 off), f16, bf16")
    ap.add_argument("--tokens", default="16384", help="tokens per step of the model shapes, comma-separated")
    ap.add_argument("--cube", type=int, default=4096, help="edge of the cube shapes")
    ap.add_argument("--shapes", default="", help="only shapes whose label contains one of these comma-separated texts")
    ap.add_argument("--from", dest="src", default="", help="take the shapes from coreattn bench gemm --json output")
    args = ap.parse_args()

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    dtypes = {"fp32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
    if args.src:
        shapes = from_jsonl(args.src)
    else:
        shapes = cube_shapes(args.cube)
        for t in args.tokens.split(","):
            shapes += model_shapes(int(t))
    filters = [f.strip() for f in args.shapes.split(",") if f.strip()]
    if filters:
        shapes = [s for s in shapes if any(f in s["shape"] for f in filters)]
    name = torch.cuda.get_device_name()
    for dn in args.dtypes.split(","):
        dn = dn.strip()
        if dn not in dtypes:
            sys.exit(f"matmul_anchor: --dtypes {args.dtypes!r}: want fp32, f16, bf16")
        for s in shapes:
            ms, tf = bench(s, dtypes[dn])
            print(json.dumps(dict(
                impl=f"torch-{dn}", adapter=name, dtype=str(dtypes[dn]).replace("torch.", ""),
                case=case(s["ta"], s["tb"]), shape=s["shape"], m=s["m"], n=s["n"], k=s["k"],
                ms=round(ms, 4), tflops=round(tf, 4))), flush=True)


if __name__ == "__main__":
    main()
