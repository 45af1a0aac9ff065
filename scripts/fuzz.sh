#!/usr/bin/env bash
# Runs each libFuzzer target for a set time (make fuzz; tests/fuzz/README.md) and reports what it found.
#
# usage: fuzz.sh BUILD_DIR SECONDS_PER_TARGET TARGET...
#
# Each target starts from its committed corpus (tests/fuzz/corpus/<target>) plus what earlier runs in BUILD_DIR
# found (BUILD_DIR/fuzz-corpus/<target>, where new inputs go), with its dictionary when tests/fuzz has one.
# A crash, leak, sanitizer report, timeout (> 10 s for one input) or out-of-memory (> 4 GB) leaves its input in
# BUILD_DIR/fuzz-artifacts/<target>/; the script then exits 1. Fix the bug, and copy the input into the committed
# corpus, where `make test` runs it from then on.
set -uo pipefail

build=${1:?build dir}
seconds=${2:?seconds per target}
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
# An allocation too large for any host returns null, as glibc's does in production (the runtime turns that into
# ResourceExhausted), instead of ASan stopping the run.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}allocator_may_return_null=1"
report="$build/fuzz-report.md"
found=0
{
  echo "| target | seconds | runs | corpus | new crashes |"
  echo "|---|---|---|---|---|"
} >"$report"
for target in "$@"; do
  corpus="$build/fuzz-corpus/$target"
  artifacts="$build/fuzz-artifacts/$target"
  mkdir -p "$corpus" "$artifacts"
  before=$(find "$artifacts" -type f | wc -l)
  dict=()
  [ -f "$root/tests/fuzz/$target.dict" ] && dict=(-dict="$root/tests/fuzz/$target.dict")
  log="$build/fuzz-$target.log"
  echo "fuzz: $target for ${seconds}s (log: $log)"
  # -close_fd_mask=3: the targets' own output (server log lines for rejected configs) would drown the stats.
  "$build/tests/fuzz/${target}_fuzz" "$corpus" "$root/tests/fuzz/corpus/$target" "${dict[@]}" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -max_len=65536 -close_fd_mask=3 \
    -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1
  code=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  after=$(find "$artifacts" -type f | wc -l)
  new=$((after - before))
  [ "$code" -ne 0 ] && [ "$new" -eq 0 ] && new="exit $code"
  echo "| $target | $seconds | ${runs:-?} | $(find "$corpus" -type f | wc -l) | $new |" >>"$report"
  if [ "$code" -ne 0 ]; then
    found=1
    echo "fuzz: $target stopped with $code; inputs in $artifacts:" >&2
    grep -E "ERROR|SUMMARY|runtime error" "$log" | head -5 >&2
  fi
done
cat "$report"
exit $found
