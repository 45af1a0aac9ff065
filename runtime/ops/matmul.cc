// MatMul (numpy semantics, batched with broadcasting) and Gemm, on the kernels' fp32 GEMM.
#include <algorithm>

#include "kernels/gemm/sgemm.h"
#include "runtime/ops/gemm_util.h"
#include "runtime/ops/op_util.h"

namespace coreserve::runtime {
namespace {

// op(B) packed once at load, in the graph's GEMM precision, when B is a constant matrix (the weights of a dense
// layer) and the active kernel reads packed B; null otherwise.
std::shared_ptr<const kernels::SgemmPackedB> PackConstantB(const Graph& graph, const Node& node, bool trans_b,
                                                           bool trans_a) {
  const kernels::GemmPrecision precision = graph.gemm_precision;
  if (node.inputs.size() < 2 || node.inputs[1] < 0 || trans_a || !kernels::SgemmUsesPackedB(precision)) return nullptr;
  const Value& b = graph.values[node.inputs[1]];
  if (!b.constant || b.constant->type() != DataType::kFloat32 || b.constant->rank() != 2) return nullptr;
  const Tensor& t = *b.constant;
  const int64_t k = trans_b ? t.dim(1) : t.dim(0), n = trans_b ? t.dim(0) : t.dim(1);
  return kernels::SgemmPackB(t.data<float>(), t.dim(1), trans_b, k, n, precision);
}

absl::Status MatMul(OpContext& ctx, const kernels::SgemmPackedB* packed) {
  const Tensor& a = ctx.in(0);
  const Tensor& b = ctx.in(1);
  if (a.type() != DataType::kFloat32 || b.type() != DataType::kFloat32) {
    return ctx.Error(absl::StrCat("inputs must be float32, got ", DataTypeName(a.type()), " and ", DataTypeName(b.type())));
  }
  if (a.rank() == 0 || b.rank() == 0) return ctx.Error("inputs must have rank >= 1");
  // 1-D operands are promoted to matrices and the added dim removed from the result.
  Shape as = a.shape(), bs = b.shape();
  const bool a_vec = as.size() == 1, b_vec = bs.size() == 1;
  if (a_vec) as.insert(as.begin(), 1);
  if (b_vec) bs.push_back(1);
  const int64_t m = as[as.size() - 2], k = as.back(), n = bs.back();
  if (bs[bs.size() - 2] != k) {
    return ctx.Error(absl::StrCat("shapes ", ShapeString(a.shape()), " and ", ShapeString(b.shape()),
                                  " do not match for MatMul (K ", k, " vs ", bs[bs.size() - 2], ")"));
  }
  const Shape a_batch(as.begin(), as.end() - 2), b_batch(bs.begin(), bs.end() - 2);
  ASSIGN_OR_RETURN(Broadcast bc, PlanBroadcast(ctx, {&a_batch, &b_batch}));
  Shape out_shape = bc.out;
  if (!a_vec) out_shape.push_back(m);
  if (!b_vec) out_shape.push_back(n);
  Tensor& out = ctx.Output(0, DataType::kFloat32, out_shape);
  const int64_t batches = ElementCount(bc.out);
  if (out.elements() == 0) return absl::OkStatus();
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  float* pc = out.data<float>();
  // Batch index -> offsets of its A and B matrices (broadcast batch dims repeat a matrix).
  auto offsets = [&](int64_t batch, int64_t* oa, int64_t* ob) {
    int64_t off[2];
    bc.ElementOffsets(batch, off);
    *oa = off[0] * m * k;
    *ob = off[1] * k * n;
  };
  // Packed weights apply when B is the (un-batched) constant matrix they were made from.
  const bool use_packed = packed != nullptr && b.rank() == 2 && packed->k == k && packed->n == n;
  ParallelGemm(ctx, batches, m, n, [&](int64_t batch) {
    int64_t oa = 0, ob = 0;
    offsets(batch, &oa, &ob);
    kernels::SgemmArgs p;
    p.m = m; p.n = n; p.k = k;
    p.a = pa + oa; p.lda = k;
    p.b = pb + ob; p.ldb = n;
    p.packed_b = use_packed ? packed : nullptr;
    p.c = pc + batch * m * n; p.ldc = n;
    return p;
  });
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<OpKernel>> MakeMatMul(const Graph& graph, const Node& node) {
  std::shared_ptr<const kernels::SgemmPackedB> packed = PackConstantB(graph, node, false, false);
  return std::unique_ptr<OpKernel>(
      new FunctionKernel([packed](OpContext& ctx) { return MatMul(ctx, packed.get()); }));
}

absl::StatusOr<std::unique_ptr<OpKernel>> MakeGemm(const Graph& graph, const Node& node) {
  ASSIGN_OR_RETURN(float alpha, node.attributes.Float("alpha", 1.0f));
  ASSIGN_OR_RETURN(float beta, node.attributes.Float("beta", 1.0f));
  ASSIGN_OR_RETURN(int64_t trans_a, node.attributes.Int("transA", 0));
  ASSIGN_OR_RETURN(int64_t trans_b, node.attributes.Int("transB", 0));
  std::shared_ptr<const kernels::SgemmPackedB> packed = PackConstantB(graph, node, trans_b, trans_a);
  return std::unique_ptr<OpKernel>(new FunctionKernel([=](OpContext& ctx) -> absl::Status {
    const Tensor& a = ctx.in(0);
    const Tensor& b = ctx.in(1);
    if (a.rank() != 2 || b.rank() != 2) return ctx.Error("A and B must be matrices");
    if (a.type() != DataType::kFloat32 || b.type() != DataType::kFloat32) return ctx.Error("inputs must be float32");
    const int64_t m = trans_a ? a.dim(1) : a.dim(0), k = trans_a ? a.dim(0) : a.dim(1);
    const int64_t n = trans_b ? b.dim(0) : b.dim(1), kb = trans_b ? b.dim(1) : b.dim(0);
    if (k != kb) {
      return ctx.Error(absl::StrCat("A ", ShapeString(a.shape()), " and B ", ShapeString(b.shape()), " do not match"));
    }
    Tensor& y = ctx.Output(0, DataType::kFloat32, {m, n});
    float* py = y.data<float>();
    float c_beta = 0.0f;
    if (ctx.has(2) && beta != 0.0f) {
      // Broadcast C into Y first, then accumulate the product onto it (beta applied here, GEMM beta = 1).
      const Tensor& c = ctx.in(2);
      const Shape ys = {m, n};
      ASSIGN_OR_RETURN(Broadcast bc, PlanBroadcast(ctx, {&ys, &c.shape()}));
      if (bc.out != ys) return ctx.Error(absl::StrCat("C ", ShapeString(c.shape()), " does not broadcast to ", ShapeString(ys)));
      int64_t off[2];
      for (int64_t r = 0; r < bc.outer; ++r) {
        bc.RowOffsets(r, off);
        for (int64_t i = 0; i < bc.inner; ++i) py[r * bc.inner + i] = beta * c.data<float>()[off[1] + i * bc.inner_step[1]];
      }
      c_beta = 1.0f;
    }
    ParallelGemm(ctx, 1, m, n, [&](int64_t) {
      kernels::SgemmArgs p;
      p.trans_a = trans_a; p.trans_b = trans_b;
      p.m = m; p.n = n; p.k = k; p.alpha = alpha;
      p.a = a.data<float>(); p.lda = a.dim(1);
      p.b = b.data<float>(); p.ldb = b.dim(1);
      p.packed_b = packed.get();
      p.beta = c_beta; p.c = py; p.ldc = n;
      return p;
    });
    return absl::OkStatus();
  }));
}

// coreserve::FusedMatMul(A, W, bias[, residual]), made by the optimizer from MatMul + Add (+ Relu/GELU) (+ Add):
// A [..., K] times the constant matrix W [K, N], plus bias [N], plus the residual (in the epilogue when it has
// the output's shape, else broadcast afterwards), then the activation, all in one GEMM pass. With `split` (the
// widths of consecutive column ranges, one output each; no residual), the product's last axis is split as a
// Split after it would, each range stored straight into its own output.
absl::StatusOr<std::unique_ptr<OpKernel>> MakeFusedMatMul(const Graph& graph, const Node& node) {
  ASSIGN_OR_RETURN(std::vector<int64_t> split, node.attributes.Ints("split", {}));
  const auto activation = node.attributes.String("activation", "none");
  if (!activation.ok()) return activation.status();
  kernels::SgemmActivation act = kernels::SgemmActivation::kNone;
  if (*activation == "relu") act = kernels::SgemmActivation::kRelu;
  else if (*activation == "gelu") act = kernels::SgemmActivation::kGelu;
  else if (*activation == "gelu_tanh") act = kernels::SgemmActivation::kGeluTanh;
  else if (*activation != "none") {
    return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": unknown activation '", *activation, "'"));
  }
  const Value& wv = graph.values[node.inputs[1]];
  const Value& bv = graph.values[node.inputs[2]];
  if (!wv.constant || !bv.constant || wv.constant->rank() != 2) {
    return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": W and bias must be constants"));
  }
  const Tensor w = *wv.constant, bias = *bv.constant;
  if (!split.empty()) {
    int64_t total = 0;
    bool aligned = true;
    for (int64_t width : split) {
      aligned = aligned && width > 0 && total % kernels::SgemmNStep() == 0;
      total += width;
    }
    if (!aligned || total != wv.constant->dim(1) || split.size() != node.outputs.size() || node.inputs.size() > 3) {
      return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": split does not fit W ",
                                                     ShapeString(wv.constant->shape()), " and the outputs"));
    }
  }
  std::shared_ptr<const kernels::SgemmPackedB> packed = PackConstantB(graph, node, false, false);
  return std::unique_ptr<OpKernel>(new FunctionKernel([=](OpContext& ctx) -> absl::Status {
    const Tensor& a = ctx.in(0);
    const int64_t k = w.dim(0), n = w.dim(1);
    if (a.type() != DataType::kFloat32 || a.rank() < 1 || a.shape().back() != k) {
      return ctx.Error(absl::StrCat("A ", ShapeString(a.shape()), " does not match W ", ShapeString(w.shape())));
    }
    Shape out_shape = a.shape();
    const int64_t m = k == 0 ? 0 : a.elements() / k;
    auto args = [&](float* c) {
      kernels::SgemmArgs p;
      p.m = m; p.n = n; p.k = k;
      p.a = a.data<float>(); p.lda = k;
      p.b = w.data<float>(); p.ldb = n;
      p.packed_b = packed.get();
      p.c = c; p.ldc = n;
      p.bias = bias.data<float>();
      p.activation = act;
      return p;
    };
    if (!split.empty()) {
      std::vector<GemmOutputSegment> segments;
      int64_t begin = 0;
      for (std::size_t i = 0; i < split.size(); ++i) {
        out_shape.back() = split[i];
        Tensor& out = ctx.Output(i, DataType::kFloat32, out_shape);
        segments.push_back({begin, split[i], out.data<float>(), split[i]});
        begin += split[i];
      }
      ParallelGemm(ctx, 1, m, n, [&](int64_t) { return args(nullptr); }, segments);
      return absl::OkStatus();
    }
    out_shape.back() = n;
    Tensor& out = ctx.Output(0, DataType::kFloat32, out_shape);
    const Tensor* residual = ctx.has(3) ? ctx.inputs[3] : nullptr;
    const bool residual_in_gemm = residual && residual->shape() == out_shape && residual->type() == DataType::kFloat32;
    ParallelGemm(ctx, 1, m, n, [&](int64_t) {
      kernels::SgemmArgs p = args(out.data<float>());
      p.residual = residual_in_gemm ? residual->data<float>() : nullptr;
      p.ldr = n;
      return p;
    });
    if (residual && !residual_in_gemm) return AddResidual(ctx, out, *residual, /*relu=*/false);
    return absl::OkStatus();
  }));
}

// coreserve::PermutedMatMul(X, Y): alpha * MatMul(X.permute(perm_a), Y.permute(perm_b)), stored permuted by
// perm_out — attention's Transposes and scalar scalings, made by the optimizer, done as strided batched GEMMs
// without copying. Each matrix must keep a unit-stride dimension where the GEMM reads one (checked at fusion);
// operands that turn out not to be rank 4 with matching batch dims take a (materializing) fallback.
absl::StatusOr<std::unique_ptr<OpKernel>> MakePermutedMatMul(const Graph&, const Node& node) {
  ASSIGN_OR_RETURN(std::vector<int64_t> perm_a, node.attributes.Ints("perm_a", {0, 1, 2, 3}));
  ASSIGN_OR_RETURN(std::vector<int64_t> perm_b, node.attributes.Ints("perm_b", {0, 1, 2, 3}));
  ASSIGN_OR_RETURN(std::vector<int64_t> perm_out, node.attributes.Ints("perm_out", {0, 1, 2, 3}));
  ASSIGN_OR_RETURN(float alpha, node.attributes.Float("alpha", 1.0f));
  return std::unique_ptr<OpKernel>(new FunctionKernel([=](OpContext& ctx) -> absl::Status {
    const Tensor& x = ctx.in(0);
    const Tensor& y = ctx.in(1);
    if (x.type() != DataType::kFloat32 || y.type() != DataType::kFloat32) return ctx.Error("inputs must be float32");
    auto strides = [](const Tensor& t) {
      return std::vector<int64_t>{t.dim(1) * t.dim(2) * t.dim(3), t.dim(2) * t.dim(3), t.dim(3), 1};
    };
    const bool fast = x.rank() == 4 && y.rank() == 4 && x.dim(perm_a[0]) == y.dim(perm_b[0]) &&
                      x.dim(perm_a[1]) == y.dim(perm_b[1]) && x.dim(perm_a[3]) == y.dim(perm_b[2]);
    if (!fast) {
      // Exact fallback: materialize the permutations that exist (an operand with the identity permutation was not
      // transposed and may have any rank) and run the general MatMul, with its broadcasting and errors.
      const std::vector<int64_t> identity = {0, 1, 2, 3};
      auto materialize = [&](const Tensor& t, const std::vector<int64_t>& perm) -> absl::StatusOr<Tensor> {
        if (perm == identity) return t;
        return PermuteTensor(ctx, t, perm);
      };
      ASSIGN_OR_RETURN(Tensor xa, materialize(x, perm_a));
      ASSIGN_OR_RETURN(Tensor yb, materialize(y, perm_b));
      OpContext sub = ctx;
      sub.slots.clear();  // the product is an intermediate: the planned slot is for the final output only
      sub.inputs = {&xa, &yb};
      sub.outputs.assign(1, Tensor());
      RETURN_IF_ERROR(MatMul(sub, nullptr));
      Tensor c = std::move(sub.outputs[0]);
      if (alpha != 1.0f) {
        for (int64_t i = 0; i < c.elements(); ++i) c.data<float>()[i] *= alpha;
      }
      ASSIGN_OR_RETURN(ctx.outputs[0], materialize(c, perm_out));
      return absl::OkStatus();
    }
    const std::vector<int64_t> sx = strides(x), sy = strides(y);
    const int64_t b0 = x.dim(perm_a[0]), b1 = x.dim(perm_a[1]);
    const int64_t m = x.dim(perm_a[2]), k = x.dim(perm_a[3]), n = y.dim(perm_b[3]);
    const int64_t cdims[4] = {b0, b1, m, n};
    Shape out_shape(4);
    for (int i = 0; i < 4; ++i) out_shape[i] = cdims[perm_out[i]];
    Tensor& out = ctx.Output(0, DataType::kFloat32, out_shape);
    if (out.elements() == 0) return absl::OkStatus();
    const int64_t so[4] = {out_shape[1] * out_shape[2] * out_shape[3], out_shape[2] * out_shape[3], out_shape[3], 1};
    int64_t cstride[4];  // stride in `out` of each axis of the logical product C'
    for (int i = 0; i < 4; ++i) cstride[perm_out[i]] = so[i];
    const bool trans_b = perm_b[3] != 3;  // B' reads K along Y's unit-stride axis: transposed access
    ParallelGemm(ctx, b0 * b1, m, n, [&](int64_t batch) {
      const int64_t i0 = batch / b1, i1 = batch % b1;
      kernels::SgemmArgs p;
      p.m = m; p.n = n; p.k = k; p.alpha = alpha;
      p.a = x.data<float>() + i0 * sx[perm_a[0]] + i1 * sx[perm_a[1]];
      p.lda = sx[perm_a[2]];
      p.b = y.data<float>() + i0 * sy[perm_b[0]] + i1 * sy[perm_b[1]];
      p.trans_b = trans_b;
      p.ldb = trans_b ? sy[perm_b[3]] : sy[perm_b[2]];
      p.c = out.data<float>() + i0 * cstride[0] + i1 * cstride[1];
      p.ldc = cstride[2];
      return p;
    });
    return absl::OkStatus();
  }));
}

}  // namespace

void RegisterMatMulOps(OpRegistry& r) {
  r.Register("coreserve", "PermutedMatMul", MakePermutedMatMul);
  r.Register("", "MatMul", MakeMatMul);
  r.Register("coreserve", "FusedMatMul", MakeFusedMatMul);
  r.Register("", "Gemm", MakeGemm);
}

}  // namespace coreserve::runtime
