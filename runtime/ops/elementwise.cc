// Elementwise operators: numpy-broadcasting binary arithmetic and comparisons, Where, variadic Min/Max,
// unary math and activations, Cast, Clip, Identity, Dropout (inference).
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/convert/half.h"
#include "kernels/math/f32_math.h"
#include "kernels/vadd/f32_vadd.h"
#include "runtime/ops/op_util.h"

namespace coreserve::runtime {
namespace {

// out[i] = f(a[i], b[i]) under broadcasting; T is the input element type, R the output's.
template <typename T, typename R, typename F>
absl::Status BinaryTyped(OpContext& ctx, DataType out_type, F f) {
  const Tensor& a = ctx.in(0);
  const Tensor& b = ctx.in(1);
  ASSIGN_OR_RETURN(Broadcast bc, PlanBroadcast(ctx, {&a.shape(), &b.shape()}));
  Tensor& out = ctx.Output(0, out_type, bc.out);
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  R* po = out.data<R>();
  const int64_t inner = bc.inner;
  const int64_t sa = bc.inner_step[0], sb = bc.inner_step[1];
  Parallel(ctx, bc.outer, RowGrain(inner), [&](int64_t r0, int64_t r1) {
    int64_t off[2];
    for (int64_t r = r0; r < r1; ++r) {
      bc.RowOffsets(r, off);
      const T* x = pa + off[0];
      const T* y = pb + off[1];
      R* o = po + r * inner;
      if (sa && sb) {
        for (int64_t i = 0; i < inner; ++i) o[i] = f(x[i], y[i]);
      } else if (sa) {
        const T yv = *y;
        for (int64_t i = 0; i < inner; ++i) o[i] = f(x[i], yv);
      } else if (sb) {
        const T xv = *x;
        for (int64_t i = 0; i < inner; ++i) o[i] = f(xv, y[i]);
      } else {
        const R v = f(*x, *y);
        for (int64_t i = 0; i < inner; ++i) o[i] = v;
      }
    }
  });
  return absl::OkStatus();
}

absl::Status SameType(const OpContext& ctx) {
  if (ctx.in(0).type() != ctx.in(1).type()) {
    return ctx.Error(absl::StrCat("input types differ: ", DataTypeName(ctx.in(0).type()), " and ",
                                  DataTypeName(ctx.in(1).type())));
  }
  return absl::OkStatus();
}

// Arithmetic on float, double, int32 and int64; the output has the inputs' type.
template <typename Op>
absl::Status Arithmetic(OpContext& ctx) {
  RETURN_IF_ERROR(SameType(ctx));
  const DataType t = ctx.in(0).type();
  switch (t) {
    case DataType::kFloat32: {
      // Same-shape float add is the residual add of every transformer layer: use the vector kernel.
      if constexpr (Op::kIsAdd) {
        if (ctx.in(0).shape() == ctx.in(1).shape()) {
          Tensor& out = ctx.Output(0, t, ctx.in(0).shape());
          const float* a = ctx.in(0).data<float>();
          const float* b = ctx.in(1).data<float>();
          float* o = out.data<float>();
          const auto add = kernels::F32Vadd().fn;
          Parallel(ctx, out.elements(), 1 << 15, [&](int64_t i0, int64_t i1) {
            add(static_cast<std::size_t>(i1 - i0), a + i0, b + i0, o + i0);
          });
          return absl::OkStatus();
        }
      }
      return BinaryTyped<float, float>(ctx, t, [](float x, float y) { return Op::template Apply<float>(x, y); });
    }
    case DataType::kFloat64: return BinaryTyped<double, double>(ctx, t, [](double x, double y) { return Op::template Apply<double>(x, y); });
    case DataType::kInt32: return BinaryTyped<int32_t, int32_t>(ctx, t, [](int32_t x, int32_t y) { return Op::template Apply<int32_t>(x, y); });
    case DataType::kInt64: return BinaryTyped<int64_t, int64_t>(ctx, t, [](int64_t x, int64_t y) { return Op::template Apply<int64_t>(x, y); });
    case DataType::kInt8: return BinaryTyped<int8_t, int8_t>(ctx, t, [](int8_t x, int8_t y) { return Op::template Apply<int8_t>(x, y); });
    case DataType::kInt16: return BinaryTyped<int16_t, int16_t>(ctx, t, [](int16_t x, int16_t y) { return Op::template Apply<int16_t>(x, y); });
    case DataType::kUInt8: return BinaryTyped<uint8_t, uint8_t>(ctx, t, [](uint8_t x, uint8_t y) { return Op::template Apply<uint8_t>(x, y); });
    case DataType::kUInt16: return BinaryTyped<uint16_t, uint16_t>(ctx, t, [](uint16_t x, uint16_t y) { return Op::template Apply<uint16_t>(x, y); });
    case DataType::kUInt32: return BinaryTyped<uint32_t, uint32_t>(ctx, t, [](uint32_t x, uint32_t y) { return Op::template Apply<uint32_t>(x, y); });
    case DataType::kUInt64: return BinaryTyped<uint64_t, uint64_t>(ctx, t, [](uint64_t x, uint64_t y) { return Op::template Apply<uint64_t>(x, y); });
    default: return ctx.Error(absl::StrCat("unsupported input type ", DataTypeName(t)));
  }
}

// Narrow integer results wrap modulo 2^bits, as in ONNX Runtime (the cast back from int promotion).
struct AddOp {
  static constexpr bool kIsAdd = true;
  template <typename T> static T Apply(T a, T b) { return static_cast<T>(a + b); }
};
struct SubOp {
  static constexpr bool kIsAdd = false;
  template <typename T> static T Apply(T a, T b) { return static_cast<T>(a - b); }
};
struct MulOp {
  static constexpr bool kIsAdd = false;
  template <typename T> static T Apply(T a, T b) { return static_cast<T>(a * b); }
};
struct DivOp {
  static constexpr bool kIsAdd = false;
  // Integer division truncates toward zero, as ONNX Runtime does; division by zero yields 0 rather than trapping.
  template <typename T> static T Apply(T a, T b) {
    if constexpr (std::is_integral_v<T>) {
      return b == 0 ? T(0) : static_cast<T>(a / b);
    } else {
      return a / b;
    }
  }
};

// Comparisons produce bool (stored as one byte per element).
template <typename Cmp>
absl::Status Compare(OpContext& ctx) {
  RETURN_IF_ERROR(SameType(ctx));
  const DataType t = ctx.in(0).type();
  const DataType b = DataType::kBool;
  switch (t) {
    case DataType::kFloat32: return BinaryTyped<float, bool>(ctx, b, [](float x, float y) { return Cmp::template Apply<float>(x, y); });
    case DataType::kFloat64: return BinaryTyped<double, bool>(ctx, b, [](double x, double y) { return Cmp::template Apply<double>(x, y); });
    case DataType::kInt32: return BinaryTyped<int32_t, bool>(ctx, b, [](int32_t x, int32_t y) { return Cmp::template Apply<int32_t>(x, y); });
    case DataType::kInt64: return BinaryTyped<int64_t, bool>(ctx, b, [](int64_t x, int64_t y) { return Cmp::template Apply<int64_t>(x, y); });
    case DataType::kBool: return BinaryTyped<bool, bool>(ctx, b, [](bool x, bool y) { return Cmp::template Apply<bool>(x, y); });
    case DataType::kUInt8: return BinaryTyped<uint8_t, bool>(ctx, b, [](uint8_t x, uint8_t y) { return Cmp::template Apply<uint8_t>(x, y); });
    case DataType::kInt8: return BinaryTyped<int8_t, bool>(ctx, b, [](int8_t x, int8_t y) { return Cmp::template Apply<int8_t>(x, y); });
    default: return ctx.Error(absl::StrCat("unsupported input type ", DataTypeName(t)));
  }
}
struct EqualOp { template <typename T> static bool Apply(T a, T b) { return a == b; } };
struct LessOp { template <typename T> static bool Apply(T a, T b) { return a < b; } };
struct GreaterOp { template <typename T> static bool Apply(T a, T b) { return a > b; } };
struct LessOrEqualOp { template <typename T> static bool Apply(T a, T b) { return a <= b; } };
struct GreaterOrEqualOp { template <typename T> static bool Apply(T a, T b) { return a >= b; } };

template <typename F>
absl::Status Logical(OpContext& ctx, F f) {
  if (ctx.in(0).type() != DataType::kBool || ctx.in(1).type() != DataType::kBool) {
    return ctx.Error("inputs must be bool");
  }
  return BinaryTyped<bool, bool>(ctx, DataType::kBool, f);
}

// Reads element i of a numeric tensor as double (for mixed-type Pow and Cast).
double ReadAsDouble(const Tensor& t, int64_t i);
void WriteFromDouble(Tensor& t, int64_t i, double v);

absl::Status Pow(OpContext& ctx) {
  const Tensor& a = ctx.in(0);
  const Tensor& b = ctx.in(1);
  if (a.type() == DataType::kFloat32 && b.type() == DataType::kFloat32) {
    // x^2 and x^0.5 are what exported LayerNorm and GELU use; avoid std::pow for them.
    if (b.elements() == 1) {
      const float e = *b.data<float>();
      if (e == 2.0f) return BinaryTyped<float, float>(ctx, DataType::kFloat32, [](float x, float) { return x * x; });
      if (e == 3.0f) return BinaryTyped<float, float>(ctx, DataType::kFloat32, [](float x, float) { return x * x * x; });
      if (e == 0.5f) return BinaryTyped<float, float>(ctx, DataType::kFloat32, [](float x, float) { return std::sqrt(x); });
    }
    return BinaryTyped<float, float>(ctx, DataType::kFloat32, [](float x, float y) { return std::pow(x, y); });
  }
  // Mixed or other types: the result has the base's type; computed in double.
  if (DataTypeSize(a.type()) == 0 || DataTypeSize(b.type()) == 0 || a.type() == DataType::kBool ||
      a.type() == DataType::kFloat16 || a.type() == DataType::kBFloat16) {
    return ctx.Error(absl::StrCat("unsupported input types ", DataTypeName(a.type()), " and ", DataTypeName(b.type())));
  }
  ASSIGN_OR_RETURN(Broadcast bc, PlanBroadcast(ctx, {&a.shape(), &b.shape()}));
  Tensor& out = ctx.Output(0, a.type(), bc.out);
  int64_t off[2];
  for (int64_t r = 0; r < bc.outer; ++r) {
    bc.RowOffsets(r, off);
    for (int64_t i = 0; i < bc.inner; ++i) {
      const double x = ReadAsDouble(a, off[0] + i * bc.inner_step[0]);
      const double y = ReadAsDouble(b, off[1] + i * bc.inner_step[1]);
      WriteFromDouble(out, r * bc.inner + i, std::pow(x, y));
    }
  }
  return absl::OkStatus();
}

// out = f(x) elementwise; T in, R out.
template <typename T, typename R, typename F>
absl::Status UnaryTyped(OpContext& ctx, DataType out_type, F f) {
  const Tensor& x = ctx.in(0);
  Tensor& out = ctx.Output(0, out_type, x.shape());
  const T* px = x.data<T>();
  R* po = out.data<R>();
  Parallel(ctx, x.elements(), 1 << 14, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) po[i] = f(px[i]);
  });
  return absl::OkStatus();
}

// A float (and double) unary operator.
template <typename F>
FunctionKernel::Fn FloatUnary(F f) {
  return [f](OpContext& ctx) -> absl::Status {
    switch (ctx.in(0).type()) {
      case DataType::kFloat32: return UnaryTyped<float, float>(ctx, DataType::kFloat32, [&](float v) { return static_cast<float>(f(v)); });
      case DataType::kFloat64: return UnaryTyped<double, double>(ctx, DataType::kFloat64, [&](double v) { return static_cast<double>(f(v)); });
      default: return ctx.Error(absl::StrCat("unsupported input type ", DataTypeName(ctx.in(0).type())));
    }
  };
}

// A signed numeric unary operator (float, double, int32, int64).
template <typename F>
FunctionKernel::Fn NumericUnary(F f) {
  return [f](OpContext& ctx) -> absl::Status {
    const DataType t = ctx.in(0).type();
    switch (t) {
      case DataType::kFloat32: return UnaryTyped<float, float>(ctx, t, [&](float v) { return f(v); });
      case DataType::kFloat64: return UnaryTyped<double, double>(ctx, t, [&](double v) { return f(v); });
      case DataType::kInt32: return UnaryTyped<int32_t, int32_t>(ctx, t, [&](int32_t v) { return f(v); });
      case DataType::kInt64: return UnaryTyped<int64_t, int64_t>(ctx, t, [&](int64_t v) { return f(v); });
      default: return ctx.Error(absl::StrCat("unsupported input type ", DataTypeName(t)));
    }
  };
}

// float32 through a vector math kernel (chunked over the pool); other float types through `fallback`.
FunctionKernel::Fn VectorUnary(kernels::F32UnaryFn kernels::F32MathKernels::*member, FunctionKernel::Fn fallback) {
  return [member, fallback](OpContext& ctx) -> absl::Status {
    const Tensor& x = ctx.in(0);
    if (x.type() != DataType::kFloat32) return fallback(ctx);
    Tensor& out = ctx.Output(0, x.type(), x.shape());
    const kernels::F32UnaryFn fn = kernels::F32Math().*member;
    const float* px = x.data<float>();
    float* po = out.data<float>();
    Parallel(ctx, x.elements(), 1 << 14, [&](int64_t i0, int64_t i1) {
      fn(static_cast<std::size_t>(i1 - i0), px + i0, po + i0);
    });
    return absl::OkStatus();
  };
}

float GeluErf(float x) { return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f)); }
float GeluTanh(float x) {
  return 0.5f * x * (1.0f + std::tanh(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}

// Where(cond, x, y) with three-way broadcasting.
absl::Status Where(OpContext& ctx) {
  const Tensor& c = ctx.in(0);
  const Tensor& x = ctx.in(1);
  const Tensor& y = ctx.in(2);
  if (c.type() != DataType::kBool) return ctx.Error("condition must be bool");
  if (x.type() != y.type()) return ctx.Error("X and Y types differ");
  ASSIGN_OR_RETURN(Broadcast bc, PlanBroadcast(ctx, {&c.shape(), &x.shape(), &y.shape()}));
  Tensor& out = ctx.Output(0, x.type(), bc.out);
  const std::size_t size = DataTypeSize(x.type());
  if (size == 0) return ctx.Error(absl::StrCat("unsupported type ", DataTypeName(x.type())));
  const bool* pc = c.data<bool>();
  // Typed copies by element size (memcpy per element would dominate: GPT-2 masks every attention score this way).
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* px = static_cast<const T*>(x.raw());
    const T* py = static_cast<const T*>(y.raw());
    T* po = static_cast<T*>(out.raw());
    const int64_t sc = bc.inner_step[0], sx = bc.inner_step[1], sy = bc.inner_step[2];
    Parallel(ctx, bc.outer, RowGrain(bc.inner), [&](int64_t r0, int64_t r1) {
      int64_t off[3];
      for (int64_t r = r0; r < r1; ++r) {
        bc.RowOffsets(r, off);
        const bool* cr = pc + off[0];
        const T* xr = px + off[1];
        const T* yr = py + off[2];
        T* o = po + r * bc.inner;
        for (int64_t i = 0; i < bc.inner; ++i) o[i] = cr[i * sc] ? xr[i * sx] : yr[i * sy];
      }
    });
  };
  switch (size) {
    case 1: run(uint8_t{}); break;
    case 2: run(uint16_t{}); break;
    case 4: run(uint32_t{}); break;
    default: run(uint64_t{}); break;
  }
  return absl::OkStatus();
}

// Variadic Min / Max: fold the inputs pairwise with broadcasting.
template <typename Pick>
absl::Status MinMax(OpContext& ctx) {
  Tensor acc = ctx.in(0);
  for (std::size_t i = 1; i < ctx.inputs.size(); ++i) {
    OpContext pair = ctx;
    pair.slots.clear();  // intermediate results: the planned slot is for the final output only
    pair.inputs = {&acc, ctx.inputs[i]};
    pair.outputs.assign(1, Tensor());
    RETURN_IF_ERROR(SameType(pair));
    switch (acc.type()) {
      case DataType::kFloat32: RETURN_IF_ERROR((BinaryTyped<float, float>(pair, acc.type(), [](float x, float y) { return Pick::template Apply<float>(x, y); }))); break;
      case DataType::kFloat64: RETURN_IF_ERROR((BinaryTyped<double, double>(pair, acc.type(), [](double x, double y) { return Pick::template Apply<double>(x, y); }))); break;
      case DataType::kInt32: RETURN_IF_ERROR((BinaryTyped<int32_t, int32_t>(pair, acc.type(), [](int32_t x, int32_t y) { return Pick::template Apply<int32_t>(x, y); }))); break;
      case DataType::kInt64: RETURN_IF_ERROR((BinaryTyped<int64_t, int64_t>(pair, acc.type(), [](int64_t x, int64_t y) { return Pick::template Apply<int64_t>(x, y); }))); break;
      case DataType::kInt8: RETURN_IF_ERROR((BinaryTyped<int8_t, int8_t>(pair, acc.type(), [](int8_t x, int8_t y) { return Pick::template Apply<int8_t>(x, y); }))); break;
      case DataType::kInt16: RETURN_IF_ERROR((BinaryTyped<int16_t, int16_t>(pair, acc.type(), [](int16_t x, int16_t y) { return Pick::template Apply<int16_t>(x, y); }))); break;
      case DataType::kUInt8: RETURN_IF_ERROR((BinaryTyped<uint8_t, uint8_t>(pair, acc.type(), [](uint8_t x, uint8_t y) { return Pick::template Apply<uint8_t>(x, y); }))); break;
      case DataType::kUInt16: RETURN_IF_ERROR((BinaryTyped<uint16_t, uint16_t>(pair, acc.type(), [](uint16_t x, uint16_t y) { return Pick::template Apply<uint16_t>(x, y); }))); break;
      case DataType::kUInt32: RETURN_IF_ERROR((BinaryTyped<uint32_t, uint32_t>(pair, acc.type(), [](uint32_t x, uint32_t y) { return Pick::template Apply<uint32_t>(x, y); }))); break;
      case DataType::kUInt64: RETURN_IF_ERROR((BinaryTyped<uint64_t, uint64_t>(pair, acc.type(), [](uint64_t x, uint64_t y) { return Pick::template Apply<uint64_t>(x, y); }))); break;
      default: return ctx.Error(absl::StrCat("unsupported input type ", DataTypeName(acc.type())));
    }
    acc = std::move(pair.outputs[0]);
  }
  ctx.outputs[0] = acc;
  return absl::OkStatus();
}
struct MinPick {
  // NaN propagates, as in ONNX Runtime.
  template <typename T> static T Apply(T a, T b) { return (a != a || a < b) ? a : b; }
};
struct MaxPick {
  template <typename T> static T Apply(T a, T b) { return (a != a || a > b) ? a : b; }
};

// Reads element i of a numeric tensor as double (for Cast's generic path).
double ReadAsDouble(const Tensor& t, int64_t i) {
  switch (t.type()) {
    case DataType::kFloat32: return t.data<float>()[i];
    case DataType::kFloat64: return t.data<double>()[i];
    case DataType::kFloat16: return kernels::HalfToFloat(t.data<uint16_t>()[i]);
    case DataType::kBFloat16: return kernels::Bfloat16ToFloat(t.data<uint16_t>()[i]);
    case DataType::kInt64: return static_cast<double>(t.data<int64_t>()[i]);
    case DataType::kInt32: return t.data<int32_t>()[i];
    case DataType::kInt16: return t.data<int16_t>()[i];
    case DataType::kInt8: return t.data<int8_t>()[i];
    case DataType::kUInt8: return t.data<uint8_t>()[i];
    case DataType::kUInt16: return t.data<uint16_t>()[i];
    case DataType::kUInt32: return t.data<uint32_t>()[i];
    case DataType::kUInt64: return static_cast<double>(t.data<uint64_t>()[i]);
    case DataType::kBool: return t.data<bool>()[i] ? 1.0 : 0.0;
    default: return 0;
  }
}

void WriteFromDouble(Tensor& t, int64_t i, double v) {
  switch (t.type()) {
    case DataType::kFloat32: t.data<float>()[i] = static_cast<float>(v); break;
    case DataType::kFloat64: t.data<double>()[i] = v; break;
    case DataType::kFloat16: t.data<uint16_t>()[i] = kernels::FloatToHalf(static_cast<float>(v)); break;
    case DataType::kBFloat16: t.data<uint16_t>()[i] = kernels::FloatToBfloat16(static_cast<float>(v)); break;
    case DataType::kInt64: t.data<int64_t>()[i] = static_cast<int64_t>(v); break;
    case DataType::kInt32: t.data<int32_t>()[i] = static_cast<int32_t>(v); break;
    case DataType::kInt16: t.data<int16_t>()[i] = static_cast<int16_t>(v); break;
    case DataType::kInt8: t.data<int8_t>()[i] = static_cast<int8_t>(v); break;
    case DataType::kUInt8: t.data<uint8_t>()[i] = static_cast<uint8_t>(v); break;
    case DataType::kUInt16: t.data<uint16_t>()[i] = static_cast<uint16_t>(v); break;
    case DataType::kUInt32: t.data<uint32_t>()[i] = static_cast<uint32_t>(v); break;
    case DataType::kUInt64: t.data<uint64_t>()[i] = static_cast<uint64_t>(v); break;
    case DataType::kBool: t.data<bool>()[i] = v != 0; break;
    default: break;
  }
}

absl::StatusOr<std::unique_ptr<OpKernel>> MakeCast(const Graph&, const Node& node) {
  ASSIGN_OR_RETURN(int64_t to, node.attributes.Int("to", 0));
  const DataType target = DataTypeFromOnnx(static_cast<int32_t>(to));
  if (target == DataType::kUndefined || target == DataType::kString) {
    return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": unsupported Cast target type ", to));
  }
  return std::unique_ptr<OpKernel>(new FunctionKernel([target](OpContext& ctx) -> absl::Status {
    const Tensor& x = ctx.in(0);
    if (x.type() == target) {
      ctx.outputs[0] = x;  // no-op cast: share the buffer
      return absl::OkStatus();
    }
    if (DataTypeSize(x.type()) == 0) return ctx.Error(absl::StrCat("cannot cast from ", DataTypeName(x.type())));
    Tensor& out = ctx.Output(0, target, x.shape());
    // Integer-to-integer casts go through int64 so large int64 values survive; everything else through double.
    const bool int_to_int = target != DataType::kFloat32 && target != DataType::kFloat64 &&
                            target != DataType::kFloat16 && target != DataType::kBFloat16 &&
                            x.type() == DataType::kInt64;
    Parallel(ctx, x.elements(), 1 << 14, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        if (int_to_int) {
          const int64_t v = x.data<int64_t>()[i];
          switch (target) {
            case DataType::kInt32: out.data<int32_t>()[i] = static_cast<int32_t>(v); break;
            case DataType::kBool: out.data<bool>()[i] = v != 0; break;
            default: WriteFromDouble(out, i, static_cast<double>(v));
          }
        } else {
          WriteFromDouble(out, i, ReadAsDouble(x, i));
        }
      }
    });
    return absl::OkStatus();
  }));
}

template <typename T>
absl::Status ClipTyped(OpContext& ctx, bool from_inputs, float attr_min, float attr_max) {
  T lo = std::numeric_limits<T>::lowest(), hi = std::numeric_limits<T>::max();
  if (!from_inputs) {
    lo = static_cast<T>(attr_min);
    hi = static_cast<T>(attr_max);
  } else {
    if (ctx.has(1)) {
      if (ctx.in(1).type() != ctx.in(0).type()) return ctx.Error("min must have the input's type");
      lo = *ctx.in(1).data<T>();
    }
    if (ctx.has(2)) {
      if (ctx.in(2).type() != ctx.in(0).type()) return ctx.Error("max must have the input's type");
      hi = *ctx.in(2).data<T>();
    }
  }
  return UnaryTyped<T, T>(ctx, ctx.in(0).type(), [=](T v) { return v < lo ? lo : (v > hi ? hi : v); });
}

absl::StatusOr<std::unique_ptr<OpKernel>> MakeClip(const Graph&, const Node& node) {
  // Before opset 11 the bounds are attributes; from 11 on they are optional inputs.
  ASSIGN_OR_RETURN(float attr_min, node.attributes.Float("min", std::numeric_limits<float>::lowest()));
  ASSIGN_OR_RETURN(float attr_max, node.attributes.Float("max", std::numeric_limits<float>::max()));
  const bool from_inputs = node.opset >= 11;
  return std::unique_ptr<OpKernel>(new FunctionKernel([=](OpContext& ctx) -> absl::Status {
    switch (ctx.in(0).type()) {
      case DataType::kFloat32: return ClipTyped<float>(ctx, from_inputs, attr_min, attr_max);
      case DataType::kFloat64: return ClipTyped<double>(ctx, from_inputs, attr_min, attr_max);
      case DataType::kInt64: return ClipTyped<int64_t>(ctx, from_inputs, attr_min, attr_max);
      case DataType::kInt32: return ClipTyped<int32_t>(ctx, from_inputs, attr_min, attr_max);
      case DataType::kInt8: return ClipTyped<int8_t>(ctx, from_inputs, attr_min, attr_max);
      case DataType::kUInt8: return ClipTyped<uint8_t>(ctx, from_inputs, attr_min, attr_max);
      case DataType::kUInt64: return ClipTyped<uint64_t>(ctx, from_inputs, attr_min, attr_max);
      case DataType::kUInt32: return ClipTyped<uint32_t>(ctx, from_inputs, attr_min, attr_max);
      default: return ctx.Error(absl::StrCat("unsupported input type ", DataTypeName(ctx.in(0).type())));
    }
  }));
}

absl::StatusOr<std::unique_ptr<OpKernel>> MakeGelu(const Graph&, const Node& node) {
  const auto approximate = node.attributes.String("approximate", "none");
  if (!approximate.ok()) return approximate.status();
  if (*approximate == "tanh") {
    return std::unique_ptr<OpKernel>(
        new FunctionKernel(VectorUnary(&kernels::F32MathKernels::gelu_tanh, FloatUnary(GeluTanh))));
  }
  if (*approximate == "none") {
    return std::unique_ptr<OpKernel>(new FunctionKernel(VectorUnary(&kernels::F32MathKernels::gelu, FloatUnary(GeluErf))));
  }
  return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": approximate must be 'none' or 'tanh'"));
}

absl::Status PassThrough(OpContext& ctx) {
  ctx.outputs[0] = ctx.in(0);
  return absl::OkStatus();
}

}  // namespace

void RegisterElementwiseOps(OpRegistry& r) {
  r.Register("", "Add", Arithmetic<AddOp>);
  r.Register("", "Sub", Arithmetic<SubOp>);
  r.Register("", "Mul", Arithmetic<MulOp>);
  r.Register("", "Div", Arithmetic<DivOp>);
  r.Register("", "Pow", Pow);
  r.Register("", "Equal", Compare<EqualOp>);
  r.Register("", "Less", Compare<LessOp>);
  r.Register("", "Greater", Compare<GreaterOp>);
  r.Register("", "LessOrEqual", Compare<LessOrEqualOp>);
  r.Register("", "GreaterOrEqual", Compare<GreaterOrEqualOp>);
  r.Register("", "And", [](OpContext& ctx) { return Logical(ctx, [](bool a, bool b) -> bool { return a && b; }); });
  r.Register("", "Or", [](OpContext& ctx) { return Logical(ctx, [](bool a, bool b) -> bool { return a || b; }); });
  r.Register("", "Xor", [](OpContext& ctx) { return Logical(ctx, [](bool a, bool b) -> bool { return a != b; }); });
  r.Register("", "Where", Where);
  r.Register("", "Min", MinMax<MinPick>);
  r.Register("", "Max", MinMax<MaxPick>);

  r.Register("", "Neg", NumericUnary([](auto v) { return -v; }));
  r.Register("", "Abs", NumericUnary([](auto v) { return v < 0 ? -v : v; }));
  r.Register("", "Exp", VectorUnary(&kernels::F32MathKernels::exp, FloatUnary([](auto v) { return std::exp(v); })));
  r.Register("", "Log", FloatUnary([](auto v) { return std::log(v); }));
  r.Register("", "Sqrt", FloatUnary([](auto v) { return std::sqrt(v); }));
  r.Register("", "Reciprocal", FloatUnary([](auto v) { return decltype(v)(1) / v; }));
  r.Register("", "Erf", VectorUnary(&kernels::F32MathKernels::erf, FloatUnary([](auto v) { return std::erf(v); })));
  r.Register("", "Tanh", VectorUnary(&kernels::F32MathKernels::tanh, FloatUnary([](auto v) { return std::tanh(v); })));
  r.Register("", "Floor", FloatUnary([](auto v) { return std::floor(v); }));
  r.Register("", "Ceil", FloatUnary([](auto v) { return std::ceil(v); }));
  r.Register("", "Relu", NumericUnary([](auto v) { return v > 0 ? v : decltype(v)(0); }));
  r.Register("", "Sigmoid", FloatUnary([](auto v) { return decltype(v)(1) / (decltype(v)(1) + std::exp(-v)); }));
  r.Register("", "Gelu", MakeGelu);
  // ONNX Runtime's contrib GELU (exact erf form), written by its transformer optimizer and by our fusion.
  r.Register("com.microsoft", "Gelu", VectorUnary(&kernels::F32MathKernels::gelu, FloatUnary(GeluErf)));
  r.Register("", "Not", [](OpContext& ctx) -> absl::Status {
    if (ctx.in(0).type() != DataType::kBool) return ctx.Error("input must be bool");
    return UnaryTyped<bool, bool>(ctx, DataType::kBool, [](bool v) { return !v; });
  });
  r.Register("", "IsNaN", [](OpContext& ctx) -> absl::Status {
    switch (ctx.in(0).type()) {
      case DataType::kFloat32: return UnaryTyped<float, bool>(ctx, DataType::kBool, [](float v) { return v != v; });
      case DataType::kFloat64: return UnaryTyped<double, bool>(ctx, DataType::kBool, [](double v) { return v != v; });
      default: return ctx.Error("input must be float or double");
    }
  });
  r.Register("", "Cast", MakeCast);
  r.Register("", "Clip", MakeClip);
  r.Register("", "Identity", PassThrough);
  r.Register("", "Dropout", [](OpContext& ctx) -> absl::Status {
    // Inference: the input passes through; the optional mask output is all true.
    ctx.outputs[0] = ctx.in(0);
    if (ctx.outputs.size() > 1) {
      Tensor& mask = ctx.Output(1, DataType::kBool, ctx.in(0).shape());
      std::memset(mask.raw(), 1, mask.bytes());
    }
    return absl::OkStatus();
  });
}

}  // namespace coreserve::runtime
