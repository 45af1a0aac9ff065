#!/usr/bin/env bash
# Installs the Debian 12 packages coreserve builds and tests with. Idempotent: it asks apt only for what
# dpkg does not already list as installed, so a second run does nothing and needs no network.
#
# usage: install-deps.sh [--build-only [--target-arch ARCH]] [--fuzz]
#   --build-only: just what building the coreserve binary needs, as the container's build stage uses;
#   --fuzz: also clang and its libFuzzer/sanitizer runtimes, for `make fuzz` only (not needed by `make test`);
#   --target-arch arm64 (on an amd64 host): the libraries for that architecture
#   through Debian multiarch, plus the host's cross compiler and code generators (protoc, grpc_cpp_plugin), for
#   the container's cross build (cmake/debian-multiarch-*.cmake).
set -euo pipefail

build_only=false
fuzz=false
target_arch=$(dpkg --print-architecture)
while [ $# -gt 0 ]; do
  case "$1" in
    --build-only) build_only=true ;;
    --fuzz) fuzz=true ;;
    --target-arch) target_arch=${2:?--target-arch needs an architecture}; shift ;;
    *) echo "install-deps: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
host_arch=$(dpkg --print-architecture)

build_packages=(
  # toolchain
  g++ make cmake ninja-build pkg-config
  # wire contracts and RPC
  protobuf-compiler libprotobuf-dev protobuf-compiler-grpc libgrpc++-dev libabsl-dev
  # HTTP, metrics, config, model format
  libcpp-httplib-dev prometheus-cpp-dev libyaml-cpp-dev libonnx-dev
  # TLS for the listeners (the OpenSSL cpp-httplib and gRPC use)
  libssl-dev
  # JSON: RapidJSON parses and writes in place with no DOM copy, which matters for MB-sized tensor bodies
  rapidjson-dev
)
test_packages=(
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # the ONNX backend node tests the runtime is checked against
  libonnx-testdata
  # the Python venv for end-to-end tests and model generation; curl for the README's try-it line
  python3 python3-venv curl ca-certificates
  # openssl makes the throwaway CA and certificates the TLS tests run with
  openssl
  # promtool, which checks the /metrics exposition (the package also ships a Prometheus server, never started)
  prometheus
)
# On x86-64 the arm64 (Graviton) kernels are cross-built and their tests run under qemu-user, and oneDNN is the
# anchor bench_gemm_onednn measures the GEMM kernels against (`make bench-kernels`; only that benchmark links it,
# and it still builds, loudly without its anchor, where the package is missing).
if [ "$(dpkg --print-architecture)" = amd64 ]; then
  # libb64-0d: a library of perf_analyzer, the load generator (scripts/setup-perf-analyzer.sh).
  test_packages+=(g++-aarch64-linux-gnu qemu-user-static libdnnl-dev libb64-0d)
fi
packages=("${build_packages[@]}")
$build_only || packages+=("${test_packages[@]}")
$fuzz && packages+=(clang-14 libclang-rt-14-dev)

foreign=false
if [ "$target_arch" != "$host_arch" ]; then
  $build_only || { echo "install-deps: --target-arch goes with --build-only" >&2; exit 2; }
  case "$target_arch" in
    arm64) triplet=aarch64-linux-gnu ;;
    *) echo "install-deps: the cross build goes from amd64 to arm64 only; build $target_arch images natively" >&2
       exit 2 ;;
  esac
  foreign=true
  # Tools run on the host; libraries (and their headers) are the target's. rapidjson-dev is header-only (all).
  packages=(g++-"$triplet" make cmake ninja-build pkg-config protobuf-compiler protobuf-compiler-grpc rapidjson-dev)
  for p in libprotobuf-dev libgrpc++-dev libabsl-dev libcpp-httplib-dev prometheus-cpp-dev libyaml-cpp-dev \
           libonnx-dev libssl-dev; do
    packages+=("$p:$target_arch")
  done
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if $foreign && ! dpkg --print-foreign-architectures | grep -qx "$target_arch"; then
  "${sudo[@]}" dpkg --add-architecture "$target_arch"
fi
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
