// The fp32 epilogue shared by the AVX-512 GEMM kernels (fp32, bf16, int8): for one row of a 32-column tile held
// in two zmm registers, C = act(y + (accumulate ? C : beta * C) + bias), with masked loads and stores so the
// right edge of C (and the padding columns of a strided C) is never touched. Include only from files compiled
// with the AVX-512 flags.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "kernels/gemm/sgemm.h"
#include "kernels/math/f32_math_avx512.h"

namespace coreserve::kernels::avx512 {

// The part of the epilogue applied once, after the last K block: bias (already offset to the tile's first
// column), residual (offset to the tile's first row and column) and activation.
struct GemmEpilogue {
  const float* bias = nullptr;
  SgemmActivation activation = SgemmActivation::kNone;
  const float* residual = nullptr;
  int64_t ldr = 0;
  // Row r of the tile's residual, or null.
  const float* ResidualRow(int r) const { return residual ? residual + r * ldr : nullptr; }
  // The same epilogue for the columns from `cols` on (the next panels of a multi-panel tile).
  GemmEpilogue Shifted(int64_t cols) const {
    return {bias ? bias + cols : nullptr, activation, residual ? residual + cols : nullptr, ldr};
  }
};

inline __m512 Activate(__m512 y, SgemmActivation act) {
  if (act == SgemmActivation::kRelu) return _mm512_max_ps(y, _mm512_setzero_ps());
  if (act == SgemmActivation::kGelu) return Gelu(y);
  if (act == SgemmActivation::kGeluTanh) return GeluTanh(y);
  return y;
}

// Lanes [0, cols) of a 16-lane register.
inline __mmask16 ColumnMask(int64_t cols) {
  if (cols >= 16) return 0xffff;
  if (cols <= 0) return 0;
  return static_cast<__mmask16>((1u << cols) - 1);
}

// The bias of a tile's two halves (zero without bias or before the last K block).
struct TileBias {
  __m512 b0 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps();
  [[gnu::always_inline]] TileBias(const GemmEpilogue* last, __mmask16 m0, __mmask16 m1) {
    if (last && last->bias) {
      b0 = _mm512_maskz_loadu_ps(m0, last->bias);
      b1 = _mm512_maskz_loadu_ps(m1, last->bias + 16);
    }
  }
};

// Requests the lines of a tile's MR rows of C (for writing) and of its residual, so they arrive while the
// kernel computes: each row is a separate stream (stride ldc) that the hardware prefetchers do not follow, and
// with a short K a C larger than the caches otherwise stalls every tile on its stores. Always inlined: GCC 12
// counts __builtin_prefetch as free of side effects, so an out-of-line PrefetchTile is found `const` and every
// call to it is deleted as dead code (which is what happened to all of them until this was added).
[[gnu::always_inline]] inline void PrefetchTile(const float* c, int64_t ldc, int rows, const GemmEpilogue* last) {
  for (int r = 0; r < rows; ++r) {
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_ET0);
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 31), _MM_HINT_ET0);
  }
  if (last && last->residual) {
    for (int r = 0; r < rows; ++r) {
      _mm_prefetch(reinterpret_cast<const char*>(last->residual + r * last->ldr), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(last->residual + r * last->ldr + 31), _MM_HINT_T0);
    }
  }
}

// Stores one row: y0, y1 are alpha * (this K block's product) for columns [0, 16) and [16, 32); `residual` is
// the row's residual (read only with `last`).
inline void StoreRow(float* row, __m512 y0, __m512 y1, __mmask16 m0, __mmask16 m1, float beta, bool accumulate,
                     const GemmEpilogue* last, const TileBias& bias, const float* residual = nullptr) {
  if (accumulate) {
    y0 = _mm512_add_ps(y0, _mm512_maskz_loadu_ps(m0, row));
    y1 = _mm512_add_ps(y1, _mm512_maskz_loadu_ps(m1, row + 16));
  } else if (beta != 0.0f) {
    const __m512 vb = _mm512_set1_ps(beta);
    y0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, row), y0);
    y1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, row + 16), y1);
  }
  if (last) {
    if (residual) {
      y0 = _mm512_add_ps(y0, _mm512_maskz_loadu_ps(m0, residual));
      y1 = _mm512_add_ps(y1, _mm512_maskz_loadu_ps(m1, residual + 16));
    }
    y0 = Activate(_mm512_add_ps(y0, bias.b0), last->activation);
    y1 = Activate(_mm512_add_ps(y1, bias.b1), last->activation);
  }
  _mm512_mask_storeu_ps(row, m0, y0);
  _mm512_mask_storeu_ps(row + 16, m1, y1);
}

// How a tile's accumulators become C, decided once per tile. kPlain (C = acc, or C += acc on a later K block)
// and kFused (then + residual + bias, ReLU or none) are written straight from the accumulator registers by an
// unrolled StoreRowFast; anything else (alpha, beta, GELU) goes through StoreRow. The kernels keep the two apart
// because a store loop that is not unrolled takes the accumulator arrays' address, and GCC then keeps them in
// memory: zeroed with rep stos, spilled and reloaded on every tile. With a short K (ResNet's 1x1 convolutions:
// 64 K steps per tile) that cost 10% of the whole product.
enum class TileStore { kPlain, kFused, kGeneral };

inline TileStore ChooseTileStore(float alpha, float beta, bool accumulate, const GemmEpilogue* last) {
  if (alpha != 1.0f || (!accumulate && beta != 0.0f)) return TileStore::kGeneral;
  if (!last) return TileStore::kPlain;
  const bool simple = last->activation == SgemmActivation::kNone || last->activation == SgemmActivation::kRelu;
  return simple ? TileStore::kFused : TileStore::kGeneral;
}

// What a kFused tile adds, loaded once per tile (zero and null for kPlain). Its constructors are always inlined:
// GCC 12 called them out of line, and so spilled and reloaded every accumulator of every tile around the call
// (fp32 K = 64: +3% once inlined, 12544 x 64 x 147: +8%).
struct FusedTile {
  bool on = false, relu = false;
  TileBias bias;
  const float* residual = nullptr;
  int64_t ldr = 0;
  [[gnu::always_inline]] FusedTile(TileStore kind, const GemmEpilogue* last, __mmask16 m0, __mmask16 m1)
      : bias(kind == TileStore::kFused ? last : nullptr, m0, m1) {
    if (kind != TileStore::kFused) return;
    on = true;
    relu = last->activation == SgemmActivation::kRelu;
    residual = last->residual;
    ldr = last->ldr;
  }
};

// Row r of a kPlain or kFused tile, in StoreRow's order of operations (so both give the same bits).
[[gnu::always_inline]] inline void StoreRowFast(float* row, __m512 y0, __m512 y1, __mmask16 m0, __mmask16 m1,
                                                bool accumulate, const FusedTile& f, int r) {
  if (accumulate) {
    y0 = _mm512_add_ps(y0, _mm512_maskz_loadu_ps(m0, row));
    y1 = _mm512_add_ps(y1, _mm512_maskz_loadu_ps(m1, row + 16));
  }
  if (f.on) {
    if (f.residual) {
      y0 = _mm512_add_ps(y0, _mm512_maskz_loadu_ps(m0, f.residual + r * f.ldr));
      y1 = _mm512_add_ps(y1, _mm512_maskz_loadu_ps(m1, f.residual + r * f.ldr + 16));
    }
    y0 = _mm512_add_ps(y0, f.bias.b0);
    y1 = _mm512_add_ps(y1, f.bias.b1);
    if (f.relu) {
      y0 = _mm512_max_ps(y0, _mm512_setzero_ps());
      y1 = _mm512_max_ps(y1, _mm512_setzero_ps());
    }
  }
  _mm512_mask_storeu_ps(row, m0, y0);
  _mm512_mask_storeu_ps(row + 16, m1, y1);
}

// C = alpha * acc + (accumulate ? C : beta * C) for a tile's MR rows of 32 columns, then, on the last K block
// (`last` non-null), the residual, bias and activation. acc(r, h) returns row r's half h (columns [16h, 16h+16)).
// Always inlined into the micro-kernel, where acc reads the K loop's accumulator registers: the kPlain and kFused
// stores take them straight from there, and only the general path copies them to memory.
template <int MR, typename Acc>
[[gnu::always_inline]] inline void StoreTile(Acc acc, float* c, int64_t ldc, __mmask16 m0, __mmask16 m1,
                                             float alpha, float beta, bool accumulate, const GemmEpilogue* last) {
  const TileStore kind = ChooseTileStore(alpha, beta, accumulate, last);
  if (kind == TileStore::kGeneral) {
    alignas(64) __m512 y0[MR], y1[MR];
    const __m512 va = _mm512_set1_ps(alpha);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      y0[r] = _mm512_mul_ps(acc(r, 0), va);
      y1[r] = _mm512_mul_ps(acc(r, 1), va);
    }
    const TileBias bias(last, m0, m1);
    for (int r = 0; r < MR; ++r) {
      StoreRow(c + r * ldc, y0[r], y1[r], m0, m1, beta, accumulate, last, bias, last ? last->ResidualRow(r) : nullptr);
    }
    return;
  }
  const FusedTile fused(kind, last, m0, m1);
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) StoreRowFast(c + r * ldc, acc(r, 0), acc(r, 1), m0, m1, accumulate, fused, r);
}

}  // namespace coreserve::kernels::avx512
