#!/usr/bin/env bash
# Installs Triton's perf_analyzer (the load generator the end-to-end tests and `make bench-serving` drive the
# server with) into .perf-analyzer/, and writes .perf-analyzer/perf_analyzer, a wrapper that finds its libraries.
#
# perf_analyzer comes from PyPI: tritonclient 2.40.0's manylinux x86-64 wheel is the last that ships the binary
# (the `perf-analyzer` project on PyPI is an empty placeholder). The binary links libcudart.so.12 even for CPU
# servers, which PyPI's nvidia-cuda-runtime-cu12 provides, and libb64, which is Debian's libb64-0d
# (scripts/install-deps.sh). Idempotent; x86-64 only (the script says so and exits 1 elsewhere).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/.perf-analyzer"
pins="tritonclient==2.40.0 nvidia-cuda-runtime-cu12==12.9.79"
stamp="$dir/.pins"

if [ "$(uname -m)" != x86_64 ]; then
  echo "setup-perf-analyzer: perf_analyzer's PyPI binary exists for x86-64 only" >&2
  exit 1
fi
if [ -x "$dir/perf_analyzer" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$pins" ]; then
  exit 0
fi
echo "setup-perf-analyzer: installing $pins"
rm -rf "$dir"
# shellcheck disable=SC2086
"$root/.venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input --no-deps \
  --only-binary=:all: --target "$dir" $pins
cat > "$dir/perf_analyzer" <<'WRAPPER'
#!/bin/sh
here=$(dirname "$0")
LD_LIBRARY_PATH="$here/nvidia/cuda_runtime/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$here/bin/perf_analyzer" "$@"
WRAPPER
chmod +x "$dir/perf_analyzer" "$dir/bin/perf_analyzer"
echo "$pins" > "$stamp"
