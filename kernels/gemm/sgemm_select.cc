// Kernel selection for every GEMM precision: the dispatch records (gemm_kernels.h), packing in the selected
// kernel's format, and Sgemm, which runs the kernel that reads the packed format it is given.
#include <algorithm>
#include <cassert>
#include <cstring>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernels/gemm/gemm_kernels.h"

namespace coreserve::kernels {
namespace {

bool RunsAnywhere(const CpuFeatures&) { return true; }
#if defined(__x86_64__)
bool RunsAvx2(const CpuFeatures& f) { return f.avx2_fma; }
bool RunsAvx512(const CpuFeatures& f) { return f.avx512; }
bool RunsAvx512Bf16(const CpuFeatures& f) { return f.avx512_bf16; }
bool RunsAvx512Vnni(const CpuFeatures& f) { return f.avx512_vnni; }
#elif defined(__aarch64__)
bool RunsNeon(const CpuFeatures& f) { return f.neon; }
bool RunsSve(const CpuFeatures& f) { return f.sve; }
bool RunsDotprod(const CpuFeatures& f) { return f.dotprod; }
bool RunsBf16(const CpuFeatures& f) { return f.bf16; }
bool RunsI8mm(const CpuFeatures& f) { return f.i8mm; }
#endif

// In order of preference within a precision. The portable fp32 kernel reads unpacked B only and is not listed.
constexpr GemmKernel kKernels[] = {
#if defined(__x86_64__)
    {"sgemm_12x32_avx512", GemmPrecision::kFp32, PackedFormat::kPanel32, RunsAvx512, sgemm_12x32_avx512, nullptr,
     true, true},
    {"sgemm_6x16_avx2", GemmPrecision::kFp32, PackedFormat::kPanel32, RunsAvx2, sgemm_6x16_avx2, nullptr, true},
    {"bf16gemm_12x32_avx512bf16", GemmPrecision::kBf16, PackedFormat::kBf16Pairs32, RunsAvx512Bf16,
     bf16gemm_12x32_avx512bf16, nullptr, true},
    // The same layout on AVX-512 without BF16: fp32 FMAs on the bf16 operands (exact products).
    {"bf16gemm_12x32_avx512", GemmPrecision::kBf16, PackedFormat::kBf16Pairs32, RunsAvx512, bf16gemm_12x32_avx512,
     nullptr, true},
    {"qgemm_u8s8_avx512vnni", GemmPrecision::kInt8, PackedFormat::kInt8Quad32, RunsAvx512Vnni, nullptr,
     qgemm_u8s8_avx512vnni, true, false, QuantizeRowU8Avx512, QuantizeRowsU8Avx512},
    // Reads the same layout as the VNNI kernel (widening to int16 and vpmaddwd instead of vpdpbusd).
    {"qgemm_u8s8_avx2", GemmPrecision::kInt8, PackedFormat::kInt8Quad32, RunsAvx2, nullptr, qgemm_u8s8_avx2},
#elif defined(__aarch64__)
    // SVE first: on Graviton3 its 256-bit vectors double NEON's work per FMLA. Both read kPanel32, so weights
    // packed under one run on the other.
    {"sgemm_8x2vl_sve", GemmPrecision::kFp32, PackedFormat::kPanel32, RunsSve, sgemm_8x2vl_sve, nullptr, true},
    {"sgemm_6x16_neon", GemmPrecision::kFp32, PackedFormat::kPanel32, RunsNeon, sgemm_6x16_neon, nullptr, true},
    {"bf16gemm_8x8_bfmmla", GemmPrecision::kBf16, PackedFormat::kBf16Quads32, RunsBf16, bf16gemm_8x8_bfmmla,
     nullptr, true},
    // Without BF16 (Graviton2, Armv8.0): fp32 FMLA on bf16 B widened in the kernel (exact products), over the
    // portable kernel's K x 32 layout, so B streams at half the bytes of fp32.
    {"bf16gemm_6x16_neon", GemmPrecision::kBf16, PackedFormat::kBf16Panel32, RunsNeon, bf16gemm_6x16_neon, nullptr,
     true},
    {"qgemm_u8s8_8x8_usmmla", GemmPrecision::kInt8, PackedFormat::kInt8Octs32, RunsI8mm, nullptr,
     qgemm_u8s8_8x8_usmmla, false, false, QuantizeRowU8Neon},
    {"qgemm_u8s8_6x16_sdot", GemmPrecision::kInt8, PackedFormat::kInt8Quad32, RunsDotprod, nullptr,
     qgemm_u8s8_6x16_sdot, false, false, QuantizeRowU8Neon},
#endif
    {"bf16gemm_portable", GemmPrecision::kBf16, PackedFormat::kBf16Panel32, RunsAnywhere, bf16gemm_portable, nullptr,
     true},
    {"qgemm_u8s8_portable", GemmPrecision::kInt8, PackedFormat::kInt8Panel32, RunsAnywhere, nullptr,
     qgemm_u8s8_portable},
};

constexpr int kPrecisions = 3, kFormats = 7;

// The active CPU's choices, made once.
struct Active {
  const GemmKernel* by_precision[kPrecisions] = {};
  const GemmKernel* by_format[kFormats] = {};
  Active() {
    const CpuFeatures& features = ActiveCpuFeatures();
    for (int p = 0; p < kPrecisions; ++p) by_precision[p] = SelectGemmKernel(static_cast<GemmPrecision>(p), features);
    for (int f = 0; f < kFormats; ++f) by_format[f] = GemmKernelForFormat(static_cast<PackedFormat>(f), features);
  }
};

const Active& ActiveKernels() {
  static const Active active;
  return active;
}

const GemmKernel* ActiveKernel(GemmPrecision precision) {
  return ActiveKernels().by_precision[static_cast<int>(precision)];
}

}  // namespace

const GemmKernel* SelectGemmKernel(GemmPrecision precision, const CpuFeatures& features) {
  for (const GemmKernel& k : kKernels) {
    if (k.precision == precision && k.runs_on(features)) return &k;
  }
  return nullptr;
}

const GemmKernel* GemmKernelForFormat(PackedFormat format, const CpuFeatures& features) {
  for (const GemmKernel& k : kKernels) {
    if (k.format == format && k.runs_on(features)) return &k;
  }
  return nullptr;
}

bool SgemmUsesPackedB(GemmPrecision precision) { return ActiveKernel(precision) != nullptr; }

int64_t SgemmNStep() { return kGemmPanel; }

const char* SgemmKernelName(GemmPrecision precision) {
  const GemmKernel* k = ActiveKernel(precision);
  return k != nullptr ? k->name : "sgemm_portable";
}

std::shared_ptr<SgemmPackedB> SgemmAllocPackedB(int64_t k, int64_t n, GemmPrecision precision) {
  const GemmKernel* kernel = ActiveKernel(precision);
  assert(kernel != nullptr);  // requires SgemmUsesPackedB(precision)
  return AllocPackedB(kernel->format, k, n);
}

void SgemmPackBColumns(const float* b, int64_t ldb, bool trans_b, int64_t col_begin, int64_t col_end,
                       SgemmPackedB* packed) {
  assert(col_begin % kGemmPanel == 0);
  switch (packed->precision) {
    case GemmPrecision::kFp32: {
      const float* src = trans_b ? b + col_begin * ldb : b + col_begin;
      sgemm_pack_b_panel32(src, ldb, trans_b, packed->k, col_end - col_begin,
                           packed->data.data() + (col_begin / kGemmPanel) * packed->k * kGemmPanel);
      break;
    }
    case GemmPrecision::kBf16:
      PackBf16Columns(b, ldb, trans_b, col_begin, col_end, packed);
      break;
    case GemmPrecision::kInt8:
      PackInt8Columns(b, ldb, trans_b, col_begin, col_end, packed);
      break;
  }
}

std::shared_ptr<const SgemmPackedB> SgemmPackB(const float* b, int64_t ldb, bool trans_b, int64_t k, int64_t n,
                                               GemmPrecision precision) {
  auto packed = SgemmAllocPackedB(k, n, precision);
  SgemmPackBColumns(b, ldb, trans_b, 0, n, packed.get());
  return packed;
}

namespace {

// C[m_begin:m_end, n_begin:n_end] = beta * C + residual, for a kernel that then accumulates onto C (beta = 1)
// without a residual. The block is the caller's task, so it is still in cache when the kernel reads it back.
SgemmArgs FoldResidualIntoC(const SgemmArgs& args, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end) {
  for (int64_t i = m_begin; i < m_end; ++i) {
    float* c = args.c + i * args.ldc;
    const float* r = args.residual + i * args.ldr;
    for (int64_t j = n_begin; j < n_end; ++j) c[j] = (args.beta != 0.0f ? args.beta * c[j] : 0.0f) + r[j];
  }
  SgemmArgs folded = args;
  folded.beta = 1.0f;
  folded.residual = nullptr;
  return folded;
}

// Indirect A for a kernel that reads A in place: the task's rows are gathered, at most kGatherBytes at a time,
// into a buffer of this thread, and the kernel runs on that. (The im2col a convolution would otherwise do, a
// task's rows at a time, so the block is still in cache when the kernel reads it.)
constexpr int64_t kGatherBytes = int64_t{1} << 20;
void GatherIndirectA(const SgemmArgs& args, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end) {
  const int64_t k = args.k, taps = args.a_taps, run = k / taps;
  const int64_t block = std::max<int64_t>(12, kGatherBytes / static_cast<int64_t>(sizeof(float)) / std::max<int64_t>(k, 1) / 12 * 12);
  thread_local std::vector<float, Aligned64Allocator<float>> rows;
  const int64_t most = std::min(block, m_end - m_begin);
  if (rows.size() < static_cast<std::size_t>(most * k)) rows.resize(static_cast<std::size_t>(most * k));
  for (int64_t i0 = m_begin; i0 < m_end; i0 += block) {
    const int64_t i1 = std::min(m_end, i0 + block);
    for (int64_t i = i0; i < i1; ++i) {
      for (int64_t t = 0; t < taps; ++t) {
        std::memcpy(rows.data() + (i - i0) * k + t * run, args.a_rows[i * taps + t],
                    static_cast<std::size_t>(run) * sizeof(float));
      }
    }
    SgemmArgs direct = args;
    direct.a_rows = nullptr;
    direct.trans_a = false;
    direct.a = rows.data() - i0 * k;  // row i of A at a + i * lda, for i in [i0, i1)
    direct.lda = k;
    Sgemm(direct, i0, i1, n_begin, n_end);
  }
}

}  // namespace

void SgemmQuantizeRows(const float* a, int64_t lda, int64_t k, int64_t m_begin, int64_t m_end, uint8_t* q,
                       int64_t ldq, float* scale, int32_t* zero_point) {
  const GemmKernel* kernel = ActiveKernel(GemmPrecision::kInt8);
  if (kernel != nullptr && kernel->quantize_rows != nullptr) {
    kernel->quantize_rows(a + m_begin * lda, lda, k, m_end - m_begin, q + m_begin * ldq, ldq, scale + m_begin,
                          zero_point + m_begin);
    return;
  }
  const QuantizeRowFn quantize = kernel != nullptr && kernel->quantize_row ? kernel->quantize_row : QuantizeRowU8Reference;
  for (int64_t i = m_begin; i < m_end; ++i) quantize(a + i * lda, k, q + i * ldq, scale + i, zero_point + i);
}

void Sgemm(const SgemmArgs& args, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end) {
  const GemmKernel* kernel = args.packed_b != nullptr ? ActiveKernels().by_format[static_cast<int>(args.packed_b->format)]
                             : args.trans_a           ? nullptr
                                                      : ActiveKernel(GemmPrecision::kFp32);
  assert(args.a_rows == nullptr || (args.a_taps > 0 && args.k % args.a_taps == 0));
  if (args.a_rows != nullptr && args.a_quantized == nullptr && (kernel == nullptr || !kernel->reads_indirect_a)) {
    GatherIndirectA(args, m_begin, m_end, n_begin, n_end);
    return;
  }
  // (kernel == nullptr: the portable fp32 path, which adds the residual itself.)
  if (args.residual != nullptr && kernel != nullptr && !kernel->fuses_residual) {
    Sgemm(FoldResidualIntoC(args, m_begin, m_end, n_begin, n_end), m_begin, m_end, n_begin, n_end);
    return;
  }
  if (args.packed_b != nullptr) {
    // Packed weights run on the kernel that reads their layout, in the precision they were packed in.
    assert(!args.trans_a && args.k == args.packed_b->k && kernel != nullptr);
    if (kernel->precision != GemmPrecision::kInt8) {
      kernel->gemm(args, m_begin, m_end, n_begin, n_end);
      return;
    }
    QgemmProblem q;
    q.k = args.k;
    q.a_f32 = args.a;
    q.a_quantized = args.a_quantized;
    q.lda = args.lda;
    q.packed_b = args.packed_b;
    q.c_f32 = args.c;
    q.ldc = args.ldc;
    q.alpha = args.alpha;
    q.beta = args.beta;
    q.bias = args.bias;
    q.residual = args.residual;  // null unless the kernel fuses it (else folded into C above)
    q.ldr = args.ldr;
    q.activation = args.activation;
    kernel->qgemm(q, m_begin, m_end, n_begin, n_end);
    return;
  }
  // Unpacked fp32 B: the vector kernels pack it per call; transposed A runs on the portable path.
  if (kernel != nullptr) {
    kernel->gemm(args, m_begin, m_end, n_begin, n_end);
    return;
  }
  sgemm_portable(args, m_begin, m_end, n_begin, n_end);
}

}  // namespace coreserve::kernels
