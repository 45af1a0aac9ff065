#!/usr/bin/env bash
# Builds and tests coreserve's container images with podman and buildah, without a Docker engine or a registry.
#
# usage: container.sh build [ARCH...]   images localhost/coreserve:VERSION-ARCH and the manifest list
#                                       localhost/coreserve:VERSION (default ARCH: amd64 arm64)
#        container.sh test MODELS_DIR [ARCH...]
#                                       runs each image (buildah run --isolation chroot, host network) on
#                                       MODELS_DIR and checks it from outside (tests/container/check_image.py)
#
# The Debian base images are made locally by scripts/make-base-image.sh. A foreign architecture's image is
# cross-compiled (see the Dockerfile); its runtime stage's apt-get and its binary run under qemu-user through
# binfmt_misc, which Debian's qemu-user-static registers.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
version=$(sed -n 's/^project(coreserve VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
host_arch=$(dpkg --print-architecture)
image=localhost/coreserve
base=localhost/coreserve-base:bookworm

need_tools() {
  local missing=()
  for p in podman buildah debootstrap "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "container: installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null ||
      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; }
  fi
}

foreign_tools() {
  for arch in "$@"; do [ "$arch" != "$host_arch" ] && { echo qemu-user-static; return; }; done
  return 0
}

build() {
  local arches=("$@")
  need_tools $(foreign_tools "${arches[@]}")
  scripts/make-base-image.sh "$host_arch" "$base-$host_arch"
  for arch in "${arches[@]}"; do
    scripts/make-base-image.sh "$arch" "$base-$arch"
    echo "container: building $image:$version-$arch"
    # Docker's image format: OCI's has no HEALTHCHECK, and podman drops it there.
    podman build --isolation chroot --pull=never --format docker --platform "linux/$arch" \
      --build-arg BUILDPLATFORM="linux/$host_arch" --build-arg VERSION="$version" \
      --build-arg BUILD_BASE="$base-$host_arch" --build-arg RUNTIME_BASE="$base-$arch" \
      -t "$image:$version-$arch" .
  done
  # One name for every architecture, as `docker buildx --platform ...` would push it.
  podman manifest rm "$image:$version" >/dev/null 2>&1 || true
  podman manifest create "$image:$version" >/dev/null
  for arch in "${arches[@]}"; do
    podman manifest add "$image:$version" "containers-storage:$image:$version-$arch" >/dev/null
  done
  podman images --filter "reference=$image" --format '{{.Repository}}:{{.Tag}} {{.Size}}'
}

# The image's ENTRYPOINT and HEALTHCHECK, as JSON arrays, read from its config rather than repeated here.
image_config() { podman image inspect --format "{{json .Config.$2}}" "$1"; }

test_image() {
  local models=$1 arch=$2 tag="$image:$version-$arch"
  podman image exists "$tag" || { echo "container: $tag is missing: run make container first" >&2; return 1; }
  for port in 8000 8001 8002; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "container: port $port is in use; the image's config listens there" >&2
      return 1
    fi
  done
  local ctr entry health pid code
  ctr=$(buildah from --pull-never --arch "$arch" "$tag")
  mapfile -t entry < <(image_config "$tag" Entrypoint | python3 -c 'import json,sys; print(*json.load(sys.stdin), sep="\n")')
  mapfile -t health < <(image_config "$tag" Healthcheck | python3 -c 'import json,sys; print(*json.load(sys.stdin)["Test"][1:], sep="\n")')
  echo "container: $tag: ${entry[*]}"
  # "/models/", not "/models": buildah 1.28 lets the image's VOLUME /models hide a bind mount on the exact path.
  buildah run --isolation chroot --volume "$models:/models/:ro" "$ctr" -- "${entry[@]}" > "/tmp/coreserve-container-$arch.log" 2>&1 &
  local runner=$!
  # Under qemu (a foreign image) loading takes longer: allow two minutes for the health check to pass.
  local ok=false
  for _ in $(seq 120); do
    if buildah run --isolation chroot "$ctr" -- "${health[@]}" >/dev/null 2>&1; then ok=true; break; fi
    kill -0 "$runner" 2>/dev/null || break
    sleep 1
  done
  pid=$(pgrep -n -f "coreserve serve --config /etc/coreserve/config.yaml" || true)
  local failed=false
  if ! $ok; then
    echo "container: $tag never passed its HEALTHCHECK (${health[*]}):" >&2
    failed=true
  else
    echo "container: $tag: HEALTHCHECK passes (${health[*]})"
    local uid gid
    uid=$(awk '/^Uid:/{print $2}' "/proc/$pid/status")
    gid=$(awk '/^Gid:/{print $2}' "/proc/$pid/status")
    [ "$uid:$gid" = 10001:10001 ] || { echo "container: the server runs as $uid:$gid, not 10001:10001" >&2; failed=true; }
    buildah run --isolation chroot "$ctr" -- getent group 10001 >/dev/null ||
      { echo "container: the image has no group 10001" >&2; failed=true; }
    "$root/.venv/bin/python" tests/container/check_image.py "$models" "$arch" || failed=true
  fi
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
  code=0
  wait "$runner" || code=$?
  buildah rm "$ctr" >/dev/null
  if [ "$code" != 0 ]; then
    echo "container: the server exited with $code after SIGTERM" >&2
    failed=true
  fi
  if $failed; then
    cat "/tmp/coreserve-container-$arch.log" >&2
    return 1
  fi
  echo "container: $tag passed (clean exit after SIGTERM)"
}

cmd=${1:-}
shift || true
case "$cmd" in
  build)
    [ $# -gt 0 ] || set -- amd64 arm64
    build "$@"
    ;;
  test)
    models=$(cd "${1:?usage: container.sh test MODELS_DIR [ARCH...]}" && pwd)
    shift
    [ $# -gt 0 ] || set -- amd64 arm64
    need_tools $(foreign_tools "$@")
    for arch in "$@"; do test_image "$models" "$arch"; done
    ;;
  *)
    echo "usage: container.sh build [ARCH...] | container.sh test MODELS_DIR [ARCH...]" >&2
    exit 2
    ;;
esac
