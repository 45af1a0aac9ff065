// int8 GEMM for AVX512-VNNI: u8 A x s8 B -> exact s32 sums, then the int32 or dequantizing fp32 epilogue.
//
// vpdpbusd multiplies 4 consecutive u8 of A with 4 s8 of B and adds the 4 products to one s32 lane, for 16 lanes
// at once. B is packed (once) as kInt8Quad32: per 32-column panel, for each group of 4 K rows, the 32 columns'
// 4 values, i.e. two zmm per K quad. Each call first brings its own rows of A, kMc at a time, into a
// thread-local buffer of u8 rows (quantizing fp32 A per row, or copying integer A), where a K quad of a row is
// one dword for vpbroadcastd. The micro-kernel is a 12x32 tile: per K quad 2 loads of B, 12 broadcasts and 24
// vpdpbusd into 24 accumulators. K is not blocked: the sums must stay exact int32 until the epilogue, and a
// panel's K x 32 bytes of B (96 KB at K = 3072) sit in L2 anyway.
//
// Pitfalls: vpdpbusd (unlike vpmaddubsw) does not saturate its intermediate sums, but its s32 accumulation wraps:
// |sum| <= K * 255 * 128 stays below 2^31 for K <= 65536 (asserted). The u8 operand must be A, the s8 one B.
// Compiled with the AVX-512 flags and -mavx512vnni; called only when CpuFeatures::avx512_vnni is set.
#include <immintrin.h>

#include <algorithm>
#include <cassert>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/gemm/gemm_epilogue.h"
#include "kernels/gemm/gemm_epilogue_avx512.h"
#include "kernels/gemm/gemm_kernels.h"

namespace coreserve::kernels {
namespace {

using avx512::GemmEpilogue;

constexpr int64_t kNr = 32;
constexpr int64_t kMc = 96;
// Up to this K, |sum_k q_a * q_b| <= K * 255 * 127 and |z * colsum| <= 255 * K * 127 stay below 2^24, exact in
// fp32.
constexpr int64_t kFloatCorrectionMaxK = ((int64_t{1} << 24) - 1) / (255 * 127);  // rows of A quantized per block: 96 x K bytes (288 KB at K = 3072)

// What the epilogue needs about the tile's 32 columns and the problem.
struct TileColumns {
  const int32_t* sum;         // sum_k of B's s8 values
  const int32_t* zero_point;  // B's zero points, or null
  const float* scale;         // s_j
  __mmask16 m0, m1;
};

// acc[r][t] = A[r, 0:4 kq] * B[0:4 kq, columns 16t..16t+15 of the NP panels] (a: MR u8 rows lda apart; b: NP
// panels b_stride apart, each kq quad rows of 128 bytes). The row loops are unrolled by pragma and the function
// is always inlined into its callers: left to -O3's own unrolling, GCC 12 keeps the accumulator arrays in memory
// and stores all 24 on every K step (half speed); unrolled up front they are scalarized into registers. NP > 1
// serves strips of few rows (M = 1 is the latency case): one row and one panel would leave 2 accumulation
// chains, too few to cover vpdpbusd latency, and one B stream.
template <int MR, int NP>
[[gnu::always_inline]] inline void AccumulateInto(int64_t kq, const uint8_t* a, int64_t lda, const int8_t* b,
                                                  int64_t b_stride, __m512i (&acc)[MR][2 * NP]) {
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 8
    for (int t = 0; t < 2 * NP; ++t) acc[r][t] = _mm512_setzero_si512();
  }
  for (int64_t q = 0; q < kq; ++q) {
    __m512i bv[2 * NP];
#pragma GCC unroll 8
    for (int t = 0; t < 2 * NP; ++t) bv[t] = _mm512_load_si512(b + (t / 2) * b_stride + q * 128 + (t % 2) * 64);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      int32_t quad;
      std::memcpy(&quad, a + r * lda + 4 * q, sizeof quad);
      const __m512i av = _mm512_set1_epi32(quad);
#pragma GCC unroll 8
      for (int t = 0; t < 2 * NP; ++t) acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], av, bv[t]);
    }
  }
}

// tile[0:MR][0:32 NP] = the exact sums, for Epilogue to read back from L1.
template <int MR, int NP>
void Accumulate(int64_t kq, const uint8_t* a, int64_t lda, const int8_t* b, int64_t b_stride, int32_t* tile) {
  __m512i acc[MR][2 * NP];
  AccumulateInto<MR, NP>(kq, a, lda, b, b_stride, acc);
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 8
    for (int t = 0; t < 2 * NP; ++t) _mm512_store_si512(tile + r * NP * kNr + 16 * t, acc[r][t]);
  }
}

// The common fp32 output, written from the accumulator registers (no tile in memory): fp32 zero-point
// correction (K <= kFloatCorrectionMaxK), no B zero points, beta = 0, bias / residual / ReLU at most. Pointers are
// at the tile's first row and column.
struct DirectTile {
  float* c;
  int64_t ldc;
  const int32_t* col_sum;       // sum_k of B's s8 values
  const float* col_scale;       // s_j
  const float* bias;            // or null
  const float* residual;        // or null
  int64_t ldr;
  const QgemmRow* rows;         // the rows' scales (alpha * s_i)
  const float* row_zero_point;  // z_i, as floats
  __mmask16 m0, m1;             // the columns of a single panel's halves (several panels are always whole)
  bool relu;
};

// As Accumulate, then C = act(rs_i * (s_j * (acc - z_i * colsum_j)) + bias_j + residual) per element: 4 FMA-pipe
// operations per 16 outputs (convert, correct, scale, scale and add the bias) where the general Epilogue needs 5
// plus a store and a load of the tile. With a short K (ResNet's 1x1 convolutions: 16 K quads per tile) those
// were ~20% of the product. The results differ from Epilogue's in rounding only (the reference's x * (s_i * s_j)
// + bias is one more rounding); a product takes one path for all its tiles, so splits give the same bits.
template <int MR, int NP>
void AccumulateDirect(int64_t kq, const uint8_t* a, int64_t lda, const int8_t* b, int64_t b_stride,
                      const DirectTile& tile) {
  const DirectTile o = tile;  // a copy in registers: through the reference, every field is reloaded after each store
  __m512i acc[MR][2 * NP];
  AccumulateInto<MR, NP>(kq, a, lda, b, b_stride, acc);
  // Each accumulator declared live in a register at the loop's exit. Without this GCC 12 lets the epilogue's
  // register demand into the K loop: it copied every accumulator between registers and spilled half of them to
  // the stack on every K step.
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 8
    for (int t = 0; t < 2 * NP; ++t) asm("" : "+v"(acc[r][t]));
  }
#pragma GCC unroll 8
  for (int t = 0; t < 2 * NP; ++t) {
    const int64_t j = 16 * t;
    const __mmask16 m = NP > 1 ? __mmask16{0xffff} : (t ? o.m1 : o.m0);
    const __m512 fsum = _mm512_cvtepi32_ps(_mm512_load_si512(o.col_sum + j));
    const __m512 scale = _mm512_load_ps(o.col_scale + j);
    const __m512 bias = o.bias ? _mm512_maskz_loadu_ps(m, o.bias + j) : _mm512_setzero_ps();
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m512 x =
          _mm512_fnmadd_ps(_mm512_set1_ps(o.row_zero_point[r]), fsum, _mm512_cvtepi32_ps(acc[r][t]));
      __m512 y = _mm512_fmadd_ps(_mm512_mul_ps(x, scale), _mm512_set1_ps(o.rows[r].scale), bias);
      if (o.residual) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(m, o.residual + r * o.ldr + j));
      if (o.relu) y = _mm512_max_ps(y, _mm512_setzero_ps());
      _mm512_mask_storeu_ps(o.c + r * o.ldc + j, m, y);
    }
  }
}

using AccumulateFn = void (*)(int64_t, const uint8_t*, int64_t, const int8_t*, int64_t, int32_t*);
// One panel, by rows.
constexpr AccumulateFn kAccumulate[13] = {
    nullptr,           Accumulate<1, 1>, Accumulate<2, 1>, Accumulate<3, 1>,  Accumulate<4, 1>,  Accumulate<5, 1>,
    Accumulate<6, 1>,  Accumulate<7, 1>, Accumulate<8, 1>, Accumulate<9, 1>, Accumulate<10, 1>, Accumulate<11, 1>,
    Accumulate<12, 1>};
// Strips of up to 4 rows take several panels at once: 1-2 rows x 4 panels or 3-4 rows x 2 panels (at most 16
// accumulators + 8 B registers).
constexpr int64_t kWideRows = 4;
constexpr int64_t kWidePanels[kWideRows + 1] = {0, 4, 4, 2, 2};
constexpr AccumulateFn kWide[kWideRows + 1] = {nullptr, Accumulate<1, 4>, Accumulate<2, 4>, Accumulate<3, 2>,
                                               Accumulate<4, 2>};
using AccumulateDirectFn = void (*)(int64_t, const uint8_t*, int64_t, const int8_t*, int64_t, const DirectTile&);
constexpr AccumulateDirectFn kAccumulateDirect[13] = {
    nullptr,                 AccumulateDirect<1, 1>,  AccumulateDirect<2, 1>,  AccumulateDirect<3, 1>,
    AccumulateDirect<4, 1>,  AccumulateDirect<5, 1>,  AccumulateDirect<6, 1>,  AccumulateDirect<7, 1>,
    AccumulateDirect<8, 1>,  AccumulateDirect<9, 1>,  AccumulateDirect<10, 1>, AccumulateDirect<11, 1>,
    AccumulateDirect<12, 1>};
constexpr AccumulateDirectFn kWideDirect[kWideRows + 1] = {nullptr, AccumulateDirect<1, 4>, AccumulateDirect<2, 4>,
                                                           AccumulateDirect<3, 2>, AccumulateDirect<4, 2>};

// Requests a tile's rows of C (and of the residual) before its K loop, as the fp32 kernels do: a C larger than
// the caches (512 x 3072 fp32 is 6 MB) otherwise stalls the epilogue's stores.
[[gnu::always_inline]] inline void PrefetchRows(const float* c, int64_t ldc, int64_t rows, const float* residual,
                                                int64_t ldr) {  // inlined, or GCC deletes it (see PrefetchTile)
  const GemmEpilogue residual_only{nullptr, SgemmActivation::kNone, residual, ldr};
  avx512::PrefetchTile(c, ldc, static_cast<int>(rows), residual ? &residual_only : nullptr);
}

// C[i0:i0+rows, j0:j0+32] from the tile's exact sums: the zero-point corrections, then int32 out or the fp32
// epilogue.
void Epilogue(const int32_t* tile, int64_t tile_ld, int64_t rows, const QgemmRow* row_params, const TileColumns& col,
              const QgemmProblem& p, int64_t i0, int64_t j0, const GemmEpilogue* last) {
  // acc - z_i * colsum_j (- bzp_j * row_term_i): exact, in wrapping int32 lanes (or in fp32, below).
  const __m512i sum0 = _mm512_load_si512(col.sum), sum1 = _mm512_load_si512(col.sum + 16);
  __m512i bzp0 = _mm512_setzero_si512(), bzp1 = _mm512_setzero_si512();
  if (col.zero_point) {
    bzp0 = _mm512_load_si512(col.zero_point);
    bzp1 = _mm512_load_si512(col.zero_point + 16);
  }
  const __m512 scale0 = _mm512_load_ps(col.scale), scale1 = _mm512_load_ps(col.scale + 16);
  const avx512::TileBias bias(last, col.m0, col.m1);
  // Up to kFloatCorrectionMaxK the correction is done in fp32, fused: acc and z_i * colsum_j are integers below
  // 2^24, so cvt(acc) is exact and the fnmadd rounds the exact difference once, as converting the int32
  // difference does: the same bits as the integer path, without its two vpmulld and two vpsubd per row
  // (short-K convolutions spend a third of their time in this epilogue).
  const bool float_correction = p.c_f32 && !col.zero_point && p.k <= kFloatCorrectionMaxK;
  const __m512 fsum0 = _mm512_cvtepi32_ps(sum0), fsum1 = _mm512_cvtepi32_ps(sum1);
  // One loop per correction, chosen once per tile, so neither path tests the other's condition per row.
  auto rows_out = [&]<bool kFloat>() {
    for (int64_t r = 0; r < rows; ++r) {
      const QgemmRow& row = row_params[r];
      const __m512i acc0 = _mm512_load_si512(tile + r * tile_ld), acc1 = _mm512_load_si512(tile + r * tile_ld + 16);
      __m512 x0, x1;  // the corrected sums, in fp32
      if constexpr (kFloat) {
        const __m512 zp = _mm512_set1_ps(static_cast<float>(row.zero_point));
        x0 = _mm512_fnmadd_ps(zp, fsum0, _mm512_cvtepi32_ps(acc0));
        x1 = _mm512_fnmadd_ps(zp, fsum1, _mm512_cvtepi32_ps(acc1));
      } else {
        const __m512i zp = _mm512_set1_epi32(row.zero_point);
        __m512i v0 = _mm512_sub_epi32(acc0, _mm512_mullo_epi32(zp, sum0));
        __m512i v1 = _mm512_sub_epi32(acc1, _mm512_mullo_epi32(zp, sum1));
        if (col.zero_point) {
          const __m512i rt = _mm512_set1_epi32(row.row_term);
          v0 = _mm512_sub_epi32(v0, _mm512_mullo_epi32(bzp0, rt));
          v1 = _mm512_sub_epi32(v1, _mm512_mullo_epi32(bzp1, rt));
        }
        if (p.c_s32) {
          int32_t* out = p.c_s32 + (i0 + r) * p.ldc + j0;
          _mm512_mask_storeu_epi32(out, col.m0, v0);
          _mm512_mask_storeu_epi32(out + 16, col.m1, v1);
          continue;
        }
        x0 = _mm512_cvtepi32_ps(v0);
        x1 = _mm512_cvtepi32_ps(v1);
      }
      const __m512 rs = _mm512_set1_ps(row.scale);
      const __m512 y0 = _mm512_mul_ps(x0, _mm512_mul_ps(scale0, rs)), y1 = _mm512_mul_ps(x1, _mm512_mul_ps(scale1, rs));
      avx512::StoreRow(p.c_f32 + (i0 + r) * p.ldc + j0, y0, y1, col.m0, col.m1, p.beta, false, last, bias,
                       last ? last->ResidualRow(static_cast<int>(r)) : nullptr);
    }
  };
  if (float_correction) {
    rows_out.template operator()<true>();
  } else {
    rows_out.template operator()<false>();
  }
}

// Dword e of 128-bit lane L (position 4L + e) moved to position 4e + L: both the range reduction and the
// saturating packs leave 4 x 4 results in that transposed order.
inline __m512i LaneMajorOrder() { return _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15); }

// lo, hi: the running min and max of row a[0:k], 16 lanes each. vminps/vmaxps return their second operand, the
// running value, when the first is NaN, so NaN is skipped as std::min/max skip it, and -0.0 never replaces the
// initial +0.0 (so no lane holds NaN or -0.0, and the lanes may be combined in any order). Four running pairs:
// one is a chain of dependent min/max that left the scan latency-bound.
inline void RowRange(const float* a, int64_t k, __m512* lo_out, __m512* hi_out) {
  __m512 lo[4], hi[4];
  for (int u = 0; u < 4; ++u) lo[u] = hi[u] = _mm512_setzero_ps();
  int64_t t = 0;
  for (; t + 64 <= k; t += 64) {
    for (int u = 0; u < 4; ++u) {
      const __m512 x = _mm512_loadu_ps(a + t + 16 * u);
      lo[u] = _mm512_min_ps(x, lo[u]);
      hi[u] = _mm512_max_ps(x, hi[u]);
    }
  }
  for (; t < k; t += 16) {
    const __m512 x = _mm512_maskz_loadu_ps(avx512::ColumnMask(k - t), a + t);  // lanes past k are 0, in range
    lo[0] = _mm512_min_ps(x, lo[0]);
    hi[0] = _mm512_max_ps(x, hi[0]);
  }
  *lo_out = _mm512_min_ps(_mm512_min_ps(lo[0], lo[1]), _mm512_min_ps(lo[2], lo[3]));
  *hi_out = _mm512_max_ps(_mm512_max_ps(hi[0], hi[1]), _mm512_max_ps(hi[2], hi[3]));
}

// Lane r of the result: op over the 16 lanes of v[r], for 16 vectors at once (a transpose-and-reduce tree: 45
// shuffles and ops instead of 16 horizontal reductions of ~8 dependent steps each).
template <typename Op>
inline __m512 ReduceLanes16(const __m512 (&v)[16], Op op) {
  __m512 w[8], x[4], y[2];
  for (int i = 0; i < 8; ++i) {  // [rows 2i, 2i+1] x 8 partials each
    w[i] = op(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
              _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  }
  for (int i = 0; i < 4; ++i) {  // 128-bit lane L: row 4i + L, 4 partials
    x[i] = op(_mm512_shuffle_f32x4(w[2 * i], w[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
              _mm512_shuffle_f32x4(w[2 * i], w[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  }
  for (int i = 0; i < 2; ++i) {  // lane L: rows 8i + L and 8i + 4 + L, 2 partials each
    y[i] = op(_mm512_shuffle_ps(x[2 * i], x[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
              _mm512_shuffle_ps(x[2 * i], x[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  }
  // Element e of lane L: row L + 4e.
  const __m512 z = op(_mm512_shuffle_ps(y[0], y[1], _MM_SHUFFLE(2, 0, 2, 0)),
                      _mm512_shuffle_ps(y[0], y[1], _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm512_permutexvar_ps(LaneMajorOrder(), z);
}

}  // namespace

// Rows [0, rows) of A (row i at a + i * lda) quantized to u8 at q + i * ldq (QuantizeRowU8Reference, bit for
// bit), 16 rows at a time: their ranges are reduced together and RowQuantParams runs as one vector operation for
// the 16 (the same IEEE divisions and rounding), which for the short rows of convolutions (K = 64) cost more than
// the values themselves. The values: round(a * r) to int32 (nearest even, as nearbyint), + z, then the clamp to
// [0, 255] by saturating packs (or max(0) and vpmovusdb's unsigned saturation). NaN and out-of-range products
// convert to INT32_MIN and so end at 0, as the reference's `v > 0 ? v : 0` maps NaN; a product out of range can
// only be NaN here (|a * r| <= ~255 for finite a; infinite a makes r = 0).
void QuantizeRowsU8Avx512(const float* a, int64_t lda, int64_t k, int64_t rows, uint8_t* q, int64_t ldq,
                          float* scale, int32_t* zero_point) {
  for (int64_t g = 0; g < rows; g += 16) {
    const int n = static_cast<int>(std::min<int64_t>(16, rows - g));
    __m512 lo[16], hi[16];
    for (int r = 0; r < 16; ++r) {
      if (r < n) {
        RowRange(a + (g + r) * lda, k, &lo[r], &hi[r]);
      } else {
        lo[r] = hi[r] = _mm512_setzero_ps();
      }
    }
    const __m512 lo_row = ReduceLanes16(lo, [](__m512 x, __m512 y) { return _mm512_min_ps(x, y); });
    const __m512 hi_row = ReduceLanes16(hi, [](__m512 x, __m512 y) { return _mm512_max_ps(x, y); });
    // RowQuantParams for the 16 rows, operation for operation.
    __m512 s = _mm512_div_ps(_mm512_sub_ps(hi_row, lo_row), _mm512_set1_ps(255.0f));
    s = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(s, _mm512_set1_ps(std::numeric_limits<float>::min()), _CMP_GE_OQ),
                             _mm512_set1_ps(1.0f), s);
    const __m512 inv = _mm512_div_ps(_mm512_set1_ps(1.0f), s);
    const __m512 neg_lo = _mm512_castsi512_ps(
        _mm512_xor_si512(_mm512_castps_si512(lo_row), _mm512_set1_epi32(static_cast<int32_t>(0x80000000u))));
    __m512 z = _mm512_roundscale_ps(_mm512_mul_ps(neg_lo, inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    z = _mm512_max_ps(_mm512_min_ps(z, _mm512_set1_ps(255.0f)), _mm512_setzero_ps());  // NaN -> 255, as the scalar
    const __mmask16 valid = avx512::ColumnMask(n);
    _mm512_mask_storeu_ps(scale + g, valid, s);
    _mm512_mask_storeu_epi32(zero_point + g, valid, _mm512_cvttps_epi32(z));
    alignas(64) float inv_of[16], z_of[16];
    _mm512_store_ps(inv_of, inv);
    _mm512_store_ps(z_of, z);
    for (int r = 0; r < n; ++r) {
      const float* row = a + (g + r) * lda;
      uint8_t* out = q + (g + r) * ldq;
      const __m512 vinv = _mm512_set1_ps(inv_of[r]);
      const __m512i vz = _mm512_set1_epi32(static_cast<int32_t>(z_of[r])), zero = _mm512_setzero_si512();
      auto quantize = [&](__m512 x) {  // round(x * r) + z in int32
        return _mm512_add_epi32(
            _mm512_cvt_roundps_epi32(_mm512_mul_ps(x, vinv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), vz);
      };
      // 64 values at a time through the saturating packs (s32 -> u16 -> u8, negatives to 0), which interleave
      // the four vectors by 128-bit lane; one dword permutation puts them back in order.
      int64_t t = 0;
      for (; t + 64 <= k; t += 64) {
        const __m512i ab = _mm512_packus_epi32(quantize(_mm512_loadu_ps(row + t)), quantize(_mm512_loadu_ps(row + t + 16)));
        const __m512i cd =
            _mm512_packus_epi32(quantize(_mm512_loadu_ps(row + t + 32)), quantize(_mm512_loadu_ps(row + t + 48)));
        _mm512_storeu_si512(out + t, _mm512_permutexvar_epi32(LaneMajorOrder(), _mm512_packus_epi16(ab, cd)));
      }
      for (; t + 16 <= k; t += 16) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + t),
                         _mm512_cvtusepi32_epi8(_mm512_max_epi32(quantize(_mm512_loadu_ps(row + t)), zero)));
      }
      if (t < k) {
        const __mmask16 m = avx512::ColumnMask(k - t);
        _mm512_mask_cvtusepi32_storeu_epi8(out + t, m, _mm512_max_epi32(quantize(_mm512_maskz_loadu_ps(m, row + t)), zero));
      }
    }
  }
}

void QuantizeRowU8Avx512(const float* a, int64_t k, uint8_t* q, float* scale, int32_t* zero_point) {
  QuantizeRowsU8Avx512(a, k, k, 1, q, k, scale, zero_point);
}

void qgemm_u8s8_avx512vnni(const QgemmProblem& p, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end) {
  if (m_end <= m_begin || n_end <= n_begin) return;
  const SgemmPackedB& packed = *p.packed_b;
  assert(packed.format == PackedFormat::kInt8Quad32 && n_begin % kNr == 0 && p.k <= 65536);
  const int64_t k = p.k;
  if (k == 0 && p.c_f32 != nullptr) {
    GemmEpilogueOnly(p.c_f32, p.ldc, m_begin, m_end, n_begin, n_end, p.beta, p.bias, p.activation, p.residual, p.ldr);
    return;
  }
  const int64_t ld = std::max<int64_t>(64, (k + 63) / 64 * 64);
  const int64_t kq = (k + 3) / 4;
  thread_local std::vector<uint8_t, Aligned64Allocator<uint8_t>> a_block;
  thread_local std::vector<QgemmRow> row_params;
  if (a_block.size() < static_cast<std::size_t>(kMc * ld)) a_block.resize(static_cast<std::size_t>(kMc * ld));
  row_params.resize(kMc);
  const bool b_zero_points = !packed.col_zero_point.empty();
  const int64_t panel_elements = PackedPanelElements(PackedFormat::kInt8Quad32, k);
  const bool has_epilogue = HasEpilogue(p);
  // A quantized beforehand (every column tile of a product shares it) is read where it lies when its rows are
  // whole K quads: copying it into a_block cost ~2% of BERT's int8 GEMMs.
  const bool a_in_place = p.a_quantized != nullptr && k % 4 == 0 && !b_zero_points;
  // The fp32 outputs AccumulateDirect finishes in registers; the rest go through Epilogue.
  const bool direct = p.c_f32 != nullptr && !b_zero_points && k <= kFloatCorrectionMaxK && p.beta == 0.0f &&
                      (p.activation == SgemmActivation::kNone || p.activation == SgemmActivation::kRelu);
  thread_local std::vector<float> direct_zero_point;  // row_params' zero points as floats, for AccumulateDirect
  direct_zero_point.resize(kMc);
  for (int64_t ib = m_begin; ib < m_end; ib += kMc) {
    const int64_t block_rows = std::min(kMc, m_end - ib);
    const uint8_t* a_rows = a_block.data();
    int64_t a_ld = ld;
    if (a_in_place) {
      a_ld = p.a_quantized->ld;
      a_rows = p.a_quantized->data + ib * a_ld;
      for (int64_t r = 0; r < block_rows; ++r) {
        row_params[r] = {p.alpha * p.a_quantized->scale[ib + r], p.a_quantized->zero_point[ib + r], 0};
      }
    } else if (p.a_f32 != nullptr && p.a_quantized == nullptr && !b_zero_points) {
      // fp32 A: the block's rows quantized together, then zero-padded to whole K quads.
      thread_local std::vector<float> row_scale;
      thread_local std::vector<int32_t> row_zero_point;
      row_scale.resize(kMc);
      row_zero_point.resize(kMc);
      QuantizeRowsU8Avx512(p.a_f32 + ib * p.lda, p.lda, k, block_rows, a_block.data(), ld, row_scale.data(),
                           row_zero_point.data());
      for (int64_t r = 0; r < block_rows; ++r) {
        std::fill(a_block.data() + r * ld + k, a_block.data() + r * ld + kq * 4, uint8_t{0});
        row_params[r] = {p.alpha * row_scale[r], row_zero_point[r], 0};
      }
    } else {
      for (int64_t r = 0; r < block_rows; ++r) {
        row_params[r] = PrepareQuantizedRow(p, ib + r, kq * 4, b_zero_points, a_block.data() + r * ld, QuantizeRowU8Avx512);
      }
    }
    if (direct) {
      for (int64_t r = 0; r < block_rows; ++r) direct_zero_point[r] = static_cast<float>(row_params[r].zero_point);
    }
    // The tile of panels [j0, j0 + 32 panels) for rows [i0, i0 + rows) of the block: accumulated, then finished
    // from the registers (direct) or through `tile` and Epilogue.
    alignas(64) int32_t tile[12 * kNr];
    auto run = [&](int64_t i0, int64_t rows, int64_t j0, int64_t panels) {
      const uint8_t* a = a_rows + i0 * a_ld;
      const int8_t* b = packed.int8.data() + (j0 / kNr) * panel_elements;
      const float* residual = p.residual ? p.residual + (ib + i0) * p.ldr + j0 : nullptr;
      if (p.c_f32 && panels == 1) PrefetchRows(p.c_f32 + (ib + i0) * p.ldc + j0, p.ldc, rows, residual, p.ldr);
      if (direct) {
        const int64_t cols = std::min(panels * kNr, n_end - j0);
        const DirectTile o{p.c_f32 + (ib + i0) * p.ldc + j0, p.ldc, packed.col_sum.data() + j0,
                           packed.col_scale.data() + j0, p.bias ? p.bias + j0 : nullptr, residual, p.ldr,
                           row_params.data() + i0, direct_zero_point.data() + i0, avx512::ColumnMask(cols),
                           avx512::ColumnMask(cols - 16), p.activation == SgemmActivation::kRelu};
        (panels == 1 ? kAccumulateDirect : kWideDirect)[rows](kq, a, a_ld, b, panel_elements, o);
        return;
      }
      (panels == 1 ? kAccumulate : kWide)[rows](kq, a, a_ld, b, panel_elements, tile);
      for (int64_t pn = 0; pn < panels; ++pn) {
        const int64_t jp = j0 + pn * kNr, pcols = std::min(kNr, n_end - jp);
        const TileColumns col{packed.col_sum.data() + jp, b_zero_points ? packed.col_zero_point.data() + jp : nullptr,
                              packed.col_scale.data() + jp, avx512::ColumnMask(pcols), avx512::ColumnMask(pcols - 16)};
        GemmEpilogue epilogue{p.bias ? p.bias + jp : nullptr, p.activation, residual ? residual + pn * kNr : nullptr,
                              p.ldr};
        Epilogue(tile + pn * kNr, panels * kNr, rows, row_params.data() + i0, col, p, ib + i0, jp,
                 has_epilogue ? &epilogue : nullptr);
      }
    };
    // Full 12-row strips sweep one panel at a time (the panel's K x 32 bytes stay in L1/L2 across the strips);
    // a last strip of up to 4 rows sweeps several panels at once.
    const int64_t short_rows = block_rows % 12 <= kWideRows ? block_rows % 12 : 0;
    const int64_t strip_rows = block_rows - short_rows;
    for (int64_t j0 = n_begin; j0 < n_end; j0 += kNr) {
      for (int64_t i0 = 0; i0 < strip_rows; i0 += 12) run(i0, std::min<int64_t>(12, strip_rows - i0), j0, 1);
    }
    if (short_rows > 0) {
      const int64_t wide = kWidePanels[short_rows];
      int64_t j0 = n_begin;
      for (; j0 + wide * kNr <= n_end; j0 += wide * kNr) run(strip_rows, short_rows, j0, wide);
      for (; j0 < n_end; j0 += kNr) run(strip_rows, short_rows, j0, 1);
    }
  }
}

}  // namespace coreserve::kernels
