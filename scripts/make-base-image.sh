#!/usr/bin/env bash
# Makes the Debian 12 base image the Dockerfile builds on, locally, with debootstrap and `podman import`, so that
# `make container` needs no container registry (only Debian's package mirror, as install-deps.sh does).
#
# usage: make-base-image.sh ARCH TAG      (ARCH: amd64 | arm64; TAG: the local image name to create)
#
# The rootfs is debootstrap's minbase variant, trimmed as Docker's official debian:bookworm-slim is (no manual
# pages, docs or apt lists), so one local image stands in for both debian:bookworm and debian:bookworm-slim.
# A foreign architecture's second stage runs under qemu-user through binfmt_misc (Debian's qemu-user-static
# registers it), which the arm64 image needs on an x86-64 host.
set -euo pipefail

arch=${1:?usage: make-base-image.sh ARCH TAG}
tag=${2:?usage: make-base-image.sh ARCH TAG}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if podman image exists "$tag"; then
  echo "make-base-image: $tag already exists"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "make-base-image: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }

root=$(mktemp -d /var/tmp/coreserve-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT

if [ "$arch" = "$(dpkg --print-architecture)" ]; then
  debootstrap --variant=minbase bookworm "$root" "$mirror"
else
  [ -e "/proc/sys/fs/binfmt_misc/qemu-${arch/arm64/aarch64}" ] || {
    echo "make-base-image: no binfmt_misc entry for $arch: install qemu-user-static to build a $arch rootfs" >&2
    exit 1
  }
  debootstrap --variant=minbase --foreign --arch="$arch" bookworm "$root" "$mirror"
  chroot "$root" /debootstrap/debootstrap --second-stage
fi

# The security suite, as in Docker's image, then the trimming of its slim variant.
cat > "$root/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security} bookworm-security main
SOURCES
cat > "$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'SLIM'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
SLIM
find "$root/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} + 2>/dev/null || true
# Downloaded packages are deleted after every apt run, as in Docker's image (its docker-clean).
cat > "$root/etc/apt/apt.conf.d/docker-clean" <<'CLEAN'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CLEAN
rm -rf "$root/usr/share/man"/* "$root/usr/share/info"/* "$root/var/lib/apt/lists"/* "$root/var/cache/apt"/*.bin \
       "$root/var/cache/apt/archives"/*.deb

tar -C "$root" -c . | podman import --arch "$arch" --change 'CMD ["bash"]' - "$tag"
echo "make-base-image: made $tag ($arch)"
