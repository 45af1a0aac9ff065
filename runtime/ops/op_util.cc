#include "runtime/ops/op_util.h"

#include <algorithm>

namespace coreserve::runtime {

absl::StatusOr<int64_t> NormalizeAxis(const OpContext& ctx, int64_t axis, int64_t rank) {
  const int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= std::max<int64_t>(rank, 1)) {
    return ctx.Error(absl::StrCat("axis ", axis, " is out of range for rank ", rank));
  }
  return a;
}

absl::StatusOr<std::vector<int64_t>> ReadInts(const OpContext& ctx, const Tensor& t, const char* what) {
  std::vector<int64_t> v(static_cast<std::size_t>(t.elements()));
  if (t.type() == DataType::kInt64) {
    std::copy_n(t.data<int64_t>(), v.size(), v.begin());
  } else if (t.type() == DataType::kInt32) {
    std::copy_n(t.data<int32_t>(), v.size(), v.begin());
  } else {
    return ctx.Error(absl::StrCat(what, " must be int64 or int32, got ", DataTypeName(t.type())));
  }
  return v;
}

void Broadcast::ElementOffsets(int64_t index, int64_t* offsets) const {
  for (std::size_t k = 0; k < strides.size(); ++k) offsets[k] = 0;
  for (std::size_t d = out.size(); d-- > 0;) {
    const int64_t idx = index % out[d];
    index /= out[d];
    for (std::size_t k = 0; k < strides.size(); ++k) offsets[k] += idx * strides[k][d];
  }
}

absl::StatusOr<Broadcast> PlanBroadcast(const OpContext& ctx, const std::vector<const Shape*>& shapes) {
  Broadcast b;
  std::size_t rank = 0;
  for (const Shape* s : shapes) rank = std::max(rank, s->size());
  b.out.assign(rank, 1);
  for (const Shape* s : shapes) {
    const std::size_t pad = rank - s->size();
    for (std::size_t i = 0; i < s->size(); ++i) {
      const int64_t d = (*s)[i];
      int64_t& o = b.out[pad + i];
      if (d == o || d == 1) continue;
      if (o == 1) {
        o = d;
        continue;
      }
      std::string shapes_text;
      for (const Shape* t : shapes) absl::StrAppend(&shapes_text, shapes_text.empty() ? "" : " and ", ShapeString(*t));
      return ctx.Error(absl::StrCat("shapes ", shapes_text, " cannot be broadcast together"));
    }
  }
  for (const Shape* s : shapes) {
    std::vector<int64_t> strides(rank, 0);
    const std::size_t pad = rank - s->size();
    int64_t stride = 1;
    for (std::size_t i = s->size(); i-- > 0;) {
      strides[pad + i] = ((*s)[i] == 1 && b.out[pad + i] != 1) ? 0 : stride;
      stride *= (*s)[i];
    }
    b.strides.push_back(std::move(strides));
  }
  b.inner = rank ? b.out.back() : 1;
  b.outer = rank ? ElementCount(b.out) / std::max<int64_t>(b.inner, 1) : 1;
  if (b.inner == 0) b.outer = 0;
  for (const auto& st : b.strides) b.inner_step.push_back(rank ? st.back() : 0);
  return b;
}

void Broadcast::RowOffsets(int64_t row, int64_t* offsets) const {
  const std::size_t k = strides.size();
  for (std::size_t j = 0; j < k; ++j) offsets[j] = 0;
  if (out.empty()) return;  // scalars: one row, offset 0
  // Decode the row index over the output dims before the last one, innermost first.
  for (std::size_t d = out.size() - 1; d-- > 0;) {
    const int64_t idx = row % out[d];
    row /= out[d];
    for (std::size_t j = 0; j < k; ++j) offsets[j] += idx * strides[j][d];
  }
}

absl::Status AddResidual(const OpContext& ctx, Tensor& y, const Tensor& residual, bool relu) {
  ASSIGN_OR_RETURN(Broadcast bc, PlanBroadcast(ctx, {&y.shape(), &residual.shape()}));
  if (bc.out != y.shape() || residual.type() != DataType::kFloat32) {
    return ctx.Error(absl::StrCat("residual ", ShapeString(residual.shape()), " does not broadcast to ",
                                  ShapeString(y.shape())));
  }
  float* py = y.data<float>();
  const float* pr = residual.data<float>();
  int64_t off[2];
  for (int64_t r = 0; r < bc.outer; ++r) {
    bc.RowOffsets(r, off);
    for (int64_t i = 0; i < bc.inner; ++i) {
      float& v = py[r * bc.inner + i];
      v += pr[off[1] + i * bc.inner_step[1]];
      if (relu) v = std::max(v, 0.0f);
    }
  }
  return absl::OkStatus();
}

}  // namespace coreserve::runtime
