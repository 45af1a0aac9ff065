// The arm64 int8 GEMM driver (see gemm_arm64.h): each call brings its rows of A, kMc at a time, into u8 rows
// (quantizing fp32 A per row bit for bit as QuantizeRowU8Reference, or copying integer A with its byte flip), runs the
// micro-kernel on each strip of rows and 32-column panel, then the zero-point corrections and either the exact int32
// output or the dequantizing fp32 epilogue, as qgemm_u8s8_avx512vnni does:
//   C = acc + a_offset * colsum_j - z_i * colsum_j - bzp_j * row_term_i   (wrapping int32, exact mod 2^32)
// where acc = sum (q_ik - a_offset) * b_kj is what the micro-kernel returns. K is not blocked: the sums must stay
// exact int32 until the epilogue, and a panel's K x 32 bytes of B (96 KB at K = 3072) sit in L2 anyway.
#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/gemm/gemm_arm64.h"
#include "kernels/gemm/gemm_epilogue.h"
#include "kernels/gemm/gemm_epilogue_neon.h"

namespace coreserve::kernels::arm64 {
namespace {

constexpr int64_t kMc = 96;  // rows of A brought in per block: 96 x K bytes (288 KB at K = 3072)

// Row a[0:k] quantized to u8 in q, bit for bit as QuantizeRowU8Reference: the running min/max are compare-and-
// select (a NaN compares false and is skipped, as in std::min/max; -0.0 never replaces the initial +0.0, so the
// lane reduction cannot see a signed zero), the multiplication and round to nearest even are the same IEEE operations,
// and fmaxnm(v, 0) maps NaN to 0 as `v > 0 ? v : 0` does.
void QuantizeRow(const float* a, int64_t k, uint8_t* q, float* scale, int32_t* zero_point) {
  float32x4_t lo = vdupq_n_f32(0.0f), hi = vdupq_n_f32(0.0f);
  int64_t l = 0;
  for (; l + 4 <= k; l += 4) {
    const float32x4_t x = vld1q_f32(a + l);
    lo = vbslq_f32(vcltq_f32(x, lo), x, lo);
    hi = vbslq_f32(vcltq_f32(hi, x), x, hi);
  }
  float lo_s = vminvq_f32(lo), hi_s = vmaxvq_f32(hi);
  for (; l < k; ++l) {
    lo_s = std::min(lo_s, a[l]);
    hi_s = std::max(hi_s, a[l]);
  }
  float s, inv, z;
  RowQuantParams(lo_s, hi_s, &s, &inv, &z);
  const float32x4_t vinv = vdupq_n_f32(inv), vz = vdupq_n_f32(z);
  l = 0;
  for (; l + 8 <= k; l += 8) {
    uint32x4_t u[2];
    for (int h = 0; h < 2; ++h) {
      float32x4_t v = vaddq_f32(vrndnq_f32(vmulq_f32(vld1q_f32(a + l + 4 * h), vinv)), vz);
      v = vminq_f32(vmaxnmq_f32(v, vdupq_n_f32(0.0f)), vdupq_n_f32(255.0f));
      u[h] = vcvtq_u32_f32(v);
    }
    vst1_u8(q + l, vmovn_u16(vcombine_u16(vmovn_u32(u[0]), vmovn_u32(u[1]))));
  }
  for (; l < k; ++l) {
    float v = std::nearbyint(a[l] * inv) + z;
    v = v > 0.0f ? v : 0.0f;
    v = v < 255.0f ? v : 255.0f;
    q[l] = static_cast<uint8_t>(v);
  }
  *scale = s;
  *zero_point = static_cast<int32_t>(z);
}

// C[i0:i0+rows, j0:j0+cols] from a tile of sums (rows 32 apart).
void Epilogue(const QgemmTileKernel& kernel, const QgemmProblem& p, const int32_t* tile, int64_t rows,
              const QgemmRow* row_params, int64_t i0, int64_t j0, int64_t cols, const neon::RowEpilogue& e) {
  const SgemmPackedB& b = *p.packed_b;
  // Column data is stored for whole panels, so 4-lane loads never pass the end of a panel.
  const int32_t* sum = b.col_sum.data() + j0;
  const int32_t* bzp = b.col_zero_point.empty() ? nullptr : b.col_zero_point.data() + j0;
  const float* scale = b.col_scale.data() + j0;
  alignas(16) float y[kGemmPanel];
  for (int64_t r = 0; r < rows; ++r) {
    const QgemmRow& row = row_params[r];
    const int32x4_t zp = vdupq_n_s32(row.zero_point - kernel.a_offset);
    const int32x4_t rt = vdupq_n_s32(row.row_term);
    const float32x4_t rs = vdupq_n_f32(row.scale);
    const int32_t* t = tile + r * kGemmPanel;
    int32_t* out = p.c_s32 ? p.c_s32 + (i0 + r) * p.ldc + j0 : nullptr;
    for (int64_t j = 0; j < cols; j += 4) {
      // vmulq/vmlsq_s32 wrap like the int32 lanes of the x86 kernels and the modular conversion of the portable one.
      int32x4_t v = vmlsq_s32(vld1q_s32(t + j), zp, vld1q_s32(sum + j));
      if (bzp) v = vmlsq_s32(v, vld1q_s32(bzp + j), rt);
      if (out == nullptr) {
        vst1q_f32(y + j, vmulq_f32(vcvtq_f32_s32(v), vmulq_f32(vld1q_f32(scale + j), rs)));
      } else if (j + 4 <= cols) {
        vst1q_s32(out + j, v);
      } else {
        int32_t lanes[4];
        vst1q_s32(lanes, v);
        std::memcpy(out + j, lanes, static_cast<std::size_t>(cols - j) * sizeof(int32_t));
      }
    }
    if (out == nullptr) neon::StoreRow(p.c_f32 + (i0 + r) * p.ldc + j0, y, cols, e);
  }
}

}  // namespace

void QgemmDriver(const QgemmTileKernel& kernel, const QgemmProblem& p, int64_t m_begin, int64_t m_end,
                 int64_t n_begin, int64_t n_end) {
  if (m_end <= m_begin || n_end <= n_begin) return;
  const SgemmPackedB& packed = *p.packed_b;
  assert(packed.format == kernel.format && n_begin % kGemmPanel == 0 && p.k <= 65536);
  const int64_t k = p.k;
  if (k == 0 && p.c_f32 != nullptr) {
    GemmEpilogueOnly(p.c_f32, p.ldc, m_begin, m_end, n_begin, n_end, p.beta, p.bias, p.activation);
    return;
  }
  const int64_t ld = std::max<int64_t>(16, (k + 15) / 16 * 16);
  // One row more than a block holds: the partner of a strip's odd last row is always readable.
  thread_local std::vector<uint8_t, Aligned64Allocator<uint8_t>> a_block;
  thread_local std::vector<QgemmRow> row_params;
  if (a_block.size() < static_cast<std::size_t>((kMc + 1) * ld)) a_block.resize(static_cast<std::size_t>((kMc + 1) * ld));
  row_params.resize(kMc);
  const bool b_zero_points = !packed.col_zero_point.empty();
  const int64_t panel_elements = PackedPanelElements(packed.format, k);
  neon::RowEpilogue e;  // fp32 output: the row scale already holds alpha, and there is one K block
  e.beta = p.beta;
  e.last = p.bias != nullptr || p.activation != SgemmActivation::kNone;
  e.act = p.activation;
  alignas(64) int32_t tile[kMaxRows * kGemmPanel];
  for (int64_t ib = m_begin; ib < m_end; ib += kMc) {
    const int64_t block_rows = std::min(kMc, m_end - ib);
    for (int64_t r = 0; r < block_rows; ++r) {
      row_params[r] = PrepareQuantizedRow(p, ib + r, ld, b_zero_points, a_block.data() + r * ld, QuantizeRow);
    }
    for (int64_t j0 = n_begin; j0 < n_end; j0 += kGemmPanel) {
      const int8_t* panel = packed.int8.data() + (j0 / kGemmPanel) * panel_elements;
      const int64_t cols = std::min(kGemmPanel, n_end - j0);
      e.bias = p.bias ? p.bias + j0 : nullptr;
      for (int64_t i0 = 0; i0 < block_rows; i0 += kernel.mr) {
        const int64_t rows = std::min(kernel.mr, block_rows - i0);
        kernel.tile(k, a_block.data() + i0 * ld, ld, rows, panel, tile);
        Epilogue(kernel, p, tile, rows, row_params.data() + i0, ib + i0, j0, cols, e);
      }
    }
  }
}

}  // namespace coreserve::kernels::arm64

namespace coreserve::kernels {

void QuantizeRowU8Neon(const float* a, int64_t k, uint8_t* q, float* scale, int32_t* zero_point) {
  arm64::QuantizeRow(a, k, q, scale, zero_point);
}

}  // namespace coreserve::kernels
