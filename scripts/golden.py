"""Golden cases for coreattn, computed by PyTorch in float64 with FlashAttention's
varlen conventions, written as .npy files that `coreattn attention` reads.

  python3 scripts/golden.py OUTDIR            # write the cases
  python3 scripts/golden.py OUTDIR --check BIN [--servers N]
                                              # also run BIN attention on each and compare

Conventions (flash_attn_varlen_func): q [total_q, Hq, D], k/v [total_k, Hkv, D];
cu_seqlens int32; causal masks bottom-right aligned (query i of a segment sees key j
iff j <= i + k_len - q_len); query head h reads KV head h // (Hq/Hkv); softmax_scale
defaults to 1/sqrt(D); lse [Hq, total_q] natural log of the sum of exp(scaled scores).
"""
import json, math, os, subprocess, sys
import numpy as np
import torch

CASES = [
    # name, q_lens, k_lens, Hq, Hkv, D, causal, scale
    ("mixed_docs_d64", [300, 17, 1, 129, 64], None, 4, 4, 64, True, None),
    ("ca_shards_zero_len_gqa4", [128, 0, 37, 64], [300, 50, 37, 200], 8, 2, 64, True, None),
    ("gqa82_d128", [200, 90], [260, 90], 8, 2, 128, True, None),
    ("gqa41_d32", [150, 10, 77], None, 4, 1, 32, True, None),
    ("d80_shards", [70, 33], [140, 33], 4, 2, 80, True, None),
    ("d96", [96, 31], None, 2, 1, 96, True, None),
    ("d256", [70, 5], [90, 5], 2, 1, 256, True, None),
    ("noncausal_d64", [40, 70, 3], [100, 20, 0], 4, 2, 64, False, None),
    ("custom_scale_d128", [120, 8], [120, 40], 4, 4, 128, True, 0.0625),
]

def reference(q, k, v, cq, ck, causal, scale):
    tq, hq, d = q.shape
    hkv = k.shape[1]
    g = hq // hkv
    o = torch.zeros_like(q)
    lse = torch.full((hq, tq), float("inf"), dtype=q.dtype)
    for b in range(len(cq) - 1):
        q0, q1, k0, k1 = cq[b], cq[b + 1], ck[b], ck[b + 1]
        lq, lk = q1 - q0, k1 - k0
        if lq == 0 or lk == 0:
            continue
        qs = q[q0:q1].transpose(0, 1)                                  # [Hq, lq, D]
        ks = k[k0:k1].transpose(0, 1).repeat_interleave(g, dim=0)      # [Hq, lk, D]
        vs = v[k0:k1].transpose(0, 1).repeat_interleave(g, dim=0)
        s = scale * qs @ ks.transpose(1, 2)                            # [Hq, lq, lk]
        if causal:
            i = torch.arange(lq).unsqueeze(1)
            j = torch.arange(lk).unsqueeze(0)
            s = s.masked_fill(j > i + (lk - lq), float("-inf"))
        l = torch.logsumexp(s, dim=-1)                                 # [Hq, lq]
        p = torch.exp(s - l.unsqueeze(-1))
        o[q0:q1] = (p @ vs).transpose(0, 1)
        lse[:, q0:q1] = l
    return o, lse

def make(out, case, seed):
    name, ql, kl, hq, hkv, d, causal, scale = case
    kl = kl or ql
    cq = np.concatenate([[0], np.cumsum(ql)]).astype(np.int32)
    ck = np.concatenate([[0], np.cumsum(kl)]).astype(np.int32)
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(int(cq[-1]), hq, d, generator=gen, dtype=torch.float64)
    k = torch.randn(int(ck[-1]), hkv, d, generator=gen, dtype=torch.float64)
    v = torch.randn(int(ck[-1]), hkv, d, generator=gen, dtype=torch.float64)
    do = torch.randn(int(cq[-1]), hq, d, generator=gen, dtype=torch.float64)
    # The kernels read float32: compute the reference on the rounded inputs.
    q, k, v, do = [t.float().double().requires_grad_() for t in (q, k, v, do)]
    sc = scale if scale is not None else 1 / math.sqrt(d)
    o, lse = reference(q, k, v, cq.tolist(), ck.tolist(), causal, sc)
    o.backward(do)
    dirn = os.path.join(out, name)
    os.makedirs(dirn, exist_ok=True)
    arrays = dict(q=q, k=k, v=v, do=do, o=o, lse=lse, dq=q.grad, dk=k.grad, dv=v.grad)
    for key, t in arrays.items():
        np.save(os.path.join(dirn, key + ".npy"), t.detach().numpy().astype(np.float64 if key in ("o", "lse", "dq", "dk", "dv") else np.float32))
    np.save(os.path.join(dirn, "cu_seqlens_q.npy"), cq)
    np.save(os.path.join(dirn, "cu_seqlens_k.npy"), ck)
    with open(os.path.join(dirn, "case.json"), "w") as f:
        json.dump({"causal": causal, "scale": scale}, f)
    return dirn

def check(dirn, binary, servers):
    meta = json.load(open(os.path.join(dirn, "case.json")))
    got = os.path.join(dirn, "got")
    os.makedirs(got, exist_ok=True)
    cmd = [binary, "attention", "--q", f"{dirn}/q.npy", "--k", f"{dirn}/k.npy", "--v", f"{dirn}/v.npy",
           "--cu-seqlens-q", f"{dirn}/cu_seqlens_q.npy", "--cu-seqlens-k", f"{dirn}/cu_seqlens_k.npy",
           "--out", f"{got}/o.npy", "--lse", f"{got}/lse.npy", "--do", f"{dirn}/do.npy",
           "--dq", f"{got}/dq.npy", "--dk", f"{got}/dk.npy", "--dv", f"{got}/dv.npy", "--servers", str(servers)]
    if meta["causal"]:
        cmd.append("--causal")
    if meta["scale"] is not None:
        cmd += ["--scale", repr(meta["scale"])]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return {"case": os.path.basename(dirn), "servers": servers, "error": r.stderr.strip()}
    res = {"case": os.path.basename(dirn), "servers": servers}
    for key in ("o", "dq", "dk", "dv"):
        w, g = np.load(f"{dirn}/{key}.npy"), np.load(f"{got}/{key}.npy").astype(np.float64)
        res[key + "_rel"] = float(np.linalg.norm(g - w) / max(np.linalg.norm(w), 1e-300))
    w, g = np.load(f"{dirn}/lse.npy"), np.load(f"{got}/lse.npy").astype(np.float64)
    fin = np.isfinite(w)
    res["lse_abs"] = float(np.max(np.abs(g[fin] - w[fin]), initial=0.0))
    res["lse_inf_match"] = bool(np.all(g[~fin] == w[~fin]))
    res["ok"] = all(res[k + "_rel"] <= 1e-4 for k in ("o", "dq", "dk", "dv")) and res["lse_abs"] <= 1e-4 and res["lse_inf_match"]
    return res

if __name__ == "__main__":
    out = sys.argv[1]
    binary = sys.argv[sys.argv.index("--check") + 1] if "--check" in sys.argv else None
    servers = [int(sys.argv[sys.argv.index("--servers") + 1])] if "--servers" in sys.argv else [1, 3]
    for i, case in enumerate(CASES):
        d = make(out, case, 1000 + i)
        if binary:
            for s in servers:
                print(json.dumps(check(d, binary, s)), flush=True)
