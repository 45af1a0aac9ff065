// Reductions (ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd) and Softmax / LogSoftmax.
#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/math/f32_math.h"
#include "runtime/ops/op_util.h"

namespace coreserve::runtime {
namespace {

enum class Reduce { kSum, kMean, kMax, kMin, kProd };

template <typename T>
T Identity(Reduce r) {
  switch (r) {
    case Reduce::kMax: return std::numeric_limits<T>::lowest();
    case Reduce::kMin: return std::numeric_limits<T>::max();
    case Reduce::kProd: return T(1);
    default: return T(0);
  }
}

template <typename T>
T Combine(Reduce r, T acc, T v) {
  switch (r) {
    case Reduce::kMax: return (v > acc || v != v) ? v : acc;
    case Reduce::kMin: return (v < acc || v != v) ? v : acc;
    case Reduce::kProd: return acc * v;
    default: return acc + v;
  }
}

// Reduces x over `reduced` axes into out (whose shape keeps reduced dims as 1 while computing).
template <typename T>
void ReduceTyped(const OpContext& ctx, Reduce kind, const Tensor& x, const std::vector<bool>& reduced, Tensor& out) {
  const int64_t rank = x.rank();
  T* o = out.data<T>();
  const T* src = x.data<T>();
  const int64_t out_n = out.elements();
  for (int64_t i = 0; i < out_n; ++i) o[i] = Identity<T>(kind);
  if (rank == 0) {
    o[0] = Combine(kind, o[0], src[0]);
    return;
  }
  // Output strides over the input's dims (0 for reduced dims), then walk input rows of the last dim.
  std::vector<int64_t> ostride(rank, 0);
  int64_t s = 1;
  for (int64_t d = rank - 1; d >= 0; --d) {
    if (!reduced[d]) {
      ostride[d] = s;
      s *= x.dim(d);
    }
  }
  const int64_t inner = x.dim(rank - 1);
  const int64_t rows = inner == 0 ? 0 : x.elements() / inner;
  const bool last_reduced = reduced[rank - 1];
  // Rows reduce into disjoint outputs only when the last dim is kept or all leading dims are kept; keep it simple
  // and serial unless the last axis alone is reduced (the common LayerNorm/softmax-style case).
  bool only_last = last_reduced;
  for (int64_t d = 0; d + 1 < rank; ++d) only_last = only_last && !reduced[d];
  auto row_loop = [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t rem = r, off = 0;
      for (int64_t d = rank - 2; d >= 0; --d) {
        off += (rem % x.dim(d)) * ostride[d];
        rem /= x.dim(d);
      }
      const T* row = src + r * inner;
      if (last_reduced) {
        T acc = o[off];
        for (int64_t i = 0; i < inner; ++i) acc = Combine(kind, acc, row[i]);
        o[off] = acc;
      } else {
        T* orow = o + off;
        for (int64_t i = 0; i < inner; ++i) orow[i] = Combine(kind, orow[i], row[i]);
      }
    }
  };
  if (only_last) {
    Parallel(ctx, rows, RowGrain(inner), row_loop);
  } else {
    row_loop(0, rows);
  }
  if (kind == Reduce::kMean) {
    const int64_t count = out_n == 0 ? 0 : x.elements() / out_n;
    for (int64_t i = 0; i < out_n; ++i) o[i] = static_cast<T>(o[i] / static_cast<T>(count));
  }
}

absl::StatusOr<std::unique_ptr<OpKernel>> MakeReduce(const Node& node, Reduce kind, int64_t axes_input_since) {
  ASSIGN_OR_RETURN(int64_t keepdims, node.attributes.Int("keepdims", 1));
  ASSIGN_OR_RETURN(int64_t noop_empty, node.attributes.Int("noop_with_empty_axes", 0));
  ASSIGN_OR_RETURN(std::vector<int64_t> attr_axes, node.attributes.Ints("axes", {}));
  const bool from_input = node.opset >= axes_input_since;
  return std::unique_ptr<OpKernel>(new FunctionKernel([=](OpContext& ctx) -> absl::Status {
    const Tensor& x = ctx.in(0);
    std::vector<int64_t> axes = attr_axes;
    if (from_input && ctx.has(1)) {
      ASSIGN_OR_RETURN(axes, ReadInts(ctx, ctx.in(1), "axes"));
    }
    if (axes.empty() && noop_empty) {
      ctx.outputs[0] = x;
      return absl::OkStatus();
    }
    std::vector<bool> reduced(x.shape().size(), axes.empty());
    for (int64_t a : axes) {
      ASSIGN_OR_RETURN(int64_t n, NormalizeAxis(ctx, a, x.rank()));
      reduced[n] = true;
    }
    Shape kept, squeezed;
    for (std::size_t d = 0; d < reduced.size(); ++d) {
      kept.push_back(reduced[d] ? 1 : x.shape()[d]);
      if (!reduced[d]) squeezed.push_back(x.shape()[d]);
    }
    Tensor& out = ctx.Output(0, x.type(), kept);
    switch (x.type()) {
      case DataType::kFloat32: ReduceTyped<float>(ctx, kind, x, reduced, out); break;
      case DataType::kFloat64: ReduceTyped<double>(ctx, kind, x, reduced, out); break;
      case DataType::kInt32: ReduceTyped<int32_t>(ctx, kind, x, reduced, out); break;
      case DataType::kInt64: ReduceTyped<int64_t>(ctx, kind, x, reduced, out); break;
      default: return ctx.Error(absl::StrCat("unsupported type ", DataTypeName(x.type())));
    }
    if (!keepdims) ctx.outputs[0] = out.Reshaped(squeezed);
    return absl::OkStatus();
  }));
}

// Softmax over `len` elements spaced `stride` apart, for `count` independent vectors.
void SoftmaxVectors(const OpContext& ctx, const float* x, float* y, int64_t outer, int64_t len, int64_t inner,
                    bool log) {
  if (inner == 1 && !log) {
    // Contiguous rows (softmax over the last axis, as attention does): the vector kernel.
    const kernels::F32SoftmaxFn softmax = kernels::F32Math().softmax;
    Parallel(ctx, outer, std::max<int64_t>(1, 8192 / std::max<int64_t>(len, 1)), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) softmax(static_cast<std::size_t>(len), x + r * len, y + r * len);
    });
    return;
  }
  Parallel(ctx, outer * inner, std::max<int64_t>(1, 4096 / std::max<int64_t>(len, 1)), [&](int64_t v0, int64_t v1) {
    for (int64_t v = v0; v < v1; ++v) {
      const int64_t o = v / inner, i = v % inner;
      const float* src = x + o * len * inner + i;
      float* dst = y + o * len * inner + i;
      float mx = -INFINITY;
      for (int64_t j = 0; j < len; ++j) mx = std::max(mx, src[j * inner]);
      float sum = 0;
      for (int64_t j = 0; j < len; ++j) {
        const float e = std::exp(src[j * inner] - mx);
        dst[j * inner] = e;
        sum += e;
      }
      if (log) {
        const float lse = std::log(sum) + mx;
        for (int64_t j = 0; j < len; ++j) dst[j * inner] = src[j * inner] - lse;
      } else {
        const float inv = 1.0f / sum;
        for (int64_t j = 0; j < len; ++j) dst[j * inner] *= inv;
      }
    }
  });
}

absl::StatusOr<std::unique_ptr<OpKernel>> MakeSoftmax(const Graph&, const Node& node, bool log) {
  // Opset 13 changed the semantics: before, the input is coerced to 2-D at `axis` (default 1); from 13 the
  // softmax runs along the single `axis` (default -1).
  const bool legacy = node.opset < 13;
  ASSIGN_OR_RETURN(int64_t axis_attr, node.attributes.Int("axis", legacy ? 1 : -1));
  return std::unique_ptr<OpKernel>(new FunctionKernel([=](OpContext& ctx) -> absl::Status {
    const Tensor& x = ctx.in(0);
    if (x.type() != DataType::kFloat32) return ctx.Error("input must be float32");
    Tensor& out = ctx.Output(0, x.type(), x.shape());
    if (x.elements() == 0) return absl::OkStatus();
    ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(ctx, axis_attr, x.rank()));
    int64_t outer = 1, len = 1, inner = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= x.dim(d);
    if (legacy) {
      len = x.elements() / outer;
    } else {
      len = x.dim(axis);
      for (int64_t d = axis + 1; d < x.rank(); ++d) inner *= x.dim(d);
    }
    SoftmaxVectors(ctx, x.data<float>(), out.data<float>(), outer, len, inner, log);
    return absl::OkStatus();
  }));
}

// coreserve::MaskedSoftmax(scores, mask): softmax(scores + mask) over the last axis, the mask broadcast to the
// scores; with nan_to_zero, NaN results (rows masked entirely with -inf) become 0, as the exporters' guard does.
absl::StatusOr<std::unique_ptr<OpKernel>> MakeMaskedSoftmax(const Graph&, const Node& node) {
  ASSIGN_OR_RETURN(int64_t nan_to_zero, node.attributes.Int("nan_to_zero", 0));
  return std::unique_ptr<OpKernel>(new FunctionKernel([=](OpContext& ctx) -> absl::Status {
    const Tensor& x = ctx.in(0);
    const Tensor& m = ctx.in(1);
    if (x.type() != DataType::kFloat32 || m.type() != DataType::kFloat32) return ctx.Error("inputs must be float32");
    ASSIGN_OR_RETURN(Broadcast bc, PlanBroadcast(ctx, {&x.shape(), &m.shape()}));
    Tensor& y = ctx.Output(0, DataType::kFloat32, bc.out);
    if (y.elements() == 0) return absl::OkStatus();
    const kernels::F32SoftmaxFn softmax = kernels::F32Math().softmax;
    const float* px = x.data<float>();
    const float* pm = m.data<float>();
    float* py = y.data<float>();
    const int64_t n = bc.inner, sx = bc.inner_step[0], sm = bc.inner_step[1];
    Parallel(ctx, bc.outer, std::max<int64_t>(1, 8192 / std::max<int64_t>(n, 1)), [&](int64_t r0, int64_t r1) {
      int64_t off[2];
      for (int64_t r = r0; r < r1; ++r) {
        bc.RowOffsets(r, off);
        float* row = py + r * n;
        for (int64_t i = 0; i < n; ++i) row[i] = px[off[0] + i * sx] + pm[off[1] + i * sm];
        softmax(static_cast<std::size_t>(n), row, row);
        if (nan_to_zero) {
          for (int64_t i = 0; i < n; ++i) row[i] = row[i] != row[i] ? 0.0f : row[i];
        }
      }
    });
    return absl::OkStatus();
  }));
}

}  // namespace

void RegisterReduceOps(OpRegistry& r) {
  r.Register("coreserve", "MaskedSoftmax", MakeMaskedSoftmax);
  // ReduceSum took axes as an input from opset 13, the other reductions from opset 18.
  r.Register("", "ReduceSum", [](const Graph&, const Node& n) { return MakeReduce(n, Reduce::kSum, 13); });
  r.Register("", "ReduceMean", [](const Graph&, const Node& n) { return MakeReduce(n, Reduce::kMean, 18); });
  r.Register("", "ReduceMax", [](const Graph&, const Node& n) { return MakeReduce(n, Reduce::kMax, 18); });
  r.Register("", "ReduceMin", [](const Graph&, const Node& n) { return MakeReduce(n, Reduce::kMin, 18); });
  r.Register("", "ReduceProd", [](const Graph&, const Node& n) { return MakeReduce(n, Reduce::kProd, 18); });
  r.Register("", "Softmax", [](const Graph& g, const Node& n) { return MakeSoftmax(g, n, false); });
  r.Register("", "LogSoftmax", [](const Graph& g, const Node& n) { return MakeSoftmax(g, n, true); });
}

}  // namespace coreserve::runtime
