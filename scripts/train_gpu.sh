#!/usr/bin/env bash
# Issue 20's GPU measurements, one device call per stage. Prepare here (any
# machine with Go and the Go distribution), then run a stage on the
# accelerator machine from the repo root with .dev carried:
#
#   scripts/train_gpu.sh prepare     # .dev/coreattn and .dev/gosrc.tar.xz (the default corpus, ~12 MB)
#   scripts/train_gpu.sh speed OUT   # tokens/s, MFU and breakdown of small and base, beside the twin (fp32, bf16)   ~4 min
#   scripts/train_gpu.sh twin OUT    # small, 200 steps, ours and the twin from the same init and batches            ~3 min
#   scripts/train_gpu.sh base OUT    # base for 8 minutes on the default corpus, validation vs xz -9, a sample        ~9.5 min
#   scripts/train_gpu.sh host OUT    # small and base at --max-doc 2048 and uncut: steps run ahead vs one at a time    ~2 min
#
# The device has no Go: the corpus travels as .dev/gosrc.tar.xz and is
# unpacked where the binary looks for GOROOT (/usr/local/go, as built here),
# so the corpus, its validation split and its identity are the same as here.
# Environment: PRESETS (speed; default "small base"), OURS_ARGS (speed: extra
# train flags on our side, e.g. "--max-doc 2048" to match the twin's 8x2048),
# KERNELS (speed; default "ffma": FFMA on go-webgpu; "ffma tensor-core" adds
# f16 operands on tensor cores over Dawn, whose dawn.node prepare packs into
# .dev/dawn.node.xz where scripts/dawn.sh has installed it), BASE_TIME (default 8m), BASE_ARGS (extra train flags, e.g.
# "--lr 1e-3"), XZ_BPB (default 1.831: scripts/xz_bpb.py on go1.26.8),
# GOROOT_DIR (default /usr/local/go, where the binary built here looks).
# Each stage leaves at most 7 files in OUT (the device returns 8).
set -uo pipefail
stage=${1:?usage: scripts/train_gpu.sh prepare|speed|twin|base|host [OUT]}
bin=${COREATTN:-.dev/coreattn}
xz_bpb=${XZ_BPB:-1.831}

corpus() {
	goroot=${GOROOT_DIR:-/usr/local/go}
	[ -d "$goroot/src" ] && return
	mkdir -p "$goroot"
	python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' .dev/gosrc.tar.xz "$goroot" || exit 1
	echo "corpus: unpacked into $goroot" >&2
}

case $stage in
prepare)
	mkdir -p .dev
	CGO_ENABLED=1 go build -ldflags='-s -w' -o .dev/coreattn ./cmd/coreattn || exit 1
	root=$(go env GOROOT)
	(cd "$root" && find src -name '*.go' -print0 | tar --null -cf - VERSION -T - | xz -6 -T0 > "$OLDPWD/.dev/gosrc.tar.xz") || exit 1
	node=$(bash scripts/dawn.sh 2>/dev/null) && [ -f "$node" ] && xz -6 -T0 -c "$node" > .dev/dawn.node.xz
	ls -la .dev
	exit 0
	;;
esac

out=${2:?usage: scripts/train_gpu.sh $stage OUT}
mkdir -p "$out"
# Dawn only where tensor cores are asked for: with it present, the other
# runs' automatic runtime would change.
if [[ " ${KERNELS:-} " == *" tensor-core "* ]] && [ -f .dev/dawn.node.xz ] && [ -z "${COREATTN_DAWN:-}" ]; then
	python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' .dev/dawn.node.xz .dev/dawn.node || exit 1
	export COREATTN_DAWN=$PWD/.dev/dawn.node
fi
"$bin" devices > "$out/devices.txt" 2>&1
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw --format=csv >> "$out/devices.txt" 2>&1 || true
corpus

case $stage in
speed)
	# Ours: real packed batches of 16384 tokens; the twin: the issue's anchor
	# (8 sequences of 2048 bytes) and, for small, our own batches.
	err="$out/errors.txt"
	presets=${PRESETS:-small base}
	for p in $presets; do
		for k in ${KERNELS:-ffma}; do
			rt=go-webgpu
			[ "$k" = tensor-core ] && rt=dawn
			"$bin" train --runtime $rt --kernels $k --bench --preset "$p" ${OURS_ARGS:-} --json 2>> "$err" |
				sed "s/^{/{\"who\":\"ours\",\"args\":\"${OURS_ARGS:-}\",/" >> "$out/speed.jsonl" || echo "ours $p $k failed" >&2
		done
		for dt in fp32 bf16; do
			python3 scripts/twin.py --init "$p" --fixed 8x2048 --bench --steps 20 --dtype "$dt" 2>> "$err" | tail -1 |
				sed "s/^{/{\"who\":\"twin\",\"preset\":\"$p\",\"dtype\":\"$dt\",\"batches\":\"8x2048\",/" >> "$out/speed.jsonl" || echo "twin $p $dt failed" >&2
		done
	done
	p=${presets%% *}
	"$bin" train --preset "$p" --steps 12 --val-every 0 --ckpt-every 0 --progress=false --dump-init --dump-batches --out "$out/run" > /dev/null 2>> "$err"
	python3 scripts/twin.py --ckpt "$out/run/init" --batches "$out/run/batches.bin" --bench --steps 7 --dtype fp32 2>> "$err" | tail -1 |
		sed "s/^{/{\"who\":\"twin\",\"preset\":\"$p\",\"dtype\":\"fp32\",\"batches\":\"ours\",/" >> "$out/speed.jsonl"
	rm -rf "$out/run"
	python3 - "$out/speed.jsonl" <<'PY' | tee "$out/speed.txt"
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["who"] == "ours":
        g = r.get("gpu_ms", {})
        print(f"ours  {r.get('preset') or r['model']:6} {r.get('kernels', 'ffma'):11} {r['tokens_per_s']:>10.0f} tokens/s  MFU {100*r['mfu']:.1f}% of {r['fma_peak_tflops']:.3g} TFLOP/s  "
              + "  ".join(f"{k} {v:.1f} ms" for k, v in sorted(g.items())))
    else:
        b = r.get("bench", r)
        print(f"twin  {r['preset']:6} {b.get('tokens_per_s', float('nan')):>10.0f} tokens/s  {r['dtype']} on {r['batches']} batches")
PY
	;;
twin)
	"$bin" train --preset small --steps 200 --val-every 0 --ckpt-every 0 --progress=false --dump-init --dump-batches --out "$out/run" 2> "$out/errors.txt" | tail -3
	python3 scripts/twin.py --ckpt "$out/run/init" --batches "$out/run/batches.bin" --steps 200 --dtype fp32 --log "$out/twin.jsonl" > /dev/null 2>> "$out/errors.txt"
	cp "$out/run/log.jsonl" "$out/ours.jsonl"
	python3 scripts/train_compare.py "$out/ours.jsonl" "$out/twin.jsonl" | tee "$out/compare.json"
	cp "$out/run/loss.png" "$out/loss.png"
	rm -rf "$out/run"
	;;
base)
	"$bin" train --preset base --time "${BASE_TIME:-8m}" --val-every 100 --val-batches 8 --ckpt-every 0 \
		--xz-bpb "$xz_bpb" --out "$out/run" ${BASE_ARGS:-} 2>&1 | tee "$out/train.txt"
	"$bin" sample --ckpt "$out/run/checkpoint" --prompt 'func main() {' --length 400 > "$out/sample.txt" 2>&1
	cat "$out/sample.txt"
	cp "$out/run/log.jsonl" "$out/log.jsonl"
	cp "$out/run/loss.png" "$out/loss.png"
	cp "$out/run/checkpoint/config.json" "$out/config.json"
	rm -rf "$out/run"
	;;
host)
	# Each bench: steps submitted ahead of the previous one's results
	# (step_ms, tokens/s), the host's own time per step (host_ms), the
	# step one at a time (sync_step_ms) and the GPU's (gpu_ms, timestamps).
	for p in ${PRESETS:-small base}; do
		for cut in 2048 0; do
			"$bin" train --bench --preset "$p" --max-doc "$cut" --json 2>> "$out/errors.txt" |
				sed "s/^{/{\"max_doc\":$cut,/" >> "$out/host.jsonl" || echo "$p --max-doc $cut failed" >&2
		done
	done
	python3 - "$out/host.jsonl" <<'PY' | tee "$out/host.txt"
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    g = sum(r.get("gpu_ms", {}).values())
    print(f"{r.get('preset') or r['model']:6} max-doc {r['max_doc']:>4}: {r['tokens_per_s']:>8.0f} tokens/s  step {r['step_ms']:.1f} ms  "
          f"host {r['host_ms']:.1f} ms  one at a time {r['sync_step_ms']:.1f} ms  GPU (timestamps) {g:.1f} ms")
PY
	;;
*)
	echo "unknown stage $stage" >&2
	exit 2
	;;
esac
