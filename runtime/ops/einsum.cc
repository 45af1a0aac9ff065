// Einsum on float32 (and float64), any number of operands, with "..." broadcasting, repeated labels (diagonals) and implicit
// outputs. Operands are contracted left to right: each pair becomes one batched GEMM on the kernels (batch labels
// shared and kept, contracted labels shared and dropped), after labels that nothing later reads are summed out.
// Operands are rearranged by one strided copy each only when their order differs from the GEMM's.
#include "runtime/ops/einsum.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <type_traits>

#include "runtime/ops/gemm_util.h"
#include "runtime/ops/op_util.h"

namespace coreserve::runtime {

absl::StatusOr<EinsumEquation> ParseEinsum(const std::string& text) {
  EinsumEquation eq;
  std::string s;
  for (char c : text) {
    if (c != ' ') s += c;
  }
  const std::size_t arrow = s.find("->");
  auto parse_term = [&](const std::string& term) -> absl::StatusOr<std::vector<int>> {
    std::vector<int> labels;
    for (std::size_t i = 0; i < term.size(); ++i) {
      const char c = term[i];
      // Numbered in ASCII order (A-Z before a-z), the order of an implicit output's labels.
      if (c >= 'A' && c <= 'Z') {
        labels.push_back(c - 'A');
      } else if (c >= 'a' && c <= 'z') {
        labels.push_back(26 + c - 'a');
      } else if (term.compare(i, 3, "...") == 0 &&
                 std::count(labels.begin(), labels.end(), EinsumEquation::kEllipsis) == 0) {
        labels.push_back(EinsumEquation::kEllipsis);
        i += 2;
      } else {
        return absl::InvalidArgumentError(absl::StrCat("equation '", text, "': unexpected '", std::string(1, c),
                                                       "' in term '", term, "'"));
      }
    }
    return labels;
  };
  const std::string lhs = s.substr(0, arrow);
  for (std::size_t begin = 0;;) {
    const std::size_t comma = lhs.find(',', begin);
    ASSIGN_OR_RETURN(std::vector<int> labels, parse_term(lhs.substr(begin, comma - begin)));
    eq.inputs.push_back(std::move(labels));
    if (comma == std::string::npos) break;
    begin = comma + 1;
  }
  if (arrow != std::string::npos) {
    ASSIGN_OR_RETURN(std::vector<int> out, parse_term(s.substr(arrow + 2)));
    std::vector<int> sorted = out;
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
      return absl::InvalidArgumentError(absl::StrCat("equation '", text, "': a label repeats in the output"));
    }
    eq.output = std::move(out);
  }
  return eq;
}

absl::StatusOr<EinsumLabels> ExpandEinsum(const EinsumEquation& eq, const std::vector<int64_t>& ranks) {
  constexpr int kFirstEllipsisLabel = 52;
  if (ranks.size() != eq.inputs.size()) {
    return absl::InvalidArgumentError(absl::StrCat("the equation has ", eq.inputs.size(), " operands, the node ",
                                                   ranks.size(), " inputs"));
  }
  int64_t ellipsis_rank = 0;
  for (std::size_t k = 0; k < ranks.size(); ++k) {
    const auto& term = eq.inputs[k];
    const bool has_ellipsis = std::count(term.begin(), term.end(), EinsumEquation::kEllipsis) > 0;
    const int64_t named = static_cast<int64_t>(term.size()) - (has_ellipsis ? 1 : 0);
    if (ranks[k] < named || (!has_ellipsis && ranks[k] != named)) {
      return absl::InvalidArgumentError(absl::StrCat("operand ", k, " has rank ", ranks[k], " but its term names ",
                                                     named, " dims"));
    }
    if (has_ellipsis) ellipsis_rank = std::max(ellipsis_rank, ranks[k] - named);
  }
  auto expand = [&](const std::vector<int>& term, int64_t covered) {
    std::vector<int> labels;
    for (int l : term) {
      if (l != EinsumEquation::kEllipsis) {
        labels.push_back(l);
        continue;
      }
      for (int64_t j = ellipsis_rank - covered; j < ellipsis_rank; ++j) {
        labels.push_back(kFirstEllipsisLabel + static_cast<int>(j));
      }
    }
    return labels;
  };
  EinsumLabels out;
  std::map<int, int> uses;
  for (std::size_t k = 0; k < ranks.size(); ++k) {
    const int64_t named = static_cast<int64_t>(eq.inputs[k].size()) -
                          std::count(eq.inputs[k].begin(), eq.inputs[k].end(), EinsumEquation::kEllipsis);
    out.inputs.push_back(expand(eq.inputs[k], ranks[k] - named));
    for (int l : out.inputs.back()) ++uses[l];
  }
  if (eq.output) {
    out.output = expand(*eq.output, ellipsis_rank);
    for (int l : out.output) {
      if (!uses.count(l)) {
        return absl::InvalidArgumentError("an output label appears in no operand");
      }
    }
  } else {
    for (int64_t j = 0; j < ellipsis_rank; ++j) out.output.push_back(kFirstEllipsisLabel + static_cast<int>(j));
    for (const auto& [label, count] : uses) {
      if (label < kFirstEllipsisLabel && count == 1) out.output.push_back(label);
    }
  }
  return out;
}

namespace {

// Size of each label over all operands; a dim of 1 broadcasts. Dims of -1 (unknown, in shape inference) are
// ignored unless nothing else gives the size.
absl::StatusOr<std::map<int, int64_t>> LabelSizes(const EinsumLabels& labels, const std::vector<Shape>& shapes) {
  std::map<int, int64_t> sizes;
  for (std::size_t k = 0; k < shapes.size(); ++k) {
    for (std::size_t d = 0; d < shapes[k].size(); ++d) {
      const int64_t dim = shapes[k][d];
      auto [it, inserted] = sizes.emplace(labels.inputs[k][d], dim);
      if (inserted || dim == it->second || dim == 1 || dim < 0) continue;
      if (it->second == 1 || it->second < 0) {
        it->second = dim;
        continue;
      }
      return absl::InvalidArgumentError(absl::StrCat("a label has sizes ", it->second, " and ", dim));
    }
  }
  return sizes;
}

}  // namespace

std::optional<Shape> EinsumShape(const std::string& equation, const std::vector<std::optional<Shape>>& inputs) {
  auto eq = ParseEinsum(equation);
  if (!eq.ok()) return std::nullopt;
  std::vector<int64_t> ranks;
  std::vector<Shape> shapes;
  for (const auto& s : inputs) {
    if (!s) return std::nullopt;
    ranks.push_back(static_cast<int64_t>(s->size()));
    shapes.push_back(*s);
  }
  auto labels = ExpandEinsum(*eq, ranks);
  if (!labels.ok()) return std::nullopt;
  auto sizes = LabelSizes(*labels, shapes);
  if (!sizes.ok()) return std::nullopt;
  Shape out;
  for (int l : labels->output) {
    // A size of 1 seen in one operand may still broadcast to an unknown size in another.
    bool unknown = false;
    for (std::size_t k = 0; k < shapes.size(); ++k) {
      for (std::size_t d = 0; d < shapes[k].size(); ++d) unknown = unknown || (labels->inputs[k][d] == l && shapes[k][d] < 0);
    }
    const int64_t size = sizes->at(l);
    out.push_back(unknown && size == 1 ? -1 : size);
  }
  return out;
}

namespace {

template <typename T>
constexpr DataType Kind() { return std::is_same_v<T, float> ? DataType::kFloat32 : DataType::kFloat64; }

// A tensor with one label per dim (labels unique once diagonals are taken).
template <typename T>
struct Operand {
  std::vector<int> labels;
  Shape dims;
  std::vector<int64_t> strides;  // element strides into data
  const T* data = nullptr;
  Tensor storage;                // owns data when the operand is an intermediate
};

std::vector<int64_t> RowMajorStrides(const Shape& dims) {
  std::vector<int64_t> strides(dims.size());
  int64_t s = 1;
  for (std::size_t d = dims.size(); d-- > 0;) {
    strides[d] = s;
    s *= dims[d];
  }
  return strides;
}

// dst[i] = src[sum_d index_d(i) * src_strides[d]] over `dims` in row-major order (a permutation, a diagonal or a
// broadcast, depending on the strides).
template <typename T>
void StridedCopy(const OpContext& ctx, const T* src, const Shape& dims, const std::vector<int64_t>& src_strides,
                 T* dst) {
  const int64_t inner = dims.empty() ? 1 : dims.back();
  const int64_t inner_stride = dims.empty() ? 0 : src_strides.back();
  int64_t rows = 1;
  for (std::size_t d = 0; d + 1 < dims.size(); ++d) rows *= dims[d];
  if (inner == 0 || rows == 0) return;
  Parallel(ctx, rows, RowGrain(inner), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t offset = 0;
      for (int64_t d = static_cast<int64_t>(dims.size()) - 2, rest = r; d >= 0; --d) {
        offset += rest % dims[d] * src_strides[d];
        rest /= dims[d];
      }
      T* out = dst + r * inner;
      const T* in = src + offset;
      if (inner_stride == 1) {
        std::memcpy(out, in, static_cast<std::size_t>(inner) * sizeof(T));
      } else {
        for (int64_t i = 0; i < inner; ++i) out[i] = in[i * inner_stride];
      }
    }
  });
}

// The operand with its dims in the order `order`, each of size `dims` (a dim of 1 broadcasts to its target):
// its own data when already laid out so, else a strided copy.
template <typename T>
Operand<T> Arrange(const OpContext& ctx, const Operand<T>& op, const std::vector<int>& order, const Shape& dims) {
  std::vector<int64_t> strides;
  for (std::size_t i = 0; i < order.size(); ++i) {
    const auto it = std::find(op.labels.begin(), op.labels.end(), order[i]);
    const std::size_t d = static_cast<std::size_t>(it - op.labels.begin());
    strides.push_back(op.dims[d] == dims[i] ? op.strides[d] : 0);
  }
  Operand<T> out;
  out.labels = order;
  out.dims = dims;
  out.strides = RowMajorStrides(dims);
  if (strides == out.strides) {
    out.data = op.data;
    out.storage = op.storage;  // shares (and keeps alive) an intermediate's buffer
    return out;
  }
  out.storage = Tensor::Allocate(Kind<T>(), dims);
  StridedCopy(ctx, op.data, dims, strides, out.storage.template data<T>());
  out.data = out.storage.template data<T>();
  return out;
}

// Repeated labels of one operand become their diagonal (one label, the strides of its positions added).
template <typename T>
absl::StatusOr<Operand<T>> Diagonal(const OpContext& ctx, const Tensor& t, const std::vector<int>& labels) {
  Operand<T> view;
  view.data = t.template data<T>();
  const std::vector<int64_t> strides = RowMajorStrides(t.shape());
  for (std::size_t d = 0; d < labels.size(); ++d) {
    const auto it = std::find(view.labels.begin(), view.labels.end(), labels[d]);
    if (it == view.labels.end()) {
      view.labels.push_back(labels[d]);
      view.dims.push_back(t.dim(static_cast<int64_t>(d)));
      view.strides.push_back(strides[d]);
      continue;
    }
    const std::size_t u = static_cast<std::size_t>(it - view.labels.begin());
    if (view.dims[u] != t.dim(static_cast<int64_t>(d))) {
      return ctx.Error(absl::StrCat("a repeated label has sizes ", view.dims[u], " and ", t.dim(static_cast<int64_t>(d))));
    }
    view.strides[u] += strides[d];
  }
  if (view.labels.size() == labels.size()) return view;
  return Arrange(ctx, view, view.labels, view.dims);
}

// Sums out the operand's labels that are not in `keep`.
template <typename T>
Operand<T> SumOut(const OpContext& ctx, const Operand<T>& op, const std::vector<int>& keep) {
  std::vector<int> kept, order;
  Shape dims, kept_dims;
  for (std::size_t d = 0; d < op.labels.size(); ++d) {
    if (std::count(keep.begin(), keep.end(), op.labels[d])) {
      kept.push_back(op.labels[d]);
      kept_dims.push_back(op.dims[d]);
    }
  }
  if (kept.size() == op.labels.size()) return Arrange(ctx, op, op.labels, op.dims);
  order = kept;
  dims = kept_dims;
  int64_t reduced = 1;
  for (std::size_t d = 0; d < op.labels.size(); ++d) {
    if (!std::count(keep.begin(), keep.end(), op.labels[d])) {
      order.push_back(op.labels[d]);
      dims.push_back(op.dims[d]);
      reduced *= op.dims[d];
    }
  }
  const Operand<T> arranged = Arrange(ctx, op, order, dims);
  Operand<T> out;
  out.labels = kept;
  out.dims = kept_dims;
  out.strides = RowMajorStrides(kept_dims);
  out.storage = Tensor::Allocate(Kind<T>(), kept_dims);
  T* sums = out.storage.template data<T>();
  Parallel(ctx, out.storage.elements(), RowGrain(reduced), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* row = arranged.data + r * reduced;
      T s = 0;
      for (int64_t i = 0; i < reduced; ++i) s += row[i];
      sums[r] = s;
    }
  });
  out.data = sums;
  return out;
}

bool Contains(const std::vector<int>& v, int x) { return std::find(v.begin(), v.end(), x) != v.end(); }

// x and y contracted into labels batch + x-only + y-only, as one batched GEMM: [B, M, K] x [B, K, N].
template <typename T>
Operand<T> Contract(const OpContext& ctx, const Operand<T>& x_in, const Operand<T>& y_in, const std::vector<int>& needed) {
  // Labels only one side has and nothing later reads are summed out first.
  std::vector<int> keep_x = needed, keep_y = needed;
  keep_x.insert(keep_x.end(), y_in.labels.begin(), y_in.labels.end());
  keep_y.insert(keep_y.end(), x_in.labels.begin(), x_in.labels.end());
  const Operand<T> x = SumOut(ctx, x_in, keep_x);
  const Operand<T> y = SumOut(ctx, y_in, keep_y);
  std::vector<int> batch, contracted, x_only, y_only;
  Shape batch_dims, contracted_dims, x_dims, y_dims;
  auto dim_of = [](const Operand<T>& op, int label) {
    return op.dims[static_cast<std::size_t>(std::find(op.labels.begin(), op.labels.end(), label) - op.labels.begin())];
  };
  for (int l : x.labels) {
    if (!Contains(y.labels, l)) {
      x_only.push_back(l);
      x_dims.push_back(dim_of(x, l));
      continue;
    }
    const int64_t size = dim_of(x, l) == 1 ? dim_of(y, l) : dim_of(x, l);  // a dim of 1 broadcasts
    if (Contains(needed, l)) {
      batch.push_back(l);
      batch_dims.push_back(size);
    } else {
      contracted.push_back(l);
      contracted_dims.push_back(size);
    }
  }
  for (int l : y.labels) {
    if (!Contains(x.labels, l)) {
      y_only.push_back(l);
      y_dims.push_back(dim_of(y, l));
    }
  }
  auto cat = [](std::vector<std::vector<int64_t>> parts) {
    std::vector<int64_t> all;
    for (const auto& p : parts) all.insert(all.end(), p.begin(), p.end());
    return all;
  };
  auto labels_cat = [](std::vector<std::vector<int>> parts) {
    std::vector<int> all;
    for (const auto& p : parts) all.insert(all.end(), p.begin(), p.end());
    return all;
  };
  const Operand<T> a = Arrange(ctx, x, labels_cat({batch, x_only, contracted}), cat({batch_dims, x_dims, contracted_dims}));
  const Operand<T> b = Arrange(ctx, y, labels_cat({batch, contracted, y_only}), cat({batch_dims, contracted_dims, y_dims}));
  const int64_t batches = ElementCount(batch_dims), m = ElementCount(x_dims), k = ElementCount(contracted_dims),
                n = ElementCount(y_dims);
  Operand<T> out;
  out.labels = labels_cat({batch, x_only, y_only});
  out.dims = cat({batch_dims, x_dims, y_dims});
  out.strides = RowMajorStrides(out.dims);
  out.storage = Tensor::Allocate(Kind<T>(), out.dims);
  out.data = out.storage.template data<T>();
  T* c = out.storage.template data<T>();
  if (out.storage.elements() == 0) return out;
  if (k == 0) {
    std::fill_n(c, out.storage.elements(), T{0});
    return out;
  }
  if constexpr (std::is_same_v<T, float>) {
    ParallelGemm(ctx, batches, m, n, [&](int64_t i) {
      kernels::SgemmArgs p;
      p.m = m; p.n = n; p.k = k;
      p.a = a.data + i * m * k; p.lda = k;
      p.b = b.data + i * k * n; p.ldb = n;
      p.c = c + i * m * n; p.ldc = n;
      return p;
    });
  } else {
    // float64 (the ONNX node tests use it; exporters do not): a plain loop, one output row per task.
    Parallel(ctx, batches * m, RowGrain(n * k), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t i = r / m;
        const T* arow = a.data + r * k;
        const T* bmat = b.data + i * k * n;
        T* crow = c + r * n;
        std::fill_n(crow, n, T{0});
        for (int64_t kk = 0; kk < k; ++kk) {
          for (int64_t j = 0; j < n; ++j) crow[j] += arow[kk] * bmat[kk * n + j];
        }
      }
    });
  }
  return out;
}

template <typename T>
absl::Status Einsum(OpContext& ctx, const EinsumEquation& eq) {
  std::vector<int64_t> ranks;
  std::vector<Shape> shapes;
  for (std::size_t k = 0; k < ctx.inputs.size(); ++k) {
    if (!ctx.has(k) || ctx.in(k).type() != Kind<T>()) return ctx.Error("the inputs must all be float32 or all float64");
    ranks.push_back(ctx.in(k).rank());
    shapes.push_back(ctx.in(k).shape());
  }
  auto labels = ExpandEinsum(eq, ranks);
  if (!labels.ok()) return ctx.Error(std::string(labels.status().message()));
  auto sizes = LabelSizes(*labels, shapes);
  if (!sizes.ok()) return ctx.Error(std::string(sizes.status().message()));
  // Labels read by operand k or later, or by the output.
  std::vector<std::vector<int>> needed_from(labels->inputs.size() + 1, labels->output);
  for (std::size_t k = labels->inputs.size(); k-- > 0;) {
    needed_from[k] = needed_from[k + 1];
    needed_from[k].insert(needed_from[k].end(), labels->inputs[k].begin(), labels->inputs[k].end());
  }
  ASSIGN_OR_RETURN(Operand<T> acc, Diagonal<T>(ctx, ctx.in(0), labels->inputs[0]));
  acc = SumOut(ctx, acc, needed_from[1]);
  for (std::size_t k = 1; k < labels->inputs.size(); ++k) {
    ASSIGN_OR_RETURN(Operand<T> next, Diagonal<T>(ctx, ctx.in(k), labels->inputs[k]));
    acc = Contract(ctx, acc, next, needed_from[k + 1]);
  }
  acc = SumOut(ctx, acc, labels->output);
  Shape out_dims;
  std::vector<int64_t> strides;
  for (int l : labels->output) {
    const std::size_t d = static_cast<std::size_t>(std::find(acc.labels.begin(), acc.labels.end(), l) - acc.labels.begin());
    out_dims.push_back(sizes->at(l));
    strides.push_back(acc.dims[d] == sizes->at(l) ? acc.strides[d] : 0);  // a kept dim of 1 broadcasts
  }
  Tensor& y = ctx.Output(0, Kind<T>(), out_dims);
  StridedCopy(ctx, acc.data, out_dims, strides, y.template data<T>());
  return absl::OkStatus();
}

}  // namespace

void RegisterEinsumOps(OpRegistry& r) {
  r.Register("", "Einsum", [](const Graph&, const Node& node) -> absl::StatusOr<std::unique_ptr<OpKernel>> {
    ASSIGN_OR_RETURN(std::string text, node.attributes.String("equation", ""));
    auto eq = ParseEinsum(text);
    if (!eq.ok()) return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": ", eq.status().message()));
    if (eq->inputs.size() != node.inputs.size()) {
      return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": the equation has ", eq->inputs.size(),
                                                     " operands but the node ", node.inputs.size(), " inputs"));
    }
    return std::unique_ptr<OpKernel>(new FunctionKernel([eq = *eq](OpContext& ctx) {
      return ctx.has(0) && ctx.in(0).type() == DataType::kFloat64 ? Einsum<double>(ctx, eq) : Einsum<float>(ctx, eq);
    }));
  });
}

}  // namespace coreserve::runtime
