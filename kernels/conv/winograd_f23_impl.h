// The Winograd F(2x2, 3x3) input and output transforms (see winograd_f23.h), written once over GCC vector types
// and compiled per ISA: the file that includes this sets the instruction set (winograd_f23.cc: the
// architecture's baseline, winograd_f23_avx512.cc: AVX-512), so the same source runs as zmm, xmm or NEON code.
// Channels are the vector lanes: in NHWC a pixel's channels are contiguous, so every step of a transform is one
// add or subtract of a register of channels, and a channel count not a multiple of it ends in a scalar tail.
#pragma once

#include <algorithm>
#include <cstring>

#include "kernels/conv/winograd_f23.h"

namespace coreserve::kernels {
// Internal linkage: each including file keeps its own copy, compiled for its own ISA (an inline function of
// external linkage would be merged across files by the linker, whichever ISA it was compiled for).
namespace winograd_impl {
namespace {

// One register of the including file's ISA: 16 floats (zmm) with AVX-512, else 4 (SSE2 on x86-64, NEON on arm64).
#if defined(__AVX512F__)
using Vec = float __attribute__((vector_size(64)));
#else
using Vec = float __attribute__((vector_size(16)));
#endif
constexpr int64_t kLanes = sizeof(Vec) / sizeof(float);

template <typename T>
inline T Load(const float* p) {
  if constexpr (sizeof(T) == sizeof(float)) {
    return *p;
  } else {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
}
template <typename T>
inline void Store(float* p, T v) {
  if constexpr (sizeof(T) == sizeof(float)) {
    *p = v;
  } else {
    std::memcpy(p, &v, sizeof v);
  }
}
template <typename T>
inline T Relu(T v) {
  if constexpr (sizeof(T) == sizeof(float)) {
    return v > 0.0f ? v : 0.0f;
  } else {
    const T zero = {};
    return v > zero ? v : zero;
  }
}

// V = B^T d B for channels [ch, ch + lanes of T) of one tile; d[i][j] null where the input pixel is padding.
template <typename T>
inline void InputTile(const float* const (&d)[4][4], int64_t ch, float* v, int64_t v_stride) {
  T x[4][4], t[4][4];
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) x[i][j] = d[i][j] ? Load<T>(d[i][j] + ch) : T{};
  }
  for (int j = 0; j < 4; ++j) {  // B^T d: rows 0 - 2, 1 + 2, 2 - 1, 1 - 3
    t[0][j] = x[0][j] - x[2][j];
    t[1][j] = x[1][j] + x[2][j];
    t[2][j] = x[2][j] - x[1][j];
    t[3][j] = x[1][j] - x[3][j];
  }
  for (int i = 0; i < 4; ++i) {  // (B^T d) B: the same on columns
    Store(v + (4 * i + 0) * v_stride + ch, t[i][0] - t[i][2]);
    Store(v + (4 * i + 1) * v_stride + ch, t[i][1] + t[i][2]);
    Store(v + (4 * i + 2) * v_stride + ch, t[i][2] - t[i][1]);
    Store(v + (4 * i + 3) * v_stride + ch, t[i][1] - t[i][3]);
  }
}

inline void Input(const WinogradF23Shape& s, const float* x, int64_t t0, int64_t t1, float* v, int64_t v_stride) {
  const int64_t tiles_x = s.TilesX(), per_image = s.TilesY() * tiles_x;
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t img = t / per_image, ty = t % per_image / tiles_x, tx = t % tiles_x;
    const float* d[4][4];
    for (int i = 0; i < 4; ++i) {
      const int64_t iy = 2 * ty - s.pad_top + i;
      for (int j = 0; j < 4; ++j) {
        const int64_t ix = 2 * tx - s.pad_left + j;
        d[i][j] = iy >= 0 && iy < s.h && ix >= 0 && ix < s.w ? x + ((img * s.h + iy) * s.w + ix) * s.ci : nullptr;
      }
    }
    float* row = v + (t - t0) * s.ci;
    int64_t ch = 0;
    for (; ch + kLanes <= s.ci; ch += kLanes) InputTile<Vec>(d, ch, row, v_stride);
    for (; ch < s.ci; ++ch) InputTile<float>(d, ch, row, v_stride);
  }
}

// Y = A^T M A (+ bias, + residual, Relu) for channels [ch, ch + lanes of T) of one tile; y[i][j] null where the
// output pixel lies past the edge.
template <typename T>
inline void OutputTile(const float* m, int64_t m_stride, int64_t ch, const float* bias, const float* const (&r)[2][2],
                       float* const (&y)[2][2], bool relu) {
  T x[4][4], t[2][4];
  for (int e = 0; e < 16; ++e) x[e / 4][e % 4] = Load<T>(m + e * m_stride + ch);
  for (int j = 0; j < 4; ++j) {  // A^T M: rows 0 + 1 + 2, 1 - 2 - 3
    t[0][j] = x[0][j] + x[1][j] + x[2][j];
    t[1][j] = x[1][j] - x[2][j] - x[3][j];
  }
  const T b = bias ? Load<T>(bias + ch) : T{};
  for (int i = 0; i < 2; ++i) {
    T out[2] = {t[i][0] + t[i][1] + t[i][2] + b, t[i][1] - t[i][2] - t[i][3] + b};
    for (int j = 0; j < 2; ++j) {
      if (y[i][j] == nullptr) continue;
      T o = out[j];
      if (r[i][j]) o += Load<T>(r[i][j] + ch);
      Store(y[i][j] + ch, relu ? Relu(o) : o);
    }
  }
}

inline void Output(const WinogradF23Shape& s, const float* m, int64_t m_stride, int64_t t0, int64_t t1,
                   const float* bias, const float* residual, bool relu, float* y) {
  const int64_t tiles_x = s.TilesX(), per_image = s.TilesY() * tiles_x;
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t img = t / per_image, ty = t % per_image / tiles_x, tx = t % tiles_x;
    float* out[2][2];
    const float* res[2][2];
    for (int i = 0; i < 2; ++i) {
      for (int j = 0; j < 2; ++j) {
        const int64_t oy = 2 * ty + i, ox = 2 * tx + j;
        const bool inside = oy < s.oh && ox < s.ow;
        const int64_t at = ((img * s.oh + oy) * s.ow + ox) * s.co;
        out[i][j] = inside ? y + at : nullptr;
        res[i][j] = inside && residual ? residual + at : nullptr;
      }
    }
    const float* row = m + (t - t0) * s.co;
    int64_t ch = 0;
    for (; ch + kLanes <= s.co; ch += kLanes) OutputTile<Vec>(row, m_stride, ch, bias, res, out, relu);
    for (; ch < s.co; ++ch) OutputTile<float>(row, m_stride, ch, bias, res, out, relu);
  }
}

}  // namespace
}  // namespace winograd_impl
}  // namespace coreserve::kernels
