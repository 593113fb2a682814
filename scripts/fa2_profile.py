#!/usr/bin/env python3
"""Measure FlashAttention-2 bf16 varlen (causal, bottom-right) on one CUDA GPU
over a grid of (q_len, kv_len) and write a disagg.Profile JSON (version 1):
the cost model `coreattn simulate --profile` takes.

Each cell runs one fused varlen call of identical segments (q_len queries
against kv_len keys each, so the causal mask is bottom-right aligned, as a
CA-task's) totalling about --tokens query rows, times forward and backward
with CUDA events (median of --reps after --warmup), and divides by the number
of segments. flash_attn's flash_attn_varlen_func is used when installed;
otherwise PyTorch's flash SDPA backend on one padded batch (bottom-right
causal via attn_bias.causal_lower_right), which needs no extra package.

    python3 scripts/fa2_profile.py --out fa2-h200-bf16.json
"""
import argparse
import json
import sys

import torch


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--heads-q", type=int, default=64)
    p.add_argument("--heads-kv", type=int, default=8)
    p.add_argument("--head-dim", type=int, default=128)
    p.add_argument("--q-lens", default="16,64,128,512,2048,8192,32768,131072")
    p.add_argument("--kv-lens", default="128,512,1024,2048,4096,8192,16384,32768,65536,131072")
    p.add_argument("--tokens", type=int, default=65536, help="query rows per fused call (at least one segment)")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    return p.parse_args()


def timed(fn, reps, warmup):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        ts.append(a.elapsed_time(b) / 1e3)
    ts.sort()
    return ts[len(ts) // 2]


def make_cell(q, k, nseg, hq, hkv, d):
    dev = torch.device("cuda")
    try:
        from flash_attn import flash_attn_varlen_func
    except ImportError:
        flash_attn_varlen_func = None
    if flash_attn_varlen_func is not None:
        Q = torch.randn(nseg * q, hq, d, device=dev, dtype=torch.bfloat16, requires_grad=True)
        K = torch.randn(nseg * k, hkv, d, device=dev, dtype=torch.bfloat16, requires_grad=True)
        V = torch.randn(nseg * k, hkv, d, device=dev, dtype=torch.bfloat16, requires_grad=True)
        cq = torch.arange(0, (nseg + 1) * q, q, device=dev, dtype=torch.int32)
        ck = torch.arange(0, (nseg + 1) * k, k, device=dev, dtype=torch.int32)

        def fwd():
            return flash_attn_varlen_func(Q, K, V, cq, ck, q, k, causal=True)
        impl = "flash_attn " + __import__("flash_attn").__version__
    else:
        from torch.nn.attention import SDPBackend, sdpa_kernel
        from torch.nn.attention.bias import causal_lower_right
        Q = torch.randn(nseg, hq, q, d, device=dev, dtype=torch.bfloat16, requires_grad=True)
        K = torch.randn(nseg, hkv, k, d, device=dev, dtype=torch.bfloat16, requires_grad=True)
        V = torch.randn(nseg, hkv, k, d, device=dev, dtype=torch.bfloat16, requires_grad=True)
        bias = causal_lower_right(q, k)
        rep = hq // hkv

        def fwd():
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                kk = K.repeat_interleave(rep, dim=1) if rep > 1 else K
                vv = V.repeat_interleave(rep, dim=1) if rep > 1 else V
                return torch.nn.functional.scaled_dot_product_attention(Q, kk, vv, attn_mask=bias)
        impl = "torch " + torch.__version__ + " SDPA flash (padded batch)"
    return fwd, impl


def main():
    a = parse()
    qs = [int(x) for x in a.q_lens.split(",")]
    ks = [int(x) for x in a.kv_lens.split(",")]
    fwd_s = [[0.0] * len(ks) for _ in qs]
    bwd_s = [[0.0] * len(ks) for _ in qs]
    impl = ""
    for i, q in enumerate(qs):
        for j, k in enumerate(ks):
            if q > k:
                continue
            nseg = max(1, a.tokens // q)
            f, impl = make_cell(q, k, nseg, a.heads_q, a.heads_kv, a.head_dim)
            tf = timed(f, a.reps, a.warmup)
            out = f()
            g = torch.randn_like(out)
            tb = timed(lambda: out.backward(g, retain_graph=True), a.reps, a.warmup)
            fwd_s[i][j], bwd_s[i][j] = tf / nseg, tb / nseg
            print(f"q {q:6d} kv {k:6d}: fwd {tf / nseg * 1e3:.4f} ms bwd {tb / nseg * 1e3:.4f} ms per segment", file=sys.stderr)
            del out, g
            torch.cuda.empty_cache()
    prof = {"version": 1, "adapter": torch.cuda.get_device_name() + " (" + impl + ")", "dtype": "bf16",
            "heads_q": a.heads_q, "heads_kv": a.heads_kv, "head_dim": a.head_dim,
            "q_lens": qs, "kv_lens": ks, "forward_s": fwd_s, "backward_s": bwd_s}
    with open(a.out, "w") as f:
        json.dump(prof, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
