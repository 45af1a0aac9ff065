// Operators that move or reshape data without arithmetic, and the small integer ops of shape subgraphs:
// Shape, Size, Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Concat, Split, Slice, Gather, Expand,
// ConstantOfShape, Range, Trilu, CumSum.
#include <algorithm>
#include <cstring>
#include <numeric>
#include <optional>

#include "runtime/ops/op_util.h"

namespace coreserve::runtime {
namespace {

// Calls fn with a T of the tensor's element size (1, 2, 4 or 8 bytes), for type-agnostic copies.
template <typename Fn>
absl::Status BySize(const OpContext& ctx, DataType type, Fn&& fn) {
  switch (DataTypeSize(type)) {
    case 1: fn(uint8_t{}); return absl::OkStatus();
    case 2: fn(uint16_t{}); return absl::OkStatus();
    case 4: fn(uint32_t{}); return absl::OkStatus();
    case 8: fn(uint64_t{}); return absl::OkStatus();
    default: return ctx.Error(absl::StrCat("unsupported element type ", DataTypeName(type)));
  }
}

absl::Status ShapeOp(OpContext& ctx, int64_t start_attr, int64_t end_attr) {
  const Shape& s = ctx.in(0).shape();
  const int64_t rank = static_cast<int64_t>(s.size());
  auto clamp = [rank](int64_t v) { return std::clamp(v < 0 ? v + rank : v, int64_t{0}, rank); };
  const int64_t start = clamp(start_attr), end = clamp(end_attr);
  const int64_t n = std::max<int64_t>(0, end - start);
  Tensor& out = ctx.Output(0, DataType::kInt64, {n});
  for (int64_t i = 0; i < n; ++i) out.data<int64_t>()[i] = s[start + i];
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<OpKernel>> MakeShape(const Graph&, const Node& node) {
  ASSIGN_OR_RETURN(int64_t start, node.attributes.Int("start", 0));
  ASSIGN_OR_RETURN(int64_t end, node.attributes.Int("end", INT64_MAX / 2));
  return std::unique_ptr<OpKernel>(
      new FunctionKernel([=](OpContext& ctx) { return ShapeOp(ctx, start, end); }));
}

absl::Status Size(OpContext& ctx) {
  Tensor& out = ctx.Output(0, DataType::kInt64, {});
  *out.data<int64_t>() = ctx.in(0).elements();
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<OpKernel>> MakeReshape(const Graph&, const Node& node) {
  ASSIGN_OR_RETURN(int64_t allowzero, node.attributes.Int("allowzero", 0));
  return std::unique_ptr<OpKernel>(new FunctionKernel([=](OpContext& ctx) -> absl::Status {
    const Tensor& x = ctx.in(0);
    ASSIGN_OR_RETURN(std::vector<int64_t> shape, ReadInts(ctx, ctx.in(1), "shape"));
    int64_t known = 1, infer = -1;
    for (std::size_t i = 0; i < shape.size(); ++i) {
      if (shape[i] == 0 && !allowzero) {
        if (i >= x.shape().size()) return ctx.Error("shape copies a dimension (0) the input does not have");
        shape[i] = x.shape()[i];
      }
      if (shape[i] == -1) {
        if (infer >= 0) return ctx.Error("shape has more than one -1");
        infer = static_cast<int64_t>(i);
      } else if (shape[i] < 0) {
        return ctx.Error(absl::StrCat("invalid dimension ", shape[i], " in shape"));
      } else {
        known *= shape[i];
      }
    }
    if (infer >= 0) {
      if (known == 0 || x.elements() % known != 0) {
        return ctx.Error(absl::StrCat("cannot reshape ", ShapeString(x.shape()), " to ", ShapeString(shape)));
      }
      shape[infer] = x.elements() / known;
    }
    if (ElementCount(shape) != x.elements()) {
      return ctx.Error(absl::StrCat("cannot reshape ", ShapeString(x.shape()), " (", x.elements(),
                                    " elements) to ", ShapeString(shape)));
    }
    ctx.outputs[0] = x.Reshaped(std::move(shape));
    return absl::OkStatus();
  }));
}

absl::StatusOr<std::unique_ptr<OpKernel>> MakeFlatten(const Graph&, const Node& node) {
  ASSIGN_OR_RETURN(int64_t axis, node.attributes.Int("axis", 1));
  return std::unique_ptr<OpKernel>(new FunctionKernel([=](OpContext& ctx) -> absl::Status {
    const Tensor& x = ctx.in(0);
    const int64_t rank = x.rank();
    const int64_t a = axis < 0 ? axis + rank : axis;
    if (a < 0 || a > rank) return ctx.Error(absl::StrCat("axis ", axis, " out of range for rank ", rank));
    int64_t outer = 1;
    for (int64_t i = 0; i < a; ++i) outer *= x.dim(i);
    ctx.outputs[0] = x.Reshaped({outer, outer == 0 ? 0 : x.elements() / std::max<int64_t>(outer, 1)});
    return absl::OkStatus();
  }));
}

// Squeeze / Unsqueeze: axes from the attribute (before opset 13) or the second input.
absl::StatusOr<std::vector<int64_t>> AxesOf(const OpContext& ctx, const std::vector<int64_t>& attr_axes,
                                            bool from_input) {
  if (!from_input) return attr_axes;
  if (!ctx.has(1)) return std::vector<int64_t>{};
  return ReadInts(ctx, ctx.in(1), "axes");
}

absl::StatusOr<std::unique_ptr<OpKernel>> MakeSqueeze(const Graph&, const Node& node) {
  ASSIGN_OR_RETURN(std::vector<int64_t> attr_axes, node.attributes.Ints("axes", {}));
  const bool from_input = node.opset >= 13;
  return std::unique_ptr<OpKernel>(new FunctionKernel([=](OpContext& ctx) -> absl::Status {
    const Tensor& x = ctx.in(0);
    ASSIGN_OR_RETURN(std::vector<int64_t> axes, AxesOf(ctx, attr_axes, from_input));
    std::vector<bool> drop(x.shape().size(), false);
    if (axes.empty()) {
      for (std::size_t i = 0; i < drop.size(); ++i) drop[i] = x.shape()[i] == 1;
    }
    for (int64_t a : axes) {
      ASSIGN_OR_RETURN(int64_t n, NormalizeAxis(ctx, a, x.rank()));
      if (x.dim(n) != 1) return ctx.Error(absl::StrCat("cannot squeeze axis ", a, " of size ", x.dim(n)));
      drop[n] = true;
    }
    Shape out;
    for (std::size_t i = 0; i < drop.size(); ++i) {
      if (!drop[i]) out.push_back(x.shape()[i]);
    }
    ctx.outputs[0] = x.Reshaped(std::move(out));
    return absl::OkStatus();
  }));
}

absl::StatusOr<std::unique_ptr<OpKernel>> MakeUnsqueeze(const Graph&, const Node& node) {
  ASSIGN_OR_RETURN(std::vector<int64_t> attr_axes, node.attributes.Ints("axes", {}));
  const bool from_input = node.opset >= 13;
  return std::unique_ptr<OpKernel>(new FunctionKernel([=](OpContext& ctx) -> absl::Status {
    const Tensor& x = ctx.in(0);
    ASSIGN_OR_RETURN(std::vector<int64_t> axes, AxesOf(ctx, attr_axes, from_input));
    const int64_t rank = x.rank() + static_cast<int64_t>(axes.size());
    std::vector<bool> inserted(static_cast<std::size_t>(rank), false);
    for (int64_t a : axes) {
      ASSIGN_OR_RETURN(int64_t n, NormalizeAxis(ctx, a, rank));
      if (inserted[n]) return ctx.Error(absl::StrCat("axis ", a, " repeated"));
      inserted[n] = true;
    }
    Shape out;
    std::size_t src = 0;
    for (int64_t i = 0; i < rank; ++i) out.push_back(inserted[i] ? 1 : x.shape()[src++]);
    ctx.outputs[0] = x.Reshaped(std::move(out));
    return absl::OkStatus();
  }));
}

// A permutation that, once size-1 axes are dropped and axes that stay adjacent are merged, swaps the last two of
// at most three axes: out[n][b][a] = x[n][a][b] with x of shape (batch, a, b). NCHW <-> NHWC is one (a = C,
// b = H * W, or the reverse).
struct BatchedTranspose {
  int64_t batch = 1, a = 1, b = 1;
};
std::optional<BatchedTranspose> AsBatchedTranspose(const Shape& in, const std::vector<int64_t>& perm) {
  // Output axes of size > 1, as input axes, merged into runs of consecutive input axes.
  std::vector<std::pair<int64_t, int64_t>> runs;  // [first, last] input axis of each merged output axis
  for (int64_t axis : perm) {
    if (in[axis] == 1) continue;
    if (!runs.empty() && runs.back().second + 1 == axis) {
      runs.back().second = axis;
    } else {
      runs.push_back({axis, axis});
    }
  }
  auto size = [&](std::pair<int64_t, int64_t> r) {
    int64_t n = 1;
    for (int64_t d = r.first; d <= r.second; ++d) n *= in[d];
    return n;
  };
  if (runs.size() == 2 && runs[0].first > runs[1].first) return BatchedTranspose{1, size(runs[1]), size(runs[0])};
  if (runs.size() == 3 && runs[0].first < runs[2].first && runs[2].first < runs[1].first) {
    return BatchedTranspose{size(runs[0]), size(runs[2]), size(runs[1])};
  }
  return std::nullopt;
}

// out[perm-permuted index] = x[index], for any rank; contiguous runs are copied whole when the last axis stays,
// and a batched 2-D transpose goes in square tiles (both sides in cache lines, not one element per row).
template <typename T>
void TransposeTyped(const OpContext& ctx, const Tensor& x, const std::vector<int64_t>& perm, Tensor& out) {
  if (const std::optional<BatchedTranspose> t = AsBatchedTranspose(x.shape(), perm); t && x.elements() > 0) {
    constexpr int64_t kTile = 16;
    const int64_t b_tiles = (t->b + kTile - 1) / kTile;
    const T* src = x.data<T>();
    T* dst = out.data<T>();
    Parallel(ctx, t->batch * b_tiles, RowGrain(kTile * t->a), [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t n = i / b_tiles, b0 = i % b_tiles * kTile, b1 = std::min(t->b, b0 + kTile);
        const T* in = src + n * t->a * t->b;
        T* o = dst + n * t->a * t->b;
        for (int64_t a0 = 0; a0 < t->a; a0 += kTile) {
          const int64_t a1 = std::min(t->a, a0 + kTile);
          for (int64_t b = b0; b < b1; ++b) {
            for (int64_t a = a0; a < a1; ++a) o[b * t->a + a] = in[a * t->b + b];
          }
        }
      }
    });
    return;
  }
  const std::size_t rank = perm.size();
  std::vector<int64_t> in_strides(rank, 1);
  for (std::size_t i = rank; i-- > 1;) in_strides[i - 1] = in_strides[i] * x.shape()[i];
  // Stride in the input for a step along each output axis.
  std::vector<int64_t> step(rank);
  for (std::size_t i = 0; i < rank; ++i) step[i] = in_strides[perm[i]];
  const Shape& os = out.shape();
  const int64_t inner = os[rank - 1];
  const int64_t rows = inner == 0 ? 0 : out.elements() / inner;
  const T* src = x.data<T>();
  T* dst = out.data<T>();
  const bool contiguous_rows = perm[rank - 1] == static_cast<int64_t>(rank - 1);
  Parallel(ctx, rows, RowGrain(inner), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t rem = r, offset = 0;
      for (std::size_t d = rank - 1; d-- > 0;) {
        offset += (rem % os[d]) * step[d];
        rem /= os[d];
      }
      T* o = dst + r * inner;
      if (contiguous_rows) {
        std::memcpy(o, src + offset, static_cast<std::size_t>(inner) * sizeof(T));
      } else {
        const int64_t s = step[rank - 1];
        for (int64_t i = 0; i < inner; ++i) o[i] = src[offset + i * s];
      }
    }
  });
}

absl::StatusOr<std::unique_ptr<OpKernel>> MakeTranspose(const Graph&, const Node& node) {
  ASSIGN_OR_RETURN(std::vector<int64_t> attr_perm, node.attributes.Ints("perm", {}));
  return std::unique_ptr<OpKernel>(new FunctionKernel([=](OpContext& ctx) -> absl::Status {
    const Tensor& x = ctx.in(0);
    std::vector<int64_t> perm = attr_perm;
    if (perm.empty()) {  // the default reverses the axes
      for (int64_t i = x.rank() - 1; i >= 0; --i) perm.push_back(i);
    }
    ASSIGN_OR_RETURN(ctx.outputs[0], PermuteTensor(ctx, x, perm));
    return absl::OkStatus();
  }));
}

absl::StatusOr<std::unique_ptr<OpKernel>> MakeConcat(const Graph&, const Node& node) {
  ASSIGN_OR_RETURN(int64_t axis_attr, node.attributes.Int("axis", 0));
  return std::unique_ptr<OpKernel>(new FunctionKernel([=](OpContext& ctx) -> absl::Status {
    const Tensor& first = ctx.in(0);
    ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(ctx, axis_attr, first.rank()));
    Shape out_shape = first.shape();
    out_shape[axis] = 0;
    for (const Tensor* t : ctx.inputs) {
      if (t->type() != first.type() || t->rank() != first.rank()) return ctx.Error("inputs differ in type or rank");
      for (int64_t d = 0; d < first.rank(); ++d) {
        if (d != axis && t->dim(d) != first.dim(d)) {
          return ctx.Error(absl::StrCat("input shapes ", ShapeString(first.shape()), " and ",
                                        ShapeString(t->shape()), " differ outside axis ", axis));
        }
      }
      out_shape[axis] += t->dim(axis);
    }
    Tensor& out = ctx.Output(0, first.type(), out_shape);
    const std::size_t esize = DataTypeSize(first.type());
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= out_shape[d];
    for (int64_t d = axis + 1; d < first.rank(); ++d) inner *= out_shape[d];
    const std::size_t out_row = static_cast<std::size_t>(out_shape[axis] * inner) * esize;
    std::size_t col = 0;
    for (const Tensor* t : ctx.inputs) {
      const std::size_t in_row = static_cast<std::size_t>(t->dim(axis) * inner) * esize;
      const char* src = static_cast<const char*>(t->raw());
      char* dst = static_cast<char*>(out.raw()) + col;
      for (int64_t o = 0; o < outer; ++o) std::memcpy(dst + o * out_row, src + o * in_row, in_row);
      col += in_row;
    }
    return absl::OkStatus();
  }));
}

absl::StatusOr<std::unique_ptr<OpKernel>> MakeSplit(const Graph&, const Node& node) {
  ASSIGN_OR_RETURN(int64_t axis_attr, node.attributes.Int("axis", 0));
  ASSIGN_OR_RETURN(std::vector<int64_t> split_attr, node.attributes.Ints("split", {}));
  ASSIGN_OR_RETURN(int64_t num_outputs, node.attributes.Int("num_outputs", 0));
  const bool split_from_input = node.opset >= 13;
  return std::unique_ptr<OpKernel>(new FunctionKernel([=](OpContext& ctx) -> absl::Status {
    const Tensor& x = ctx.in(0);
    ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(ctx, axis_attr, x.rank()));
    const int64_t n = static_cast<int64_t>(ctx.outputs.size());
    std::vector<int64_t> split = split_attr;
    if (split_from_input && ctx.has(1)) {
      ASSIGN_OR_RETURN(split, ReadInts(ctx, ctx.in(1), "split"));
    }
    const int64_t dim = x.dim(axis);
    if (split.empty()) {
      // Equal parts; with num_outputs (opset 18) the last part may be smaller.
      const int64_t parts = num_outputs > 0 ? num_outputs : n;
      const int64_t size = (dim + parts - 1) / parts;
      for (int64_t i = 0; i < parts; ++i) split.push_back(std::max<int64_t>(0, std::min(size, dim - i * size)));
      if (num_outputs == 0 && dim % parts != 0) {
        return ctx.Error(absl::StrCat("axis size ", dim, " does not split into ", parts, " equal parts"));
      }
    }
    if (static_cast<int64_t>(split.size()) != n ||
        std::accumulate(split.begin(), split.end(), int64_t{0}) != dim) {
      return ctx.Error(absl::StrCat("split sizes do not match axis size ", dim, " and ", n, " outputs"));
    }
    const std::size_t esize = DataTypeSize(x.type());
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= x.dim(d);
    for (int64_t d = axis + 1; d < x.rank(); ++d) inner *= x.dim(d);
    const std::size_t in_row = static_cast<std::size_t>(dim * inner) * esize;
    std::size_t col = 0;
    for (int64_t i = 0; i < n; ++i) {
      Shape s = x.shape();
      s[axis] = split[i];
      Tensor& out = ctx.Output(i, x.type(), s);
      const std::size_t out_row = static_cast<std::size_t>(split[i] * inner) * esize;
      for (int64_t o = 0; o < outer; ++o) {
        std::memcpy(static_cast<char*>(out.raw()) + o * out_row, static_cast<const char*>(x.raw()) + o * in_row + col,
                    out_row);
      }
      col += out_row;
    }
    return absl::OkStatus();
  }));
}

// Slice: opset 1-9 take starts/ends/axes as attributes, 10+ as inputs (with optional steps).
absl::StatusOr<std::unique_ptr<OpKernel>> MakeSlice(const Graph&, const Node& node) {
  ASSIGN_OR_RETURN(std::vector<int64_t> a_starts, node.attributes.Ints("starts", {}));
  ASSIGN_OR_RETURN(std::vector<int64_t> a_ends, node.attributes.Ints("ends", {}));
  ASSIGN_OR_RETURN(std::vector<int64_t> a_axes, node.attributes.Ints("axes", {}));
  const bool from_inputs = node.opset >= 10;
  return std::unique_ptr<OpKernel>(new FunctionKernel([=](OpContext& ctx) -> absl::Status {
    const Tensor& x = ctx.in(0);
    std::vector<int64_t> starts = a_starts, ends = a_ends, axes = a_axes, steps;
    if (from_inputs) {
      ASSIGN_OR_RETURN(starts, ReadInts(ctx, ctx.in(1), "starts"));
      ASSIGN_OR_RETURN(ends, ReadInts(ctx, ctx.in(2), "ends"));
      if (ctx.has(3)) { ASSIGN_OR_RETURN(axes, ReadInts(ctx, ctx.in(3), "axes")); }
      if (ctx.has(4)) { ASSIGN_OR_RETURN(steps, ReadInts(ctx, ctx.in(4), "steps")); }
    }
    if (axes.empty()) {
      for (std::size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
    }
    if (steps.empty()) steps.assign(starts.size(), 1);
    if (starts.size() != ends.size() || axes.size() != starts.size() || steps.size() != starts.size()) {
      return ctx.Error("starts, ends, axes and steps differ in length");
    }
    const int64_t rank = x.rank();
    std::vector<int64_t> begin(rank, 0), step(rank, 1);
    Shape out_shape = x.shape();
    for (std::size_t i = 0; i < axes.size(); ++i) {
      ASSIGN_OR_RETURN(int64_t a, NormalizeAxis(ctx, axes[i], rank));
      const int64_t dim = x.dim(a), s = steps[i];
      if (s == 0) return ctx.Error("step must not be 0");
      int64_t b = starts[i], e = ends[i];
      if (b < 0) b += dim;
      if (e < 0) e += dim;
      if (s > 0) {
        b = std::clamp<int64_t>(b, 0, dim);
        e = std::clamp<int64_t>(e, 0, dim);
        out_shape[a] = e > b ? (e - b + s - 1) / s : 0;
      } else {
        b = std::clamp<int64_t>(b, 0, dim - 1);
        e = std::clamp<int64_t>(e, -1, dim - 1);
        out_shape[a] = b > e ? (b - e + (-s) - 1) / (-s) : 0;
      }
      begin[a] = b;
      step[a] = s;
    }
    Tensor& out = ctx.Output(0, x.type(), out_shape);
    if (out.elements() == 0) return absl::OkStatus();
    std::vector<int64_t> in_strides(rank, 1);
    for (int64_t d = rank - 1; d > 0; --d) in_strides[d - 1] = in_strides[d] * x.dim(d);
    return BySize(ctx, x.type(), [&](auto tag) {
      using T = decltype(tag);
      const T* src = x.data<T>();
      T* dst = out.data<T>();
      if (rank == 0) {
        *dst = *src;
        return;
      }
      const int64_t inner = out_shape[rank - 1];
      const int64_t rows = out.elements() / inner;
      for (int64_t r = 0; r < rows; ++r) {
        int64_t rem = r, offset = begin[rank - 1] * in_strides[rank - 1];
        for (int64_t d = rank - 2; d >= 0; --d) {
          offset += (begin[d] + (rem % out_shape[d]) * step[d]) * in_strides[d];
          rem /= out_shape[d];
        }
        const int64_t s = step[rank - 1];
        T* o = dst + r * inner;
        if (s == 1) {
          std::memcpy(o, src + offset, static_cast<std::size_t>(inner) * sizeof(T));
        } else {
          for (int64_t i = 0; i < inner; ++i) o[i] = src[offset + i * s];
        }
      }
    });
  }));
}

absl::StatusOr<std::unique_ptr<OpKernel>> MakeGather(const Graph&, const Node& node) {
  ASSIGN_OR_RETURN(int64_t axis_attr, node.attributes.Int("axis", 0));
  return std::unique_ptr<OpKernel>(new FunctionKernel([=](OpContext& ctx) -> absl::Status {
    const Tensor& data = ctx.in(0);
    const Tensor& idx = ctx.in(1);
    ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(ctx, axis_attr, data.rank()));
    ASSIGN_OR_RETURN(std::vector<int64_t> indices, ReadInts(ctx, idx, "indices"));
    const int64_t dim = data.dim(axis);
    for (int64_t& i : indices) {
      if (i < -dim || i >= dim) {
        return ctx.Error(absl::StrCat("index ", i, " is out of range for axis ", axis, " of size ", dim));
      }
      if (i < 0) i += dim;
    }
    Shape out_shape(data.shape().begin(), data.shape().begin() + axis);
    out_shape.insert(out_shape.end(), idx.shape().begin(), idx.shape().end());
    out_shape.insert(out_shape.end(), data.shape().begin() + axis + 1, data.shape().end());
    Tensor& out = ctx.Output(0, data.type(), out_shape);
    const std::size_t esize = DataTypeSize(data.type());
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= data.dim(d);
    for (int64_t d = axis + 1; d < data.rank(); ++d) inner *= data.dim(d);
    const std::size_t block = static_cast<std::size_t>(inner) * esize;
    const int64_t n = static_cast<int64_t>(indices.size());
    const char* src = static_cast<const char*>(data.raw());
    char* dst = static_cast<char*>(out.raw());
    Parallel(ctx, outer * n, std::max<int64_t>(1, 16384 / std::max<int64_t>(inner, 1)), [&](int64_t j0, int64_t j1) {
      for (int64_t j = j0; j < j1; ++j) {
        const int64_t o = j / n, k = j % n;
        std::memcpy(dst + j * block, src + (o * dim + indices[k]) * block, block);
      }
    });
    return absl::OkStatus();
  }));
}

absl::StatusOr<std::unique_ptr<OpKernel>> MakeGatherElements(const Graph&, const Node& node) {
  ASSIGN_OR_RETURN(int64_t axis_attr, node.attributes.Int("axis", 0));
  return std::unique_ptr<OpKernel>(new FunctionKernel([=](OpContext& ctx) -> absl::Status {
    const Tensor& data = ctx.in(0);
    const Tensor& idx = ctx.in(1);
    if (idx.rank() != data.rank()) return ctx.Error("data and indices must have the same rank");
    ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(ctx, axis_attr, data.rank()));
    ASSIGN_OR_RETURN(std::vector<int64_t> indices, ReadInts(ctx, idx, "indices"));
    const int64_t rank = data.rank(), dim = data.dim(axis);
    for (int64_t d = 0; d < rank; ++d) {
      if (d != axis && idx.dim(d) > data.dim(d)) return ctx.Error("indices exceed data outside the gather axis");
    }
    std::vector<int64_t> dstride(rank, 1), istride(rank, 1);
    for (int64_t d = rank - 1; d > 0; --d) {
      dstride[d - 1] = dstride[d] * data.dim(d);
      istride[d - 1] = istride[d] * idx.dim(d);
    }
    Tensor& out = ctx.Output(0, data.type(), idx.shape());
    return BySize(ctx, data.type(), [&](auto tag) {
      using T = decltype(tag);
      const T* src = data.data<T>();
      T* dst = out.data<T>();
      for (int64_t i = 0; i < idx.elements(); ++i) {
        int64_t k = indices[i];
        if (k < -dim || k >= dim) return;  // reported below
        if (k < 0) k += dim;
        int64_t off = 0, rem = i;
        for (int64_t d = 0; d < rank; ++d) {
          const int64_t c = rem / istride[d];
          rem %= istride[d];
          off += (d == axis ? k : c) * dstride[d];
        }
        dst[i] = src[off];
      }
    }).ok() && std::all_of(indices.begin(), indices.end(), [&](int64_t k) { return k >= -dim && k < dim; })
               ? absl::OkStatus()
               : ctx.Error(absl::StrCat("an index is out of range for axis ", axis, " of size ", dim));
  }));
}

absl::StatusOr<std::unique_ptr<OpKernel>> MakeGatherND(const Graph&, const Node& node) {
  ASSIGN_OR_RETURN(int64_t batch_dims, node.attributes.Int("batch_dims", 0));
  return std::unique_ptr<OpKernel>(new FunctionKernel([=](OpContext& ctx) -> absl::Status {
    const Tensor& data = ctx.in(0);
    const Tensor& idx = ctx.in(1);
    if (idx.rank() < 1 || batch_dims < 0 || batch_dims >= std::min(data.rank(), idx.rank())) {
      return ctx.Error("invalid batch_dims or indices rank");
    }
    const int64_t q = idx.shape().back();
    if (q < 1 || batch_dims + q > data.rank()) return ctx.Error("indices' last dimension is too large for data");
    for (int64_t d = 0; d < batch_dims; ++d) {
      if (idx.dim(d) != data.dim(d)) return ctx.Error("batch dimensions of data and indices differ");
    }
    ASSIGN_OR_RETURN(std::vector<int64_t> indices, ReadInts(ctx, idx, "indices"));
    Shape out_shape(idx.shape().begin(), idx.shape().end() - 1);
    out_shape.insert(out_shape.end(), data.shape().begin() + batch_dims + q, data.shape().end());
    Tensor& out = ctx.Output(0, data.type(), out_shape);
    int64_t batch = 1, slice = 1;
    for (int64_t d = 0; d < batch_dims; ++d) batch *= data.dim(d);
    for (int64_t d = batch_dims + q; d < data.rank(); ++d) slice *= data.dim(d);
    const int64_t tuples = idx.elements() / q, per_batch = batch == 0 ? 0 : tuples / batch;
    int64_t batch_stride = 1;
    for (int64_t d = batch_dims; d < data.rank(); ++d) batch_stride *= data.dim(d);
    const std::size_t esize = DataTypeSize(data.type());
    for (int64_t t = 0; t < tuples; ++t) {
      int64_t off = (per_batch == 0 ? 0 : t / per_batch) * batch_stride;
      int64_t stride = batch_stride;
      for (int64_t j = 0; j < q; ++j) {
        const int64_t dim = data.dim(batch_dims + j);
        stride /= dim;
        int64_t k = indices[t * q + j];
        if (k < -dim || k >= dim) return ctx.Error(absl::StrCat("index ", k, " is out of range for a dimension of size ", dim));
        if (k < 0) k += dim;
        off += k * stride;
      }
      std::memcpy(static_cast<char*>(out.raw()) + t * slice * esize, static_cast<const char*>(data.raw()) + off * esize,
                  static_cast<std::size_t>(slice) * esize);
    }
    return absl::OkStatus();
  }));
}

absl::Status Expand(OpContext& ctx) {
  const Tensor& x = ctx.in(0);
  ASSIGN_OR_RETURN(std::vector<int64_t> shape, ReadInts(ctx, ctx.in(1), "shape"));
  ASSIGN_OR_RETURN(Broadcast bc, PlanBroadcast(ctx, {&x.shape(), &shape}));
  Tensor& out = ctx.Output(0, x.type(), bc.out);
  return BySize(ctx, x.type(), [&](auto tag) {
    using T = decltype(tag);
    const T* src = x.data<T>();
    T* dst = out.data<T>();
    Parallel(ctx, bc.outer, RowGrain(bc.inner), [&](int64_t r0, int64_t r1) {
      int64_t off[2];
      for (int64_t r = r0; r < r1; ++r) {
        bc.RowOffsets(r, off);
        for (int64_t i = 0; i < bc.inner; ++i) dst[r * bc.inner + i] = src[off[0] + i * bc.inner_step[0]];
      }
    });
  });
}

absl::StatusOr<std::unique_ptr<OpKernel>> MakeConstantOfShape(const Graph&, const Node& node) {
  Tensor value;
  if (node.attributes.Has("value")) {
    ASSIGN_OR_RETURN(value, node.attributes.TensorValue("value"));
    if (value.elements() != 1) {
      return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": value must hold one element"));
    }
  } else {
    value = Tensor::Allocate(DataType::kFloat32, {1});
    *value.data<float>() = 0.0f;
  }
  return std::unique_ptr<OpKernel>(new FunctionKernel([value](OpContext& ctx) -> absl::Status {
    ASSIGN_OR_RETURN(std::vector<int64_t> shape, ReadInts(ctx, ctx.in(0), "shape"));
    for (int64_t d : shape) {
      if (d < 0) return ctx.Error(absl::StrCat("negative dimension ", d));
    }
    Tensor& out = ctx.Output(0, value.type(), shape);
    const std::size_t esize = DataTypeSize(value.type());
    for (int64_t i = 0; i < out.elements(); ++i) {
      std::memcpy(static_cast<char*>(out.raw()) + i * esize, value.raw(), esize);
    }
    return absl::OkStatus();
  }));
}

template <typename T>
absl::Status RangeTyped(OpContext& ctx) {
  const T start = *ctx.in(0).data<T>(), limit = *ctx.in(1).data<T>(), delta = *ctx.in(2).data<T>();
  if (delta == 0) return ctx.Error("delta must not be 0");
  const double count = std::ceil((static_cast<double>(limit) - static_cast<double>(start)) / static_cast<double>(delta));
  const int64_t n = std::max<int64_t>(0, static_cast<int64_t>(count));
  Tensor& out = ctx.Output(0, ctx.in(0).type(), {n});
  for (int64_t i = 0; i < n; ++i) out.data<T>()[i] = static_cast<T>(start + static_cast<T>(i) * delta);
  return absl::OkStatus();
}

absl::Status Range(OpContext& ctx) {
  for (int i = 0; i < 3; ++i) {
    if (ctx.in(i).elements() != 1 || ctx.in(i).type() != ctx.in(0).type()) {
      return ctx.Error("start, limit and delta must be scalars of one type");
    }
  }
  switch (ctx.in(0).type()) {
    case DataType::kFloat32: return RangeTyped<float>(ctx);
    case DataType::kFloat64: return RangeTyped<double>(ctx);
    case DataType::kInt32: return RangeTyped<int32_t>(ctx);
    case DataType::kInt64: return RangeTyped<int64_t>(ctx);
    default: return ctx.Error(absl::StrCat("unsupported type ", DataTypeName(ctx.in(0).type())));
  }
}

absl::StatusOr<std::unique_ptr<OpKernel>> MakeTrilu(const Graph&, const Node& node) {
  ASSIGN_OR_RETURN(int64_t upper, node.attributes.Int("upper", 1));
  return std::unique_ptr<OpKernel>(new FunctionKernel([=](OpContext& ctx) -> absl::Status {
    const Tensor& x = ctx.in(0);
    if (x.rank() < 2) return ctx.Error("input must have rank >= 2");
    int64_t k = 0;
    if (ctx.has(1)) {
      ASSIGN_OR_RETURN(std::vector<int64_t> kv, ReadInts(ctx, ctx.in(1), "k"));
      if (kv.size() != 1) return ctx.Error("k must be a scalar");
      k = kv[0];
    }
    Tensor& out = ctx.Output(0, x.type(), x.shape());
    const int64_t rows = x.dim(x.rank() - 2), cols = x.dim(x.rank() - 1);
    const int64_t mats = rows * cols == 0 ? 0 : x.elements() / (rows * cols);
    return BySize(ctx, x.type(), [&](auto tag) {
      using T = decltype(tag);
      const T* src = x.data<T>();
      T* dst = out.data<T>();
      for (int64_t m = 0; m < mats; ++m) {
        for (int64_t i = 0; i < rows; ++i) {
          for (int64_t j = 0; j < cols; ++j) {
            const int64_t at = (m * rows + i) * cols + j;
            const bool keep = upper ? (j - i >= k) : (j - i <= k);
            dst[at] = keep ? src[at] : T(0);
          }
        }
      }
    });
  }));
}

template <typename T>
void CumSumTyped(const Tensor& x, Tensor& out, int64_t axis, bool exclusive, bool reverse) {
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= x.dim(d);
  for (int64_t d = axis + 1; d < x.rank(); ++d) inner *= x.dim(d);
  const int64_t n = x.dim(axis);
  const T* src = x.data<T>();
  T* dst = out.data<T>();
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      T acc = 0;
      for (int64_t s = 0; s < n; ++s) {
        const int64_t k = reverse ? n - 1 - s : s;
        const int64_t at = (o * n + k) * inner + i;
        if (exclusive) {
          dst[at] = acc;
          acc += src[at];
        } else {
          acc += src[at];
          dst[at] = acc;
        }
      }
    }
  }
}

absl::StatusOr<std::unique_ptr<OpKernel>> MakeCumSum(const Graph&, const Node& node) {
  ASSIGN_OR_RETURN(int64_t exclusive, node.attributes.Int("exclusive", 0));
  ASSIGN_OR_RETURN(int64_t reverse, node.attributes.Int("reverse", 0));
  return std::unique_ptr<OpKernel>(new FunctionKernel([=](OpContext& ctx) -> absl::Status {
    const Tensor& x = ctx.in(0);
    ASSIGN_OR_RETURN(std::vector<int64_t> axis_v, ReadInts(ctx, ctx.in(1), "axis"));
    if (axis_v.size() != 1) return ctx.Error("axis must be a scalar");
    ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(ctx, axis_v[0], x.rank()));
    Tensor& out = ctx.Output(0, x.type(), x.shape());
    switch (x.type()) {
      case DataType::kFloat32: CumSumTyped<float>(x, out, axis, exclusive, reverse); break;
      case DataType::kFloat64: CumSumTyped<double>(x, out, axis, exclusive, reverse); break;
      case DataType::kInt32: CumSumTyped<int32_t>(x, out, axis, exclusive, reverse); break;
      case DataType::kInt64: CumSumTyped<int64_t>(x, out, axis, exclusive, reverse); break;
      default: return ctx.Error(absl::StrCat("unsupported type ", DataTypeName(x.type())));
    }
    return absl::OkStatus();
  }));
}

}  // namespace

absl::StatusOr<Tensor> PermuteTensor(const OpContext& ctx, const Tensor& x, const std::vector<int64_t>& perm) {
  const std::size_t rank = x.shape().size();
  if (perm.size() != rank) return ctx.Error(absl::StrCat("perm has ", perm.size(), " axes, input rank is ", rank));
  std::vector<bool> seen(rank, false);
  Shape out_shape(rank);
  for (std::size_t i = 0; i < rank; ++i) {
    if (perm[i] < 0 || perm[i] >= static_cast<int64_t>(rank) || seen[perm[i]]) return ctx.Error("invalid perm");
    seen[perm[i]] = true;
    out_shape[i] = x.shape()[perm[i]];
  }
  if (rank <= 1) return x;
  Tensor out = Tensor::Allocate(x.type(), out_shape);
  RETURN_IF_ERROR(BySize(ctx, x.type(), [&](auto t) { TransposeTyped<decltype(t)>(ctx, x, perm, out); }));
  return out;
}

void RegisterShapeOps(OpRegistry& r) {
  r.Register("", "Shape", MakeShape);
  r.Register("", "Size", Size);
  r.Register("", "Reshape", MakeReshape);
  r.Register("", "Flatten", MakeFlatten);
  r.Register("", "Squeeze", MakeSqueeze);
  r.Register("", "Unsqueeze", MakeUnsqueeze);
  r.Register("", "Transpose", MakeTranspose);
  r.Register("", "Concat", MakeConcat);
  r.Register("", "Split", MakeSplit);
  r.Register("", "Slice", MakeSlice);
  r.Register("", "Gather", MakeGather);
  r.Register("", "GatherElements", MakeGatherElements);
  r.Register("", "GatherND", MakeGatherND);
  r.Register("", "Expand", Expand);
  r.Register("", "ConstantOfShape", MakeConstantOfShape);
  r.Register("", "Range", Range);
  r.Register("", "Trilu", MakeTrilu);
  r.Register("", "CumSum", MakeCumSum);
}

}  // namespace coreserve::runtime
