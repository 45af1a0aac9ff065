#include "runtime/ops/conv_window.h"

#include <algorithm>

#include "runtime/ops/op_util.h"

namespace coreserve::runtime {

absl::StatusOr<WindowAttrs> ReadWindowAttrs(const Node& node) {
  WindowAttrs w;
  ASSIGN_OR_RETURN(w.auto_pad, node.attributes.String("auto_pad", "NOTSET"));
  ASSIGN_OR_RETURN(w.kernel, node.attributes.Ints("kernel_shape", {}));
  ASSIGN_OR_RETURN(w.strides, node.attributes.Ints("strides", {}));
  ASSIGN_OR_RETURN(w.dilations, node.attributes.Ints("dilations", {}));
  ASSIGN_OR_RETURN(w.pads, node.attributes.Ints("pads", {}));
  ASSIGN_OR_RETURN(w.ceil_mode, node.attributes.Int("ceil_mode", 0));
  if (w.auto_pad != "NOTSET" && w.auto_pad != "VALID" && w.auto_pad != "SAME_UPPER" && w.auto_pad != "SAME_LOWER") {
    return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": unknown auto_pad '", w.auto_pad, "'"));
  }
  return w;
}

// Resolves the window for input spatial dims (h, w) and kernel (kh, kw).
absl::StatusOr<Window> ResolveWindow(const OpContext& ctx, const WindowAttrs& a, int64_t spatial, int64_t h,
                                     int64_t w, int64_t kh, int64_t kw) {
  Window win;
  auto at = [&](const std::vector<int64_t>& v, int64_t i, int64_t fallback) {
    return v.empty() ? fallback : v[static_cast<std::size_t>(i)];
  };
  if ((!a.strides.empty() && static_cast<int64_t>(a.strides.size()) != spatial) ||
      (!a.dilations.empty() && static_cast<int64_t>(a.dilations.size()) != spatial) ||
      (!a.pads.empty() && static_cast<int64_t>(a.pads.size()) != 2 * spatial)) {
    return ctx.Error("strides, dilations and pads must match the number of spatial dims");
  }
  win.kh = kh;
  win.kw = kw;
  if (spatial == 2) {
    win.sh = at(a.strides, 0, 1); win.sw = at(a.strides, 1, 1);
    win.dh = at(a.dilations, 0, 1); win.dw = at(a.dilations, 1, 1);
    win.pad_top = at(a.pads, 0, 0); win.pad_left = at(a.pads, 1, 0);
    win.pad_bottom = at(a.pads, 2, 0); win.pad_right = at(a.pads, 3, 0);
  } else {
    win.sw = at(a.strides, 0, 1);
    win.dw = at(a.dilations, 0, 1);
    win.pad_left = at(a.pads, 0, 0);
    win.pad_right = at(a.pads, 1, 0);
  }
  if (win.sh < 1 || win.sw < 1 || win.dh < 1 || win.dw < 1) return ctx.Error("strides and dilations must be >= 1");
  auto same = [&](int64_t in, int64_t k, int64_t s, int64_t d, int64_t* begin, int64_t* end) {
    const int64_t out = (in + s - 1) / s;
    const int64_t total = std::max<int64_t>(0, (out - 1) * s + (k - 1) * d + 1 - in);
    *begin = a.auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
    *end = total - *begin;
  };
  if (a.auto_pad == "VALID") {
    win.pad_top = win.pad_left = win.pad_bottom = win.pad_right = 0;
  } else if (a.auto_pad != "NOTSET") {
    same(h, kh, win.sh, win.dh, &win.pad_top, &win.pad_bottom);
    same(w, kw, win.sw, win.dw, &win.pad_left, &win.pad_right);
  }
  auto out_dim = [&](int64_t in, int64_t k, int64_t s, int64_t d, int64_t pb, int64_t pe) -> int64_t {
    const int64_t span = in + pb + pe - ((k - 1) * d + 1);
    if (span < 0) return 0;
    int64_t out = (a.ceil_mode ? (span + s - 1) / s : span / s) + 1;
    if (a.ceil_mode && (out - 1) * s >= in + pb) --out;  // the last window must start inside input + begin pad
    return out;
  };
  win.oh = out_dim(h, kh, win.sh, win.dh, win.pad_top, win.pad_bottom);
  win.ow = out_dim(w, kw, win.sw, win.dw, win.pad_left, win.pad_right);
  return win;
}

absl::Status SpatialDims(const OpContext& ctx, const Tensor& x, int64_t* spatial, int64_t* h, int64_t* w) {
  if (x.rank() != 3 && x.rank() != 4) return ctx.Error(absl::StrCat("input must be NCW or NCHW, got ", ShapeString(x.shape())));
  *spatial = x.rank() - 2;
  *h = *spatial == 2 ? x.dim(2) : 1;
  *w = x.dim(x.rank() - 1);
  return absl::OkStatus();
}

}  // namespace coreserve::runtime
