#!/usr/bin/env python3
"""The PyTorch twin of the coreattn model (docs/train.md, "The PyTorch twin"):
the same byte-level Llama-style decoder, parameter names and shapes, RoPE
(rotate-half, positions restarting at every document), RMSNorm, SwiGLU, untied
LM head, varlen causal attention per document, next-byte loss, AdamW, clipping
and schedule as the Go trainer, so that both can be run on the same initial
checkpoint and the same batches and compared step by step; and the speed
anchor.

  # train on our initial checkpoint and batches, one JSON line per step
  python3 scripts/twin.py --ckpt CKPT_DIR --batches batches.bin --steps 200 [--dtype bf16]
  # speed: tokens/s on fixed batches after warm-up
  python3 scripts/twin.py --ckpt CKPT_DIR --batches batches.bin --bench
  python3 scripts/twin.py --init small --fixed 8x2048 --bench          # the issue's anchor setting
  # self-test of the twin itself (float64 on the CPU): attention, RoPE,
  # gradients by finite differences, one AdamW step by hand
  python3 scripts/twin.py --selftest

Needs only torch (>= 1.13; SDPA, fused AdamW and FlexAttention are used where
the version has them); checkpoints and batches.bin are read by
scripts/coreattn_io.py.
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # no __pycache__ in the repository's scripts/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import coreattn_io as cio  # noqa: E402

PRESETS = {
    "tiny": dict(d=64, L=2, Hq=4, Hkv=2, Dh=16, F=192),
    "small": dict(d=384, L=6, Hq=6, Hkv=2, Dh=64, F=1024),
    "base": dict(d=768, L=12, Hq=12, Hkv=4, Dh=64, F=2048),
}
DEFAULT_LR = {"tiny": 3e-3, "small": 1e-3, "base": 6e-4}
VOCAB = 256


# ---------------------------------------------------------------- the model

def param_shapes(dims):
    """Canonical parameter names and shapes, in the canonical order."""
    d, L, Hq, Hkv, Dh, Ff, V = (dims[k] for k in ("d", "L", "Hq", "Hkv", "Dh", "F", "V"))
    shapes = {"tok_emb": (V, d)}
    for layer in range(L):
        p = f"layers.{layer}."
        shapes.update({p + "attn_norm": (d,), p + "wq": (Hq * Dh, d), p + "wk": (Hkv * Dh, d),
                       p + "wv": (Hkv * Dh, d), p + "wo": (d, Hq * Dh), p + "mlp_norm": (d,),
                       p + "w1": (Ff, d), p + "w3": (Ff, d), p + "w2": (d, Ff)})
    shapes["norm"] = (d,)
    shapes["lm_head"] = (V, d)
    return shapes


class Layer(torch.nn.Module):
    def __init__(self, dims):
        super().__init__()
        d, Hq, Hkv, Dh, Ff = (dims[k] for k in ("d", "Hq", "Hkv", "Dh", "F"))
        P = lambda *s: torch.nn.Parameter(torch.empty(*s))  # noqa: E731
        # Assignment order is registration order: the canonical order.
        self.attn_norm, self.wq, self.wk, self.wv, self.wo = P(d), P(Hq * Dh, d), P(Hkv * Dh, d), P(Hkv * Dh, d), P(d, Hq * Dh)
        self.mlp_norm, self.w1, self.w3, self.w2 = P(d), P(Ff, d), P(Ff, d), P(d, Ff)


class Twin(torch.nn.Module):
    def __init__(self, dims):
        super().__init__()
        self.dims = dims
        self.tok_emb = torch.nn.Parameter(torch.empty(dims["V"], dims["d"]))
        self.layers = torch.nn.ModuleList(Layer(dims) for _ in range(dims["L"]))
        self.norm = torch.nn.Parameter(torch.empty(dims["d"]))
        self.lm_head = torch.nn.Parameter(torch.empty(dims["V"], dims["d"]))

    def forward(self, b, attention):
        """Logits [T, V] of a prepared batch b (see prepare)."""
        dm = self.dims
        T, Hq, Hkv, Dh = b["tokens"].shape[0], dm["Hq"], dm["Hkv"], dm["Dh"]
        x = F.embedding(b["tokens"], self.tok_emb)
        cos, sin = b["cos"].to(x.dtype), b["sin"].to(x.dtype)
        for ly in self.layers:
            h = rmsnorm(x, ly.attn_norm, dm["eps"])
            q = F.linear(h, ly.wq).view(T, Hq, Dh)
            k = F.linear(h, ly.wk).view(T, Hkv, Dh)
            v = F.linear(h, ly.wv).view(T, Hkv, Dh)
            q, k = rope(q, cos, sin), rope(k, cos, sin)
            o = attention(q, k, v, b, 1.0 / math.sqrt(Dh))
            x = x + F.linear(o.reshape(T, Hq * Dh), ly.wo)
            h = rmsnorm(x, ly.mlp_norm, dm["eps"])
            x = x + F.linear(F.silu(F.linear(h, ly.w1)) * F.linear(h, ly.w3), ly.w2)
        return F.linear(rmsnorm(x, self.norm, dm["eps"]), self.lm_head)


def wide(x):
    """x in at least float32 (float64 stays float64)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def rmsnorm(x, w, eps):
    """x / sqrt(mean(x^2) + eps) * w, in at least float32."""
    xf = wide(x)
    return xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, cos, sin):
    """Rotate-half RoPE: y[i] = x[i] c - x[i+h] s, y[i+h] = x[i+h] c + x[i] s."""
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    c, s = cos[:, None, :].to(x.dtype), sin[:, None, :].to(x.dtype)
    return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1)


def loss_fn(logits, b):
    """Mean next-byte cross-entropy over the batch's targets (natural log)."""
    return F.cross_entropy(wide(logits), b["targets"], ignore_index=-100, reduction="sum") / max(1, b["n_targets"])


# ------------------------------------------------------------ attention

HAS_SDPA = hasattr(F, "scaled_dot_product_attention")


def _sdpa(q, k, v, scale, causal=True, mask=None):
    """q [B, H, S, D], k/v [B, H, S_k, D] (KV heads already repeated)."""
    if HAS_SDPA and q.dtype != torch.float64:
        try:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal and mask is None, scale=scale)
        except TypeError:  # torch 2.0: no scale argument
            q = q * (scale * math.sqrt(q.shape[-1]))
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal and mask is None)
    s = torch.matmul(q, k.transpose(-1, -2)) * scale
    if mask is None:
        n, m = s.shape[-2], s.shape[-1]
        mask = torch.ones(n, m, dtype=torch.bool, device=q.device).tril(m - n)
    s = s.masked_fill(~mask, float("-inf"))
    p = torch.softmax(wide(s), dim=-1).to(q.dtype)
    return torch.matmul(p, v)


def _heads(x, g):
    """[T, H, D] -> [1, H*g, T, D], query head h reading KV head h // g."""
    return x.repeat_interleave(g, dim=1).transpose(0, 1).unsqueeze(0)


def attn_loop(q, k, v, b, scale):
    """Causal attention per document; one call when every document has the same length."""
    g = q.shape[1] // k.shape[1]
    lens = b["lens"]
    if len(set(lens)) == 1:
        B, S = len(lens), lens[0]
        qb = q.view(B, S, *q.shape[1:]).transpose(1, 2)
        kb = k.view(B, S, *k.shape[1:]).repeat_interleave(g, dim=2).transpose(1, 2)
        vb = v.view(B, S, *v.shape[1:]).repeat_interleave(g, dim=2).transpose(1, 2)
        return _sdpa(qb, kb, vb, scale).transpose(1, 2).reshape(q.shape)
    outs, cu = [], b["cu"]
    for i in range(len(lens)):
        s, e = cu[i], cu[i + 1]
        o = _sdpa(_heads(q[s:e], 1), _heads(k[s:e], g), _heads(v[s:e], g), scale)
        outs.append(o[0].transpose(0, 1))
    return torch.cat(outs, dim=0)


def attn_mask(q, k, v, b, scale):
    """One call over the whole batch with a dense block-diagonal causal mask (T^2 memory)."""
    g = q.shape[1] // k.shape[1]
    doc = b["doc"]
    idx = torch.arange(doc.shape[0], device=doc.device)
    mask = (doc[:, None] == doc[None, :]) & (idx[None, :] <= idx[:, None])
    o = _sdpa(_heads(q, 1), _heads(k, g), _heads(v, g), scale, causal=False, mask=mask)
    return o[0].transpose(0, 1)


_flex = {}


def attn_flex(q, k, v, b, scale):
    """FlexAttention with a document-causal block mask (torch >= 2.5, compiled)."""
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    if "fn" not in _flex:
        _flex["fn"] = torch.compile(flex_attention, dynamic=False)
    doc = b["doc"]
    T = doc.shape[0]
    if b.get("block_mask") is None:
        b["block_mask"] = create_block_mask(lambda _b, _h, qi, ki: (doc[qi] == doc[ki]) & (ki <= qi),
                                            None, None, T, T, device=doc.device)
    o = _flex["fn"](q.transpose(0, 1).contiguous()[None], k.transpose(0, 1).contiguous()[None], v.transpose(0, 1).contiguous()[None],
                    block_mask=b["block_mask"], scale=scale, enable_gqa=True)
    return o[0].transpose(0, 1)


ATTENTION = {"loop": attn_loop, "mask": attn_mask, "flex": attn_flex}


def attn_naive(q, k, v, b, scale):
    """Row by row, head by head: the definition, for the self-test."""
    g = q.shape[1] // k.shape[1]
    o = torch.zeros_like(q)
    cu = b["cu"]
    for i in range(len(cu) - 1):
        for h in range(q.shape[1]):
            for r in range(cu[i], cu[i + 1]):
                s = (k[cu[i]:r + 1, h // g] @ q[r, h]) * scale
                o[r, h] = torch.softmax(s, 0) @ v[cu[i]:r + 1, h // g]
    return o


# ------------------------------------------------------------ data

def prepare(cu, tokens, dims, device):
    """Device tensors for one batch: tokens, positions inside documents,
    RoPE tables (angles in float64), targets, document ids."""
    cu = [int(c) for c in cu]
    T = cu[-1]
    lens = [cu[i + 1] - cu[i] for i in range(len(cu) - 1)]
    tok = torch.tensor(list(tokens), dtype=torch.long)
    doc = torch.repeat_interleave(torch.arange(len(lens)), torch.tensor(lens))
    pos = torch.arange(T) - torch.tensor(cu[:-1])[doc]
    half = dims["Dh"] // 2
    inv = dims["theta"] ** (-2.0 * torch.arange(half, dtype=torch.float64) / dims["Dh"])
    ang = pos.double()[:, None] * inv[None, :]
    tgt = torch.full((T,), -100, dtype=torch.long)
    tgt[:-1] = tok[1:]
    tgt[torch.tensor(cu[1:]) - 1] = -100
    return {"tokens": tok.to(device), "cu": cu, "lens": lens, "doc": doc.to(device),
            "cos": torch.cos(ang).to(device), "sin": torch.sin(ang).to(device),
            "targets": tgt.to(device), "n_targets": T - len(lens), "T": T}


def load_batches(path, dims, device, limit):
    out = []
    for cu, tokens in cio.iter_batches(path):
        if len(out) == limit:
            break
        out.append(prepare(cu, tokens, dims, device))
    return out


def fixed_batches(spec, dims, device, n, seed):
    """n batches of B documents of S random bytes each ("BxS")."""
    B, S = (int(x) for x in spec.lower().split("x"))
    gen = torch.Generator().manual_seed(seed)
    cu = [i * S for i in range(B + 1)]
    return [prepare(cu, torch.randint(0, VOCAB, (B * S,), generator=gen).tolist(), dims, device) for _ in range(n)]


# ------------------------------------------------------------ config

def _norm(k):
    return k.lower().replace("_", "").replace("-", "")


def find(cfg, aliases, sections=None):
    """The first non-dict value under one of aliases, breadth first through
    nested dicts (keys compared ignoring case, '_' and '-'); with sections,
    only inside dicts whose key is one of them."""
    want, secs = {_norm(a) for a in aliases}, sections and {_norm(s) for s in sections}
    queue = [(None, cfg)]
    while queue:
        key, d = queue.pop(0)
        if secs is None or (key is not None and _norm(key) in secs):
            for k, v in d.items():
                if _norm(k) in want and not isinstance(v, dict) and v is not None:
                    return v
        queue += [(k, v) for k, v in d.items() if isinstance(v, dict)]
    return None


def resolve_config(cfg, shapes, args):
    """Model dimensions (from the tensors where they fix them) and optimiser
    settings (config.json, flags, then MODEL_SPEC's defaults)."""
    V, d = shapes["tok_emb"]
    L = sum(1 for n in shapes if n.endswith(".attn_norm"))
    qd, kvd, Ff = shapes["layers.0.wq"][0], shapes["layers.0.wk"][0], shapes["layers.0.w1"][0]
    preset = first(args.init, find(cfg, ["preset"]))
    heads = first(args.heads, find(cfg, ["n_heads", "heads", "hq", "num_heads", "num_attention_heads", "n_head", "q_heads"]))
    head_dim = first(args.head_dim, find(cfg, ["head_dim", "dh", "d_head", "headdim"]))
    if head_dim is None and heads is None and preset in PRESETS:
        head_dim = PRESETS[preset]["Dh"]
    if head_dim is None and heads is None:
        sys.exit("twin: config.json names neither the heads nor the head dimension: pass --heads or --head-dim")
    Dh = int(head_dim) if head_dim else qd // int(heads)
    dims = dict(V=V, d=d, L=L, Hq=qd // Dh, Hkv=kvd // Dh, Dh=Dh, F=Ff,
                eps=float(first(find(cfg, ["norm_eps", "rms_eps", "rmsnorm_eps"]), 1e-5)),
                theta=float(first(find(cfg, ["rope_theta", "theta"]), 10000.0)))
    if dims["Hq"] * Dh != qd or dims["Hkv"] * Dh != kvd or dims["Hq"] % dims["Hkv"]:
        sys.exit(f"twin: head dimension {Dh} does not divide wq rows {qd} and wk rows {kvd} into grouped heads")
    if param_shapes(dims) != shapes:
        sys.exit("twin: the checkpoint's tensors are not the canonical list for these dimensions")
    osec = ["optim", "optimizer", "optimiser", "adamw", "train", "training", "schedule"]
    lr = first(args.lr, find(cfg, ["lr", "learning_rate", "max_lr", "peak_lr"]), DEFAULT_LR.get(preset))
    if lr is None:
        sys.exit("twin: config.json has no learning rate and no known preset: pass --lr")
    total = int(first(args.total_steps, find(cfg, ["total_steps", "max_steps", "train_steps", "steps"], osec),
                      find(cfg, ["total_steps", "max_steps", "train_steps"]), args.steps))
    opt = dict(lr=float(lr), total_steps=total,
               min_lr=float(first(args.min_lr, find(cfg, ["min_lr", "lr_min", "final_lr"]), 0.1 * float(lr))),
               warmup=int(first(args.warmup, find(cfg, ["warmup", "warmup_steps"]), min(100, total // 10))),
               beta1=float(first(find(cfg, ["beta1", "b1"]), 0.9)),
               beta2=float(first(find(cfg, ["beta2", "b2"]), 0.95)),
               eps=float(first(find(cfg, ["adam_eps", "adamw_eps"]), find(cfg, ["eps"], osec), 1e-8)),
               weight_decay=float(first(args.wd, find(cfg, ["weight_decay", "wd"]), 0.1)),
               clip=float(first(args.clip, find(cfg, ["clip", "max_norm", "grad_clip", "clip_norm", "max_grad_norm"]), 1.0)))
    return dims, opt


def first(*values):
    """The first value that is not None (0 counts as given)."""
    return next((v for v in values if v is not None), None)


def lr_at(t, o):
    """Step t = 1..total: linear warm-up lr*t/warmup, then cosine from lr to
    min_lr, reached at t = total."""
    if t <= o["warmup"]:
        return o["lr"] * t / o["warmup"]
    if o["total_steps"] <= o["warmup"]:
        return o["lr"]
    p = min(1.0, (t - o["warmup"]) / (o["total_steps"] - o["warmup"]))
    return o["min_lr"] + 0.5 * (o["lr"] - o["min_lr"]) * (1 + math.cos(math.pi * p))


# ------------------------------------------------------------ checkpoints

def read_tensors(path, dtype):
    tensors, _ = cio.read_safetensors(path)
    out = {}
    for name, (dt, shape, buf) in tensors.items():
        if dt != "F32":
            sys.exit(f"twin: {path}: tensor {name} is {dt}, not F32")
        t = torch.frombuffer(bytearray(buf), dtype=torch.float32) if len(buf) else torch.zeros(0)
        out[name] = t.reshape(shape).to(dtype)
    return out


def init_tensors(dims, seed, dtype):
    """MODEL_SPEC's initialisation in distribution (not the Go PRNG's values)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in param_shapes(dims).items():
        if len(shape) == 1:
            out[name] = torch.ones(shape, dtype=dtype)
        else:
            std = 0.02 / (math.sqrt(2 * dims["L"]) if name.endswith((".wo", ".w2")) else 1)
            out[name] = (torch.randn(shape, generator=g, dtype=torch.float64) * std).to(dtype)
    return out


def tensor_bytes(t):
    t = t.detach().float().cpu().contiguous()
    try:
        return t.numpy().tobytes()
    except Exception:  # torch without numpy
        import array
        return cio._le(array.array("f", t.flatten().tolist())).tobytes()


def save_tensors(path, named):
    cio.write_safetensors(path, [(n, list(t.shape), tensor_bytes(t)) for n, t in named], {"format": "pt"})


# ------------------------------------------------------------ training

def make_optimizer(model, o, device, fused):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    plain = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": o["weight_decay"]}, {"params": plain, "weight_decay": 0.0}]
    kw = dict(lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"])
    if fused and device.type == "cuda":
        try:
            return torch.optim.AdamW(groups, fused=True, **kw), True
        except (TypeError, RuntimeError):
            pass
    return torch.optim.AdamW(groups, **kw), False


def load_moments(opt, model, moments, step, fused):
    for name, p in model.named_parameters():
        st = opt.state[p]
        dev = p.device if fused else "cpu"
        st["step"] = torch.tensor(float(step), dtype=torch.float32, device=dev)
        st["exp_avg"] = moments["m." + name].to(p.device, p.dtype).clone()
        st["exp_avg_sq"] = moments["v." + name].to(p.device, p.dtype).clone()


def train_step(model, opt, b, attention, o, t, autocast):
    for g in opt.param_groups:
        g["lr"] = lr_at(t, o)
    opt.zero_grad(set_to_none=True)
    with autocast():
        logits = model(b, attention)
    loss = loss_fn(logits, b)
    loss.backward()
    return loss


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--ckpt", help="checkpoint directory (model.safetensors, config.json, optim.safetensors if any)")
    ap.add_argument("--init", choices=sorted(PRESETS), help="random weights of a preset instead of --ckpt (speed runs)")
    ap.add_argument("--seed", type=int, default=1, help="seed of --init and --fixed")
    ap.add_argument("--batches", help="batches.bin (step 1 is its first record; a checkpoint at step s skips s)")
    ap.add_argument("--fixed", metavar="BxS", help="B random documents of S bytes per step instead of --batches")
    ap.add_argument("--steps", type=int, default=10, help="steps to train (or to time with --bench)")
    ap.add_argument("--dtype", choices=["fp32", "bf16", "fp64"], default="fp32", help="fp32: TF32 off; bf16: autocast; fp64: the reference")
    ap.add_argument("--attn", choices=sorted(ATTENTION), default="loop")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--no-fused", action="store_true", help="foreach AdamW instead of fused")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--bench", action="store_true", help="time --steps steps on the first --bench-batches batches after --warmup steps")
    ap.add_argument("--warmup-steps", type=int, default=5)
    ap.add_argument("--bench-batches", type=int, default=4)
    ap.add_argument("--grads", help="write the first step's gradients (before clipping) to this safetensors file")
    ap.add_argument("--save", help="write the final weights and moments to this directory")
    ap.add_argument("--log", help="also append the JSON lines to this file")
    ap.add_argument("--heads", type=int)
    ap.add_argument("--head-dim", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--min-lr", type=float)
    ap.add_argument("--warmup", type=int, help="learning-rate warm-up steps")
    ap.add_argument("--total-steps", type=int, help="the run's length for the cosine schedule")
    ap.add_argument("--wd", type=float)
    ap.add_argument("--clip", type=float)
    ap.add_argument("--selftest", action="store_true")
    args = ap.parse_args()
    if args.selftest:
        sys.exit(selftest())
    if bool(args.ckpt) == bool(args.init):
        ap.error("give exactly one of --ckpt and --init")
    if bool(args.batches) == bool(args.fixed):
        ap.error("give exactly one of --batches and --fixed")

    device = torch.device(args.device)
    pdtype = torch.float64 if args.dtype == "fp64" else torch.float32
    tf32_off()
    logf = open(args.log, "a") if args.log else None

    def emit(rec):
        line = json.dumps(rec)
        print(line, flush=True)
        if logf:
            logf.write(line + "\n")
            logf.flush()

    cfg, step0, moments = {}, 0, None
    if args.ckpt:
        with open(os.path.join(args.ckpt, "config.json")) as f:
            cfg = json.load(f)
        weights = read_tensors(os.path.join(args.ckpt, "model.safetensors"), pdtype)
        step0 = int(cfg.get("step", 0) or 0)
        if step0 and os.path.exists(os.path.join(args.ckpt, "optim.safetensors")):
            moments = read_tensors(os.path.join(args.ckpt, "optim.safetensors"), pdtype)
        dims, o = resolve_config(cfg, {n: tuple(t.shape) for n, t in weights.items()}, args)
    else:
        p = PRESETS[args.init]
        shapes = param_shapes(dict(p, V=VOCAB))
        dims, o = resolve_config({"preset": args.init}, shapes, args)
        weights = init_tensors(dims, args.seed, pdtype)

    model = Twin(dims)
    with torch.no_grad():
        for name, prm in model.named_parameters():
            prm.data = weights[name].clone()
    model.to(device)
    opt, fused = make_optimizer(model, o, device, not args.no_fused)
    if moments is not None:
        load_moments(opt, model, moments, step0, fused)
    need = args.bench_batches if args.bench else args.steps
    if args.batches:
        batches = load_batches(args.batches, dims, device, step0 + need)[step0:]
    else:
        batches = fixed_batches(args.fixed, dims, device, need, args.seed)
    if not batches:
        sys.exit(f"twin: no batches left after skipping {step0}")
    attention = ATTENTION[args.attn]
    fwd = torch.compile(model) if args.compile else model
    if args.dtype == "bf16":
        autocast = lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)  # noqa: E731
    else:
        import contextlib
        autocast = contextlib.nullcontext
    params = list(model.parameters())
    n_params = sum(p.numel() for p in params)
    emit({"config": {"dims": dims, "optim": o, "start_step": step0, "dtype": args.dtype, "attn": args.attn,
                     "fused_adamw": fused, "compile": args.compile, "device": device_name(device),
                     "torch": torch.__version__, "params": n_params, "batches": len(batches)}})

    if args.bench:
        tokens = 0
        for i in range(args.warmup_steps + args.steps):
            if i == args.warmup_steps:
                sync(device)
                t0, tokens = time.perf_counter(), 0
            b = batches[i % len(batches)]
            train_step(fwd, opt, b, attention, o, step0 + i + 1, autocast)
            torch.nn.utils.clip_grad_norm_(params, o["clip"])
            opt.step()
            tokens += b["T"]
        sync(device)
        dt = time.perf_counter() - t0
        emit({"bench": {"tokens_per_s": tokens / dt, "ms_per_step": 1000 * dt / args.steps, "steps": args.steps,
                        "tokens": tokens, "params": n_params, "dtype": args.dtype, "attn": args.attn,
                        "device": device_name(device), "compile": args.compile, "fused_adamw": fused}})
        return

    for i in range(min(args.steps, len(batches))):
        t, b = step0 + i + 1, batches[i]
        sync(device)
        t0 = time.perf_counter()
        loss = train_step(fwd, opt, b, attention, o, t, autocast)
        if i == 0 and args.grads:
            save_tensors(args.grads, [(n, p.grad) for n, p in model.named_parameters()])
        gn = torch.nn.utils.clip_grad_norm_(params, o["clip"])
        opt.step()
        loss, gn = loss.item(), gn.item()
        sync(device)
        dt = time.perf_counter() - t0
        emit({"step": t, "loss": loss, "bpb": loss / math.log(2), "grad_norm": gn, "lr": lr_at(t, o),
              "tokens": b["T"], "docs": len(b["lens"]), "tokens_per_s": b["T"] / dt})
    if args.save:
        os.makedirs(args.save, exist_ok=True)
        named = list(model.named_parameters())
        save_tensors(os.path.join(args.save, "model.safetensors"), named)
        mom = [("m." + n, opt.state[p]["exp_avg"]) for n, p in named] + [("v." + n, opt.state[p]["exp_avg_sq"]) for n, p in named]
        save_tensors(os.path.join(args.save, "optim.safetensors"), mom)
        with open(os.path.join(args.save, "config.json"), "w") as f:
            json.dump(dict(cfg, step=step0 + min(args.steps, len(batches)), twin={"dims": dims, "optim": o}), f, indent=2)


def tf32_off():
    """float32 matmuls in IEEE float32 (no TF32), with whichever API this torch has."""
    if hasattr(torch.backends, "fp32_precision"):  # torch >= 2.9; mixing in the old flags is an error
        torch.backends.fp32_precision = "ieee"
        torch.backends.cuda.matmul.fp32_precision = "ieee"
        torch.backends.cudnn.fp32_precision = "ieee"
        torch.backends.cudnn.conv.fp32_precision = "ieee"
        torch.backends.cudnn.rnn.fp32_precision = "ieee"
        return
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device):
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


# ------------------------------------------------------------ self-test

def selftest():
    """Float64 checks of the twin against definitions written differently:
    returns 0 when all pass, printing one JSON line per check."""
    torch.manual_seed(0)
    dims = dict(PRESETS["tiny"], V=VOCAB, eps=1e-5, theta=10000.0)
    dims.update(L=2, d=32, Hq=4, Hkv=2, Dh=8, F=48)
    model = Twin(dims).double()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, dtype=torch.float64) * (0.3 if p.dim() > 1 else 1) + (1 if p.dim() == 1 else 0))
    cu = [0, 17, 18, 40, 71]
    tokens = torch.randint(0, VOCAB, (cu[-1],)).tolist()
    b = prepare(cu, tokens, dims, torch.device("cpu"))
    failures = []

    def check(name, err, tol):
        ok = err <= tol
        print(json.dumps({"check": name, "rel_err": err, "tol": tol, "ok": ok}))
        if not ok:
            failures.append(name)

    def rel(a, b):
        return ((a - b).norm() / b.norm()).item()

    T = cu[-1]
    q = torch.randn(T, 4, 8, dtype=torch.float64)
    k = torch.randn(T, 2, 8, dtype=torch.float64)
    v = torch.randn(T, 2, 8, dtype=torch.float64)
    ref = attn_naive(q, k, v, b, 0.35)
    check("attention loop vs definition", rel(attn_loop(q, k, v, b, 0.35), ref), 1e-12)
    check("attention mask vs definition", rel(attn_mask(q, k, v, b, 0.35), ref), 1e-12)
    bu = prepare([0, 10, 20, 30], tokens[:30], dims, torch.device("cpu"))
    check("attention uniform path vs definition", rel(attn_loop(q[:30], k[:30], v[:30], bu, 0.35), attn_naive(q[:30], k[:30], v[:30], bu, 0.35)), 1e-12)

    # RoPE element by element from MODEL_SPEC's formula.
    x = torch.randn(T, 2, 8, dtype=torch.float64)
    y = rope(x, b["cos"], b["sin"])
    want = torch.empty_like(x)
    for r in range(T):
        p = r - max(c for c in cu[:-1] if c <= r)
        for i in range(4):
            f = 10000.0 ** (-2 * i / 8)
            c, s = math.cos(p * f), math.sin(p * f)
            want[r, :, i] = x[r, :, i] * c - x[r, :, i + 4] * s
            want[r, :, i + 4] = x[r, :, i + 4] * c + x[r, :, i] * s
    check("rope vs formula", rel(y, want), 1e-14)

    # Loss: the targets of every document but its last row.
    logits = torch.randn(T, VOCAB, dtype=torch.float64)
    lsum, n = 0.0, 0
    for i in range(len(cu) - 1):
        for r in range(cu[i], cu[i + 1] - 1):
            lsum -= torch.log_softmax(logits[r], 0)[tokens[r + 1]].item()
            n += 1
    check("loss vs definition", abs(loss_fn(logits, b).item() - lsum / n) / (lsum / n), 1e-14)

    # Gradients: directional finite differences over all parameters.
    loss = loss_fn(model(b, attn_loop), b)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    dirs = [torch.randn_like(p) for p in model.parameters()]
    analytic = sum((g * d).sum() for g, d in zip(grads, dirs)).item()
    eps = 1e-6
    with torch.no_grad():
        for p, d in zip(model.parameters(), dirs):
            p.add_(eps * d)
        lp = loss_fn(model(b, attn_loop), b).item()
        for p, d in zip(model.parameters(), dirs):
            p.sub_(2 * eps * d)
        lm = loss_fn(model(b, attn_loop), b).item()
        for p, d in zip(model.parameters(), dirs):
            p.add_(eps * d)
    check("gradient vs central differences", abs((lp - lm) / (2 * eps) - analytic) / abs(analytic), 1e-7)

    # One clipped AdamW step (at step 3 of a run) by hand from MODEL_SPEC's formulas.
    o = dict(lr=2e-3, min_lr=2e-4, warmup=2, total_steps=10, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1, clip=0.5)
    opt, _ = make_optimizer(model, o, torch.device("cpu"), False)
    names = [n for n, _ in model.named_parameters()]
    m0 = {n: torch.randn_like(p) * 1e-3 for n, p in model.named_parameters()}
    v0 = {n: torch.rand_like(p) * 1e-6 for n, p in model.named_parameters()}
    load_moments(opt, model, {**{"m." + n: m0[n] for n in names}, **{"v." + n: v0[n] for n in names}}, 2, False)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss = train_step(model, opt, b, attn_loop, o, 3, __import__("contextlib").nullcontext)
    g = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    norm = math.sqrt(sum((x * x).sum().item() for x in g.values()))
    torch.nn.utils.clip_grad_norm_(list(model.parameters()), o["clip"])
    opt.step()
    lr = lr_at(3, o)
    coef = min(1.0, o["clip"] / (norm + 1e-6))
    worst = 0.0
    for n, p in model.named_parameters():
        gg = g[n] * coef
        wd = o["weight_decay"] if p.dim() >= 2 else 0.0
        m = 0.9 * m0[n] + 0.1 * gg
        vv = 0.95 * v0[n] + 0.05 * gg * gg
        want = before[n] * (1 - lr * wd) - lr * (m / (1 - 0.9 ** 3)) / ((vv / (1 - 0.95 ** 3)).sqrt() + 1e-8)
        worst = max(worst, rel(p.detach() - before[n], want - before[n]))
    check("AdamW step vs formula (update, worst tensor)", worst, 1e-10)

    # The schedule's shape.
    lrs = [lr_at(t, o) for t in range(1, 11)]
    ok = (abs(lrs[0] - o["lr"] / 2) < 1e-15 and abs(lrs[1] - o["lr"]) < 1e-15 and abs(lrs[-1] - o["min_lr"]) < 1e-15
          and all(a >= b for a, b in zip(lrs[1:], lrs[2:])))
    check("schedule: warm-up to lr, cosine to min_lr at the last step", 0.0 if ok else 1.0, 0.0)
    print(json.dumps({"selftest": "fail" if failures else "ok", "failed": failures}))
    return 1 if failures else 0


if __name__ == "__main__":
    main()
