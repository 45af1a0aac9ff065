// Convolution (im2col + GEMM, groups, dilations, pads, strides, auto_pad) and pooling (MaxPool, AveragePool,
// GlobalAveragePool, GlobalMaxPool) over NCHW tensors with one or two spatial dims.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/gemm/sgemm.h"
#include "runtime/ops/conv_window.h"
#include "runtime/ops/gemm_util.h"
#include "runtime/ops/op_util.h"

namespace coreserve::runtime {
namespace {

Shape OutShape(const Tensor& x, int64_t channels, const Window& win) {
  if (x.rank() == 3) return {x.dim(0), channels, win.ow};
  return {x.dim(0), channels, win.oh, win.ow};
}

// Conv, and the optimizer's fused form: attribute coreserve_residual=1 adds a fourth input (the residual, added
// before the activation) and coreserve_activation="relu" applies Relu, both inside the GEMM's output pass.
absl::StatusOr<std::unique_ptr<OpKernel>> MakeConv(const Graph& graph, const Node& node) {
  // bf16 packs the im2col columns in bf16 (the weights, the GEMM's A, are rounded as the kernel reads them); int8
  // leaves convolutions in fp32 (per-call quantization of activations per pixel is not what int8 users expect).
  const kernels::GemmPrecision precision =
      graph.gemm_precision == kernels::GemmPrecision::kBf16 ? kernels::GemmPrecision::kBf16 : kernels::GemmPrecision::kFp32;
  ASSIGN_OR_RETURN(WindowAttrs attrs, ReadWindowAttrs(node));
  ASSIGN_OR_RETURN(int64_t group, node.attributes.Int("group", 1));
  ASSIGN_OR_RETURN(int64_t has_residual, node.attributes.Int("coreserve_residual", 0));
  const auto activation_attr = node.attributes.String("coreserve_activation", "none");
  if (!activation_attr.ok()) return activation_attr.status();
  const bool relu = *activation_attr == "relu";
  if (group < 1) return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": group must be >= 1"));
  return std::unique_ptr<OpKernel>(new FunctionKernel([=](OpContext& ctx) -> absl::Status {
    const Tensor& x = ctx.in(0);
    const Tensor& wt = ctx.in(1);
    if (x.type() != DataType::kFloat32 || wt.type() != DataType::kFloat32) return ctx.Error("inputs must be float32");
    int64_t spatial = 0, h = 0, w = 0;
    RETURN_IF_ERROR(SpatialDims(ctx, x, &spatial, &h, &w));
    if (wt.rank() != x.rank()) return ctx.Error("weight rank must equal input rank");
    const int64_t n = x.dim(0), c = x.dim(1), m = wt.dim(0), cg = wt.dim(1);
    const int64_t kh = spatial == 2 ? wt.dim(2) : 1, kw = wt.dim(wt.rank() - 1);
    if (c != cg * group || m % group != 0) {
      return ctx.Error(absl::StrCat("input channels ", c, " and weight ", ShapeString(wt.shape()),
                                    " do not match group ", group));
    }
    ASSIGN_OR_RETURN(Window win, ResolveWindow(ctx, attrs, spatial, h, w, kh, kw));
    const Tensor* bias = ctx.has(2) ? ctx.inputs[2] : nullptr;
    if (bias && bias->elements() != m) return ctx.Error("bias must have M elements");
    const Tensor* residual = has_residual && ctx.has(3) ? ctx.inputs[3] : nullptr;
    Tensor& y = ctx.Output(0, DataType::kFloat32, OutShape(x, m, win));
    // A residual of the output's own shape is added in the GEMM pass; any other (broadcast) residual afterwards.
    const bool residual_in_gemm = residual && residual->shape() == y.shape() && residual->type() == DataType::kFloat32;
    const bool late_residual = residual && !residual_in_gemm;
    const int64_t mg = m / group, patch = cg * kh * kw, pixels = win.oh * win.ow;
    const bool pointwise = kh == 1 && kw == 1 && win.sh == 1 && win.sw == 1 && win.pad_top == 0 &&
                           win.pad_left == 0 && win.pad_bottom == 0 && win.pad_right == 0;
    std::vector<float> col(pointwise ? 0 : static_cast<std::size_t>(patch * pixels));
    const float* px = x.data<float>();
    float* py = y.data<float>();
    for (int64_t b = 0; b < n; ++b) {
      for (int64_t g = 0; g < group; ++g) {
        const float* xg = px + (b * c + g * cg) * h * w;
        const float* cols = xg;
        if (!pointwise) {
          // im2col: row (ci, i, j) holds the input pixel under kernel tap (i, j) for every output pixel.
          float* pc = col.data();
          Parallel(ctx, patch, std::max<int64_t>(1, 8192 / std::max<int64_t>(pixels, 1)), [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; ++r) {
              const int64_t ci = r / (kh * kw), i = (r / kw) % kh, j = r % kw;
              float* dst = pc + r * pixels;
              for (int64_t oy = 0; oy < win.oh; ++oy) {
                const int64_t iy = oy * win.sh - win.pad_top + i * win.dh;
                float* row = dst + oy * win.ow;
                if (iy < 0 || iy >= h) {
                  std::fill(row, row + win.ow, 0.0f);
                  continue;
                }
                const float* src = xg + (ci * h + iy) * w;
                // Output columns whose input pixel is inside the row: [ox0, ox1); padding on either side.
                const int64_t shift = j * win.dw - win.pad_left;
                const int64_t ox0 = std::clamp<int64_t>((-shift + win.sw - 1) / win.sw, 0, win.ow);
                const int64_t ox1 = std::clamp<int64_t>((w - shift + win.sw - 1) / win.sw, ox0, win.ow);
                std::fill(row, row + ox0, 0.0f);
                if (win.sw == 1) {
                  std::memcpy(row + ox0, src + ox0 + shift, static_cast<std::size_t>(ox1 - ox0) * sizeof(float));
                } else {
                  for (int64_t ox = ox0; ox < ox1; ++ox) row[ox] = src[ox * win.sw + shift];
                }
                std::fill(row + ox1, row + win.ow, 0.0f);
              }
            }
          });
          cols = pc;
        }
        float* yg = py + (b * m + g * mg) * pixels;
        const float* wg = wt.data<float>() + g * mg * patch;
        // The bias is per output channel (a GEMM row) and the residual per element: both are written into Y
        // first, and the GEMM accumulates onto them (beta = 1) and applies the activation as it stores.
        const bool prefill = bias || residual_in_gemm;
        if (prefill) {
          const float* rg = residual_in_gemm ? residual->data<float>() + (b * m + g * mg) * pixels : nullptr;
          for (int64_t oc = 0; oc < mg; ++oc) {
            const float bv = bias ? bias->data<float>()[g * mg + oc] : 0.0f;
            float* row = yg + oc * pixels;
            if (rg) {
              for (int64_t i = 0; i < pixels; ++i) row[i] = rg[oc * pixels + i] + bv;
            } else {
              std::fill(row, row + pixels, bv);
            }
          }
        }
        // Pack the columns once for all tasks (each task would otherwise pack the slice it needs, repeatedly when
        // several row tiles share it), spreading the packing over the pool.
        std::shared_ptr<kernels::SgemmPackedB> packed;
        if (kernels::SgemmUsesPackedB(precision)) {
          packed = kernels::SgemmAllocPackedB(patch, pixels, precision);
          const int64_t step = kernels::SgemmNStep();
          Parallel(ctx, (pixels + step - 1) / step, 1, [&](int64_t p0, int64_t p1) {
            kernels::SgemmPackBColumns(cols, pixels, false, p0 * step, std::min(pixels, p1 * step), packed.get());
          });
        }
        ParallelGemm(ctx, 1, mg, pixels, [&](int64_t) {
          kernels::SgemmArgs p;
          p.m = mg; p.n = pixels; p.k = patch;
          p.a = wg; p.lda = patch;
          p.b = cols; p.ldb = pixels;
          p.packed_b = packed.get();
          p.c = yg; p.ldc = pixels;
          p.beta = prefill ? 1.0f : 0.0f;
          p.activation = relu && !late_residual ? kernels::SgemmActivation::kRelu : kernels::SgemmActivation::kNone;
          return p;
        });
      }
    }
    if (late_residual) RETURN_IF_ERROR(AddResidual(ctx, y, *residual, relu));
    return absl::OkStatus();
  }));
}

absl::StatusOr<std::unique_ptr<OpKernel>> MakePool(const Graph&, const Node& node, bool is_max) {
  ASSIGN_OR_RETURN(WindowAttrs attrs, ReadWindowAttrs(node));
  ASSIGN_OR_RETURN(int64_t count_include_pad, node.attributes.Int("count_include_pad", 0));
  if (attrs.kernel.empty() || attrs.kernel.size() > 2) {
    return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": kernel_shape must have 1 or 2 dims"));
  }
  if (!is_max && !attrs.dilations.empty()) {
    for (int64_t d : attrs.dilations) {
      if (d != 1) return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": dilations are not supported"));
    }
  }
  if (node.outputs.size() > 1 && node.outputs[1] >= 0) {
    return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": the Indices output is not supported"));
  }
  return std::unique_ptr<OpKernel>(new FunctionKernel([=](OpContext& ctx) -> absl::Status {
    const Tensor& x = ctx.in(0);
    if (x.type() != DataType::kFloat32) return ctx.Error("input must be float32");
    int64_t spatial = 0, h = 0, w = 0;
    RETURN_IF_ERROR(SpatialDims(ctx, x, &spatial, &h, &w));
    if (static_cast<int64_t>(attrs.kernel.size()) != spatial) return ctx.Error("kernel_shape rank mismatch");
    const int64_t kh = spatial == 2 ? attrs.kernel[0] : 1, kw = attrs.kernel.back();
    ASSIGN_OR_RETURN(Window win, ResolveWindow(ctx, attrs, spatial, h, w, kh, kw));
    Tensor& y = ctx.Output(0, DataType::kFloat32, OutShape(x, x.dim(1), win));
    const float* px = x.data<float>();
    float* py = y.data<float>();
    const int64_t planes = x.dim(0) * x.dim(1);
    Parallel(ctx, planes, 1, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        const float* src = px + p * h * w;
        float* dst = py + p * win.oh * win.ow;
        for (int64_t oy = 0; oy < win.oh; ++oy) {
          for (int64_t ox = 0; ox < win.ow; ++ox) {
            float acc = is_max ? -std::numeric_limits<float>::infinity() : 0.0f;
            int64_t count = 0;
            for (int64_t i = 0; i < kh; ++i) {
              const int64_t iy = oy * win.sh - win.pad_top + i * win.dh;
              for (int64_t j = 0; j < kw; ++j) {
                const int64_t ix = ox * win.sw - win.pad_left + j * win.dw;
                const bool inside = iy >= 0 && iy < h && ix >= 0 && ix < w;
                if (inside) {
                  const float v = src[iy * w + ix];
                  acc = is_max ? std::max(acc, v) : acc + v;
                  ++count;
                } else if (!is_max && count_include_pad) {
                  // Padding counts toward the divisor only where it lies within the padded input.
                  const bool in_pad = iy >= -win.pad_top && iy < h + win.pad_bottom && ix >= -win.pad_left &&
                                      ix < w + win.pad_right;
                  if (in_pad) ++count;
                }
              }
            }
            dst[oy * win.ow + ox] = is_max ? acc : (count ? acc / static_cast<float>(count) : 0.0f);
          }
        }
      }
    });
    return absl::OkStatus();
  }));
}

template <bool kMax>
absl::Status GlobalPool(OpContext& ctx) {
  const Tensor& x = ctx.in(0);
  if (x.type() != DataType::kFloat32 || x.rank() < 3) return ctx.Error("input must be float32 N x C x spatial");
  Shape out_shape = {x.dim(0), x.dim(1)};
  for (int64_t d = 2; d < x.rank(); ++d) out_shape.push_back(1);
  Tensor& y = ctx.Output(0, DataType::kFloat32, out_shape);
  const int64_t planes = x.dim(0) * x.dim(1);
  const int64_t size = planes == 0 ? 0 : x.elements() / planes;
  const float* px = x.data<float>();
  float* py = y.data<float>();
  Parallel(ctx, planes, RowGrain(size), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const float* src = px + p * size;
      float acc = kMax ? -std::numeric_limits<float>::infinity() : 0.0f;
      for (int64_t i = 0; i < size; ++i) acc = kMax ? std::max(acc, src[i]) : acc + src[i];
      py[p] = kMax ? acc : acc / static_cast<float>(size);
    }
  });
  return absl::OkStatus();
}

}  // namespace

void RegisterConvPoolOps(OpRegistry& r) {
  r.Register("", "Conv", MakeConv);
  r.Register("", "MaxPool", [](const Graph& g, const Node& n) { return MakePool(g, n, true); });
  r.Register("", "AveragePool", [](const Graph& g, const Node& n) { return MakePool(g, n, false); });
  r.Register("", "GlobalAveragePool", GlobalPool<false>);
  r.Register("", "GlobalMaxPool", GlobalPool<true>);
}

}  // namespace coreserve::runtime
