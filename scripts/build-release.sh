#!/usr/bin/env bash
# Builds the release `coreserve` binary for TARGET_ARCH into OUT_DIR (the container's build stage runs this).
# The host's own architecture builds natively; arm64 on an amd64 host cross-compiles with Debian's multiarch
# packages (scripts/install-deps.sh --build-only --target-arch arm64 installs them).
#
# usage: build-release.sh TARGET_ARCH OUT_DIR
set -euo pipefail

target_arch=${1:?usage: build-release.sh TARGET_ARCH OUT_DIR}
out=${2:?usage: build-release.sh TARGET_ARCH OUT_DIR}
host_arch=$(dpkg --print-architecture)
cross=()
strip=strip
if [ "$target_arch" != "$host_arch" ]; then
  [ "$host_arch/$target_arch" = amd64/arm64 ] || { echo "build-release: no cross build $host_arch -> $target_arch" >&2; exit 2; }
  cross=(-DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/debian-multiarch-arm64.cmake")
  strip=aarch64-linux-gnu-strip
fi
cmake -S . -B /tmp/build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DCORESERVE_BUILD_TESTS=OFF \
      -DCORESERVE_BUILD_BENCH=OFF "${cross[@]}"
cmake --build /tmp/build-release --target coreserve -j "$(nproc)"
mkdir -p "$out"
"$strip" -o "$out/coreserve" /tmp/build-release/coreserve
file_arch=$(od -An -tx1 -j18 -N2 "$out/coreserve" | tr -d ' ')
case "$target_arch/$file_arch" in
  amd64/3e00 | arm64/b700) ;;
  *) echo "build-release: $out/coreserve has ELF machine $file_arch, not $target_arch" >&2; exit 1 ;;
esac
echo "build-release: $out/coreserve ($target_arch)"
