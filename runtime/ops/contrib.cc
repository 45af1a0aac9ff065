// ONNX Runtime contrib operators (domain com.microsoft) that its transformer optimizer writes into BERT-family
// models, which users bring as they are: EmbedLayerNormalization, SkipLayerNormalization, BiasGelu, FastGelu.
// (com.microsoft::Gelu is registered with the elementwise operators, com.microsoft::Attention in attention.cc.)
#include <cmath>

#include "kernels/math/f32_math.h"
#include "runtime/ops/op_util.h"

namespace coreserve::runtime {
namespace {

// y = LayerNorm(input + skip + bias) * gamma + beta over the last axis; optional outputs mean, inverse standard
// deviation and the pre-normalization sum.
absl::StatusOr<std::unique_ptr<OpKernel>> MakeSkipLayerNorm(const Graph&, const Node& node) {
  ASSIGN_OR_RETURN(float epsilon, node.attributes.Float("epsilon", 1e-12f));
  return std::unique_ptr<OpKernel>(new FunctionKernel([=](OpContext& ctx) -> absl::Status {
    const Tensor& x = ctx.in(0);
    const Tensor& skip = ctx.in(1);
    const Tensor& gamma = ctx.in(2);
    const Tensor* beta = ctx.has(3) ? ctx.inputs[3] : nullptr;
    const Tensor* bias = ctx.has(4) ? ctx.inputs[4] : nullptr;
    if (x.type() != DataType::kFloat32 || x.rank() < 1) return ctx.Error("input must be float32");
    const int64_t h = x.shape().back();
    const int64_t rows = h == 0 ? 0 : x.elements() / h;
    // skip is the input's shape, or broadcasts over the batch ([S, H] / [1, S, H]).
    if (skip.elements() == 0 || x.elements() % skip.elements() != 0 || skip.shape().back() != h) {
      return ctx.Error(absl::StrCat("skip ", ShapeString(skip.shape()), " does not match input ", ShapeString(x.shape())));
    }
    if (gamma.elements() != h || (beta && beta->elements() != h) || (bias && bias->elements() != h)) {
      return ctx.Error("gamma, beta and bias must have the hidden size");
    }
    Tensor& y = ctx.Output(0, x.type(), x.shape());
    Shape stat = x.shape();
    stat.back() = 1;
    float* mean_out = ctx.outputs.size() > 1 && ctx.node->outputs[1] >= 0 ? ctx.Output(1, x.type(), stat).data<float>() : nullptr;
    float* inv_out = ctx.outputs.size() > 2 && ctx.node->outputs[2] >= 0 ? ctx.Output(2, x.type(), stat).data<float>() : nullptr;
    float* sum_out = ctx.outputs.size() > 3 && ctx.node->outputs[3] >= 0 ? ctx.Output(3, x.type(), x.shape()).data<float>() : nullptr;
    const int64_t skip_rows = skip.elements() / h;
    const float *px = x.data<float>(), *ps = skip.data<float>(), *g = gamma.data<float>();
    const float* b = beta ? beta->data<float>() : nullptr;
    const float* bi = bias ? bias->data<float>() : nullptr;
    float* py = y.data<float>();
    const kernels::F32LayerNormFn layernorm = kernels::F32Math().layernorm;
    Parallel(ctx, rows, RowGrain(h), [&](int64_t r0, int64_t r1) {
      std::vector<float> sum(static_cast<std::size_t>(h));
      for (int64_t r = r0; r < r1; ++r) {
        const float* xr = px + r * h;
        const float* sr = ps + (r % skip_rows) * h;
        for (int64_t i = 0; i < h; ++i) sum[i] = xr[i] + sr[i] + (bi ? bi[i] : 0.0f);
        float mean = 0, inv = 0;
        layernorm(static_cast<std::size_t>(h), sum.data(), g, b, epsilon, py + r * h, &mean, &inv);
        if (mean_out) mean_out[r] = mean;
        if (inv_out) inv_out[r] = inv;
        if (sum_out) std::copy(sum.begin(), sum.end(), sum_out + r * h);
      }
    });
    return absl::OkStatus();
  }));
}

// BERT's embedding block: LayerNorm(word[input_ids] + position[position_ids or s] + segment[segment_ids or 0]) * gamma
// + beta. Outputs: the normalized embeddings, optionally mask_index (per batch row, the number of non-zero mask
// entries) and the pre-normalization sum.
absl::StatusOr<std::unique_ptr<OpKernel>> MakeEmbedLayerNorm(const Graph&, const Node& node) {
  ASSIGN_OR_RETURN(float epsilon, node.attributes.Float("epsilon", 1e-12f));
  return std::unique_ptr<OpKernel>(new FunctionKernel([=](OpContext& ctx) -> absl::Status {
    const Tensor& ids = ctx.in(0);
    const Tensor* segments = ctx.has(1) ? ctx.inputs[1] : nullptr;
    const Tensor& word = ctx.in(2);
    const Tensor& position = ctx.in(3);
    const Tensor* segment_table = ctx.has(4) ? ctx.inputs[4] : nullptr;
    const Tensor& gamma = ctx.in(5);
    const Tensor& beta = ctx.in(6);
    const Tensor* mask = ctx.has(7) ? ctx.inputs[7] : nullptr;
    const Tensor* positions = ctx.has(8) ? ctx.inputs[8] : nullptr;
    if (ids.type() != DataType::kInt32 || ids.rank() != 2) return ctx.Error("input_ids must be int32 [batch, sequence]");
    const int64_t batch = ids.dim(0), seq = ids.dim(1);
    if (word.type() != DataType::kFloat32 || word.rank() != 2) return ctx.Error("word_embedding must be a float32 matrix");
    const int64_t h = word.dim(1);
    auto table_ok = [h](const Tensor* t) { return t->type() == DataType::kFloat32 && t->rank() == 2 && t->dim(1) == h; };
    if (!table_ok(&position) || (segment_table && !table_ok(segment_table))) {
      return ctx.Error(absl::StrCat("embedding tables must be float32 [*, ", h, "]"));
    }
    if (gamma.elements() != h || beta.elements() != h) return ctx.Error("gamma and beta must have the hidden size");
    auto ids_ok = [&](const Tensor* t, bool broadcast_batch) {
      return t->type() == DataType::kInt32 && t->rank() == 2 && t->dim(1) == seq &&
             (t->dim(0) == batch || (broadcast_batch && t->dim(0) == 1));
    };
    if (segments && !ids_ok(segments, false)) return ctx.Error("segment_ids must be int32 shaped like input_ids");
    if (mask && !ids_ok(mask, false)) return ctx.Error("mask must be int32 shaped like input_ids");
    if (positions && !ids_ok(positions, true)) return ctx.Error("position_ids must be int32 [batch or 1, sequence]");
    if (segments && !segment_table) return ctx.Error("segment_ids given without segment_embedding");
    Tensor& y = ctx.Output(0, DataType::kFloat32, {batch, seq, h});
    if (ctx.outputs.size() > 1 && ctx.node->outputs[1] >= 0) {
      int32_t* index = ctx.Output(1, DataType::kInt32, {batch}).data<int32_t>();
      for (int64_t b = 0; b < batch; ++b) {
        int32_t count = 0;
        for (int64_t s = 0; mask && s < seq; ++s) count += mask->data<int32_t>()[b * seq + s] != 0;
        index[b] = count;
      }
    }
    float* sum_out = ctx.outputs.size() > 2 && ctx.node->outputs[2] >= 0
                         ? ctx.Output(2, DataType::kFloat32, {batch, seq, h}).data<float>()
                         : nullptr;
    // Every index is checked before any work, so a bad id fails the request with its position.
    auto lookup = [&](const Tensor* idx, int64_t b, int64_t s, int64_t rows, const char* what, int64_t* row) -> absl::Status {
      const int64_t i = idx ? idx->data<int32_t>()[(idx->dim(0) == 1 ? 0 : b) * seq + s] : s;
      if (i < 0 || i >= rows) {
        return ctx.Error(absl::StrCat(what, " ", i, " at [", b, ",", s, "] is outside [0, ", rows, ")"));
      }
      *row = i;
      return absl::OkStatus();
    };
    std::vector<int64_t> rows(static_cast<std::size_t>(batch * seq * 3), -1);
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t s = 0; s < seq; ++s) {
        int64_t* r = &rows[(b * seq + s) * 3];
        RETURN_IF_ERROR(lookup(&ids, b, s, word.dim(0), "input id", &r[0]));
        RETURN_IF_ERROR(lookup(positions, b, s, position.dim(0), "position", &r[1]));
        // Without segment_ids, ONNX Runtime adds the segment table's row 0 (when there is a table).
        if (segments) RETURN_IF_ERROR(lookup(segments, b, s, segment_table->dim(0), "segment id", &r[2]));
        else if (segment_table && segment_table->dim(0) > 0) r[2] = 0;
      }
    }
    const kernels::F32LayerNormFn layernorm = kernels::F32Math().layernorm;
    Parallel(ctx, batch * seq, RowGrain(h), [&](int64_t r0, int64_t r1) {
      std::vector<float> sum(static_cast<std::size_t>(h));
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t* idx = &rows[r * 3];
        const float* w = word.data<float>() + idx[0] * h;
        const float* p = position.data<float>() + idx[1] * h;
        const float* g = idx[2] >= 0 ? segment_table->data<float>() + idx[2] * h : nullptr;
        for (int64_t i = 0; i < h; ++i) sum[i] = w[i] + p[i] + (g ? g[i] : 0.0f);
        float mean = 0, inv = 0;
        layernorm(static_cast<std::size_t>(h), sum.data(), gamma.data<float>(), beta.data<float>(), epsilon,
                  y.data<float>() + r * h, &mean, &inv);
        if (sum_out) std::copy(sum.begin(), sum.end(), sum_out + r * h);
      }
    });
    return absl::OkStatus();
  }));
}

// x + bias (bias over the last axis), then the vector function `fn` in place.
absl::Status BiasThen(OpContext& ctx, const Tensor* bias, kernels::F32UnaryFn fn) {
  const Tensor& x = ctx.in(0);
  if (x.type() != DataType::kFloat32 || x.rank() < 1) return ctx.Error("input must be float32");
  const int64_t h = x.shape().back();
  if (bias && (bias->type() != DataType::kFloat32 || bias->elements() != h)) {
    return ctx.Error(absl::StrCat("bias must have ", h, " float32 elements"));
  }
  Tensor& y = ctx.Output(0, x.type(), x.shape());
  const int64_t rows = h == 0 ? 0 : x.elements() / h;
  const float* px = x.data<float>();
  const float* pb = bias ? bias->data<float>() : nullptr;
  float* py = y.data<float>();
  Parallel(ctx, rows, RowGrain(h), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* yr = py + r * h;
      for (int64_t i = 0; i < h; ++i) yr[i] = px[r * h + i] + (pb ? pb[i] : 0.0f);
      fn(static_cast<std::size_t>(h), yr, yr);
    }
  });
  return absl::OkStatus();
}

}  // namespace

void RegisterContribOps(OpRegistry& r) {
  r.Register("com.microsoft", "SkipLayerNormalization", MakeSkipLayerNorm);
  r.Register("com.microsoft", "EmbedLayerNormalization", MakeEmbedLayerNorm);
  r.Register("com.microsoft", "BiasGelu", [](OpContext& ctx) {
    return BiasThen(ctx, ctx.inputs[1], kernels::F32Math().gelu);
  });
  r.Register("com.microsoft", "FastGelu", [](OpContext& ctx) {
    return BiasThen(ctx, ctx.has(1) ? ctx.inputs[1] : nullptr, kernels::F32Math().gelu_tanh);
  });
}

}  // namespace coreserve::runtime
