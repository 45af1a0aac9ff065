// int8 GEMM for AVX2 (CPUs without AVX512-VNNI): the same u8 x s8 -> s32 arithmetic and epilogue as
// qgemm_u8s8_avx512vnni, on the same packed layout (kInt8Quad32), with exact 16-bit products.
//
// Pitfall: the usual AVX2 u8 x s8 instruction, vpmaddubsw, adds pairs of products with signed 16-bit saturation
// (255 * 127 * 2 > 32767), which would make results depend on the data. Both operands are widened to int16
// instead (vpmovzxbw for A, done once per row when A is brought in; vpmovsxbw for B, on load) and multiplied
// with vpmaddwd, whose pair sums are exact in 32 bits.
//
// In kInt8Quad32, 16 bytes of a panel row are 4 columns x 4 consecutive K; widened, they meet A's 4 values of
// the quad (broadcast as one qword of 4 int16) and vpmaddwd leaves 2 partial sums per column (k0+k1, k2+k3).
// The accumulators keep that form through the K loop; vphaddd + vpermq fold them into 8 columns at the end.
// Tile: 4 rows x 8 columns = 8 accumulators + 2 B + 1 A + the vpmaddwd products in the 16 ymm registers (6 rows
// would need all 16 and GCC spills accumulators to the stack on every K step).
// Compiled with the AVX2 flags; called only when CpuFeatures::avx2_fma is set.
#include <immintrin.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/gemm/gemm_epilogue.h"
#include "kernels/gemm/gemm_epilogue_avx2.h"
#include "kernels/gemm/gemm_kernels.h"

namespace coreserve::kernels {
namespace {

constexpr int64_t kNr = 32;
constexpr int64_t kMr = 4;
constexpr int64_t kMc = 96;

struct TileColumns {
  const int32_t* sum;
  const int32_t* zero_point;  // or null
  const float* scale;
  int64_t cols;  // valid columns of these 8, 1..8
};

// The 8 column sums of two quad-form accumulators (columns 0-3 and 4-7).
__m256i Fold(__m256i lo, __m256i hi) {
  return _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo, hi), _MM_SHUFFLE(3, 1, 2, 0));
}

// tile[0:MR][0:8] = A[0:MR, 0:4 kq] * B[:, 8 columns] (a: MR int16 rows lda apart; b: the group's 32 bytes in
// each 128-byte quad row). The row loops are unrolled by pragma so GCC 12 keeps the accumulator arrays in
// registers (see qgemm_u8s8_avx512vnni.cc); the epilogue reads the tile back from L1.
template <int MR>
void Accumulate(int64_t kq, const int16_t* a, int64_t lda, const int8_t* b, int32_t* tile) {
  __m256i acc_lo[MR], acc_hi[MR];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) acc_lo[r] = acc_hi[r] = _mm256_setzero_si256();
  for (int64_t q = 0; q < kq; ++q) {
    const __m256i b_lo = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + q * 128)));
    const __m256i b_hi = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + q * 128 + 16)));
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      int64_t quad;
      std::memcpy(&quad, a + r * lda + 4 * q, sizeof quad);
      const __m256i av = _mm256_set1_epi64x(quad);
      acc_lo[r] = _mm256_add_epi32(_mm256_madd_epi16(av, b_lo), acc_lo[r]);
      acc_hi[r] = _mm256_add_epi32(_mm256_madd_epi16(av, b_hi), acc_hi[r]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) _mm256_store_si256(reinterpret_cast<__m256i*>(tile + 8 * r), Fold(acc_lo[r], acc_hi[r]));
}

using AccumulateFn = void (*)(int64_t, const int16_t*, int64_t, const int8_t*, int32_t*);
constexpr AccumulateFn kAccumulate[kMr + 1] = {nullptr, Accumulate<1>, Accumulate<2>, Accumulate<3>, Accumulate<4>};

// C[i0:i0+rows, j0:j0+8] from the tile's exact sums, as qgemm_u8s8_avx512vnni's epilogue.
void Epilogue(const int32_t* tile, int64_t rows, const QgemmRow* row_params, const TileColumns& col,
              const QgemmProblem& p, int64_t i0, int64_t j0) {
  const __m256i mask = avx2::LaneMask(col.cols);
  const __m256i sum = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(col.sum));
  const __m256i bzp = col.zero_point ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(col.zero_point))
                                     : _mm256_setzero_si256();
  const __m256 scale = _mm256_loadu_ps(col.scale);
  for (int64_t r = 0; r < rows; ++r) {
    const QgemmRow& row = row_params[r];
    __m256i v = _mm256_sub_epi32(_mm256_load_si256(reinterpret_cast<const __m256i*>(tile + 8 * r)),
                                 _mm256_mullo_epi32(_mm256_set1_epi32(row.zero_point), sum));
    if (col.zero_point) v = _mm256_sub_epi32(v, _mm256_mullo_epi32(bzp, _mm256_set1_epi32(row.row_term)));
    if (p.c_s32) {
      _mm256_maskstore_epi32(p.c_s32 + (i0 + r) * p.ldc + j0, mask, v);
      continue;
    }
    const __m256 y = _mm256_mul_ps(_mm256_cvtepi32_ps(v), _mm256_mul_ps(scale, _mm256_set1_ps(row.scale)));
    avx2::StoreRow8(p.c_f32 + (i0 + r) * p.ldc + j0, y, mask, p.beta, false, p.bias ? p.bias + j0 : nullptr,
                    p.activation, true);
  }
}

// Row a[0:k] quantized to u8 (QuantizeRowU8Reference, bit for bit) and widened to int16 in q. vminps/vmaxps
// return their second operand (the running value) when the first is NaN, like the scalar std::min/max.
void QuantizeRow(const float* a, int64_t k, int16_t* q, float* scale, int32_t* zero_point) {
  __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
  int64_t t = 0;
  for (; t + 8 <= k; t += 8) {
    const __m256 x = _mm256_loadu_ps(a + t);
    lo = _mm256_min_ps(x, lo);
    hi = _mm256_max_ps(x, hi);
  }
  float lo_s, hi_s;
  {
    float l[8], h[8];
    _mm256_storeu_ps(l, lo);
    _mm256_storeu_ps(h, hi);
    lo_s = l[0];
    hi_s = h[0];
    for (int i = 1; i < 8; ++i) {
      lo_s = std::min(lo_s, l[i]);
      hi_s = std::max(hi_s, h[i]);
    }
    for (int64_t l2 = t; l2 < k; ++l2) {
      lo_s = std::min(lo_s, a[l2]);
      hi_s = std::max(hi_s, a[l2]);
    }
  }
  float s, inv, z;
  RowQuantParams(lo_s, hi_s, &s, &inv, &z);
  const __m256 vinv = _mm256_set1_ps(inv), vz = _mm256_set1_ps(z);
  const __m256 zero = _mm256_setzero_ps(), top = _mm256_set1_ps(255.0f);
  for (t = 0; t + 8 <= k; t += 8) {
    __m256 v = _mm256_add_ps(
        _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(a + t), vinv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), vz);
    v = _mm256_min_ps(_mm256_max_ps(v, zero), top);  // max first: it returns 0 for NaN
    const __m256i w = _mm256_cvttps_epi32(v);
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packs_epi32(w, w), _MM_SHUFFLE(3, 1, 2, 0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + t), _mm256_castsi256_si128(packed));
  }
  for (; t < k; ++t) {
    float v = std::nearbyint(a[t] * inv) + z;
    v = v > 0.0f ? v : 0.0f;
    v = v < 255.0f ? v : 255.0f;
    q[t] = static_cast<int16_t>(v);
  }
  *scale = s;
  *zero_point = static_cast<int32_t>(z);
}

}  // namespace

void qgemm_u8s8_avx2(const QgemmProblem& p, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end) {
  if (m_end <= m_begin || n_end <= n_begin) return;
  const SgemmPackedB& packed = *p.packed_b;
  assert(packed.format == PackedFormat::kInt8Quad32 && n_begin % kNr == 0 && p.k <= 65536);
  const int64_t k = p.k;
  if (k == 0 && p.c_f32 != nullptr) {
    GemmEpilogueOnly(p.c_f32, p.ldc, m_begin, m_end, n_begin, n_end, p.beta, p.bias, p.activation);
    return;
  }
  const int64_t kq = (k + 3) / 4;
  const int64_t ld = std::max<int64_t>(32, (k + 31) / 32 * 32);  // int16 elements
  thread_local std::vector<int16_t, Aligned64Allocator<int16_t>> a_block;
  thread_local std::vector<QgemmRow> row_params;
  if (a_block.size() < static_cast<std::size_t>(kMc * ld)) a_block.resize(static_cast<std::size_t>(kMc * ld));
  row_params.resize(kMc);
  const bool b_zero_points = !packed.col_zero_point.empty();
  const int64_t panel_elements = PackedPanelElements(PackedFormat::kInt8Quad32, k);
  for (int64_t ib = m_begin; ib < m_end; ib += kMc) {
    const int64_t block_rows = std::min(kMc, m_end - ib);
    for (int64_t r = 0; r < block_rows; ++r) {
      row_params[r] = PrepareQuantizedRow(p, ib + r, kq * 4, b_zero_points, a_block.data() + r * ld, QuantizeRow);
    }
    for (int64_t j0 = n_begin; j0 < n_end; j0 += kNr) {
      const int8_t* panel = packed.int8.data() + (j0 / kNr) * panel_elements;
      // The panel's four 8-column groups: bytes [8 g * 4, 8 g * 4 + 32) of every 128-byte quad row.
      for (int64_t g = 0; g < kNr / 8 && j0 + 8 * g < n_end; ++g) {
        const int64_t jg = j0 + 8 * g;
        const TileColumns col{packed.col_sum.data() + jg,
                              b_zero_points ? packed.col_zero_point.data() + jg : nullptr,
                              packed.col_scale.data() + jg, std::min<int64_t>(8, n_end - jg)};
        for (int64_t i0 = 0; i0 < block_rows; i0 += kMr) {
          const int64_t rows = std::min(kMr, block_rows - i0);
          alignas(32) int32_t tile[kMr * 8];
          kAccumulate[rows](kq, a_block.data() + i0 * ld, ld, panel + 32 * g, tile);
          Epilogue(tile, rows, row_params.data() + i0, col, p, ib + i0, jg);
        }
      }
    }
  }
}

}  // namespace coreserve::kernels
