#!/usr/bin/env bash
# scripts/cgocheck.sh: keep the cgo line where it is.
#
# Only the packages in the allow-list below link cgo (go-webgpu, and through
# it wgpu-native). Every other package of the module, tests included, must
# build with CGO_ENABLED=0, so that a planner, the simulator, the pool or a
# remote-server client never links the GPU runtime. The check fails when
#   - a package outside the list reaches a cgo package (its own import "C",
#     or an import of one of the listed packages or another cgo module), or
#   - a listed package no longer needs cgo (drop it from the list), or
#   - CGO_ENABLED=0 go build / go vet fails for the pure packages.
# `make lint` runs it; CI runs `make lint`.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}

# The cgo packages, relative to the module path: the runtimes (wgpu and its
# two implementations, go-webgpu and Dawn, which has a stub for builds
# without cgo but links C with it; the Vulkan property reader and the poll
# pause), the test harness that runs tests over both, and what runs on them
# (the attention operator, the local attention server, matrix products, the
# trainer's step, the GEMM tensor-core harness, the command line).
cgo_allowed=(
	attention/gpu
	cmd/coreattn
	disagg/local
	gemm
	model/train
	wgpu
	wgpu/internal/dawn
	wgpu/internal/dawnbackend
	wgpu/internal/dawngemm
	wgpu/internal/gowebgpu
	wgpu/internal/pause
	wgpu/internal/vulkan
	wgpu/wgputest
)

mod=$($GO list -m)
allowed() {
	local p
	for p in "${cgo_allowed[@]}"; do
		[ "$mod/$p" = "$1" ] && return 0
	done
	return 1
}

pkgs=$($GO list ./...)
fail=0
pure=()
for pkg in $pkgs; do
	# The non-standard packages with cgo files that pkg or its tests reach
	# (the standard library's optional cgo, as in net, does not count).
	cgo=$(CGO_ENABLED=1 $GO list -deps -test \
		-f '{{if and (not .Standard) .CgoFiles (not .ForTest)}}{{.ImportPath}}{{end}}' "$pkg" | sort -u)
	if allowed "$pkg"; then
		if [ -z "$cgo" ]; then
			echo "cgocheck: ${pkg#"$mod"/} is in the cgo allow-list but needs no cgo: remove it from scripts/cgocheck.sh" >&2
			fail=1
		fi
		continue
	fi
	pure+=("$pkg")
	if [ -n "$cgo" ]; then
		# Name the culprit: its own cgo files, else the listed packages it
		# imports, else the cgo packages it reaches.
		via=$($GO list -deps -test -f '{{.ImportPath}}' "$pkg" | sort -u | while read -r d; do
			if allowed "$d"; then echo "${d#"$mod"/}"; fi
		done)
		if grep -qx "$pkg" <<<"$cgo"; then
			via='its own import "C"'
		fi
		echo "cgocheck: pure package ${pkg#"$mod"/} links cgo through: $(echo ${via:-$cgo})" >&2
		fail=1
	fi
done
[ "$fail" -eq 0 ] || exit 1

CGO_ENABLED=0 $GO build "${pure[@]}"
CGO_ENABLED=0 $GO vet "${pure[@]}"
echo "cgocheck: ${#pure[@]} pure packages build and vet with CGO_ENABLED=0; cgo only in: ${cgo_allowed[*]}"
