#!/usr/bin/env bash
# scripts/dawn.sh: install or locate a Dawn library for coreattn's second
# WebGPU runtime (package wgpu/internal/dawn), which gives WGSL f16, subgroups
# and subgroup matrices (tensor cores). coreattn never needs it to build or
# run: without Dawn it uses go-webgpu.
#
#   bash scripts/dawn.sh              install or locate Dawn; print its path
#   bash scripts/dawn.sh --lavapipe   also fetch Mesa 25's lavapipe for the
#                                     Dawn tests on Debian 12 (see below)
#
# Where Dawn comes from, first that applies:
#   1. $COREATTN_DAWN, if set (a file or a directory holding one).
#   2. Debian's libwebgpu-dawn0, where apt offers it and glibc is new enough
#      (>= 2.43: Debian sid and later; not Debian 12). Installed as root,
#      otherwise the apt-get command is printed.
#   3. npm's webgpu@0.6.2 (the package's dawn.node, which runs on glibc 2.36):
#      `npm pack`, SHA-256 checked, unpacked into the cache directory
#      ${XDG_CACHE_HOME:-$HOME/.cache}/coreattn/dawn, where the runtime looks.
#      Its N-API imports are stubbed inside the Go binary: nothing to build.
#
# --lavapipe: Dawn refuses Mesa 22.3's lavapipe (Debian 12: no
# shaderUniformBufferArrayDynamicIndexing), so its Vulkan tests would skip.
# This fetches bookworm-backports' mesa-vulkan-drivers (Mesa 25.0) with
# apt-get download into the cache, unpacked there only (the system's Mesa is
# untouched), and writes lvp_icd.json, which the Dawn tests hand to the Vulkan
# loader (VK_DRIVER_FILES) for their own process.
#
# Safe to re-run: what is present and verified is kept. Errors are one line
# on stderr and a non-zero exit.
set -euo pipefail

NODE_VERSION=0.6.2
# SHA-256 of `npm pack webgpu@0.6.2` (webgpu-0.6.2.tgz) and of its linux-x64 dawn.node.
NODE_TGZ_SHA256=77a6be6513b9f7c2e94425620ce603efb38cdc5d0393e1b31a1b0c8479330ffd
NODE_X64_SHA256=ab18a659f8325e874ea45c80347b64336d7f748601102753d2bc669fdecfd710
# bookworm-backports' Mesa 25.0 lavapipe, for --lavapipe on Debian 12.
MESA_VERSION=25.0.7-2~bpo12+1
MESA_SHA256=3899f1800424c60a05df5d6913076a526ca8fdbabec43672cd397563d1ca3263

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/coreattn/dawn"
NODE_DIR="$CACHE/webgpu-$NODE_VERSION"

die() { echo "dawn.sh: $*" >&2; exit 1; }
say() { echo "dawn.sh: $*" >&2; }

lavapipe=0
for arg in "$@"; do
	case "$arg" in
	--lavapipe) lavapipe=1 ;;
	-h | --help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument '$arg' (use --lavapipe or --help)" ;;
	esac
done

[ "$(uname -s)" = Linux ] || die "the Dawn runtime is Linux-only for now (this is $(uname -s))"
case "$(uname -m)" in
x86_64) NODE_ARCH=linux-x64 ;;
aarch64) NODE_ARCH=linux-arm64 ;;
*) die "no Dawn build for $(uname -m) (x86_64 and aarch64 only)" ;;
esac

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# glibc_at_least MAJOR MINOR
glibc_at_least() {
	local v
	v="$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')"
	[ -n "$v" ] || return 1
	local major="${v%%.*}" minor="${v#*.}"
	minor="${minor%%.*}"
	[ "$major" -gt "$1" ] || { [ "$major" -eq "$1" ] && [ "$minor" -ge "$2" ]; }
}

# 1. An explicit library.
locate_explicit() {
	[ -n "${COREATTN_DAWN:-}" ] || return 1
	if [ -d "$COREATTN_DAWN" ]; then
		local f
		for f in dawn.node libwebgpu_dawn.so libwebgpu_dawn.so.0; do
			[ -f "$COREATTN_DAWN/$f" ] && { echo "$COREATTN_DAWN/$f"; return 0; }
		done
		die "COREATTN_DAWN=$COREATTN_DAWN holds no dawn.node or libwebgpu_dawn.so"
	fi
	[ -f "$COREATTN_DAWN" ] || die "COREATTN_DAWN=$COREATTN_DAWN does not exist"
	echo "$COREATTN_DAWN"
}

# 2. Debian's package.
debian_lib() {
	local d
	for d in /usr/lib/"$(uname -m)"-linux-gnu /usr/lib64 /usr/lib; do
		[ -f "$d/libwebgpu_dawn.so.0" ] && { echo "$d/libwebgpu_dawn.so.0"; return 0; }
	done
	return 1
}

install_debian() {
	debian_lib && return 0
	command -v apt-cache >/dev/null 2>&1 || return 1
	glibc_at_least 2 43 || { [ -f "$NODE_DIR/dawn.node" ] || say "Debian's libwebgpu-dawn0 needs glibc >= 2.43 (have $(getconf GNU_LIBC_VERSION 2>/dev/null)): using npm webgpu@$NODE_VERSION"; return 1; }
	local cand
	cand="$(apt-cache policy libwebgpu-dawn0 2>/dev/null | awk '/Candidate:/ {print $2}')"
	if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then
		say "apt offers no libwebgpu-dawn0 here: using npm webgpu@$NODE_VERSION"
		return 1
	fi
	if [ "$(id -u)" -ne 0 ]; then
		say "Debian's Dawn is available: 'sudo apt-get install -y libwebgpu-dawn0' installs it; using npm webgpu@$NODE_VERSION meanwhile"
		return 1
	fi
	say "installing libwebgpu-dawn0 $cand with apt-get"
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libwebgpu-dawn0 </dev/null >/dev/null; then
		say "apt-get install libwebgpu-dawn0 failed: using npm webgpu@$NODE_VERSION"
		return 1
	fi
	debian_lib
}

# 3. npm's dawn.node.
install_node() {
	local dst="$NODE_DIR/dawn.node"
	if [ -f "$dst" ] && [ -f "$NODE_DIR/SHA256" ] && [ "$(sha256_of "$dst")" = "$(cat "$NODE_DIR/SHA256")" ]; then
		echo "$dst"
		return 0
	fi
	command -v npm >/dev/null 2>&1 || die "npm not found: install it (Debian: apt-get install -y npm) or set COREATTN_DAWN"
	local tmp
	tmp="$(mktemp -d "${TMPDIR:-/tmp}/coreattn-dawn.XXXXXX")"
	trap 'rm -rf "$tmp"' EXIT
	say "fetching webgpu@$NODE_VERSION with npm pack (about 50 MB)"
	(cd "$tmp" && npm pack --silent "webgpu@$NODE_VERSION" >/dev/null 2>"$tmp/npm.log") ||
		die "npm pack webgpu@$NODE_VERSION failed: $(tail -n 1 "$tmp/npm.log")"
	local tgz="$tmp/webgpu-$NODE_VERSION.tgz"
	[ -f "$tgz" ] || die "npm pack did not produce webgpu-$NODE_VERSION.tgz"
	local got
	got="$(sha256_of "$tgz")"
	[ "$got" = "$NODE_TGZ_SHA256" ] || die "webgpu-$NODE_VERSION.tgz has SHA-256 $got, expected $NODE_TGZ_SHA256: refusing it"
	tar -xzf "$tgz" -C "$tmp" "package/dist/$NODE_ARCH/dawn.node" || die "webgpu-$NODE_VERSION.tgz has no dist/$NODE_ARCH/dawn.node"
	local node="$tmp/package/dist/$NODE_ARCH/dawn.node"
	if [ "$NODE_ARCH" = linux-x64 ]; then
		got="$(sha256_of "$node")"
		[ "$got" = "$NODE_X64_SHA256" ] || die "dawn.node has SHA-256 $got, expected $NODE_X64_SHA256: refusing it"
	fi
	mkdir -p "$NODE_DIR"
	cp "$node" "$dst.tmp"
	mv "$dst.tmp" "$dst"
	sha256_of "$dst" >"$NODE_DIR/SHA256"
	printf 'npm webgpu@%s dist/%s/dawn.node\ntarball sha256 %s\n' "$NODE_VERSION" "$NODE_ARCH" "$NODE_TGZ_SHA256" >"$NODE_DIR/SOURCE"
	rm -rf "$tmp"
	trap - EXIT
	echo "$dst"
}

# --lavapipe: Mesa 25's lavapipe beside the system's, for the tests only.
install_lavapipe() {
	local dir="$CACHE/lavapipe" icd="$CACHE/lavapipe/lvp_icd.json"
	[ -f "$icd" ] && return 0
	local codename=""
	[ -r /etc/os-release ] && codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
	local mesa
	mesa="$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)"
	if [ -n "$mesa" ] && dpkg --compare-versions "$mesa" ge 25; then
		say "the system's lavapipe (Mesa $mesa) already works with Dawn: --lavapipe not needed"
		return 0
	fi
	[ "$codename" = bookworm ] || die "--lavapipe knows Debian 12 (bookworm) only; install mesa-vulkan-drivers >= 25 instead"
	[ "$(uname -m)" = x86_64 ] || die "--lavapipe is pinned for x86_64 only"
	command -v apt-get >/dev/null 2>&1 || die "--lavapipe needs apt-get"
	local apt="$dir/apt"
	mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$dir/root"
	echo "deb http://deb.debian.org/debian bookworm-backports main" >"$apt/sources.list"
	local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o APT::Sandbox::User=root)
	say "fetching mesa-vulkan-drivers $MESA_VERSION (bookworm-backports) for the Dawn tests"
	apt-get "${opts[@]}" update -qq </dev/null >/dev/null 2>"$dir/apt.log" || die "apt-get update (bookworm-backports) failed: $(tail -n 1 "$dir/apt.log")"
	(cd "$dir" && apt-get "${opts[@]}" download "mesa-vulkan-drivers=$MESA_VERSION" </dev/null >/dev/null 2>"$dir/apt.log") ||
		die "apt-get download mesa-vulkan-drivers=$MESA_VERSION failed: $(tail -n 1 "$dir/apt.log")"
	local deb
	deb="$(ls "$dir"/mesa-vulkan-drivers_*.deb)"
	local got
	got="$(sha256_of "$deb")"
	[ "$got" = "$MESA_SHA256" ] || die "$(basename "$deb") has SHA-256 $got, expected $MESA_SHA256: refusing it"
	dpkg -x "$deb" "$dir/root"
	[ -f "$dir/root/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so" ] || die "$(basename "$deb") has no libvulkan_lvp.so"
	# Keep lavapipe alone: the package's other drivers are of no use here.
	local so="$dir/libvulkan_lvp.so"
	mv "$dir/root/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so" "$so"
	rm -rf "$dir/root"
	printf '{\n  "file_format_version": "1.0.0",\n  "ICD": {"library_path": "%s", "api_version": "1.4.305"}\n}\n' "$so" >"$icd.tmp"
	mv "$icd.tmp" "$icd"
	rm -rf "$apt" "$deb" "$dir/apt.log"
	say "lavapipe (Mesa 25) for the Dawn tests: $icd"
}

if [ -n "${COREATTN_DAWN:-}" ]; then
	lib="$(locate_explicit)"
else
	lib="$(install_debian)" || lib="$(install_node)"
fi
[ "$lavapipe" -eq 1 ] && install_lavapipe
echo "$lib"
