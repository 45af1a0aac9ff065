// Channels-last (NHWC) convolution and pools, which the layout pass (runtime/nhwc_layout.cc) puts in place of
// NCHW Conv chains. In NHWC a convolution is one GEMM (in the model's precision) with the pixels as rows:
//   Y[pixel, co] = sum over (i, j, ci) of X[pixel's tap (i, j), ci] * W[co, ci, i, j]
// so the weights are the GEMM's B and are packed once at load (never per call, unlike the NCHW form whose B
// is the im2col matrix), bias and Relu are per-column epilogue work, a 1x1 stride-1 convolution reads X as it
// is, and im2col rows are runs of whole channel vectors (memcpy) rather than single pixels.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <string>

#include "kernels/conv/winograd_f23.h"
#include "kernels/gemm/qgemm.h"
#include "kernels/gemm/sgemm.h"
#include "runtime/ops/conv_window.h"
#include "runtime/ops/gemm_util.h"
#include "runtime/ops/op_util.h"

namespace coreserve::runtime {
namespace {

// The im2col block a call builds at most at once: bounded memory whatever the batch, and small enough that the
// block is still in cache when the GEMM reads it.
constexpr int64_t kIm2colBlockBytes = int64_t{4} << 20;
// Per-core L2 of the targets (1 MB on Zen 4, Graviton2 and Graviton3), and the most output rows one task takes.
constexpr int64_t kL2Bytes = int64_t{1} << 20;
constexpr int64_t kTaskRows = 96;
// The fewest channels for which the GEMM reads the input through a table of tap pointers (indirect A) rather
// than an im2col copy: each tap's run is C floats, and a shorter run (a 3-channel stem) costs more in pointer
// loads than the copy does. (A strided 1x1 convolution keeps the copy too: its one tap per row puts the rows
// 2 C floats apart, a multiple of 4 KB for C >= 512, where the 12 rows a micro-kernel reads alias in L1.)
constexpr int64_t kIndirectMinChannels = 16;

// Weights W[co, ci, i, j] as the GEMM's B: K = kh * kw * ci rows in (i, j, ci) order (the order an im2col row of
// NHWC input has), N = co columns; packed for the active kernel when it reads packed B.
struct NhwcWeights {
  int64_t co = 0, ci = 0, kh = 0, kw = 0;
  bool integer = false;  // u8/s8 weights of a QDQ model (IntegerConv): exact integer products, see RunIntegerConv
  std::vector<float> b;  // K x N row-major, kept only when the active kernel reads B unpacked
  std::shared_ptr<const kernels::SgemmPackedB> packed;
  // fp32 3x3 convolutions with stride 1 and no dilation: the 16 transformed weight matrices U[e] (CI x CO) of
  // Winograd F(2x2, 3x3), packed, in place of `packed`; empty otherwise (see RunWinograd).
  std::vector<std::shared_ptr<const kernels::SgemmPackedB>> winograd;
};

// Whether a convolution runs as Winograd F(2x2, 3x3): 3x3, stride 1, no dilation, fp32, with enough channels
// that the GEMMs, not the transforms, set the pace (the transforms cost about as much per channel as 4-8 of the
// direct form's multiply-adds per output channel). CORESERVE_WINOGRAD=0 turns it off, for comparisons.
bool WinogradFits(const WindowAttrs& attrs, int64_t kh, int64_t kw, int64_t ci, int64_t co) {
  static const bool enabled = [] {
    const char* env = std::getenv("CORESERVE_WINOGRAD");
    return env == nullptr || std::string(env) != "0";
  }();
  auto all_one = [](const std::vector<int64_t>& v) {
    return std::all_of(v.begin(), v.end(), [](int64_t x) { return x == 1; });
  };
  return enabled && kh == 3 && kw == 3 && all_one(attrs.strides) && all_one(attrs.dilations) && ci >= 16 &&
         co >= 16;
}

// W[co, ci, i, j] -> B[(i, j, ci), co].
template <typename T>
std::vector<T> WeightsAsB(const T* pw, int64_t co, int64_t ci, int64_t taps) {
  std::vector<T> b(static_cast<std::size_t>(taps * ci * co));
  for (int64_t o = 0; o < co; ++o) {
    for (int64_t c = 0; c < ci; ++c) {
      for (int64_t t = 0; t < taps; ++t) b[(t * ci + c) * co + o] = pw[(o * ci + c) * taps + t];
    }
  }
  return b;
}

absl::StatusOr<std::shared_ptr<const NhwcWeights>> PrepareWeights(const Graph& graph, const Node& node,
                                                                  const WindowAttrs& attrs) {
  const int w_id = node.inputs.size() > 1 ? node.inputs[1] : -1;
  if (w_id < 0 || !graph.values[w_id].constant) {
    return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": weights must be a constant"));
  }
  const Tensor& w = *graph.values[w_id].constant;
  const bool integer = w.type() == DataType::kUInt8 || w.type() == DataType::kInt8;
  if ((w.type() != DataType::kFloat32 && !integer) || w.rank() != 4) {
    return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": weights must be O x I x kH x kW"));
  }
  auto out = std::make_shared<NhwcWeights>();
  out->co = w.dim(0), out->ci = w.dim(1), out->kh = w.dim(2), out->kw = w.dim(3);
  const int64_t k = out->kh * out->kw * out->ci, n = out->co, taps = out->kh * out->kw;
  if (integer) {
    out->integer = true;
    const bool is_signed = w.type() == DataType::kInt8;
    const std::vector<uint8_t> b = WeightsAsB(static_cast<const uint8_t*>(w.raw()), n, out->ci, taps);
    out->packed = kernels::QgemmPackB(b.data(), n, is_signed, k, n, nullptr, false);
    return std::shared_ptr<const NhwcWeights>(std::move(out));
  }
  std::vector<float> b = WeightsAsB(w.data<float>(), n, out->ci, taps);
  // The model's precision, as for MatMul: bf16 weights, or s8 weights per output channel with each im2col row
  // (one output pixel's receptive field) quantized per call — finer than ONNX Runtime's per-tensor ConvInteger.
  const kernels::GemmPrecision precision = graph.gemm_precision;
  if (kernels::SgemmUsesPackedB(precision) && precision == kernels::GemmPrecision::kFp32 &&
      WinogradFits(attrs, out->kh, out->kw, out->ci, n)) {
    // Strides and dilations are attributes, so such a convolution always runs as Winograd: only U is kept.
    std::vector<float> u(static_cast<std::size_t>(16 * out->ci * n));
    kernels::WinogradF23Weights(w.data<float>(), n, out->ci, u.data());
    for (int e = 0; e < 16; ++e) {
      out->winograd.push_back(kernels::SgemmPackB(u.data() + e * out->ci * n, n, false, out->ci, n, precision));
    }
  } else if (kernels::SgemmUsesPackedB(precision)) {
    out->packed = kernels::SgemmPackB(b.data(), n, false, k, n, precision);
  } else {
    out->b = std::move(b);
  }
  return std::shared_ptr<const NhwcWeights>(std::move(out));
}

// dst[0:n) = src[0:n). The runs of a stem convolution (3 channels: 21 floats for a 7-wide kernel) are too short
// for a memcpy call to pay off; an inline loop vectorizes them.
template <typename T>
inline void CopyRun(T* dst, const T* src, int64_t n) {
  if (n * static_cast<int64_t>(sizeof(T)) >= 256) {
    std::memcpy(dst, src, static_cast<std::size_t>(n) * sizeof(T));
    return;
  }
  for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
}

// One im2col row: output pixel (img, oy, ox) of x (H x W x C per image) -> K = kh * kw * C values; padding
// reads as `pad` (0, or the zero point of quantized input, which is what 0 quantizes to).
template <typename T>
void Im2colRow(const T* x, int64_t h, int64_t w, int64_t c, const Window& win, int64_t img, int64_t oy, int64_t ox,
               T* dst, T pad = T{0}) {
  const int64_t run = win.kw * c;
  const int64_t ix0 = ox * win.sw - win.pad_left;
  for (int64_t i = 0; i < win.kh; ++i, dst += run) {
    const int64_t iy = oy * win.sh - win.pad_top + i * win.dh;
    if (iy < 0 || iy >= h) {
      std::fill(dst, dst + run, pad);
      continue;
    }
    const T* row = x + ((img * h + iy) * w) * c;
    if (win.dw == 1) {
      // Taps [j0, j1) lie inside the row: one contiguous copy of (j1 - j0) channel vectors.
      const int64_t j0 = std::clamp<int64_t>(-ix0, 0, win.kw), j1 = std::clamp<int64_t>(w - ix0, j0, win.kw);
      std::fill(dst, dst + j0 * c, pad);
      CopyRun(dst + j0 * c, row + (ix0 + j0) * c, (j1 - j0) * c);
      std::fill(dst + j1 * c, dst + run, pad);
    } else {
      for (int64_t j = 0; j < win.kw; ++j) {
        const int64_t ix = ix0 + j * win.dw;
        T* d = dst + j * c;
        if (ix < 0 || ix >= w) {
          std::fill(d, d + c, pad);
        } else {
          CopyRun(d, row + ix * c, c);
        }
      }
    }
  }
}

// One row of the indirection table (SgemmArgs::a_rows) for output pixel (img, oy, ox): per tap (i, j), the
// channel vector of x it reads, or `zeros` (C zeros) where the tap falls in the padding.
void IndirectRow(const float* x, int64_t h, int64_t w, int64_t c, const Window& win, int64_t img, int64_t oy,
                 int64_t ox, const float* zeros, const float** dst) {
  for (int64_t i = 0; i < win.kh; ++i) {
    const int64_t iy = oy * win.sh - win.pad_top + i * win.dh;
    for (int64_t j = 0; j < win.kw; ++j, ++dst) {
      const int64_t ix = ox * win.sw - win.pad_left + j * win.dw;
      *dst = iy >= 0 && iy < h && ix >= 0 && ix < w ? x + ((img * h + iy) * w + ix) * c : zeros;
    }
  }
}

// X (N, H, W, C) with the window's padding made explicit: rows [iy0, iy0 + ph) and columns [ix0, ix0 + pw) of
// each image, zeros outside X, so that every kernel row of every output pixel is one contiguous run of
// kw * C floats (with dw == 1), which the GEMM then reads through one pointer per kernel row.
struct PaddedInput {
  const float* data = nullptr;
  int64_t iy0 = 0, ix0 = 0, ph = 0, pw = 0;
};
PaddedInput PadInput(const OpContext& ctx, const float* x, int64_t n, int64_t h, int64_t w, int64_t c,
                     const Window& win, std::vector<float>& storage) {
  PaddedInput p;
  p.iy0 = -win.pad_top, p.ix0 = -win.pad_left;
  p.ph = (win.oh - 1) * win.sh + (win.kh - 1) * win.dh + 1;
  p.pw = (win.ow - 1) * win.sw + (win.kw - 1) * win.dw + 1;
  if (storage.size() < static_cast<std::size_t>(n * p.ph * p.pw * c)) storage.resize(static_cast<std::size_t>(n * p.ph * p.pw * c));
  float* out = storage.data();
  Parallel(ctx, n * p.ph, RowGrain(p.pw * c), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t img = r / p.ph, iy = r % p.ph + p.iy0;
      float* dst = out + r * p.pw * c;
      if (iy < 0 || iy >= h) {
        std::fill(dst, dst + p.pw * c, 0.0f);
        continue;
      }
      // Columns [x0, x1) of the padded row lie inside X.
      const int64_t x0 = std::clamp<int64_t>(-p.ix0, 0, p.pw), x1 = std::clamp<int64_t>(w - p.ix0, x0, p.pw);
      std::fill(dst, dst + x0 * c, 0.0f);
      std::memcpy(dst + x0 * c, x + ((img * h + iy) * w + x0 + p.ix0) * c, static_cast<std::size_t>((x1 - x0) * c) * sizeof(float));
      std::fill(dst + x1 * c, dst + p.pw * c, 0.0f);
    }
  });
  p.data = out;
  return p;
}

// The integer convolution of a QDQ model (IntegerConv, made by FuseQdqConv): X is u8/s8 with zero point z_x
// (input 5), W symmetric u8/s8, Y = scale[co] * sum (x - z_x) * w + bias (+ residual) (then Relu) in float32,
// scale = s_x * s_w (input 4). The exact int32 sums come from the integer GEMM into Y's own storage, then one
// pass scales them in place. Padding is z_x, the quantized zero.
absl::Status RunIntegerConv(OpContext& ctx, const NhwcWeights& weights, const Window& win, const Tensor& x,
                            const Tensor* bias, const Tensor* residual, bool relu, Tensor& y) {
  const int64_t h = x.dim(1), w = x.dim(2), c = x.dim(3), co = weights.co;
  if (x.type() != DataType::kUInt8 && x.type() != DataType::kInt8) return ctx.Error("quantized input must be u8 or s8");
  const Tensor& scale = ctx.in(4);
  if (scale.type() != DataType::kFloat32 || scale.elements() != co) return ctx.Error("scale must be float32 [O]");
  const bool is_signed = x.type() == DataType::kInt8;
  int32_t zx = 0;
  if (ctx.has(5)) {
    const Tensor& z = ctx.in(5);
    if (z.type() != x.type() || z.elements() != 1) return ctx.Error("the input zero point must be one value of X's type");
    zx = is_signed ? z.data<int8_t>()[0] : z.data<uint8_t>()[0];
  }
  const int64_t m = y.elements() / std::max<int64_t>(co, 1), k = weights.kh * weights.kw * c;
  const auto* px = static_cast<const uint8_t*>(x.raw());
  float* py = y.data<float>();
  kernels::QgemmArgs q;
  q.n = co; q.k = k; q.lda = k; q.a_is_signed = is_signed; q.a_zero_point = zx;
  q.packed_b = weights.packed.get();
  q.ldc = co;
  // The GEMM of output rows [row0, row0 + rows) with A = a.
  auto gemm = [&](const uint8_t* a, int64_t row0, int64_t rows) {
    q.m = rows;
    q.a = a;
    q.c = reinterpret_cast<int32_t*>(static_cast<void*>(py + row0 * co));
    ParallelQgemm(ctx, q);
  };
  const bool pointwise = weights.kh == 1 && weights.kw == 1 && win.sh == 1 && win.sw == 1 && win.pad_top == 0 &&
                         win.pad_left == 0 && win.oh == h && win.ow == w;
  if (pointwise) {
    gemm(px, 0, m);
  } else if (m > 0) {
    // im2col in blocks of at most kIm2colBlockBytes, in a buffer kept per calling thread, as the fp32 path does.
    const int64_t threads = ctx.pool ? ctx.pool->threads() : 1;
    const int64_t block = std::min(m, std::max(kIm2colBlockBytes / std::max<int64_t>(k, 1) / 48 * 48, 48 * threads));
    thread_local std::vector<uint8_t> scratch;
    if (scratch.size() < static_cast<std::size_t>(block * k)) scratch.resize(static_cast<std::size_t>(block * k));
    uint8_t* cols = scratch.data();  // the pool's threads must see this thread's buffer, not their own
    const int64_t pixels = win.oh * win.ow;
    const auto pad = static_cast<uint8_t>(zx);  // the byte pattern of z_x in X's type
    for (int64_t row0 = 0; row0 < m; row0 += block) {
      const int64_t rows = std::min(block, m - row0);
      Parallel(ctx, rows, RowGrain(k), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          const int64_t pixel = row0 + r;
          Im2colRow(px, h, w, c, win, pixel / pixels, pixel % pixels / win.ow, pixel % win.ow, cols + r * k, pad);
        }
      });
      gemm(cols, row0, rows);
    }
  }
  // A residual of Y's shape is added in the scaling pass (before the Relu); a broadcast one afterwards.
  const bool residual_here = residual && residual->shape() == y.shape() && residual->type() == DataType::kFloat32;
  ScaleInt32InPlace(ctx, py, m, co, scale.data<float>(), bias ? bias->data<float>() : nullptr,
                    residual_here ? residual->data<float>() : nullptr, relu && (residual == nullptr || residual_here));
  if (residual && !residual_here) return AddResidual(ctx, y, *residual, relu);
  return absl::OkStatus();
}

// A 3x3 stride-1 convolution as Winograd F(2x2, 3x3): per block of output tiles, the input transform writes
// V[e] (tiles x CI), 16 GEMMs M[e] = V[e] * U[e] (U packed at load), the output transform writes Y's pixels
// with bias, residual (which may be Y itself) and Relu. Two schedules:
// - many tiles, U small enough for L2 (ResNet's first two stages): each task takes a block of tiles through all
//   three steps on its own core, V and M in its L2, no barrier between the steps;
// - few tiles or a large U (the last stages, 7x7 and 14x14 at batch 1): each step over the pool in turn, the
//   16 GEMMs split by e and columns, so each U[e] is read by one core once.
void RunWinograd(OpContext& ctx, const NhwcWeights& weights, const kernels::WinogradF23Shape& s, const float* x,
                 const float* bias, const float* residual, bool relu, float* y) {
  const kernels::WinogradF23Kernel& kernel = kernels::WinogradF23();
  const int64_t tiles = s.Tiles(), ci = s.ci, co = s.co;
  const int64_t threads = ctx.pool ? ctx.pool->threads() : 1;
  auto gemm_args = [&](int64_t e, const float* v, int64_t v_stride, float* m, int64_t m_stride, int64_t rows) {
    kernels::SgemmArgs p;
    p.m = rows; p.n = co; p.k = ci;
    p.a = v + e * v_stride; p.lda = ci;
    p.packed_b = weights.winograd[static_cast<std::size_t>(e)].get();
    p.c = m + e * m_stride; p.ldc = co;
    return p;
  };
  const int64_t u_bytes = 16 * ci * co * static_cast<int64_t>(sizeof(float));
  // Tiles per block such that the block's V (16 x tiles x CI floats) takes a quarter of L2.
  const int64_t l2_tiles = std::max<int64_t>(12, kL2Bytes / 4 / (16 * ci * static_cast<int64_t>(sizeof(float))));
  if (u_bytes <= kL2Bytes && tiles >= 2 * threads * 12) {
    const int64_t blocks = std::max((tiles + l2_tiles - 1) / l2_tiles, 2 * threads);
    const int64_t per_block = (tiles + blocks - 1) / blocks;
    Parallel(ctx, (tiles + per_block - 1) / per_block, 1, [&](int64_t b0, int64_t b1) {
      thread_local std::vector<float> v_buf, m_buf;
      if (v_buf.size() < static_cast<std::size_t>(16 * per_block * ci)) v_buf.resize(static_cast<std::size_t>(16 * per_block * ci));
      if (m_buf.size() < static_cast<std::size_t>(16 * per_block * co)) m_buf.resize(static_cast<std::size_t>(16 * per_block * co));
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t t0 = b * per_block, t1 = std::min(tiles, t0 + per_block), rows = t1 - t0;
        kernel.input(s, x, t0, t1, v_buf.data(), rows * ci);
        for (int64_t e = 0; e < 16; ++e) {
          kernels::Sgemm(gemm_args(e, v_buf.data(), rows * ci, m_buf.data(), rows * co, rows), 0, rows, 0, co);
        }
        kernel.output(s, m_buf.data(), rows * co, t0, t1, bias, residual, relu, y);
      }
    });
    return;
  }
  // Chunks of tiles whose V and M take at most 8 MB, in buffers of the calling thread (the pool's threads read
  // them).
  const int64_t chunk = std::clamp<int64_t>((int64_t{8} << 20) / (16 * (ci + co) * static_cast<int64_t>(sizeof(float))), 12, tiles);
  thread_local std::vector<float> v_buf, m_buf;
  if (v_buf.size() < static_cast<std::size_t>(16 * chunk * ci)) v_buf.resize(static_cast<std::size_t>(16 * chunk * ci));
  if (m_buf.size() < static_cast<std::size_t>(16 * chunk * co)) m_buf.resize(static_cast<std::size_t>(16 * chunk * co));
  float* v = v_buf.data();
  float* m = m_buf.data();
  for (int64_t c0 = 0; c0 < tiles; c0 += chunk) {
    const int64_t rows = std::min(chunk, tiles - c0);
    Parallel(ctx, rows, RowGrain(16 * ci), [&](int64_t r0, int64_t r1) {
      kernel.input(s, x, c0 + r0, c0 + r1, v + r0 * ci, rows * ci);
    });
    ParallelGemm(ctx, 16, rows, co, [&](int64_t e) { return gemm_args(e, v, rows * ci, m, rows * co, rows); });
    Parallel(ctx, rows, RowGrain(16 * co), [&](int64_t r0, int64_t r1) {
      kernel.output(s, m + r0 * co, rows * co, c0 + r0, c0 + r1, bias, residual, relu, y);
    });
  }
}

// NhwcConv: X (N, H, W, C), W (O, C, kH, kW) constant, optional bias (O), optional residual (NHWC, attribute
// coreserve_residual=1) and coreserve_activation="relu" as the NCHW fused Conv has; Y (N, OH, OW, O).
absl::StatusOr<std::unique_ptr<OpKernel>> MakeNhwcConv(const Graph& graph, const Node& node) {
  ASSIGN_OR_RETURN(WindowAttrs attrs, ReadWindowAttrs(node));
  ASSIGN_OR_RETURN(int64_t group, node.attributes.Int("group", 1));
  ASSIGN_OR_RETURN(int64_t has_residual, node.attributes.Int("coreserve_residual", 0));
  ASSIGN_OR_RETURN(std::string activation, node.attributes.String("coreserve_activation", "none"));
  if (group != 1) return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": group must be 1"));
  ASSIGN_OR_RETURN(std::shared_ptr<const NhwcWeights> weights, PrepareWeights(graph, node, attrs));
  const bool relu = activation == "relu";
  return std::unique_ptr<OpKernel>(new FunctionKernel([=](OpContext& ctx) -> absl::Status {
    const Tensor& x = ctx.in(0);
    if (x.rank() != 4 || (x.type() != DataType::kFloat32 && !weights->integer)) {
      return ctx.Error("input must be float32 N x H x W x C");
    }
    const int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2), c = x.dim(3), co = weights->co;
    if (c != weights->ci) {
      return ctx.Error(absl::StrCat("input has ", c, " channels, the weights expect ", weights->ci));
    }
    ASSIGN_OR_RETURN(Window win, ResolveWindow(ctx, attrs, 2, h, w, weights->kh, weights->kw));
    const Tensor* bias = ctx.has(2) ? ctx.inputs[2] : nullptr;
    if (bias && (bias->type() != DataType::kFloat32 || bias->elements() != co)) {
      return ctx.Error("bias must be float32 with one value per output channel");
    }
    const Tensor* residual = has_residual && ctx.has(3) ? ctx.inputs[3] : nullptr;
    const Shape y_shape = {n, win.oh, win.ow, co};
    if (weights->integer) {
      return RunIntegerConv(ctx, *weights, win, x, bias, residual, relu, ctx.Output(0, DataType::kFloat32, y_shape));
    }
    // A residual of Y's own shape is added in the GEMM's epilogue, before the Relu; a broadcast one afterwards.
    const bool residual_in_gemm = residual && residual->shape() == y_shape && residual->type() == DataType::kFloat32;
    const bool late_residual = residual && !residual_in_gemm;
    // Where this is the residual's last reader, Y is the residual's own buffer and the GEMM accumulates onto it
    // (beta = 1): C's lines are read and written in place instead of a residual read beside a fresh C, which is
    // what a short-K convolution (ResNet's 1x1 expansions, K = 64) waits on.
    // (Never when the residual is X itself: the convolution still reads X's neighbouring pixels.)
    Tensor* in_place = residual_in_gemm && residual->raw() != x.raw() ? ctx.ReuseInput(3, 0) : nullptr;
    Tensor& y = in_place ? *in_place : ctx.Output(0, DataType::kFloat32, y_shape);
    const int64_t pixels = win.oh * win.ow, m = n * pixels, k = weights->kh * weights->kw * c;
    float* py = y.data<float>();
    // The GEMM of output rows [row0, row0 + rows) with A = `a`.
    auto args = [&](const float* a, int64_t lda, int64_t row0, int64_t rows) {
      kernels::SgemmArgs p;
      p.m = rows; p.n = co; p.k = k;
      p.a = a; p.lda = lda;
      p.b = weights->b.data(); p.ldb = co;
      p.packed_b = weights->packed.get();
      p.c = py + row0 * co; p.ldc = co;
      p.bias = bias ? bias->data<float>() : nullptr;
      p.residual = residual_in_gemm && !in_place ? residual->data<float>() + row0 * co : nullptr;
      p.ldr = co;
      p.beta = in_place ? 1.0f : 0.0f;
      p.activation = relu && !late_residual ? kernels::SgemmActivation::kRelu : kernels::SgemmActivation::kNone;
      return p;
    };
    auto gemm = [&](const float* a, int64_t lda, int64_t row0, int64_t rows) {
      ParallelGemm(ctx, 1, rows, co, [&](int64_t) { return args(a, lda, row0, rows); });
    };
    // The GEMM over indirect A (SgemmArgs::a_rows): `taps` pointers per output pixel r, written by fill(r, dst)
    // into a table kept per calling thread (the pool's threads read this thread's table).
    auto indirect_gemm = [&](int64_t taps, const auto& fill) {
      thread_local std::vector<const float*> table;
      if (table.size() < static_cast<std::size_t>(m * taps)) table.resize(static_cast<std::size_t>(m * taps));
      const float** rows = table.data();
      Parallel(ctx, m, RowGrain(taps), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) fill(r, rows + r * taps);
      });
      ParallelGemm(ctx, 1, m, co, [&](int64_t) {
        kernels::SgemmArgs p = args(nullptr, 0, 0, m);
        p.a_rows = rows;
        p.a_taps = taps;
        return p;
      });
    };
    auto im2col = [&](int64_t pixel, float* dst) {
      const int64_t img = pixel / pixels, oy = pixel % pixels / win.ow, ox = pixel % win.ow;
      Im2colRow(x.data<float>(), h, w, c, win, img, oy, ox, dst);
    };
    const int64_t threads = ctx.pool ? ctx.pool->threads() : 1;
    const bool pointwise = weights->kh == 1 && weights->kw == 1 && win.sh == 1 && win.sw == 1 && win.pad_top == 0 &&
                           win.pad_left == 0 && win.oh == h && win.ow == w;
    if (!weights->winograd.empty()) {
      kernels::WinogradF23Shape s;
      s.n = n, s.h = h, s.w = w, s.ci = c, s.co = co, s.pad_top = win.pad_top, s.pad_left = win.pad_left;
      s.oh = win.oh, s.ow = win.ow;
      const float* res = residual_in_gemm ? (in_place ? py : residual->data<float>()) : nullptr;
      RunWinograd(ctx, *weights, s, x.data<float>(), bias ? bias->data<float>() : nullptr, res,
                  relu && !late_residual, py);
    } else if (pointwise) {
      gemm(x.data<float>(), c, 0, m);
    } else if (c >= kIndirectMinChannels && weights->kh * weights->kw > 1) {
      // The GEMM reads each output pixel's taps where they lie in X, one pointer per tap: no im2col copy, and
      // the rows split over the pool like a 1x1 convolution's.
      thread_local std::vector<float> zeros;
      if (zeros.size() < static_cast<std::size_t>(c)) zeros.assign(static_cast<std::size_t>(c), 0.0f);
      const float* zero_run = zeros.data();  // the pool's threads must see this thread's buffer, not their own
      indirect_gemm(weights->kh * weights->kw, [&](int64_t r, const float** dst) {
        IndirectRow(x.data<float>(), h, w, c, win, r / pixels, r % pixels / win.ow, r % win.ow, zero_run, dst);
      });
    } else if (win.dw == 1 && weights->kh > 1) {
      // Few channels (a 3-channel stem): a pointer per kernel row, into a copy of X with its padding made
      // explicit, so each tap run is kw * C floats (21 for a 7x7 stem) rather than C.
      thread_local std::vector<float> padded_storage;
      const PaddedInput xp = PadInput(ctx, x.data<float>(), n, h, w, c, win, padded_storage);
      indirect_gemm(weights->kh, [&](int64_t r, const float** dst) {
        const int64_t img = r / pixels, oy = r % pixels / win.ow, ox = r % win.ow;
        for (int64_t i = 0; i < weights->kh; ++i) {
          dst[i] = xp.data + ((img * xp.ph + oy * win.sh + i * win.dh) * xp.pw + ox * win.sw) * c;
        }
      });
    } else if (m >= 2 * threads * kTaskRows && k * co * static_cast<int64_t>(sizeof(float)) <= kL2Bytes) {
      // Many pixels and weights that fit in L2 (ResNet's first stages, its 7x7 stem): each task builds the
      // im2col rows of its own strip in a buffer of its thread and multiplies them at once, while they are
      // still in that core's cache.
      const int64_t strip = std::clamp<int64_t>(kL2Bytes / 4 / static_cast<int64_t>(sizeof(float)) / k / 12 * 12,
                                                12, kTaskRows);
      Parallel(ctx, (m + strip - 1) / strip, 1, [&](int64_t t0, int64_t t1) {
        thread_local std::vector<float> strip_cols;
        if (strip_cols.size() < static_cast<std::size_t>(strip * k)) strip_cols.resize(static_cast<std::size_t>(strip * k));
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t row0 = t * strip, rows = std::min(strip, m - row0);
          for (int64_t r = 0; r < rows; ++r) im2col(row0 + r, strip_cols.data() + r * k);
          kernels::Sgemm(args(strip_cols.data(), k, row0, rows), 0, rows, 0, co);
        }
      });
    } else if (m > 0) {
      const int64_t fit = kIm2colBlockBytes / static_cast<int64_t>(sizeof(float)) / std::max<int64_t>(k, 1) / 12 * 12;
      const int64_t block = std::min(m, std::max(fit, 12 * threads));
      // Bounded by kIm2colBlockBytes (or 12 rows per thread), so kept per calling thread: a fresh allocation
      // would page-fault its way through megabytes on every call.
      thread_local std::vector<float> scratch;
      if (scratch.size() < static_cast<std::size_t>(block * k)) scratch.resize(static_cast<std::size_t>(block * k));
      float* cols = scratch.data();  // the pool's threads must see this thread's buffer, not their own
      for (int64_t row0 = 0; row0 < m; row0 += block) {
        const int64_t rows = std::min(block, m - row0);
        Parallel(ctx, rows, RowGrain(k), [&](int64_t r0, int64_t r1) {
          for (int64_t r = r0; r < r1; ++r) im2col(row0 + r, cols + r * k);
        });
        gemm(cols, k, row0, rows);
      }
    }
    if (late_residual) RETURN_IF_ERROR(AddResidual(ctx, y, *residual, relu));
    return absl::OkStatus();
  }));
}

// NhwcMaxPool: MaxPool over (N, H, W, C), every channel of a pixel at once.
absl::StatusOr<std::unique_ptr<OpKernel>> MakeNhwcMaxPool(const Graph&, const Node& node) {
  ASSIGN_OR_RETURN(WindowAttrs attrs, ReadWindowAttrs(node));
  if (attrs.kernel.size() != 2) {
    return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": kernel_shape must have 2 dims"));
  }
  return std::unique_ptr<OpKernel>(new FunctionKernel([=](OpContext& ctx) -> absl::Status {
    const Tensor& x = ctx.in(0);
    if (x.type() != DataType::kFloat32 || x.rank() != 4) return ctx.Error("input must be float32 N x H x W x C");
    const int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2), c = x.dim(3);
    ASSIGN_OR_RETURN(Window win, ResolveWindow(ctx, attrs, 2, h, w, attrs.kernel[0], attrs.kernel[1]));
    Tensor& y = ctx.Output(0, DataType::kFloat32, {n, win.oh, win.ow, c});
    const float* px = x.data<float>();
    float* py = y.data<float>();
    Parallel(ctx, n * win.oh, RowGrain(win.ow * c * win.kh * win.kw), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t img = r / win.oh, oy = r % win.oh;
        for (int64_t ox = 0; ox < win.ow; ++ox) {
          float* __restrict dst = py + (r * win.ow + ox) * c;
          bool first = true;  // the first tap inside X is copied, the others folded in: no -inf fill pass
          for (int64_t i = 0; i < win.kh; ++i) {
            const int64_t iy = oy * win.sh - win.pad_top + i * win.dh;
            if (iy < 0 || iy >= h) continue;
            for (int64_t j = 0; j < win.kw; ++j) {
              const int64_t ix = ox * win.sw - win.pad_left + j * win.dw;
              if (ix < 0 || ix >= w) continue;
              const float* __restrict src = px + ((img * h + iy) * w + ix) * c;
              if (first) {
                std::memcpy(dst, src, static_cast<std::size_t>(c) * sizeof(float));
                first = false;
              } else {
                for (int64_t ch = 0; ch < c; ++ch) dst[ch] = dst[ch] > src[ch] ? dst[ch] : src[ch];
              }
            }
          }
          if (first) std::fill(dst, dst + c, -std::numeric_limits<float>::infinity());  // a window in padding only
        }
      }
    });
    return absl::OkStatus();
  }));
}

// NhwcGlobalAveragePool: (N, H, W, C) -> (N, 1, 1, C), the mean of each channel over the image.
absl::Status NhwcGlobalAveragePool(OpContext& ctx) {
  const Tensor& x = ctx.in(0);
  if (x.type() != DataType::kFloat32 || x.rank() != 4) return ctx.Error("input must be float32 N x H x W x C");
  const int64_t n = x.dim(0), pixels = x.dim(1) * x.dim(2), c = x.dim(3);
  Tensor& y = ctx.Output(0, DataType::kFloat32, {n, 1, 1, c});
  const float* px = x.data<float>();
  float* py = y.data<float>();
  Parallel(ctx, n, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      float* dst = py + i * c;
      std::fill(dst, dst + c, 0.0f);
      for (int64_t p = 0; p < pixels; ++p) {
        const float* src = px + (i * pixels + p) * c;
        for (int64_t ch = 0; ch < c; ++ch) dst[ch] += src[ch];
      }
      const float scale = pixels > 0 ? 1.0f / static_cast<float>(pixels) : 0.0f;
      for (int64_t ch = 0; ch < c; ++ch) dst[ch] *= scale;
    }
  });
  return absl::OkStatus();
}

}  // namespace

void RegisterNhwcOps(OpRegistry& r) {
  r.Register("coreserve", "NhwcConv", MakeNhwcConv);
  r.Register("coreserve", "NhwcMaxPool", MakeNhwcMaxPool);
  r.Register("coreserve", "NhwcGlobalAveragePool", NhwcGlobalAveragePool);
}

}  // namespace coreserve::runtime
