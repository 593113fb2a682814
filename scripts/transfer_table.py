#!/usr/bin/env python3
"""Prints `coreattn bench transfer --json` lines as markdown tables beside
the PCIe ceiling that memcpy_anchor.py measured on the same machine.

    python3 scripts/transfer_table.py transfer.jsonl [memcpy.jsonl] [sweep.jsonl]

Table 1: the staged path per adapter, mode and size (GB/s each way, and
an upload and a download at once). Table 2: every upload method. Table 3:
the sweep lines (those with a "sweep" key: engine options at one size).
The anchor's figures are CUDA pinned (and pageable) memcpy; Vulkan and CUDA
may number the GPUs differently, so the ceiling is given as the range over
GPUs of the same mode.
"""
import json
import sys
from collections import defaultdict


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


def size(b):
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if b >= scale and b % scale == 0:
            return f"{b // scale} {unit}"
    return f"{b} B"


def ceiling(anchor, mode, direction):
    """The pinned memcpy range over GPUs for an alone/together run."""
    vals = [r["gb_per_s"] for r in anchor
            if r.get("memory") == "pinned" and r["direction"] == direction
            and (("alone" in r["gpu"]) == (mode == "alone"))]
    if not vals:
        return "-"
    lo, hi = min(vals), max(vals)
    return f"{lo:.1f}" if lo == hi else f"{lo:.1f}-{hi:.1f}"


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    ours = read(sys.argv[1])
    anchor = read(sys.argv[2]) if len(sys.argv) > 2 else []
    sweep = read(sys.argv[3]) if len(sys.argv) > 3 else []
    measured = [r for r in ours if not r.get("skipped")]
    for r in ours:
        if r.get("skipped"):
            print(f"skipped: [{r['index']}] {r['adapter']} {size(r['bytes'])}: {r['skipped']}")
        if r.get("error"):
            print(f"ERROR: [{r['index']}] {r['adapter']} {r.get('mode')} {size(r['bytes'])} "
                  f"{r.get('direction')} {r.get('method')}: {r['error']}")

    print("\n## Staged path (GB/s; both = upload and download at once)\n")
    print("| adapter | mode | size | up | down | both: up | both: down | ceiling up | ceiling down |")
    print("|---|---|---|---|---|---|---|---|---|")
    cells = defaultdict(dict)
    for r in measured:
        if r.get("method") != "staged" and r["direction"] == "host-to-device":
            continue
        cells[(r["index"], r["adapter"], r["mode"], r["bytes"])][r["direction"]] = r
    for (index, adapter, mode, b), c in sorted(cells.items(), key=lambda kv: (kv[0][2] != "alone", kv[0][0], kv[0][3])):
        up, down, both = c.get("host-to-device"), c.get("device-to-host"), c.get("both")
        f = lambda r, k="gb_per_s": f"{r[k]:.2f}" if r and not r.get("error") else "-"
        print(f"| [{index}] {adapter} | {mode} | {size(b)} | {f(up)} | {f(down)} | "
              f"{f(both, 'up_gb_per_s')} | {f(both, 'down_gb_per_s')} | "
              f"{ceiling(anchor, mode, 'host-to-device')} | {ceiling(anchor, mode, 'device-to-host')} |")

    print("\n## Upload methods (GB/s host to device; per transfer: host copy / submit / wait ms)\n")
    print("| adapter | mode | size | method | GB/s | ms | host copy | submit | wait |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in measured:
        if r["direction"] != "host-to-device" or r.get("error"):
            continue
        print(f"| [{r['index']}] {r['adapter']} | {r['mode']} | {size(r['bytes'])} | {r['method']} | "
              f"{r['gb_per_s']:.2f} | {r['ms']:.3f} | {r['host_copy_ms']:.3f} | {r['submit_ms']:.3f} | {r['wait_ms']:.3f} |")

    if sweep:
        print("\n## Engine options (one size, alone)\n")
        print("| adapter | options | size | direction | GB/s | chunk | depth | copiers | host copy | submit | wait |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in sweep:
            if r.get("skipped") or r.get("error"):
                continue
            print(f"| [{r['index']}] {r['adapter']} | {r['sweep']} | {size(r['bytes'])} | {r['direction']} | "
                  f"{r['gb_per_s']:.2f} | {size(r['chunk_bytes'])} | {r['depth']} | {r['copiers']} | "
                  f"{r['host_copy_ms']:.3f} | {r['submit_ms']:.3f} | {r['wait_ms']:.3f} |")
    if anchor:
        print("\n## Anchor (CUDA memcpy through PyTorch)\n")
        print("| memory | gpu | direction | GB/s |")
        print("|---|---|---|---|")
        for r in anchor:
            print(f"| {r['memory']} | {r['gpu']} | {r['direction']} | {r['gb_per_s']:.2f} |")


if __name__ == "__main__":
    main()
