#!/usr/bin/env bash
# Downloads the Vulkan loader (and the GL dispatch libraries) as .deb files into
# .gl/ at the root of the current git checkout, for carrying to the accelerator
# machine, which has the NVIDIA driver but no loader and no package registry.
# Run it here, once per machine; docs/device.md has the whole recipe.
#
# From the workplace's shared device notes (fetch-gl.sh there), unchanged but
# for the .git/info/exclude line: .gitignore ignores /.gl/ already, and in a
# git worktree .git is a file.
set -euo pipefail
top=$(git rev-parse --show-toplevel)
cd "$top"
mkdir -p .gl /tmp/amd64/partial
o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
apt-get $o update >/dev/null
cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 2>&1 | grep -v '^W:' || true
ls -1 "$top/.gl"
