// The oneDNN anchor of bench_gemm_onednn: the same job as coreserve's GEMM — C (M x N, fp32) = A (M x K, fp32,
// row-major) x B (K x N, fp32 weights, row-major) — through a oneDNN matmul primitive, in the three precisions
// coreserve offers. Built only when oneDNN is found (CORESERVE_HAVE_ONEDNN); oneDNN types stay in the .cc.
//
// Outside the timed call (constructor): the weights are converted and reordered once into the layout oneDNN picks
// for them (weights memory descriptor with format_tag::any), as a framework pre-packs them at load; primitives
// are created for `threads` OpenMP threads. Inside the timed call (Run):
//   kFp32  the f32 matmul: A -> C.
//   kBf16  a reorder of A from f32 to bf16 (round to nearest even), then the bf16 x bf16 -> f32 matmul. coreserve's
//          bf16 kernel also takes fp32 A and rounds it on the fly, so both sides do the whole fp32-in, fp32-out job.
//          (oneDNN 2.6 has fpmath_mode::bf16, but its matmul ignores it on f32 inputs here: it picks the f32
//          kernel, so that is not used.)
//   kInt8  a reorder of A from f32 to u8 with one scale and zero point for the whole tensor (A's range, measured
//          by the constructor, i.e. static quantization), then the u8 x s8 matmul with that src zero point and
//          per-column output scales (s_A * s_B[j]) -> f32 C. B is s8, symmetric per column (s_B[j] = max|B_j| / 127,
//          as coreserve quantizes it), quantized by the constructor and packed by a reorder (which also stores the
//          column sums the src zero point needs). coreserve's timed call does more: it also scans each row of A
//          for its range (dynamic, per-row quantization).
//
// Not thread safe: one Run at a time. Throws dnnl::error (from the constructor) when oneDNN cannot build a
// primitive for the problem.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "kernels/gemm/sgemm.h"

namespace coreserve::bench {

class OnednnMatmul {
 public:
  // a, b and c must outlive the object (a and c are used in place by Run).
  OnednnMatmul(kernels::GemmPrecision precision, int64_t m, int64_t n, int64_t k, const float* a, const float* b,
               float* c, int threads);
  ~OnednnMatmul();
  OnednnMatmul(const OnednnMatmul&) = delete;
  OnednnMatmul& operator=(const OnednnMatmul&) = delete;

  // Sets the calling thread's OpenMP thread count to this problem's; call before timing (other code may change it).
  void UseThreads() const;
  // Computes C (the timed region; returns when C is written).
  void Run();
  // The implementations oneDNN chose, e.g. "brg:avx512_core_bf16 (src reorder: jit:uni)": a reference or gemm
  // fallback here means the anchor is not what it should be.
  const std::string& implementation() const;

  // "oneDNN 2.6.3 (OpenMP), effective ISA avx512_core_bf16".
  static std::string Description();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace coreserve::bench
