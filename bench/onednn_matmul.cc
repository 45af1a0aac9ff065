#include "bench/onednn_matmul.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <vector>

namespace coreserve::bench {
namespace {

using kernels::GemmPrecision;
using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

const char* IsaName(dnnl::cpu_isa isa) {
  switch (isa) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    default: return "other";
  }
}

}  // namespace

struct OnednnMatmul::State {
  int threads = 1;
  dnnl::stream stream{Engine()};
  dnnl::memory a_f32, a_low, weights, c;  // a_low: A in bf16 or u8 (the src of the matmul), unused for fp32
  dnnl::reorder a_reorder;                // A f32 -> a_low (bf16 and int8)
  dnnl::matmul matmul;
  std::string implementation;
};

OnednnMatmul::OnednnMatmul(GemmPrecision precision, int64_t m, int64_t n, int64_t k, const float* a,
                           const float* b, float* c, int threads)
    : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.threads = threads;
  // oneDNN sizes its parallel work from the OpenMP thread count when a primitive is created and when it runs.
  UseThreads();
  dnnl::engine& engine = Engine();
  const dnnl::memory::desc a_f32_md({m, k}, dt::f32, tag::ab), c_md({m, n}, dt::f32, tag::ab);
  s.a_f32 = dnnl::memory(a_f32_md, engine, const_cast<float*>(a));
  s.c = dnnl::memory(c_md, engine, c);

  const dt src_type = precision == GemmPrecision::kFp32 ? dt::f32 : precision == GemmPrecision::kBf16 ? dt::bf16 : dt::u8;
  const dt weights_type = precision == GemmPrecision::kFp32 ? dt::f32 : precision == GemmPrecision::kBf16 ? dt::bf16 : dt::s8;
  const dnnl::memory::desc src_md({m, k}, src_type, tag::ab);
  const dnnl::memory::desc weights_any_md({k, n}, weights_type, tag::any);

  dnnl::primitive_attr matmul_attr, a_attr;
  std::vector<int8_t> b_s8;  // int8: B quantized, plain layout
  if (precision == GemmPrecision::kInt8) {
    // A: one scale and zero point for the whole tensor, from its range extended to 0 (u8, asymmetric).
    const auto [lo_it, hi_it] = std::minmax_element(a, a + m * k);
    const float lo = std::min(0.0f, m * k > 0 ? *lo_it : 0.0f), hi = std::max(0.0f, m * k > 0 ? *hi_it : 0.0f);
    float a_scale = (hi - lo) / 255.0f;
    if (!(a_scale > 0.0f)) a_scale = 1.0f;
    const int32_t a_zero_point = static_cast<int32_t>(std::clamp(std::nearbyint(-lo / a_scale), 0.0f, 255.0f));
    a_attr.set_output_scales(0, {1.0f / a_scale});
    a_attr.set_zero_points(DNNL_ARG_DST, 0, {a_zero_point});
    // B: symmetric s8 per column, s_j = max|B_j| / 127 (1 for an all-zero column), as coreserve packs it. Quantized
    // here, in plain layout; the reorder below then only packs it (a reorder into the packed layout, which carries
    // the column sums the src zero point needs, does not take per-column scales in oneDNN 2.6).
    std::vector<float> b_scale(n, 0.0f);
    for (int64_t l = 0; l < k; ++l) {
      for (int64_t j = 0; j < n; ++j) b_scale[j] = std::max(b_scale[j], std::fabs(b[l * n + j]));
    }
    std::vector<float> c_scale(n);
    for (int64_t j = 0; j < n; ++j) {
      b_scale[j] = b_scale[j] > 0.0f ? b_scale[j] / 127.0f : 1.0f;
      c_scale[j] = a_scale * b_scale[j];
    }
    b_s8.resize(k * n);
    for (int64_t l = 0; l < k; ++l) {
      for (int64_t j = 0; j < n; ++j) {
        b_s8[l * n + j] = static_cast<int8_t>(std::clamp(std::nearbyint(b[l * n + j] / b_scale[j]), -127.0f, 127.0f));
      }
    }
    // C[i, j] = s_A * s_B[j] * sum_k (qA[i, k] - z_A) * qB[k, j]. Constant (not run-time) scales and zero point:
    // with run-time ones oneDNN 2.6 falls back from the brgemm kernel to gemm:jit.
    matmul_attr.set_output_scales(1 << 1, c_scale);
    matmul_attr.set_zero_points(DNNL_ARG_SRC, 0, {a_zero_point});
  }

  const dnnl::matmul::primitive_desc matmul_pd(dnnl::matmul::desc(src_md, weights_any_md, c_md), matmul_attr, engine);
  s.matmul = dnnl::matmul(matmul_pd);
  s.implementation = matmul_pd.impl_info_str();

  // The weights, converted (f32 to bf16 by the reorder; to s8 above) and packed once into the layout the matmul
  // chose.
  s.weights = dnnl::memory(matmul_pd.weights_desc(), engine);
  const bool int8 = precision == GemmPrecision::kInt8;
  dnnl::memory b_plain(dnnl::memory::desc({k, n}, int8 ? dt::s8 : dt::f32, tag::ab), engine,
                       int8 ? static_cast<void*>(b_s8.data()) : const_cast<float*>(b));
  dnnl::reorder(b_plain, s.weights).execute(s.stream, b_plain, s.weights);

  if (precision != GemmPrecision::kFp32) {
    s.a_low = dnnl::memory(matmul_pd.src_desc(), engine);
    const dnnl::reorder::primitive_desc a_pd(engine, a_f32_md, engine, matmul_pd.src_desc(), a_attr);
    s.a_reorder = dnnl::reorder(a_pd);
    s.implementation += std::string(" (src reorder: ") + a_pd.impl_info_str() + ")";
  }
  s.stream.wait();
}

OnednnMatmul::~OnednnMatmul() = default;

void OnednnMatmul::UseThreads() const { omp_set_num_threads(state_->threads); }

void OnednnMatmul::Run() {
  State& s = *state_;
  if (s.a_low) {
    s.a_reorder.execute(s.stream, s.a_f32, s.a_low);
    s.matmul.execute(s.stream, {{DNNL_ARG_SRC, s.a_low}, {DNNL_ARG_WEIGHTS, s.weights}, {DNNL_ARG_DST, s.c}});
  } else {
    s.matmul.execute(s.stream, {{DNNL_ARG_SRC, s.a_f32}, {DNNL_ARG_WEIGHTS, s.weights}, {DNNL_ARG_DST, s.c}});
  }
  s.stream.wait();
}

const std::string& OnednnMatmul::implementation() const { return state_->implementation; }

std::string OnednnMatmul::Description() {
  const dnnl::version_t* v = dnnl::version();
  std::string runtime = v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : v->cpu_runtime == DNNL_RUNTIME_TBB ? "TBB" : "other";
  return "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch) +
         " (" + runtime + " threading), effective ISA " + IsaName(dnnl::get_effective_cpu_isa());
}

}  // namespace coreserve::bench
