#!/usr/bin/env bash
# Issue 22's GPU measurements in one device call: 4 logical ranks on one GPU,
# small and base on the default corpus with its documents uncut (the long ones
# continue across ranks and make attention unequal), packing against CAD from
# the same seed and batches (coreattn train --compare), with and without
# ping-pong. Prepare here, then run on the accelerator machine from the repo
# root with .dev carried:
#
#   scripts/cad_gpu.sh prepare      # .dev/coreattn and .dev/gosrc.tar.xz (scripts/train_gpu.sh prepare)
#   scripts/cad_gpu.sh run OUT      # ~4 min on one H100
#
# Per preset and ping-pong setting it reports each rank's attention time with
# packing and with CAD, the measured imbalance (max/mean) beside the plan's
# prediction, each rank's step split into linear, attention, transfer and
# waiting, the largest wait as a share of the step (issue 22's bar: at most
# 10% with CAD), and the step time projected for 4 GPUs from the measured
# per-rank figures (a projection: ranks in parallel, meeting at every attention
# phase, rows over a LINK_GBPS link). The ranks share the GPU, so their work
# runs one after another and their waits are projected the same way.
#
# A measured attention profile of each preset's head shape (coreattn profile)
# gives the scheduler its cost model where it finishes within PROFILE_TIMEOUT
# seconds (default 40; 0 skips it and uses the FLOP model).
#
# Environment: PRESETS (default "small base"), SMALL_T and BASE_T (tokens per
# rank; default 16384 and 8192), STEPS (per mode, default 6: two warm-up steps
# are left out of the means), LINK_GBPS (default 25), GOROOT_DIR (as
# train_gpu.sh). OUT gets cad.json (everything), cad.txt (the tables),
# balance-small.png, balance-base.png, devices.txt, errors.txt, and cad.jsonl
# (one line per finished run, written as it goes, so a run cut short keeps
# what it measured).
set -uo pipefail
stage=${1:?usage: scripts/cad_gpu.sh prepare|run [OUT]}
bin=${COREATTN:-.dev/coreattn}

case $stage in
prepare)
	exec scripts/train_gpu.sh prepare
	;;
run) ;;
*)
	echo "unknown stage $stage" >&2
	exit 2
	;;
esac

out=${2:?usage: scripts/cad_gpu.sh run OUT}
mkdir -p "$out"
err="$out/errors.txt"
: > "$err"
: > "$out/cad.jsonl"
"$bin" devices > "$out/devices.txt" 2>&1
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw,memory.total --format=csv >> "$out/devices.txt" 2>&1 || true
goroot=${GOROOT_DIR:-/usr/local/go}
if [ ! -d "$goroot/src" ]; then
	mkdir -p "$goroot"
	python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' .dev/gosrc.tar.xz "$goroot" || exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
steps=${STEPS:-6}
link=${LINK_GBPS:-25}
ptimeout=${PROFILE_TIMEOUT:-30}

for p in ${PRESETS:-small base}; do
	case $p in
	small) T=${SMALL_T:-16384} heads="--heads 6 --kv-heads 2 --head-dim 64" ;;
	base) T=${BASE_T:-8192} heads="--heads 12 --kv-heads 4 --head-dim 64" ;;
	tiny) T=${TINY_T:-256} heads="--heads 4 --kv-heads 2 --head-dim 16" ;; # a rehearsal on lavapipe
	*) echo "unknown preset $p" >&2; continue ;;
	esac
	prof=()
	if [ "$ptimeout" != 0 ]; then
		start=$(date +%s)
		if timeout "$ptimeout" "$bin" profile $heads --reps 2 --out "$work/$p-profile.json" > /dev/null 2>> "$err"; then
			prof=(--profile "$work/$p-profile.json")
			echo "$p: profile in $(($(date +%s) - start)) s" >&2
		else
			echo "$p: no profile within ${ptimeout}s: the FLOP model plans" | tee -a "$err" >&2
		fi
	fi
	for pp in on off; do
		flags=()
		[ $pp = off ] && flags=(--no-pingpong)
		plot=()
		[ $pp = on ] && plot=(--plot "$out/balance-$p.png")
		start=$(date +%s)
		"$bin" train --preset "$p" --ranks 4 --tokens-per-rank "$T" --steps "$steps" --compare --json --progress=false \
			--link-gbps "$link" --out "$work/$p-$pp" "${prof[@]}" "${flags[@]}" "${plot[@]}" 2>> "$err" |
			python3 -c 'import json, sys; r = json.load(sys.stdin); r["preset"] = sys.argv[1]; r["profiled"] = sys.argv[2] == "1"; print(json.dumps(r))' \
				"$p" "${#prof[@]}" >> "$out/cad.jsonl" || echo "$p ping-pong $pp failed (see errors.txt)" >&2
		echo "$p ping-pong $pp: $(($(date +%s) - start)) s" >&2
	done
done

python3 - "$out/cad.jsonl" "$out/cad.json" <<'PY' | tee "$out/cad.txt"
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
json.dump(runs, open(sys.argv[2], "w"), indent=1)
by = {}
for r in runs:
    by[(r["preset"], r["pingpong"])] = r
for r in runs:
    pack, cad = r["modes"]
    print(f"== {r['preset']}: {r['model']}, {r['ranks']} ranks x {r['tokens_per_rank']} tokens, ping-pong {'on' if r['pingpong'] else 'off'}, "
          f"cost model {'measured profile' if r['profiled'] else 'FLOP model'}; {r['adapters']}")
    print(f"   per rank, ms per step ({cad['measured_steps']} steps after the warm-up); waits projected (the ranks share the GPU)")
    print("   rank | attention: packing  CAD | CAD: linear  attention  transfer  wait")
    for i, (a, b) in enumerate(zip(pack["ranks"], cad["ranks"])):
        print(f"   {i:4} | {a['attention_ms']:17.1f} {b['attention_ms']:5.1f} | {b['linear_ms']:11.1f} {b['attention_ms']:10.1f} {b['transfer_ms']:9.1f} {b['wait_ms']:5.1f}")
    for m in (pack, cad):
        print(f"   {m['mode']:7}: imbalance {m['imbalance_measured']:.3f} measured, {m['imbalance_predicted']:.3f} predicted; "
              f"largest wait {100*m['max_wait_share']:.1f}% of the projected step; moved {m['bytes_moved_per_step']/1e6:.1f} MB per step; "
              f"one GPU runs the 4 ranks' step in {m['step_ms']:.0f} ms")
    bar = "PASS" if cad["max_wait_share"] <= 0.10 else "FAIL"
    print(f"   CAD: no rank waits more than 10% of the step on attention or transfer: {bar} ({100*cad['max_wait_share']:.1f}%)")
    print(f"   PROJECTION for {r['ranks']} GPUs (measured per-rank figures, link {r['link_gbps']} GB/s): packing {pack['projected_parallel_ms']:.1f} ms, "
          f"CAD {cad['projected_parallel_ms']:.1f} ms per step: {r['projected_speedup']:.2f}x; losses agree to {r['loss_max_rel_diff']:.1e}")
for p in sorted({r["preset"] for r in runs}):
    on, off = by.get((p, True)), by.get((p, False))
    if on and off:
        c_on, c_off = on["modes"][1], off["modes"][1]
        print(f"== {p}: ping-pong with CAD: one GPU {c_off['step_ms']:.0f} -> {c_on['step_ms']:.0f} ms per step; "
              f"projected for 4 GPUs {c_off['projected_parallel_ms']:.1f} -> {c_on['projected_parallel_ms']:.1f} ms "
              f"(the projection credits no overlap: on one queue ping-pong can only hide host transfers, which one GPU has none of)")
PY
