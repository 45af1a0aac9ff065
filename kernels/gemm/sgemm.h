// fp32 GEMM: C = alpha * op(A) * op(B) + beta * C, row-major, op = optional transpose.
//
// sgemm_reference is the scalar definition every optimized kernel is tested against. Sgemm picks the fastest
// implementation for the active CPU features. B may be pre-packed once (weights) with SgemmPackB; the packed
// form records which kernel it was packed for, so packed weights never meet the wrong kernel.
//
// Preconditions (asserted by callers): M, N, K >= 0; lda, ldb, ldc at least the row length of the stored matrix;
// C does not overlap A or B. With beta == 0, C is not read (NaN in C does not propagate).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

namespace coreserve::kernels {

// Allocates 64-byte aligned storage (one cache line, one zmm register) for packed operands.
template <typename T>
struct Aligned64Allocator {
  using value_type = T;
  Aligned64Allocator() = default;
  template <typename U>
  Aligned64Allocator(const Aligned64Allocator<U>&) {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{64})); }
  void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t{64}); }
  bool operator==(const Aligned64Allocator&) const { return true; }
};

// op(B) (K x N) rearranged for one kernel family: for the AVX-512 family, panels of 32 columns, each K x 32
// contiguous and zero-padded past N. Immutable once made; share it freely between threads.
struct SgemmPackedB {
  enum class Format { kPanel32 };
  Format format = Format::kPanel32;
  int64_t k = 0, n = 0;
  std::vector<float, Aligned64Allocator<float>> data;
};

// Applied to each element of C after the product is complete: C = act(alpha * A * B + beta * C + bias[j]).
// kGelu is the exact (erf) GELU; kGeluTanh its tanh approximation (GPT-2's "gelu_new", ORT's FastGelu).
enum class SgemmActivation { kNone, kRelu, kGelu, kGeluTanh };

struct SgemmArgs {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  float alpha = 1.0f;
  const float* a = nullptr;
  int64_t lda = 0;
  const float* b = nullptr;  // ignored when packed_b is set
  int64_t ldb = 0;
  const SgemmPackedB* packed_b = nullptr;
  float beta = 0.0f;
  float* c = nullptr;
  int64_t ldc = 0;
  // Epilogue, fused so the runtime makes no extra pass over C.
  const float* bias = nullptr;  // N values, added to every row; null for none
  SgemmActivation activation = SgemmActivation::kNone;
};

// Computes in double and applies the epilogue in double (GELU with the exact erf).
void sgemm_reference(const SgemmArgs& args);

// Whether the active kernel uses packed B at all (false on CPUs that run the portable path): callers pack weights
// only when it does.
bool SgemmUsesPackedB();
// Packs op(B) for the active kernel. Requires SgemmUsesPackedB().
std::shared_ptr<const SgemmPackedB> SgemmPackB(const float* b, int64_t ldb, bool trans_b, int64_t k, int64_t n);
// The same in two steps, so callers can pack column ranges on several threads: allocate, then fill columns
// [col_begin, col_end) (multiples of SgemmNStep(), or col_end == n) of op(B).
std::shared_ptr<SgemmPackedB> SgemmAllocPackedB(int64_t k, int64_t n);
void SgemmPackBColumns(const float* b, int64_t ldb, bool trans_b, int64_t col_begin, int64_t col_end,
                       SgemmPackedB* packed);

// Computes C[m_begin:m_end, n_begin:n_end]; callers split M and N across threads. n_begin and n_end must be
// multiples of SgemmNStep() (or n_end == N) so tasks never share a packed panel.
void Sgemm(const SgemmArgs& args, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end);
int64_t SgemmNStep();
// Name of the active implementation, e.g. "sgemm_12x32_avx512", for logs and metrics.
const char* SgemmKernelName();

// The portable implementation and the AVX-512 one, callable directly by tests.
void sgemm_portable(const SgemmArgs& args, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end);
#if defined(__x86_64__)
void sgemm_pack_b_panel32(const float* b, int64_t ldb, bool trans_b, int64_t k, int64_t n, float* packed);
void sgemm_12x32_avx512(const SgemmArgs& args, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end);
#endif

}  // namespace coreserve::kernels
