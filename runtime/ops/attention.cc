// Multi-head attention as one operator: softmax(scale * Q K^T + masks) V per (batch, head), computed block by block
// of query rows so the [S, T] score matrix of a head never leaves a per-thread buffer.
//
// Two front ends share the core:
//   coreserve::Attention — made by the optimizer from the exporters' pattern (PermutedMatMul Q K^T, MaskedSoftmax,
//     PermutedMatMul P V). Inputs: q, k, v (rank-4 sources read through the permutations perm_q, perm_k, perm_v;
//     K is read as the GEMM's B operand, [d, t] after permutation), an optional additive float mask broadcast to
//     [B, H, S, T]. The product is stored permuted by perm_out, scaled by out_scale.
//   com.microsoft::Attention — ONNX Runtime's contrib operator (its transformer optimizer writes it): X times the
//     packed Q|K|V weights plus bias, then the core over the packed projection, with ORT's mask_index forms
//     (key lengths [B], end/start [2B], raw 0/1 [B, T] or [B, S, T]), `unidirectional` (causal) and an optional
//     additive attention_bias [B or 1, H or 1, S, T]. `past`/`present` (KV cache) are refused at load.
#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu_features.h"
#include "kernels/gemm/sgemm.h"
#include "kernels/math/f32_math.h"
#include "runtime/ops/gemm_util.h"
#include "runtime/ops/op_util.h"

namespace coreserve::runtime {
namespace {

// A rank-4 [batch, head, row, col] view of a float buffer; stride 0 broadcasts an axis.
struct View4 {
  const float* data = nullptr;
  int64_t stride[4] = {0, 0, 0, 0};
  const float* at(int64_t b, int64_t h) const { return data + b * stride[0] + h * stride[1]; }
};

struct AttentionProblem {
  int64_t batch = 0, heads = 0, q_len = 0, kv_len = 0, head_dim = 0, v_dim = 0;
  View4 q;  // [B, H, S, d], d unit-stride
  View4 k;  // [B, H, T, d]: row t is key t; either d or t unit-stride
  View4 v;  // [B, H, T, dv]: either dv or t unit-stride
  float* out = nullptr;
  int64_t out_stride[4] = {0, 0, 0, 0};  // [B, H, S, dv], dv unit-stride
  float scale = 1.0f, out_scale = 1.0f;
  // Additive masks ([B, H, S, T] views, null data for none), a causal mask (key t > query s + kv_len - q_len gets
  // `filter`), and NaN -> 0 for rows masked entirely with -inf.
  View4 mask, bias;
  bool causal = false;
  float filter = -10000.0f;
  bool nan_to_zero = false;
  // bf16: Q K^T and P V with bf16 products (see AttentionPrecision).
  kernels::GemmPrecision precision = kernels::GemmPrecision::kFp32;
};

// The precision of attention's two products, which have activations on both sides and no weights: the model's
// for fp32 and bf16. An int8 model has nothing here to quantize at load, and quantizing softmax probabilities
// per call costs accuracy, so ONNX Runtime's quantize_dynamic leaves these products fp32; where the CPU multiplies
// bf16 natively (AVX512-BF16, arm64 BF16) they run in bf16 instead, ~1.5x faster at BERT's 64-wide heads and still
// far finer than the int8 dense layers around them (as OpenVINO runs an int8 model's unquantized parts in bf16
// on such CPUs). Elsewhere bf16 would be emulated and no faster: fp32.
kernels::GemmPrecision AttentionPrecision(kernels::GemmPrecision model) {
  if (model != kernels::GemmPrecision::kInt8) return model;
  const kernels::CpuFeatures& cpu = kernels::ActiveCpuFeatures();
  return cpu.avx512_bf16 || cpu.bf16 ? kernels::GemmPrecision::kBf16 : kernels::GemmPrecision::kFp32;
}

// The GEMM's B operand in bf16, packed per call into a buffer kept per thread (reallocated only when its K x N
// changes): K^T and V are activations, but each packed block is reused by every query row of the task.
const kernels::SgemmPackedB* PackBf16(int slot, const float* b, int64_t ldb, bool trans_b, int64_t k, int64_t n) {
  thread_local std::shared_ptr<kernels::SgemmPackedB> buffers[2];
  std::shared_ptr<kernels::SgemmPackedB>& buf = buffers[slot];
  if (!buf || buf->k != k || buf->n != n) buf = kernels::SgemmAllocPackedB(k, n, kernels::GemmPrecision::kBf16);
  kernels::SgemmPackBColumns(b, ldb, trans_b, 0, n, buf.get());
  return buf.get();
}

void AddRow(const View4& m, int64_t b, int64_t h, int64_t s, int64_t t_len, float* row) {
  if (m.data == nullptr) return;
  const float* src = m.at(b, h) + s * m.stride[2];
  if (m.stride[3] == 1) {
    for (int64_t t = 0; t < t_len; ++t) row[t] += src[t];
  } else {
    for (int64_t t = 0; t < t_len; ++t) row[t] += src[t * m.stride[3]];
  }
}

// GEMM operand of a [rows, cols] matrix with the given row/column strides: one of them must be 1.
bool Operand(int64_t row_stride, int64_t col_stride, bool* trans, int64_t* ld) {
  if (col_stride == 1) {
    *trans = false;
    *ld = row_stride;
    return true;
  }
  if (row_stride == 1) {
    *trans = true;
    *ld = col_stride;
    return true;
  }
  return false;
}

absl::Status RunAttention(const OpContext& ctx, const AttentionProblem& p) {
  // Q K^T reads K^T [d, T]: K's rows t are the B operand's columns.
  bool k_trans = false, v_trans = false;
  int64_t ldk = 0, ldv = 0;
  if (p.q.stride[3] != 1 || p.out_stride[3] != 1 || !Operand(p.k.stride[3], p.k.stride[2], &k_trans, &ldk) ||
      !Operand(p.v.stride[2], p.v.stride[3], &v_trans, &ldv)) {
    return ctx.Error("attention operands have no unit-stride axis");
  }
  const int64_t threads = ctx.pool ? ctx.pool->threads() : 1;
  const int64_t pairs = p.batch * p.heads;
  // Whole heads per task when there are enough of them; otherwise split the query rows too.
  int64_t rows = p.q_len;
  while (rows > 16 && pairs * ((p.q_len + rows - 1) / rows) < 2 * threads) rows = (rows + 1) / 2;
  const int64_t blocks = (p.q_len + rows - 1) / rows;
  const kernels::F32SoftmaxFn softmax = kernels::F32Math().softmax;
  const int64_t causal_shift = p.kv_len - p.q_len;
  const bool bf16 = p.precision == kernels::GemmPrecision::kBf16;
  Parallel(ctx, pairs * blocks, 1, [&](int64_t t0, int64_t t1) {
    thread_local std::vector<float> scores;
    scores.resize(static_cast<std::size_t>(rows * std::max<int64_t>(p.kv_len, 1)));
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t pair = task / blocks, b = pair / p.heads, h = pair % p.heads;
      const int64_t s0 = (task % blocks) * rows, s1 = std::min(p.q_len, s0 + rows), m = s1 - s0;
      kernels::SgemmArgs qk;
      qk.m = m; qk.n = p.kv_len; qk.k = p.head_dim; qk.alpha = p.scale;
      qk.a = p.q.at(b, h) + s0 * p.q.stride[2]; qk.lda = p.q.stride[2];
      qk.b = p.k.at(b, h); qk.ldb = ldk; qk.trans_b = k_trans;
      qk.c = scores.data(); qk.ldc = p.kv_len;
      if (bf16) qk.packed_b = PackBf16(0, qk.b, ldk, k_trans, p.head_dim, p.kv_len);
      kernels::Sgemm(qk, 0, m, 0, p.kv_len);
      for (int64_t i = 0; i < m; ++i) {
        float* row = scores.data() + i * p.kv_len;
        const int64_t s = s0 + i;
        AddRow(p.mask, b, h, s, p.kv_len, row);
        AddRow(p.bias, b, h, s, p.kv_len, row);
        if (p.causal) {
          for (int64_t t = std::max<int64_t>(0, s + causal_shift + 1); t < p.kv_len; ++t) row[t] += p.filter;
        }
        softmax(static_cast<std::size_t>(p.kv_len), row, row);
        if (p.nan_to_zero) {
          for (int64_t t = 0; t < p.kv_len; ++t) row[t] = row[t] != row[t] ? 0.0f : row[t];
        }
      }
      kernels::SgemmArgs pv;
      pv.m = m; pv.n = p.v_dim; pv.k = p.kv_len; pv.alpha = p.out_scale;
      pv.a = scores.data(); pv.lda = p.kv_len;
      pv.b = p.v.at(b, h); pv.ldb = ldv; pv.trans_b = v_trans;
      if (bf16) pv.packed_b = PackBf16(1, pv.b, ldv, v_trans, p.kv_len, p.v_dim);
      pv.c = p.out + b * p.out_stride[0] + h * p.out_stride[1] + s0 * p.out_stride[2]; pv.ldc = p.out_stride[2];
      kernels::Sgemm(pv, 0, m, 0, p.v_dim);
    }
  });
  return absl::OkStatus();
}

// The view of `t` (rank 4, contiguous) read through `perm`: logical axis i is t's axis perm[i].
View4 Permuted(const Tensor& t, const std::vector<int64_t>& perm) {
  const int64_t s[4] = {t.dim(1) * t.dim(2) * t.dim(3), t.dim(2) * t.dim(3), t.dim(3), 1};
  View4 v;
  v.data = t.data<float>();
  for (int i = 0; i < 4; ++i) v.stride[i] = s[perm[i]];
  return v;
}

// A float tensor broadcast (numpy rules, right-aligned) to [B, H, S, T]; InvalidArgument when it does not.
absl::StatusOr<View4> Broadcast4(const OpContext& ctx, const Tensor& t, const int64_t (&dims)[4], const char* what) {
  if (t.type() != DataType::kFloat32) return ctx.Error(absl::StrCat(what, " must be float32"));
  if (t.rank() > 4) return ctx.Error(absl::StrCat(what, " has rank > 4"));
  View4 v;
  v.data = t.data<float>();
  int64_t stride = 1;
  for (int64_t i = t.rank() - 1, d = 3; i >= 0; --i, --d) {
    if (t.dim(i) != 1 && t.dim(i) != dims[d]) {
      return ctx.Error(absl::StrCat(what, " ", ShapeString(t.shape()), " does not broadcast to [", dims[0], ",",
                                    dims[1], ",", dims[2], ",", dims[3], "]"));
    }
    v.stride[d] = t.dim(i) == 1 ? 0 : stride;
    stride *= t.dim(i);
  }
  return v;
}

absl::StatusOr<std::unique_ptr<OpKernel>> MakeFusedAttention(const Graph& graph, const Node& node) {
  const kernels::GemmPrecision precision = AttentionPrecision(graph.gemm_precision);
  ASSIGN_OR_RETURN(std::vector<int64_t> perm_q, node.attributes.Ints("perm_q", {0, 1, 2, 3}));
  ASSIGN_OR_RETURN(std::vector<int64_t> perm_k, node.attributes.Ints("perm_k", {0, 1, 2, 3}));
  ASSIGN_OR_RETURN(std::vector<int64_t> perm_v, node.attributes.Ints("perm_v", {0, 1, 2, 3}));
  ASSIGN_OR_RETURN(std::vector<int64_t> perm_out, node.attributes.Ints("perm_out", {0, 1, 2, 3}));
  ASSIGN_OR_RETURN(float scale, node.attributes.Float("scale", 1.0f));
  ASSIGN_OR_RETURN(float out_scale, node.attributes.Float("out_scale", 1.0f));
  ASSIGN_OR_RETURN(int64_t nan_to_zero, node.attributes.Int("nan_to_zero", 0));
  for (const auto* perm : {&perm_q, &perm_k, &perm_v, &perm_out}) {
    if (perm->size() != 4) return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": permutations must have 4 axes"));
  }
  return std::unique_ptr<OpKernel>(new FunctionKernel([=](OpContext& ctx) -> absl::Status {
    const Tensor& q = ctx.in(0);
    const Tensor& k = ctx.in(1);
    const Tensor& v = ctx.in(2);
    for (const Tensor* t : {&q, &k, &v}) {
      if (t->type() != DataType::kFloat32 || t->rank() != 4) return ctx.Error("q, k and v must be rank-4 float32");
    }
    AttentionProblem p;
    p.precision = precision;
    p.q = Permuted(q, perm_q);
    // K arrives as the B operand of Q K^T, [B, H, d, T]; the core wants [B, H, T, d].
    p.k = Permuted(k, perm_k);
    std::swap(p.k.stride[2], p.k.stride[3]);
    p.v = Permuted(v, perm_v);
    p.batch = q.dim(perm_q[0]);
    p.heads = q.dim(perm_q[1]);
    p.q_len = q.dim(perm_q[2]);
    p.head_dim = q.dim(perm_q[3]);
    p.kv_len = k.dim(perm_k[3]);
    p.v_dim = v.dim(perm_v[3]);
    // Batch and head axes of K and V may broadcast (size 1), as MatMul allows.
    for (int axis = 0; axis < 2; ++axis) {
      const int64_t want = axis == 0 ? p.batch : p.heads;
      for (auto [t, perm, view] : {std::tuple{&k, &perm_k, &p.k}, std::tuple{&v, &perm_v, &p.v}}) {
        const int64_t got = t->dim((*perm)[axis]);
        if (got == 1) view->stride[axis] = 0;
        else if (got != want) return ctx.Error("q, k and v batch/head dimensions do not match");
      }
    }
    if (k.dim(perm_k[2]) != p.head_dim || v.dim(perm_v[2]) != p.kv_len) {
      return ctx.Error(absl::StrCat("q ", ShapeString(q.shape()), ", k ", ShapeString(k.shape()), " and v ",
                                    ShapeString(v.shape()), " do not match"));
    }
    const int64_t dims[4] = {p.batch, p.heads, p.q_len, p.kv_len};
    if (ctx.has(3)) {
      ASSIGN_OR_RETURN(p.mask, Broadcast4(ctx, ctx.in(3), dims, "mask"));
    }
    const int64_t product[4] = {p.batch, p.heads, p.q_len, p.v_dim};
    Shape out_shape(4);
    for (int i = 0; i < 4; ++i) out_shape[i] = product[perm_out[i]];
    Tensor& out = ctx.Output(0, DataType::kFloat32, out_shape);
    if (out.elements() == 0) return absl::OkStatus();
    const int64_t so[4] = {out_shape[1] * out_shape[2] * out_shape[3], out_shape[2] * out_shape[3], out_shape[3], 1};
    for (int i = 0; i < 4; ++i) p.out_stride[perm_out[i]] = so[i];
    p.out = out.data<float>();
    p.scale = scale;
    p.out_scale = out_scale;
    p.nan_to_zero = nan_to_zero != 0;
    if (p.kv_len == 0) return ctx.Error("attention over zero keys");
    return RunAttention(ctx, p);
  }));
}

// ORT's mask_index as an additive [B, T] or [B, S, T] float mask (0 where attended, `filter` where not).
absl::StatusOr<Tensor> ContribMask(const OpContext& ctx, const Tensor& mask, int64_t batch, int64_t q_len,
                                   int64_t kv_len, float filter) {
  if (mask.type() != DataType::kInt32) return ctx.Error("mask_index must be int32");
  const int32_t* m = mask.data<int32_t>();
  if (mask.rank() == 1 && (mask.dim(0) == batch || mask.dim(0) == 2 * batch)) {
    Tensor out = Tensor::Allocate(DataType::kFloat32, {batch, 1, 1, kv_len});
    for (int64_t b = 0; b < batch; ++b) {
      const int64_t end = m[b], start = mask.dim(0) == 2 * batch ? m[batch + b] : 0;
      for (int64_t t = 0; t < kv_len; ++t) out.data<float>()[b * kv_len + t] = t >= start && t < end ? 0.0f : filter;
    }
    return out;
  }
  Shape shape;
  if (mask.rank() == 2 && mask.dim(0) == batch && mask.dim(1) == kv_len) shape = {batch, 1, 1, kv_len};
  else if (mask.rank() == 3 && mask.dim(0) == batch && mask.dim(1) == q_len && mask.dim(2) == kv_len) shape = {batch, 1, q_len, kv_len};
  else return ctx.Error(absl::StrCat("unsupported mask_index shape ", ShapeString(mask.shape())));
  Tensor out = Tensor::Allocate(DataType::kFloat32, shape);
  for (int64_t i = 0; i < out.elements(); ++i) out.data<float>()[i] = m[i] > 0 ? 0.0f : filter;
  return out;
}

absl::StatusOr<std::unique_ptr<OpKernel>> MakeContribAttention(const Graph& graph, const Node& node) {
  const kernels::GemmPrecision attention_precision = AttentionPrecision(graph.gemm_precision);
  ASSIGN_OR_RETURN(int64_t heads, node.attributes.Int("num_heads", 0));
  ASSIGN_OR_RETURN(int64_t unidirectional, node.attributes.Int("unidirectional", 0));
  ASSIGN_OR_RETURN(float filter, node.attributes.Float("mask_filter_value", -10000.0f));
  ASSIGN_OR_RETURN(float scale_attr, node.attributes.Float("scale", 0.0f));
  ASSIGN_OR_RETURN(std::vector<int64_t> sizes, node.attributes.Ints("qkv_hidden_sizes", {}));
  ASSIGN_OR_RETURN(int64_t rotary, node.attributes.Int("do_rotary", 0));
  auto refuse = [&](const std::string& why) {
    return absl::UnimplementedError(absl::StrCat(node.Describe(), ": ", why));
  };
  if (heads <= 0) return refuse("num_heads must be positive");
  if (rotary != 0) return refuse("do_rotary is not supported");
  if (node.inputs.size() > 4 && node.inputs[4] >= 0) return refuse("past (KV cache) is not supported");
  if (node.inputs.size() > 6 && node.inputs[6] >= 0) return refuse("past_sequence_length is not supported");
  if (node.outputs.size() > 1 && node.outputs[1] >= 0) return refuse("present (KV cache) is not supported");
  const Value& wv = graph.values[node.inputs[1]];
  if (!wv.constant || wv.constant->type() != DataType::kFloat32 || wv.constant->rank() != 2) {
    return refuse("weights must be a constant float32 matrix");
  }
  const Tensor w = *wv.constant;
  const int64_t in_hidden = w.dim(0), total = w.dim(1);
  if (sizes.empty()) sizes = {total / 3, total / 3, total / 3};
  if (sizes.size() != 3 || sizes[0] + sizes[1] + sizes[2] != total || sizes[0] != sizes[1] ||
      sizes[0] % heads != 0 || sizes[2] % heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": qkv_hidden_sizes do not fit weights ",
                                                   ShapeString(w.shape()), " and ", heads, " heads"));
  }
  Tensor bias;
  if (node.inputs.size() > 2 && node.inputs[2] >= 0) {
    const Value& bv = graph.values[node.inputs[2]];
    if (!bv.constant || bv.constant->type() != DataType::kFloat32 || bv.constant->elements() != total) {
      return refuse("bias must be a constant float32 vector of the weights' width");
    }
    bias = *bv.constant;
  }
  std::shared_ptr<const kernels::SgemmPackedB> packed;
  if (kernels::SgemmUsesPackedB(graph.gemm_precision)) {
    packed = kernels::SgemmPackB(w.data<float>(), total, false, in_hidden, total, graph.gemm_precision);
  }
  const int64_t head_dim = sizes[0] / heads, v_dim = sizes[2] / heads;
  const float scale = scale_attr != 0.0f ? scale_attr : 1.0f / std::sqrt(static_cast<float>(head_dim));
  return std::unique_ptr<OpKernel>(new FunctionKernel([=](OpContext& ctx) -> absl::Status {
    const Tensor& x = ctx.in(0);
    if (x.type() != DataType::kFloat32 || x.rank() != 3 || x.dim(2) != in_hidden) {
      return ctx.Error(absl::StrCat("input ", ShapeString(x.shape()), " must be float32 [batch, sequence, ", in_hidden, "]"));
    }
    const int64_t batch = x.dim(0), seq = x.dim(1), rows = batch * seq;
    Tensor qkv = Tensor::Allocate(DataType::kFloat32, {batch, seq, total});
    ParallelGemm(ctx, 1, rows, total, [&](int64_t) {
      kernels::SgemmArgs g;
      g.m = rows; g.n = total; g.k = in_hidden;
      g.a = x.data<float>(); g.lda = in_hidden;
      g.b = w.data<float>(); g.ldb = total;
      g.packed_b = packed.get();
      g.bias = bias.empty() ? nullptr : bias.data<float>();
      g.c = qkv.data<float>(); g.ldc = total;
      return g;
    });
    Tensor& out = ctx.Output(0, DataType::kFloat32, {batch, seq, sizes[2]});
    if (out.elements() == 0) return absl::OkStatus();
    AttentionProblem p;
    p.precision = attention_precision;
    p.batch = batch; p.heads = heads; p.q_len = seq; p.kv_len = seq; p.head_dim = head_dim; p.v_dim = v_dim;
    // The projection's row is [Q heads | K heads | V heads]: views into it, no copies.
    const View4 base{qkv.data<float>(), {seq * total, head_dim, total, 1}};
    p.q = base;
    p.k = base;
    p.k.data += sizes[0];
    p.v = View4{qkv.data<float>() + sizes[0] + sizes[1], {seq * total, v_dim, total, 1}};
    p.out = out.data<float>();
    p.out_stride[0] = seq * sizes[2]; p.out_stride[1] = v_dim; p.out_stride[2] = sizes[2]; p.out_stride[3] = 1;
    p.scale = scale;
    p.causal = unidirectional != 0;
    p.filter = filter;
    const int64_t dims[4] = {batch, heads, seq, seq};
    Tensor mask;
    if (ctx.has(3)) {
      ASSIGN_OR_RETURN(mask, ContribMask(ctx, ctx.in(3), batch, seq, seq, filter));
      ASSIGN_OR_RETURN(p.mask, Broadcast4(ctx, mask, dims, "mask_index"));
    }
    if (ctx.has(5)) {
      ASSIGN_OR_RETURN(p.bias, Broadcast4(ctx, ctx.in(5), dims, "attention_bias"));
    }
    return RunAttention(ctx, p);
  }));
}

}  // namespace

void RegisterAttentionOps(OpRegistry& r) {
  r.Register("coreserve", "Attention", MakeFusedAttention);
  r.Register("com.microsoft", "Attention", MakeContribAttention);
}

}  // namespace coreserve::runtime
