"""Join coreattn bench JSON lines with sdpa_anchor.py's on (pass, shape) and
print a Markdown table of TFLOP/s and the ratio to PyTorch fp32 (the best of
its fp32 backends at that shape, as the issue's anchor figures are)."""
import json, sys, os

def load(path):
    rows = []
    if os.path.exists(path):
        for line in open(path):
            line = line.strip()
            if line.startswith("{"):
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    pass
    return rows

ours, torch = load(sys.argv[1]), load(sys.argv[2]) if len(sys.argv) > 2 else []

def norm(shape):
    # The varlen anchor names its batch with different counts; join varlen rows by kind.
    return "CA-tasks" if "CA-tasks" in shape else shape

best = {}
for r in torch:
    if r.get("dtype") != "float32" or "tflops" not in r:
        continue
    key = (r["pass"], norm(r["shape"]))
    if key not in best or r["tflops"] > best[key]["tflops"]:
        best[key] = r
print("| variant | dtype | tiling | pass | shape | ms | TFLOP/s | PyTorch fp32 TFLOP/s | ratio |")
print("|---|---|---|---|---|---|---|---|---|")
for r in ours:
    t = best.get((r["pass"], norm(r["shape"])))
    tt = f'{t["tflops"]:.2f} ({t["impl"]})' if t else "-"
    ratio = f'{r["tflops"] / t["tflops"]:.3f}' if t else "-"
    print(f'| {r.get("variant","")} | {r.get("dtype","")} | {r.get("tiling","")} | {r["pass"]} | {r["shape"]} | {r["ms"]:.3f} | {r["tflops"]:.2f} | {tt} | {ratio} |')
