#include "runtime/shape_inference.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "runtime/ops/einsum.h"

namespace coreserve::runtime {
namespace {

// Integer tensors up to this many elements have their values followed (shape vectors, axes, scalars).
constexpr int64_t kMaxFollowed = 64;

using Ints = std::vector<int64_t>;
// A followed integer tensor's elements, row-major; nullopt for an element only known at run time. (Dims use -1
// for that, but inside a shape tensor -1 means "infer this dim", and exporters slice from INT64_MIN, so no value
// can serve as the marker.)
using Values = std::vector<std::optional<int64_t>>;

struct Info {
  DataType type = DataType::kUndefined;
  std::optional<Shape> shape;
  std::optional<Values> ints;
};

int64_t DimOf(std::optional<int64_t> value) { return value && *value >= 0 ? *value : -1; }
std::optional<int64_t> ValueOf(int64_t dim) { return dim < 0 ? std::nullopt : std::optional<int64_t>(dim); }
bool Followed(DataType t) { return t == DataType::kInt64 || t == DataType::kInt32 || t == DataType::kBool; }

// Product of dims [begin, end); -1 when one of them is unknown (unless another is 0) or the product overflows
// (such a tensor could never be allocated; the run fails there with ResourceExhausted).
int64_t Product(const Shape& s, std::size_t begin, std::size_t end) {
  int64_t p = 1;
  bool unknown = false;
  for (std::size_t i = begin; i < end; ++i) {
    if (s[i] == 0) return 0;
    if (s[i] < 0 || __builtin_mul_overflow(p, s[i], &p)) unknown = true;
  }
  return unknown ? -1 : p;
}

// Numpy broadcasting; a dim is static when an input fixes it (a known dim other than 1 wins over unknown ones).
Shape Broadcast(const std::vector<Shape>& shapes) {
  std::size_t rank = 0;
  for (const Shape& s : shapes) rank = std::max(rank, s.size());
  Shape out(rank, 1);
  for (std::size_t d = 0; d < rank; ++d) {
    int64_t known = 1;
    bool unknown = false;
    for (const Shape& s : shapes) {
      if (d + s.size() < rank) continue;
      const int64_t dim = s[d + s.size() - rank];
      if (dim < 0) unknown = true; else if (dim != 1) known = dim;
    }
    out[d] = known != 1 ? known : (unknown ? -1 : 1);
  }
  return out;
}

// Maps an axis into [0, rank); nullopt when out of range.
std::optional<int64_t> Axis(int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= rank) return std::nullopt;
  return axis < 0 ? axis + rank : axis;
}

// Which of `rank` dims the axes name; nullopt when one is out of range or named twice.
std::optional<std::vector<bool>> AxisMask(const Ints& axes, int64_t rank) {
  std::vector<bool> mask(rank, false);
  for (int64_t a : axes) {
    const auto d = Axis(a, rank);
    if (!d || mask[*d]) return std::nullopt;
    mask[*d] = true;
  }
  return mask;
}

// What a rule sees of one node: its inputs' inferred facts and its attributes.
class NodeView {
 public:
  NodeView(const Node& node, const std::vector<Info>& infos) : node_(node), infos_(infos) {}

  const Node& node() const { return node_; }
  std::size_t outputs() const { return node_.outputs.size(); }
  bool has(std::size_t i) const { return i < node_.inputs.size() && node_.inputs[i] >= 0; }
  const Info& in(std::size_t i) const {
    static const Info kAbsent;
    return has(i) ? infos_[node_.inputs[i]] : kAbsent;
  }
  const std::optional<Shape>& shape(std::size_t i) const { return in(i).shape; }
  DataType type(std::size_t i) const { return in(i).type; }
  // Input i's values when every one of them is known.
  std::optional<Ints> known_ints(std::size_t i) const {
    const std::optional<Values>& v = in(i).ints;
    if (!v) return std::nullopt;
    Ints out;
    for (const std::optional<int64_t>& x : *v) {
      if (!x) return std::nullopt;
      out.push_back(*x);
    }
    return out;
  }
  int64_t Int(const char* name, int64_t fallback) const {
    return node_.attributes.Int(name, fallback).value_or(fallback);
  }
  std::optional<Ints> IntsAttr(const char* name) const {
    if (!node_.attributes.Has(name)) return std::nullopt;
    auto v = node_.attributes.Ints(name, {});
    return v.ok() ? std::optional<Ints>(*v) : std::nullopt;
  }
  // Axes given as an attribute before opset `input_since` and as input `index` from it: empty when not given,
  // nullopt when given but not known at load.
  std::optional<Ints> Axes(const char* attr, int64_t input_since, std::size_t index) const {
    if (node_.opset < input_since) return IntsAttr(attr).value_or(Ints{});
    return has(index) ? known_ints(index) : Ints{};
  }
  // An output list of this node's size with output `o` set.
  std::vector<Info> One(Info info, std::size_t o = 0) const {
    std::vector<Info> out(outputs());
    if (o < out.size()) out[o] = std::move(info);
    return out;
  }
  // Input i's shape with another element type (unary operators).
  Info Like(std::size_t i, DataType type) const { return Info{type, shape(i), std::nullopt}; }

 private:
  const Node& node_;
  const std::vector<Info>& infos_;
};

using Rule = std::function<std::vector<Info>(const NodeView&)>;

// Elementwise combination of the followed values of inputs 0..n-1 (equal sizes, or scalars broadcast).
std::optional<Values> CombineInts(const NodeView& v, std::size_t n, const std::function<std::optional<int64_t>(const Ints&)>& fn) {
  std::size_t size = 1;
  for (std::size_t i = 0; i < n; ++i) {
    const std::optional<Values>& x = v.in(i).ints;
    if (!x) return std::nullopt;
    if (x->size() != 1) {
      if (size != 1 && size != x->size()) return std::nullopt;
      size = x->size();
    }
  }
  Values out(size);
  Ints args(n);
  for (std::size_t e = 0; e < size; ++e) {
    bool known = true;
    for (std::size_t i = 0; i < n; ++i) {
      const Values& x = *v.in(i).ints;
      const std::optional<int64_t>& arg = x.size() == 1 ? x[0] : x[e];
      known = known && arg.has_value();
      args[i] = arg.value_or(0);
    }
    if (known) out[e] = fn(args);  // nullopt when the result is undefined (division by zero)
  }
  return out;
}

// Broadcasting operators over inputs [0, n) (n = all inputs when 0), with the result type and, for integer
// arithmetic on followed values, the result values.
std::vector<Info> BroadcastRule(const NodeView& v, DataType type, const std::function<std::optional<int64_t>(const Ints&)>& fn,
                                std::size_t n = 0) {
  if (n == 0) n = v.node().inputs.size();
  Info out{type, std::nullopt, std::nullopt};
  std::vector<Shape> shapes;
  bool known = true;
  for (std::size_t i = 0; i < n; ++i) {
    if (!v.has(i)) continue;
    if (v.shape(i)) shapes.push_back(*v.shape(i)); else known = false;
  }
  if (known) out.shape = Broadcast(shapes);
  if (fn && Followed(type)) out.ints = CombineInts(v, n, fn);
  return v.One(std::move(out));
}

// Output size of a sliding window (Conv, pools) along one spatial axis; -1 when the input size is unknown.
int64_t WindowOut(int64_t in, int64_t kernel, int64_t stride, int64_t dilation, int64_t pad_begin, int64_t pad_end,
                  bool ceil_mode, const std::string& auto_pad) {
  if (in < 0 || stride <= 0) return -1;
  if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") return (in + stride - 1) / stride;
  const int64_t span = dilation * (kernel - 1) + 1;
  if (auto_pad == "VALID") { pad_begin = 0; pad_end = 0; }
  const int64_t room = in + pad_begin + pad_end - span;
  if (room < 0) return -1;
  int64_t out = (ceil_mode ? (room + stride - 1) / stride : room / stride) + 1;
  // A ceil-mode window must start inside the input or its leading padding.
  if (ceil_mode && (out - 1) * stride >= in + pad_begin) --out;
  return out;
}

// Conv (channels from the weight's dim 0) and the pools (channels kept).
std::vector<Info> WindowRule(const NodeView& v, bool conv) {
  const std::optional<Shape>& x = v.shape(0);
  if (!x || x->size() < 3) return v.One(Info{v.type(0), std::nullopt, std::nullopt});
  const std::size_t spatial = x->size() - 2;
  const std::optional<Shape>& w = v.shape(1);
  Ints kernel = v.IntsAttr("kernel_shape").value_or(Ints{});
  if (kernel.empty() && conv && w && w->size() == x->size()) kernel.assign(w->begin() + 2, w->end());
  Shape out = {(*x)[0], conv ? (w && !w->empty() ? (*w)[0] : -1) : (*x)[1]};
  const Ints strides = v.IntsAttr("strides").value_or(Ints(spatial, 1));
  const Ints dilations = v.IntsAttr("dilations").value_or(Ints(spatial, 1));
  const Ints pads = v.IntsAttr("pads").value_or(Ints(2 * spatial, 0));
  std::string auto_pad = "NOTSET";
  if (v.node().attributes.Has("auto_pad")) auto_pad = v.node().attributes.String("auto_pad", "NOTSET").value_or("NOTSET");
  const bool ceil_mode = v.Int("ceil_mode", 0) != 0;
  if (kernel.size() != spatial || strides.size() != spatial || dilations.size() != spatial ||
      pads.size() != 2 * spatial) {
    out.resize(x->size(), -1);  // the rank is still known
  } else {
    for (std::size_t d = 0; d < spatial; ++d) {
      out.push_back(WindowOut((*x)[d + 2], kernel[d], strides[d], dilations[d], pads[d], pads[d + spatial],
                              ceil_mode, auto_pad));
    }
  }
  std::vector<Info> outs = v.One(Info{v.type(0), out, std::nullopt});
  if (outs.size() > 1) outs[1] = Info{DataType::kInt64, out, std::nullopt};  // MaxPool's indices
  return outs;
}

std::optional<Shape> MatMulShape(const std::optional<Shape>& a_in, const std::optional<Shape>& b_in) {
  if (!a_in || !b_in || a_in->empty() || b_in->empty()) return std::nullopt;
  Shape a = *a_in, b = *b_in;
  const bool a_vector = a.size() == 1, b_vector = b.size() == 1;
  if (a_vector) a.insert(a.begin(), 1);
  if (b_vector) b.push_back(1);
  Shape out = Broadcast({Shape(a.begin(), a.end() - 2), Shape(b.begin(), b.end() - 2)});
  if (!a_vector) out.push_back(a[a.size() - 2]);
  if (!b_vector) out.push_back(b.back());
  return out;
}

std::vector<Info> ReshapeRule(const NodeView& v) {
  Info out{v.type(0), std::nullopt, v.in(0).ints};
  const std::optional<Values>& target = v.in(1).ints;
  const std::optional<Shape>& target_shape = v.shape(1);
  if (!target) {
    if (target_shape && target_shape->size() == 1 && (*target_shape)[0] >= 0) out.shape = Shape((*target_shape)[0], -1);
    return v.One(std::move(out));
  }
  const std::optional<Shape>& x = v.shape(0);
  const bool allow_zero = v.Int("allowzero", 0) != 0;
  Shape s(target->size());
  int infer_at = -1;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (!(*target)[i]) {
      s[i] = -1;
      continue;
    }
    const int64_t t = *(*target)[i];
    if (t == 0 && !allow_zero) s[i] = x && i < x->size() ? (*x)[i] : -1;
    else if (t == -1) { s[i] = -1; infer_at = static_cast<int>(i); }
    else s[i] = t;
  }
  if (infer_at >= 0 && x) {
    const int64_t total = Product(*x, 0, x->size());
    Shape others = s;
    others[infer_at] = 1;
    const int64_t rest = Product(others, 0, others.size());
    if (total >= 0 && rest > 0 && total % rest == 0) s[infer_at] = total / rest;
  }
  out.shape = s;
  return v.One(std::move(out));
}

std::vector<Info> ShapeRule(const NodeView& v) {
  Info out{DataType::kInt64, std::nullopt, std::nullopt};
  const std::optional<Shape>& x = v.shape(0);
  if (!x) return v.One(std::move(out));
  const int64_t rank = static_cast<int64_t>(x->size());
  auto clamp = [rank](int64_t a) { return std::clamp(a < 0 ? a + rank : a, int64_t{0}, rank); };
  const int64_t start = clamp(v.Int("start", 0)), end = clamp(v.Int("end", rank));
  Values values;
  for (int64_t d = start; d < end; ++d) values.push_back(ValueOf((*x)[d]));
  out.shape = Shape{static_cast<int64_t>(values.size())};
  out.ints = values;
  return v.One(std::move(out));
}

std::vector<Info> GatherRule(const NodeView& v) {
  Info out{v.type(0), std::nullopt, std::nullopt};
  const std::optional<Shape>& data = v.shape(0);
  const std::optional<Shape>& indices = v.shape(1);
  if (!data || !indices) return v.One(std::move(out));
  const auto axis = Axis(v.Int("axis", 0), static_cast<int64_t>(data->size()));
  if (!axis) return v.One(std::move(out));
  Shape s(data->begin(), data->begin() + *axis);
  s.insert(s.end(), indices->begin(), indices->end());
  s.insert(s.end(), data->begin() + *axis + 1, data->end());
  out.shape = s;
  const std::optional<Values>& values = v.in(0).ints;
  const std::optional<Ints> at = v.known_ints(1);
  if (values && at && data->size() == 1) {
    const int64_t n = static_cast<int64_t>(values->size());
    Values picked;
    for (int64_t i : *at) {
      if (i < -n || i >= n) return v.One(std::move(out));
      picked.push_back((*values)[i < 0 ? i + n : i]);
    }
    out.ints = picked;
  }
  return v.One(std::move(out));
}

std::vector<Info> ConcatRule(const NodeView& v) {
  Info out{v.type(0), std::nullopt, std::nullopt};
  const std::size_t n = v.node().inputs.size();
  std::optional<Shape> s;
  for (std::size_t i = 0; i < n; ++i) {
    const std::optional<Shape>& x = v.shape(i);
    if (!x || (s && x->size() != s->size())) return v.One(std::move(out));
    if (!s) s = x;
  }
  if (!s) return v.One(std::move(out));
  const auto axis = Axis(v.Int("axis", 0), static_cast<int64_t>(s->size()));
  if (!axis) return v.One(std::move(out));
  Values values;
  bool follow = true;
  int64_t along = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const Shape& x = *v.shape(i);
    for (std::size_t d = 0; d < x.size(); ++d) {
      if (static_cast<int64_t>(d) != *axis && (*s)[d] < 0) (*s)[d] = x[d];
    }
    along = along < 0 || x[*axis] < 0 ? -1 : along + x[*axis];
    if (v.in(i).ints) values.insert(values.end(), v.in(i).ints->begin(), v.in(i).ints->end()); else follow = false;
  }
  (*s)[*axis] = along;
  out.shape = s;
  if (follow && s->size() == 1) out.ints = values;
  return v.One(std::move(out));
}

// Slice's output size along one axis of known size `dim`.
int64_t SliceCount(int64_t dim, int64_t start, int64_t end, int64_t step) {
  if (dim < 0 || step == 0) return -1;
  start = start < 0 ? start + dim : start;
  end = end < 0 ? end + dim : end;
  if (step > 0) {
    start = std::clamp<int64_t>(start, 0, dim);
    end = std::clamp<int64_t>(end, 0, dim);
    return end > start ? (end - start + step - 1) / step : 0;
  }
  start = std::clamp<int64_t>(start, 0, dim - 1);
  end = std::clamp<int64_t>(end, -1, dim - 1);
  return start > end ? (start - end - step - 1) / -step : 0;
}

std::vector<Info> SliceRule(const NodeView& v) {
  Info out{v.type(0), std::nullopt, std::nullopt};
  const std::optional<Shape>& x = v.shape(0);
  if (!x) return v.One(std::move(out));
  const int64_t rank = static_cast<int64_t>(x->size());
  std::optional<Ints> starts, ends, axes, steps;
  if (v.node().opset < 10) {
    starts = v.IntsAttr("starts"), ends = v.IntsAttr("ends"), axes = v.IntsAttr("axes");
  } else {
    starts = v.known_ints(1), ends = v.known_ints(2);
    if (v.has(3)) axes = v.known_ints(3);
    if (v.has(4)) steps = v.known_ints(4);
    if ((v.has(3) && !axes) || (v.has(4) && !steps)) starts.reset();
  }
  Shape s = *x;
  if (!starts || !ends || starts->size() != ends->size()) {
    // Which axes change is unknown when axes are computed; sliced axes become unknown otherwise.
    if (!axes) std::fill(s.begin(), s.end(), -1);
    for (int64_t a : axes.value_or(Ints{})) {
      if (auto d = Axis(a, rank)) s[*d] = -1;
    }
    out.shape = s;
    return v.One(std::move(out));
  }
  if (!axes) {
    axes = Ints(starts->size());
    for (std::size_t i = 0; i < axes->size(); ++i) (*axes)[i] = static_cast<int64_t>(i);
  }
  if (!steps) steps = Ints(starts->size(), 1);
  if (axes->size() != starts->size() || steps->size() != starts->size()) return v.One(std::move(out));
  for (std::size_t i = 0; i < axes->size(); ++i) {
    const auto d = Axis((*axes)[i], rank);
    if (!d) return v.One(std::move(out));
    s[*d] = SliceCount((*x)[*d], (*starts)[i], (*ends)[i], (*steps)[i]);
  }
  out.shape = s;
  const std::optional<Values>& values = v.in(0).ints;
  if (values && rank == 1 && s[0] >= 0) {
    const int64_t dim = static_cast<int64_t>(values->size());
    int64_t start = (*starts)[0] < 0 ? (*starts)[0] + dim : (*starts)[0];
    start = (*steps)[0] > 0 ? std::clamp<int64_t>(start, 0, dim) : std::clamp<int64_t>(start, 0, dim - 1);
    Values picked;
    for (int64_t k = 0; k < s[0]; ++k) picked.push_back((*values)[start + k * (*steps)[0]]);
    out.ints = picked;
  }
  return v.One(std::move(out));
}

std::vector<Info> SqueezeRule(const NodeView& v, bool unsqueeze) {
  Info out{v.type(0), std::nullopt, v.in(0).ints};
  const std::optional<Shape>& x = v.shape(0);
  const std::optional<Ints> axes = v.Axes("axes", 13, 1);
  if (!x || !axes) return v.One(std::move(out));
  const int64_t rank = static_cast<int64_t>(x->size());
  if (unsqueeze) {
    const int64_t out_rank = rank + static_cast<int64_t>(axes->size());
    const auto inserted = AxisMask(*axes, out_rank);
    if (!inserted) return v.One(std::move(out));
    Shape s;
    auto next = x->begin();
    for (int64_t d = 0; d < out_rank; ++d) s.push_back((*inserted)[d] ? 1 : *next++);
    out.shape = s;
    return v.One(std::move(out));
  }
  const auto removed = AxisMask(*axes, rank);
  if (!removed) return v.One(std::move(out));
  Shape s;
  for (int64_t d = 0; d < rank; ++d) {
    if (axes->empty() && (*x)[d] < 0) return v.One(std::move(out));  // which dims are 1 is not known
    if (!((*removed)[d] || (axes->empty() && (*x)[d] == 1))) s.push_back((*x)[d]);
  }
  out.shape = s;
  return v.One(std::move(out));
}

std::vector<Info> SplitRule(const NodeView& v) {
  std::vector<Info> outs(v.outputs(), Info{v.type(0), std::nullopt, std::nullopt});
  const std::optional<Shape>& x = v.shape(0);
  if (!x) return outs;
  const auto axis = Axis(v.Int("axis", 0), static_cast<int64_t>(x->size()));
  if (!axis) return outs;
  const int64_t n = static_cast<int64_t>(outs.size()), dim = (*x)[*axis];
  std::optional<Ints> sizes = v.node().opset >= 13 ? (v.has(1) ? v.known_ints(1) : Ints{}) : v.IntsAttr("split");
  if (v.node().opset >= 13 && v.has(1) && !sizes) sizes = Ints(n, -1);
  if (!sizes || sizes->empty()) {
    sizes = Ints(n, -1);
    if (dim >= 0 && v.node().attributes.Has("num_outputs")) {
      const int64_t chunk = (dim + n - 1) / n;  // opset 18: equal chunks, the last one smaller
      for (int64_t i = 0; i < n; ++i) (*sizes)[i] = std::clamp<int64_t>(dim - i * chunk, 0, chunk);
    } else if (dim >= 0 && n > 0 && dim % n == 0) {
      std::fill(sizes->begin(), sizes->end(), dim / n);
    }
  }
  if (static_cast<int64_t>(sizes->size()) != n) return outs;
  for (int64_t i = 0; i < n; ++i) {
    Shape s = *x;
    s[*axis] = (*sizes)[i];
    outs[i].shape = s;
  }
  return outs;
}

std::vector<Info> ReduceRule(const NodeView& v) {
  Info out{v.type(0), std::nullopt, std::nullopt};
  const std::optional<Shape>& x = v.shape(0);
  // ReduceSum took its axes as an input from opset 13, the other reductions from opset 18.
  const std::optional<Ints> axes = v.Axes("axes", v.node().op_type == "ReduceSum" ? 13 : 18, 1);
  if (!x || !axes) return v.One(std::move(out));
  const bool keep = v.Int("keepdims", 1) != 0;
  const int64_t rank = static_cast<int64_t>(x->size());
  if (axes->empty() && v.Int("noop_with_empty_axes", 0) != 0) {
    out.shape = x;
    return v.One(std::move(out));
  }
  const auto reduced = AxisMask(*axes, rank);
  if (!reduced) return v.One(std::move(out));
  Shape s;
  for (int64_t d = 0; d < rank; ++d) {
    if (!(axes->empty() || (*reduced)[d])) s.push_back((*x)[d]); else if (keep) s.push_back(1);
  }
  out.shape = s;
  return v.One(std::move(out));
}

// LayerNormalization / SkipLayerNormalization's statistics outputs: the input's shape with the normalized axes 1.
Info Statistics(const NodeView& v, int64_t axis) {
  Info out{DataType::kFloat32, std::nullopt, std::nullopt};
  const std::optional<Shape>& x = v.shape(0);
  if (!x) return out;
  const auto a = Axis(axis, static_cast<int64_t>(x->size()));
  if (!a) return out;
  Shape s = *x;
  std::fill(s.begin() + *a, s.end(), 1);
  out.shape = s;
  return out;
}

std::map<std::string, Rule> BuildRules() {
  std::map<std::string, Rule> rules;
  auto same = [](const NodeView& v) { return v.One(v.Like(0, v.type(0))); };
  for (const char* op : {"Abs", "Ceil", "Clip", "CumSum", "Erf", "Exp", "Floor", "Gelu", "Log", "LogSoftmax",
                         "Reciprocal", "Relu", "Sigmoid", "Softmax", "Sqrt", "Tanh", "Trilu",
                         "BatchNormalization", "com.microsoft::BiasGelu", "com.microsoft::FastGelu",
                         "com.microsoft::Gelu"}) {
    rules[op] = same;
  }
  rules["Identity"] = [](const NodeView& v) { return v.One(v.in(0)); };
  rules["Neg"] = [](const NodeView& v) {
    Info out = v.Like(0, v.type(0));
    if (Followed(out.type)) out.ints = CombineInts(v, 1, [](const Ints& a) { return -a[0]; });
    return v.One(std::move(out));
  };
  auto to_bool = [](const NodeView& v) { return v.One(v.Like(0, DataType::kBool)); };
  rules["Not"] = rules["IsNaN"] = to_bool;
  rules["Dropout"] = [](const NodeView& v) {
    std::vector<Info> outs = v.One(v.Like(0, v.type(0)));
    if (outs.size() > 1) outs[1] = v.Like(0, DataType::kBool);
    return outs;
  };
  rules["Cast"] = [](const NodeView& v) {
    Info out = v.Like(0, DataTypeFromOnnx(static_cast<int32_t>(v.Int("to", 0))));
    if (out.type == DataType::kInt64 || out.type == DataType::kInt32) out.ints = v.in(0).ints;
    return v.One(std::move(out));
  };

  auto arithmetic = [](std::function<int64_t(int64_t, int64_t)> f) {
    return [f](const NodeView& v) {
      return BroadcastRule(v, v.type(0), [f](const Ints& a) { return f(a[0], a[1]); }, 2);
    };
  };
  rules["Add"] = arithmetic([](int64_t a, int64_t b) { return a + b; });
  rules["Sub"] = arithmetic([](int64_t a, int64_t b) { return a - b; });
  rules["Mul"] = arithmetic([](int64_t a, int64_t b) { return a * b; });
  rules["Div"] = [](const NodeView& v) {
    return BroadcastRule(v, v.type(0), [](const Ints& a) -> std::optional<int64_t> {
      if (a[1] == 0) return std::nullopt;
      return a[0] / a[1];
    }, 2);
  };
  rules["Pow"] = [](const NodeView& v) { return BroadcastRule(v, v.type(0), nullptr, 2); };
  auto variadic = [](std::function<int64_t(int64_t, int64_t)> f) {
    return [f](const NodeView& v) {
      return BroadcastRule(v, v.type(0), [f](const Ints& a) {
        int64_t r = a[0];
        for (std::size_t i = 1; i < a.size(); ++i) r = f(r, a[i]);
        return r;
      });
    };
  };
  rules["Max"] = variadic([](int64_t a, int64_t b) { return std::max(a, b); });
  rules["Min"] = variadic([](int64_t a, int64_t b) { return std::min(a, b); });
  auto compare = [](std::function<bool(int64_t, int64_t)> f) {
    return [f](const NodeView& v) {
      return BroadcastRule(v, DataType::kBool, [f](const Ints& a) { return int64_t{f(a[0], a[1])}; }, 2);
    };
  };
  rules["Equal"] = compare([](int64_t a, int64_t b) { return a == b; });
  rules["Less"] = compare([](int64_t a, int64_t b) { return a < b; });
  rules["LessOrEqual"] = compare([](int64_t a, int64_t b) { return a <= b; });
  rules["Greater"] = compare([](int64_t a, int64_t b) { return a > b; });
  rules["GreaterOrEqual"] = compare([](int64_t a, int64_t b) { return a >= b; });
  rules["And"] = compare([](int64_t a, int64_t b) { return a != 0 && b != 0; });
  rules["Or"] = compare([](int64_t a, int64_t b) { return a != 0 || b != 0; });
  rules["Xor"] = compare([](int64_t a, int64_t b) { return (a != 0) != (b != 0); });
  rules["Where"] = [](const NodeView& v) {
    return BroadcastRule(v, v.type(1), [](const Ints& a) { return a[0] != 0 ? a[1] : a[2]; }, 3);
  };

  rules["MatMul"] = [](const NodeView& v) {
    return v.One(Info{v.type(0), MatMulShape(v.shape(0), v.shape(1)), std::nullopt});
  };
  rules["MatMulInteger"] = [](const NodeView& v) {
    return v.One(Info{DataType::kInt32, MatMulShape(v.shape(0), v.shape(1)), std::nullopt});
  };
  rules["Gemm"] = [](const NodeView& v) {
    Info out{v.type(0), std::nullopt, std::nullopt};
    const std::optional<Shape>& a = v.shape(0);
    const std::optional<Shape>& b = v.shape(1);
    if (a && b && a->size() == 2 && b->size() == 2) {
      out.shape = Shape{(*a)[v.Int("transA", 0) ? 1 : 0], (*b)[v.Int("transB", 0) ? 0 : 1]};
    }
    return v.One(std::move(out));
  };
  rules["Einsum"] = [](const NodeView& v) {
    std::vector<std::optional<Shape>> shapes;
    for (std::size_t i = 0; i < v.node().inputs.size(); ++i) shapes.push_back(v.shape(i));
    const std::string equation = v.node().attributes.String("equation", "").value_or("");
    return v.One(Info{v.type(0), EinsumShape(equation, shapes), std::nullopt});
  };
  rules["Conv"] = [](const NodeView& v) { return WindowRule(v, true); };
  rules["MaxPool"] = rules["AveragePool"] = [](const NodeView& v) { return WindowRule(v, false); };
  rules["GlobalAveragePool"] = rules["GlobalMaxPool"] = [](const NodeView& v) {
    Info out = v.Like(0, v.type(0));
    if (out.shape && out.shape->size() >= 2) std::fill(out.shape->begin() + 2, out.shape->end(), 1);
    return v.One(std::move(out));
  };

  rules["Reshape"] = ReshapeRule;
  rules["Shape"] = ShapeRule;
  rules["Size"] = [](const NodeView& v) {
    Info out{DataType::kInt64, Shape{}, std::nullopt};
    if (v.shape(0)) out.ints = Values{ValueOf(Product(*v.shape(0), 0, v.shape(0)->size()))};
    return v.One(std::move(out));
  };
  rules["Flatten"] = [](const NodeView& v) {
    Info out{v.type(0), std::nullopt, std::nullopt};
    const std::optional<Shape>& x = v.shape(0);
    if (!x) return v.One(std::move(out));
    const int64_t rank = static_cast<int64_t>(x->size());
    int64_t axis = v.Int("axis", 1);
    if (axis < 0) axis += rank;
    if (axis >= 0 && axis <= rank) out.shape = Shape{Product(*x, 0, axis), Product(*x, axis, rank)};
    return v.One(std::move(out));
  };
  rules["Transpose"] = [](const NodeView& v) {
    Info out{v.type(0), std::nullopt, std::nullopt};
    const std::optional<Shape>& x = v.shape(0);
    if (!x) return v.One(std::move(out));
    Ints perm = v.IntsAttr("perm").value_or(Ints{});
    if (perm.empty()) {
      for (int64_t d = static_cast<int64_t>(x->size()) - 1; d >= 0; --d) perm.push_back(d);
    }
    if (perm.size() != x->size()) return v.One(std::move(out));
    Shape s;
    for (int64_t p : perm) {
      const auto d = Axis(p, static_cast<int64_t>(x->size()));
      if (!d) return v.One(std::move(out));
      s.push_back((*x)[*d]);
    }
    out.shape = s;
    return v.One(std::move(out));
  };
  rules["Squeeze"] = [](const NodeView& v) { return SqueezeRule(v, false); };
  rules["Unsqueeze"] = [](const NodeView& v) { return SqueezeRule(v, true); };
  rules["Concat"] = ConcatRule;
  rules["Split"] = SplitRule;
  rules["Slice"] = SliceRule;
  rules["Gather"] = GatherRule;
  rules["GatherElements"] = [](const NodeView& v) { return v.One(Info{v.type(0), v.shape(1), std::nullopt}); };
  rules["GatherND"] = [](const NodeView& v) {
    Info out{v.type(0), std::nullopt, std::nullopt};
    const std::optional<Shape>& data = v.shape(0);
    const std::optional<Shape>& indices = v.shape(1);
    const int64_t batch = v.Int("batch_dims", 0);
    if (data && indices && !indices->empty() && indices->back() >= 0 &&
        batch + indices->back() <= static_cast<int64_t>(data->size())) {
      Shape s(indices->begin(), indices->end() - 1);
      s.insert(s.end(), data->begin() + batch + indices->back(), data->end());
      out.shape = s;
    }
    return v.One(std::move(out));
  };
  rules["Expand"] = [](const NodeView& v) {
    Info out{v.type(0), std::nullopt, std::nullopt};
    const std::optional<Values>& target = v.in(1).ints;
    const std::optional<Shape>& target_shape = v.shape(1);
    Shape t;
    if (target) {
      for (const std::optional<int64_t>& x : *target) t.push_back(DimOf(x));
    } else if (target_shape && target_shape->size() == 1 && (*target_shape)[0] >= 0) {
      t.assign((*target_shape)[0], -1);  // the target's length gives the rank
    }
    if (v.shape(0) && (target || !t.empty())) out.shape = Broadcast({*v.shape(0), t});
    return v.One(std::move(out));
  };
  rules["ConstantOfShape"] = [](const NodeView& v) {
    auto value = v.node().attributes.TensorValue("value");
    Info out{value.ok() ? value->type() : DataType::kFloat32, std::nullopt, std::nullopt};
    const std::optional<Values>& dims = v.in(0).ints;
    const std::optional<Shape>& dims_shape = v.shape(0);
    if (dims) {
      Shape s;
      for (const std::optional<int64_t>& x : *dims) s.push_back(DimOf(x));
      out.shape = s;
      const int64_t n = Product(s, 0, s.size());
      if (n >= 0 && n <= kMaxFollowed && Followed(out.type)) {
        int64_t fill = 0;
        if (value.ok() && value->elements() == 1) {
          fill = value->type() == DataType::kInt64 ? value->data<int64_t>()[0]
                 : value->type() == DataType::kInt32 ? value->data<int32_t>()[0]
                                                      : int64_t{value->data<bool>()[0]};
        }
        out.ints = Values(n, fill);
      }
    } else if (dims_shape && dims_shape->size() == 1 && (*dims_shape)[0] >= 0) {
      out.shape = Shape((*dims_shape)[0], -1);
    }
    return v.One(std::move(out));
  };
  rules["Range"] = [](const NodeView& v) {
    Info out{v.type(0), Shape{-1}, std::nullopt};
    const auto start = v.known_ints(0), limit = v.known_ints(1), delta = v.known_ints(2);
    if (start && limit && delta && start->size() == 1 && limit->size() == 1 && delta->size() == 1 && (*delta)[0]) {
      // In 128 bits: a hostile model's start and limit can be far enough apart to overflow 64 (Range then
      // fails at run time, when it would allocate).
      const __int128 d = (*delta)[0], span = static_cast<__int128>((*limit)[0]) - (*start)[0];
      const __int128 count = std::max<__int128>(0, d > 0 ? (span + d - 1) / d : (span + d + 1) / d);
      const int64_t n = count > std::numeric_limits<int64_t>::max() ? -1 : static_cast<int64_t>(count);
      out.shape = Shape{n};
      if (n >= 0 && n <= kMaxFollowed) {
        out.ints = Values(n);
        for (int64_t i = 0; i < n; ++i) (*out.ints)[i] = (*start)[0] + i * (*delta)[0];
      }
    }
    return v.One(std::move(out));
  };
  for (const char* op : {"ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum"}) rules[op] = ReduceRule;

  rules["LayerNormalization"] = [](const NodeView& v) {
    std::vector<Info> outs = v.One(v.Like(0, v.type(0)));
    for (std::size_t o = 1; o < outs.size(); ++o) outs[o] = Statistics(v, v.Int("axis", -1));
    return outs;
  };
  rules["QuantizeLinear"] = [](const NodeView& v) {
    DataType type = DataType::kUInt8;
    if (v.has(2)) type = v.type(2);
    else if (v.Int("output_dtype", 0) != 0) type = DataTypeFromOnnx(static_cast<int32_t>(v.Int("output_dtype", 0)));
    return v.One(v.Like(0, type));
  };
  rules["DequantizeLinear"] = [](const NodeView& v) { return v.One(v.Like(0, DataType::kFloat32)); };
  rules["DynamicQuantizeLinear"] = [](const NodeView& v) {
    std::vector<Info> outs = v.One(v.Like(0, DataType::kUInt8));
    if (outs.size() > 1) outs[1] = Info{DataType::kFloat32, Shape{}, std::nullopt};
    if (outs.size() > 2) outs[2] = Info{DataType::kUInt8, Shape{}, std::nullopt};
    return outs;
  };

  // ONNX Runtime's contrib operators, as its transformer optimizer writes them.
  rules["com.microsoft::Attention"] = [](const NodeView& v) {
    Info out{v.type(0), std::nullopt, std::nullopt};
    const std::optional<Shape>& x = v.shape(0);
    const std::optional<Shape>& w = v.shape(1);
    if (x && x->size() == 3) {
      int64_t hidden = -1;
      if (auto sizes = v.IntsAttr("qkv_hidden_sizes"); sizes && sizes->size() == 3) hidden = (*sizes)[2];
      else if (w && w->size() == 2 && (*w)[1] >= 0) hidden = (*w)[1] / 3;
      out.shape = Shape{(*x)[0], (*x)[1], hidden};
    }
    return v.One(std::move(out));
  };
  rules["com.microsoft::EmbedLayerNormalization"] = [](const NodeView& v) {
    const std::optional<Shape>& ids = v.shape(0);
    const std::optional<Shape>& words = v.shape(2);
    Info out{DataType::kFloat32, std::nullopt, std::nullopt};
    Info mask{DataType::kInt32, std::nullopt, std::nullopt};
    if (ids && ids->size() == 2) {
      out.shape = Shape{(*ids)[0], (*ids)[1], words && words->size() == 2 ? (*words)[1] : -1};
      mask.shape = Shape{(*ids)[0]};
    }
    std::vector<Info> outs = v.One(out);
    if (outs.size() > 1) outs[1] = mask;
    if (outs.size() > 2) outs[2] = out;  // the embedding sum
    return outs;
  };
  rules["com.microsoft::SkipLayerNormalization"] = [](const NodeView& v) {
    std::vector<Info> outs = v.One(v.Like(0, v.type(0)));
    for (std::size_t o = 1; o < outs.size() && o < 3; ++o) outs[o] = Statistics(v, -1);
    if (outs.size() > 3) outs[3] = v.Like(0, v.type(0));  // input + skip + bias
    return outs;
  };
  return rules;
}

const std::map<std::string, Rule>& Rules() {
  static const auto* rules = new std::map<std::string, Rule>(BuildRules());
  return *rules;
}

// What the graph knows of a value before inference: a constant's exact type, shape and (small integer) values,
// or a file's declaration.
Info Known(const Value& v) {
  Info info{v.type, v.shape, std::nullopt};
  if (v.constant) {
    info.type = v.constant->type();
    info.shape = v.constant->shape();
    const Tensor& t = *v.constant;
    if (Followed(t.type()) && t.elements() <= kMaxFollowed) {
      Values values(t.elements());
      for (int64_t i = 0; i < t.elements(); ++i) {
        values[i] = t.type() == DataType::kInt64 ? t.data<int64_t>()[i]
                    : t.type() == DataType::kInt32 ? t.data<int32_t>()[i]
                                                   : int64_t{t.data<bool>()[i]};
      }
      info.ints = values;
    }
  }
  return info;
}

// The file's declaration, completed by the inference: an undeclared type or shape is taken, and a declared
// dynamic dim takes the inferred size; a declaration of another rank is kept (the run will check it).
void Merge(const Info& inferred, Info& known) {
  if (known.type == DataType::kUndefined) known.type = inferred.type;
  if (!known.shape) {
    known.shape = inferred.shape;
  } else if (inferred.shape && inferred.shape->size() == known.shape->size()) {
    for (std::size_t d = 0; d < known.shape->size(); ++d) {
      if ((*known.shape)[d] < 0) (*known.shape)[d] = (*inferred.shape)[d];
    }
  }
  known.ints = inferred.ints;
}

}  // namespace

void InferShapes(Graph& graph) {
  auto order = graph.TopologicalOrder();
  if (!order.ok()) return;  // the session reports the cycle
  std::vector<Info> infos;
  infos.reserve(graph.values.size());
  for (const Value& v : graph.values) infos.push_back(Known(v));
  for (int n : *order) {
    const Node& node = graph.nodes[n];
    auto rule = Rules().find(node.domain.empty() ? node.op_type : node.domain + "::" + node.op_type);
    if (rule == Rules().end()) continue;
    const std::vector<Info> inferred = rule->second(NodeView(node, infos));
    for (std::size_t o = 0; o < node.outputs.size() && o < inferred.size(); ++o) {
      const int out = node.outputs[o];
      if (out < 0) continue;
      Merge(inferred[o], infos[out]);
      Value& value = graph.values[out];
      value.type = infos[out].type;
      value.shape = infos[out].shape;
    }
  }
}

}  // namespace coreserve::runtime
