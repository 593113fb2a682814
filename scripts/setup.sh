#!/usr/bin/env bash
# scripts/setup.sh: make sure this machine can build and run coreattn.
#
# coreattn needs a C compiler (go-webgpu is cgo) and a WebGPU adapter. On Linux
# that means the Vulkan loader (libvulkan.so.1) and at least one Vulkan driver
# (an ICD file under /usr/share/vulkan/icd.d or /etc/vulkan/icd.d). Without a
# GPU driver, Mesa's lavapipe (package mesa-vulkan-drivers) runs Vulkan on the
# CPU, which is what CI uses.
#
# When something is missing and we are root on a Debian/Ubuntu machine, it is
# installed with apt-get; otherwise the script says exactly what to install and
# exits non-zero. When everything is present it prints nothing. Safe to re-run.
set -euo pipefail

say() { echo "setup: $*" >&2; }

missing=() # Debian packages to install

# The build: cgo needs a C compiler; the Makefile needs make.
if ! command -v "${CC:-gcc}" >/dev/null 2>&1 && ! command -v cc >/dev/null 2>&1; then
	missing+=(gcc libc6-dev)
fi
command -v make >/dev/null 2>&1 || missing+=(make)

# The adapter: macOS has Metal, nothing to check there.
if [ "$(uname -s)" = Linux ]; then
	have_loader() {
		ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1' && return 0
		local f
		for f in /usr/lib/*/libvulkan.so.1 /usr/lib/libvulkan.so.1 /usr/lib64/libvulkan.so.1 /usr/local/lib/libvulkan.so.1; do
			[ -e "$f" ] && return 0
		done
		return 1
	}
	have_driver() {
		# An explicit driver list (the loader's own variables) counts as one.
		[ -n "${VK_ICD_FILENAMES:-}${VK_DRIVER_FILES:-}" ] && return 0
		local f
		for f in /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json /usr/local/share/vulkan/icd.d/*.json; do
			[ -e "$f" ] && return 0
		done
		return 1
	}
	if ! have_loader || ! have_driver; then
		missing+=(mesa-vulkan-drivers libvulkan1)
	fi
fi

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	say "missing: ${missing[*]}"
	say "install them, then re-run; on Debian or Ubuntu:"
	say "  sudo apt-get update && sudo apt-get install -y ${missing[*]}"
	say "(mesa-vulkan-drivers provides lavapipe, a Vulkan driver that runs on the CPU;"
	say " a machine with a GPU may use its vendor's Vulkan driver instead)"
	exit 1
fi

say "installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq </dev/null >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
say "done"
