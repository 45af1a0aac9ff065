// Sliding-window geometry shared by the convolutions and pools of both layouts (NCHW Conv/pools in conv_pool.cc,
// the NHWC forms in conv_nhwc.cc): attributes, resolved pads and output size.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/graph.h"
#include "runtime/op.h"
#include "runtime/tensor.h"

namespace coreserve::runtime {

// Window geometry for 2 spatial dims (1-D inputs use H = 1).
struct Window {
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  int64_t oh = 0, ow = 0;
};

struct WindowAttrs {
  std::string auto_pad;
  std::vector<int64_t> kernel, strides, dilations, pads;
  int64_t ceil_mode = 0;
};

absl::StatusOr<WindowAttrs> ReadWindowAttrs(const Node& node);

// Resolves the window for input spatial dims (h, w) and kernel (kh, kw); `spatial` is 1 or 2.
absl::StatusOr<Window> ResolveWindow(const OpContext& ctx, const WindowAttrs& a, int64_t spatial, int64_t h,
                                     int64_t w, int64_t kh, int64_t kw);

// (N, C, spatial...) with 1 or 2 spatial dims -> (h, w).
absl::Status SpatialDims(const OpContext& ctx, const Tensor& x, int64_t* spatial, int64_t* h, int64_t* w);

}  // namespace coreserve::runtime
