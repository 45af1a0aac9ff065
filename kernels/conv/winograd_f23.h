// Winograd F(2x2, 3x3) for channels-last (NHWC) 3x3 convolutions with stride 1 and no dilation (Lavin & Gray,
// "Fast Algorithms for Convolutional Neural Networks", 2015). Each 2x2 block of output pixels ("tile") comes from
// a 4x4 block of input pixels; in the transformed domain the convolution is 16 independent GEMMs
//   M[e] (tiles x CO) = V[e] (tiles x CI) * U[e] (CI x CO),   e = 0..15 (the 4x4 positions),
// with 16 products per tile and channel pair instead of the direct form's 36: 2.25x fewer multiplications. The
// transforms here are exact sums and differences (the weights' G has halves), so the result differs from the
// direct convolution only by rounding: a few ulps of the output's magnitude.
//
//   weights  U[e] = (G g G^T)[e]   for g = W[co, ci, 0:3, 0:3]        once, at load
//   input    V[e] = (B^T d B)[e]   for d the tile's 4x4 input block   per call
//   output   Y    = A^T M A + bias (+ residual) (then Relu)           per call
//
// Only the transforms are here; the caller runs the 16 GEMMs (kernels/gemm/sgemm.h, U packed once) and splits
// the tiles over its threads. Tiles are numbered over the whole batch: t = (image * TilesY() + ty) * TilesX() + tx,
// tile (ty, tx) covering output pixels rows 2ty, 2ty+1 and columns 2tx, 2tx+1 (the last row or column of tiles
// may hang over the output's edge; those pixels are not written).
#pragma once

#include <cstdint>

#include "kernels/cpu_features.h"

namespace coreserve::kernels {

struct WinogradF23Shape {
  int64_t n = 0, h = 0, w = 0, ci = 0;  // input: N x H x W x CI
  int64_t co = 0;                       // output channels
  int64_t pad_top = 0, pad_left = 0;    // zeros before the input's first row and column
  int64_t oh = 0, ow = 0;               // output: N x OH x OW x CO (OH = H + pads - 2)
  int64_t TilesY() const { return (oh + 1) / 2; }
  int64_t TilesX() const { return (ow + 1) / 2; }
  int64_t Tiles() const { return n * TilesY() * TilesX(); }
};

// W (CO x CI x 3 x 3, ONNX's order) -> U: 16 matrices of CI x CO, row-major, matrix e at u + e * CI * CO.
void WinogradF23Weights(const float* w, int64_t co, int64_t ci, float* u);

// V of tiles [t0, t1) of x (N x H x W x CI): row (t - t0) of matrix e at v + e * v_stride + (t - t0) * CI.
// Input pixels outside x (the padding) are zeros.
using WinogradF23InputFn = void (*)(const WinogradF23Shape& s, const float* x, int64_t t0, int64_t t1, float* v,
                                    int64_t v_stride);
// Y's pixels of tiles [t0, t1) from M (row (t - t0) of matrix e at m + e * m_stride + (t - t0) * CO), plus
// bias[co] (null: none) and residual (N x OH x OW x CO, null: none; it may be y itself), then max(0, .) if relu.
using WinogradF23OutputFn = void (*)(const WinogradF23Shape& s, const float* m, int64_t m_stride, int64_t t0,
                                     int64_t t1, const float* bias, const float* residual, bool relu, float* y);

struct WinogradF23Kernel {
  const char* name;
  WinogradF23InputFn input;
  WinogradF23OutputFn output;
};

// Portable C++ in GCC vector types (4 floats a step: SSE2 or NEON registers); and AVX-512 (16).
void winograd_f23_input_portable(const WinogradF23Shape& s, const float* x, int64_t t0, int64_t t1, float* v,
                                 int64_t v_stride);
void winograd_f23_output_portable(const WinogradF23Shape& s, const float* m, int64_t m_stride, int64_t t0,
                                  int64_t t1, const float* bias, const float* residual, bool relu, float* y);
#if defined(__x86_64__)
void winograd_f23_input_avx512(const WinogradF23Shape& s, const float* x, int64_t t0, int64_t t1, float* v,
                               int64_t v_stride);
void winograd_f23_output_avx512(const WinogradF23Shape& s, const float* m, int64_t m_stride, int64_t t0,
                                int64_t t1, const float* bias, const float* residual, bool relu, float* y);
#endif

// The best variant `features` allow (pure, for tests), and the active CPU's, chosen on first use.
WinogradF23Kernel SelectWinogradF23(const CpuFeatures& features);
const WinogradF23Kernel& WinogradF23();

}  // namespace coreserve::kernels
