// The in-run anchor every GEMM benchmark reports against: this machine's peak rate for a GEMM precision,
// measured (not taken from a datasheet) by a loop of the precision's widest multiply-accumulate instruction —
// 12 independent chains of FMA (fp32), vdpbf16ps (bf16) or vpdpbusd (int8) on zmm registers, so the loop is
// bound by the core's issue rate and never by latency or memory.
#pragma once

#include "kernels/gemm/sgemm.h"

namespace coreserve::bench {

// Operations per second (2 per multiply-add) of `precision` on `threads` threads running the loop at the same
// time (the sum of their rates), measured once per (precision, threads) on first use (~50 ms) and then cached.
// 0 when the CPU lacks the instruction (or on non-x86 builds). Thread safe.
double MeasuredPeak(kernels::GemmPrecision precision, int threads = 1);

}  // namespace coreserve::bench
