"""Bits per byte that xz -9 achieves on the validation split: the bar a trained
model's validation loss (in bits per byte, loss / ln 2) has to beat.

  python3 scripts/xz_bpb.py                         # the default corpus (the Go distribution)
  python3 scripts/xz_bpb.py --data DIR_OR_JSONL --val-percent 2
  python3 scripts/xz_bpb.py --val FILE              # validation documents already written

The split is the trainer's own: unless --val is given, the script runs
`go run scripts/corpusdump.go -val FILE` (package corpus: fnv1a64(path) % 100 <
val_percent), so Python never re-implements it. The validation documents are
concatenated in path order and compressed whole; bits per byte =
8 * compressed / raw. Cutting (--max-doc) does not change the concatenation,
so it is not a flag here. Compressing the concatenation lets xz use context
across documents, which the model cannot: the bar is, if anything, strict.

It reports Python's lzma (liblzma, preset 9, the XZ container: what `xz -9`
writes) and, where the xz program is installed, `xz -9 -T1` itself.
"""
import argparse
import json
import lzma
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def validation_bytes(args):
    if args.val:
        with open(args.val, "rb") as f:
            return f.read()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "val.txt")
        cmd = ["go", "run", os.path.join(HERE, "corpusdump.go"), "-val", out,
               "-val-percent", str(args.val_percent)]
        if args.data:
            cmd += ["-data", args.data]
        subprocess.run(cmd, check=True, cwd=os.path.dirname(HERE))
        with open(out, "rb") as f:
            return f.read()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="", help="directory or JSONL file (default: the Go distribution)")
    ap.add_argument("--val-percent", type=int, default=2)
    ap.add_argument("--val", help="a file of validation documents written by corpusdump.go -val")
    args = ap.parse_args()

    raw = validation_bytes(args)
    if not raw:
        sys.exit("xz_bpb: the validation split is empty")
    packed = lzma.compress(raw, format=lzma.FORMAT_XZ, preset=9)
    result = {"raw_bytes": len(raw), "lzma_bytes": len(packed), "bpb": 8 * len(packed) / len(raw)}
    xz = shutil.which("xz")
    if xz:
        out = subprocess.run([xz, "-9", "-T1", "-c"], input=raw, stdout=subprocess.PIPE, check=True).stdout
        result["xz_bytes"] = len(out)
        result["xz_bpb"] = 8 * len(out) / len(raw)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
