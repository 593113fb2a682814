#!/usr/bin/env python3
"""Compare a `coreattn train` run with scripts/twin.py on the same initial
checkpoint and batches (issue 20's twin check): the first step's loss must
agree to 1e-5 relative, and the mean loss of the last 20 steps to 1%.

  python3 scripts/train_compare.py OURS/log.jsonl twin.jsonl

Both files hold one JSON object per line with "step" and "loss" (the twin's
first line, its config, has no step and is skipped). Prints a JSON summary;
exits 1 when a bar is missed, 2 on bad input.
"""
import json
import sys


def losses(path):
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            rec = json.loads(line)
            if "step" in rec and "loss" in rec:
                out[int(rec["step"])] = float(rec["loss"])
    return out


def main(argv):
    if len(argv) != 3:
        sys.exit(__doc__)
    ours, twin = losses(argv[1]), losses(argv[2])
    steps = sorted(set(ours) & set(twin))
    if not steps or steps[0] != 1:
        print(f"train_compare: no common steps from 1 ({len(ours)} ours, {len(twin)} twin)", file=sys.stderr)
        return 2
    rel = [abs(ours[s] - twin[s]) / abs(twin[s]) for s in steps]
    tail = steps[-20:]
    mo, mt = sum(ours[s] for s in tail) / len(tail), sum(twin[s] for s in tail) / len(tail)
    summary = {
        "steps": len(steps),
        "first_loss": {"ours": ours[1], "twin": twin[1], "rel": rel[0]},
        "last20_mean": {"ours": mo, "twin": mt, "rel": abs(mo - mt) / abs(mt)},
        "max_step_rel": max(rel),
        "first_ok": rel[0] <= 1e-5,
        "curve_ok": abs(mo - mt) / abs(mt) <= 0.01,
    }
    print(json.dumps(summary))
    return 0 if summary["first_ok"] and summary["curve_ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
