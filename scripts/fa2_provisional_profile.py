#!/usr/bin/env python3
"""Write the PROVISIONAL FlashAttention-2 bf16 varlen profile of one H100/H200
(disagg.Profile JSON, version 1) derived from published measurements, until
scripts/fa2_profile.py has been run on the GPU.

Source: DistCA's distca/profiling/data/compute-attn-H100.csv (vllm-flash-attn
FA2 varlen, bf16, causal, H100, Hq 64 / Hkv 4 / D 128 at tp=1): forward
milliseconds per document of length L. Forward TFLOP/s per key length are those
times with the ~0.025 ms launch overhead removed (a fused batch amortises it);
below 1024 keys, where only a launch was timed, the paper's Fig. 5 (shards of
>= 128 tokens in a fused 32K chunk run near the plateau) is followed with a
gentle fall-off. A query block shorter than FA2's 128-row tile costs a whole
tile. The backward takes 2.9x the forward (DistCA PR #48: backward attention
2.7-2.9x the forward on H200, TP 8, 128K).

Usage: python3 scripts/fa2_provisional_profile.py > disagg/sim/profiles/fa2-h100-bf16-provisional.json
"""
import json

HQ, HKV, D = 64, 4, 128
# key length -> sustained forward TFLOP/s (see the docstring)
TFLOPS = [(128, 120.0), (512, 150.0), (1024, 160.0), (2048, 209.0), (4096, 267.0),
          (8192, 299.0), (16384, 326.0), (32768, 339.0), (65536, 341.0)]
BWD = 2.9
TILE = 128


def tflops(kv):
    if kv <= TFLOPS[0][0]:
        return TFLOPS[0][1]
    for (k0, t0), (k1, t1) in zip(TFLOPS, TFLOPS[1:]):
        if kv <= k1:
            return t0 + (t1 - t0) * (kv - k0) / (k1 - k0)
    return TFLOPS[-1][1]


def pairs(q, k):
    return q * (k - q) + q * (q + 1) // 2


def fwd_seconds(q, k):
    # A partial query tile costs a whole one (its pairs at the tile's rate).
    qt = max(q, min(TILE, k))
    return 4 * D * HQ * pairs(qt, k) / (tflops(k) * 1e12)


q_lens = [16, 64, 128, 512, 2048, 8192, 32768, 131072]
kv_lens = [128, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 524288]
fwd = [[fwd_seconds(q, k) if q <= k else 0 for k in kv_lens] for q in q_lens]
bwd = [[BWD * t for t in row] for row in fwd]
json.dump({"version": 1, "adapter": "PROVISIONAL: FA2 bf16 varlen, H100 (derived from DistCA's published "
           "compute-attn-H100.csv; replace with scripts/fa2_profile.py output)", "dtype": "bf16",
           "heads_q": HQ, "heads_kv": HKV, "head_dim": D, "q_lens": q_lens, "kv_lens": kv_lens,
           "forward_s": fwd, "backward_s": bwd}, __import__("sys").stdout, indent=1)
print()
