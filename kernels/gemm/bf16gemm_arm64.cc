// The arm64 bf16 GEMM driver (see gemm_arm64.h): A brought in per block of kMc rows x kKc K as bf16 rows (bit
// patterns for BFMMLA, widened back to fp32 for FMLA), rounded exactly as FloatToBfloat16 (the bf16 definition in
// sgemm.h), then each strip of rows against each panel of the kernel's format (kBf16Quads32 for BFMMLA, kBf16Panel32
// for FMLA) through the micro-kernel and the NEON epilogue. C accumulates across K blocks in fp32, as the
// AVX512-BF16 kernel does.
#include <algorithm>
#include <cassert>
#include <vector>

#include "kernels/convert/half.h"
#include "kernels/gemm/gemm_arm64.h"
#include "kernels/gemm/gemm_epilogue.h"
#include "kernels/gemm/gemm_epilogue_neon.h"

namespace coreserve::kernels::arm64 {
namespace {

// K block: a multiple of 4, so a K quad never straddles two blocks. A kMc x kKc block of bf16 A is 192 KB (384 KB
// widened to fp32) and a panel's kKc x 32 block of B 64 KB: both stay in the 1 MB L2 of Graviton2/3. kMc is a
// multiple of every kernel's row strip (8, 6).
constexpr int64_t kKc = 1024;
constexpr int64_t kMc = 96;

// FloatToBfloat16 of 4 floats by integer arithmetic: round to nearest even, NaN kept quiet, denormals kept. (The
// BFCVT instruction would flush denormals under FPCR.FZ and needs the BF16 extension; this runs anywhere.)
uint16x4_t Bf16Bits(float32x4_t x) {
  const uint32x4_t bits = vreinterpretq_u32_f32(x);
  const uint32x4_t lsb = vandq_u32(vshrq_n_u32(bits, 16), vdupq_n_u32(1));
  const uint32x4_t rounded = vaddq_u32(bits, vaddq_u32(lsb, vdupq_n_u32(0x7fff)));
  const uint32x4_t nan = vcgtq_u32(vandq_u32(bits, vdupq_n_u32(0x7fffffff)), vdupq_n_u32(0x7f800000));
  const uint32x4_t quiet = vorrq_u32(bits, vdupq_n_u32(0x400000));
  return vshrn_n_u32(vbslq_u32(nan, quiet, rounded), 16);
}

// Stores 4 bf16 values as bit patterns, or widened back to fp32 (exact: the bits in the top half of each lane).
void Store4(uint16_t* out, uint16x4_t bits) { vst1_u16(out, bits); }
void Store4(float* out, uint16x4_t bits) { vst1q_f32(out, vreinterpretq_f32_u32(vshll_n_u16(bits, 16))); }
void Store1(uint16_t* out, uint16_t bits) { *out = bits; }
void Store1(float* out, uint16_t bits) { *out = Bfloat16ToFloat(bits); }

// rows x kc fp32 values of A (lda apart) rounded to bf16, into rows `ld` apart, zero from kc up to the next
// multiple of 4.
template <typename T>
void ConvertA(const float* a, int64_t lda, int64_t rows, int64_t kc, T* dst, int64_t ld) {
  const int64_t padded = (kc + 3) / 4 * 4;
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = a + r * lda;
    T* out = dst + r * ld;
    int64_t l = 0;
    for (; l + 4 <= kc; l += 4) Store4(out + l, Bf16Bits(vld1q_f32(src + l)));
    for (; l < kc; ++l) Store1(out + l, FloatToBfloat16(src[l]));
    for (; l < padded; ++l) out[l] = 0;
  }
}

void Tile(const Bf16TileKernel& kernel, int64_t kc, const uint16_t* a, int64_t lda, int64_t rows, const uint16_t* b,
          float* tile) {
  kernel.tile(kc, a, lda, rows, b, tile);
}
void Tile(const Bf16TileKernel& kernel, int64_t kc, const float* a, int64_t lda, int64_t rows, const uint16_t* b,
          float* tile) {
  kernel.tile_f32(kc, a, lda, rows, b, tile);
}

// The driver for A as T: uint16_t (bf16 bits) or float (bf16 values).
template <typename T>
void Run(const Bf16TileKernel& kernel, const SgemmArgs& p, int64_t m_begin, int64_t m_end, int64_t n_begin,
         int64_t n_end) {
  const SgemmPackedB& packed = *p.packed_b;
  const int64_t k = p.k;
  const int64_t ld = (std::min(k, kKc) + 3) / 4 * 4;
  // One row more than a block holds: the partner of a strip's odd last row is always readable.
  thread_local std::vector<T, Aligned64Allocator<T>> a_block;
  if (a_block.size() < static_cast<std::size_t>((kMc + 1) * ld)) a_block.resize(static_cast<std::size_t>((kMc + 1) * ld));
  const bool has_epilogue = HasEpilogue(p);
  alignas(64) float tile[kMaxRows * kGemmPanel];
  for (int64_t ib = m_begin; ib < m_end; ib += kMc) {
    const int64_t block_rows = std::min(kMc, m_end - ib);
    for (int64_t k0 = 0; k0 < k; k0 += kKc) {
      const int64_t kc = std::min(kKc, k - k0);
      ConvertA(p.a + ib * p.lda + k0, p.lda, block_rows, kc, a_block.data(), ld);
      neon::RowEpilogue e = neon::BlockEpilogue(p, k0, kc, has_epilogue);
      for (int64_t j0 = n_begin; j0 < n_end; j0 += kGemmPanel) {
        // Row k0 of the panel at j0 (k0 is a multiple of 4: a whole quad in kBf16Quads32).
        const uint16_t* panel = packed.bf16.data() + PackedOffset(kernel.format, k, k0, j0);
        const int64_t cols = std::min(kGemmPanel, n_end - j0);
        e.bias = p.bias ? p.bias + j0 : nullptr;
        for (int64_t i0 = 0; i0 < block_rows; i0 += kernel.mr) {
          const int64_t rows = std::min(kernel.mr, block_rows - i0);
          Tile(kernel, kc, a_block.data() + i0 * ld, ld, rows, panel, tile);
          float* c = p.c + (ib + i0) * p.ldc + j0;
          for (int64_t r = 0; r < rows; ++r) {
            e.residual = p.residual ? p.residual + (ib + i0 + r) * p.ldr + j0 : nullptr;
            neon::StoreRow(c + r * p.ldc, tile + r * kGemmPanel, cols, e);
          }
        }
      }
    }
  }
}

}  // namespace

void Bf16Driver(const Bf16TileKernel& kernel, const SgemmArgs& p, int64_t m_begin, int64_t m_end, int64_t n_begin,
                int64_t n_end) {
  if (DoneWithoutProducts(p, m_begin, m_end, n_begin, n_end)) return;
  assert(p.packed_b->format == kernel.format && kernel.mr <= kMaxRows && !p.trans_a && n_begin % kGemmPanel == 0);
  assert((kernel.tile != nullptr) != (kernel.tile_f32 != nullptr));
  if (kernel.tile_f32 != nullptr) {
    Run<float>(kernel, p, m_begin, m_end, n_begin, n_end);
  } else {
    Run<uint16_t>(kernel, p, m_begin, m_end, n_begin, n_end);
  }
}

}  // namespace coreserve::kernels::arm64
