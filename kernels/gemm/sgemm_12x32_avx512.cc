// fp32 GEMM for AVX-512: a 12x32 register-blocked micro-kernel over B packed in 32-column panels.
//
// Per k step the kernel loads two zmm of the B panel and, for each of 12 rows, broadcasts one A element into
// two FMAs: 24 accumulators + 2 B registers + 1 broadcast = 27 of the 32 zmm registers. K is blocked (kKc) to
// bound the strips of A and B a micro-kernel call streams from L2. A is read in place
// (no packing): its 12 rows are 12 sequential streams the hardware prefetcher follows. Edge columns use masked
// stores (the packed panel is zero-padded, so the arithmetic needs no mask); edge rows use the MR < 12 variants.
// Compiled with AVX-512 F/BW/DQ/VL flags; called only when CpuFeatures::avx512 is set.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>
#include <vector>

#include "kernels/gemm/gemm_epilogue.h"
#include "kernels/gemm/gemm_epilogue_avx512.h"
#include "kernels/gemm/gemm_kernels.h"

namespace coreserve::kernels {
namespace {

using avx512::GemmEpilogue;

constexpr int64_t kNr = 32;
constexpr int64_t kKc = 1024;
// The largest K block x N range (floats) swept row strip by row strip: 256 KB, a quarter of a 1 MB L2.
constexpr int64_t kRowsFirstFloats = 64 * 1024;

// acc = A[0:MR, 0:kc] * Bpanel[0:kc, 0:32], stored by avx512::StoreTile. kHalf computes only the panel's first 16
// columns, for a last panel of at most 16 (16-channel convolutions, classifier heads): the padding columns would
// otherwise cost as many FMAs as the real ones. Every row loop is unrolled by pragma, so GCC keeps acc0 and acc1
// in registers from the first FMA to the store (see avx512::TileStore).
template <int MR, bool kHalf = false>
void Kernel(int64_t kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc, __mmask16 m0,
            __mmask16 m1, float alpha, float beta, bool accumulate, const GemmEpilogue* last) {
  __m512 acc0[MR], acc1[MR];
#pragma GCC unroll 12
  for (int r = 0; r < MR; ++r) acc0[r] = acc1[r] = _mm512_setzero_ps();
  avx512::PrefetchTile(c, ldc, MR, last);
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_load_ps(b + k * kNr);
    const __m512 b1 = kHalf ? b0 : _mm512_load_ps(b + k * kNr + 16);
#pragma GCC unroll 12
    for (int r = 0; r < MR; ++r) {
      const __m512 av = _mm512_set1_ps(a[r * lda + k]);
      acc0[r] = _mm512_fmadd_ps(av, b0, acc0[r]);
      if constexpr (!kHalf) acc1[r] = _mm512_fmadd_ps(av, b1, acc1[r]);
    }
  }
  avx512::StoreTile<MR>([&](int r, int h) { return h ? acc1[r] : acc0[r]; }, c, ldc, m0, m1, alpha, beta, accumulate,
                        last);
}

// Strips of up to 4 rows over NP whole panels at once: 1-2 rows x 4 panels or 3-4 rows x 2 panels. One row and
// one panel would leave 2 accumulation chains, too few to cover the FMA latency (M = 1 ran at ~45 GFLOP/s with
// its B in L2), and one B stream. b: the first panel, the others b_stride apart.
constexpr int kWideRows = 4;
constexpr int64_t kWidePanels[kWideRows + 1] = {0, 4, 4, 2, 2};

template <int MR, int NP>
void WideKernel(int64_t kc, const float* a, int64_t lda, const float* b, int64_t b_stride, float* c, int64_t ldc,
                float alpha, float beta, bool accumulate, const GemmEpilogue* last) {
  GemmEpilogue panel_last[NP];
#pragma GCC unroll 4
  for (int pn = 0; pn < NP; ++pn) {
    if (last) panel_last[pn] = last->Shifted(32 * pn);
    avx512::PrefetchTile(c + 32 * pn, ldc, MR, last ? &panel_last[pn] : nullptr);
  }
  __m512 acc[MR][2 * NP];
#pragma GCC unroll 4
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 8
    for (int t = 0; t < 2 * NP; ++t) acc[r][t] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < kc; ++k) {
    __m512 bv[2 * NP];
#pragma GCC unroll 8
    for (int t = 0; t < 2 * NP; ++t) bv[t] = _mm512_load_ps(b + (t / 2) * b_stride + k * kNr + (t % 2) * 16);
#pragma GCC unroll 4
    for (int r = 0; r < MR; ++r) {
      const __m512 av = _mm512_set1_ps(a[r * lda + k]);
#pragma GCC unroll 8
      for (int t = 0; t < 2 * NP; ++t) acc[r][t] = _mm512_fmadd_ps(av, bv[t], acc[r][t]);
    }
  }
#pragma GCC unroll 4
  for (int pn = 0; pn < NP; ++pn) {
    avx512::StoreTile<MR>([&](int r, int h) { return acc[r][2 * pn + h]; }, c + 32 * pn, ldc, 0xffff, 0xffff, alpha,
                          beta, accumulate, last ? &panel_last[pn] : nullptr);
  }
}

using WideKernelFn = void (*)(int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t, float, float,
                              bool, const GemmEpilogue*);
constexpr WideKernelFn kWideKernels[kWideRows + 1] = {nullptr, WideKernel<1, 4>, WideKernel<2, 4>, WideKernel<3, 2>,
                                                      WideKernel<4, 2>};

// The same over indirect A (SgemmArgs::a_rows): the K block is taps [t0, t1) of `run` floats each, from float
// `r0` of each run (the whole run when t1 > t0 + 1); rows[r * taps + t] is row r's run of tap t. B advances
// through the block as one K range, since op(B)'s rows are in (tap, channel) order.
template <int MR, bool kHalf = false>
void IndirectKernel(int64_t t0, int64_t t1, int64_t r0, int64_t kc_per_tap, const float* const* rows, int64_t taps,
                    const float* b, float* c, int64_t ldc, __mmask16 m0, __mmask16 m1, float alpha, float beta,
                    bool accumulate, const GemmEpilogue* last) {
  __m512 acc0[MR], acc1[MR];
#pragma GCC unroll 12
  for (int r = 0; r < MR; ++r) acc0[r] = acc1[r] = _mm512_setzero_ps();
  avx512::PrefetchTile(c, ldc, MR, last);
  for (int64_t t = t0; t < t1; ++t) {
    const float* a[MR];
#pragma GCC unroll 12
    for (int r = 0; r < MR; ++r) a[r] = rows[r * taps + t] + r0;
    for (int64_t k = 0; k < kc_per_tap; ++k, b += kNr) {
      const __m512 b0 = _mm512_load_ps(b);
      const __m512 b1 = kHalf ? b0 : _mm512_load_ps(b + 16);
#pragma GCC unroll 12
      for (int r = 0; r < MR; ++r) {
        const __m512 av = _mm512_set1_ps(a[r][k]);
        acc0[r] = _mm512_fmadd_ps(av, b0, acc0[r]);
        if constexpr (!kHalf) acc1[r] = _mm512_fmadd_ps(av, b1, acc1[r]);
      }
    }
  }
  avx512::StoreTile<MR>([&](int r, int h) { return h ? acc1[r] : acc0[r]; }, c, ldc, m0, m1, alpha, beta, accumulate,
                        last);
}

using KernelFn = void (*)(int64_t, const float*, int64_t, const float*, float*, int64_t, __mmask16, __mmask16, float,
                          float, bool, const GemmEpilogue*);
constexpr KernelFn kKernels[13] = {nullptr,    Kernel<1>,  Kernel<2>, Kernel<3>, Kernel<4>,  Kernel<5>, Kernel<6>,
                                   Kernel<7>,  Kernel<8>,  Kernel<9>, Kernel<10>, Kernel<11>, Kernel<12>};
constexpr KernelFn kHalfKernels[13] = {
    nullptr,           Kernel<1, true>, Kernel<2, true>, Kernel<3, true>,  Kernel<4, true>,  Kernel<5, true>,
    Kernel<6, true>,   Kernel<7, true>, Kernel<8, true>, Kernel<9, true>,  Kernel<10, true>, Kernel<11, true>,
    Kernel<12, true>};

using IndirectKernelFn = void (*)(int64_t, int64_t, int64_t, int64_t, const float* const*, int64_t, const float*,
                                  float*, int64_t, __mmask16, __mmask16, float, float, bool, const GemmEpilogue*);
template <bool kHalf, std::size_t... MR>
constexpr std::array<IndirectKernelFn, 13> IndirectTable(std::index_sequence<MR...>) {
  return {nullptr, IndirectKernel<static_cast<int>(MR) + 1, kHalf>...};
}
constexpr auto kIndirectKernels = IndirectTable<false>(std::make_index_sequence<12>());
constexpr auto kIndirectHalfKernels = IndirectTable<true>(std::make_index_sequence<12>());

}  // namespace

void sgemm_12x32_avx512(const SgemmArgs& p, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end) {
  if (DoneWithoutProducts(p, m_begin, m_end, n_begin, n_end)) return;
  const int64_t k = p.k;
  const bool has_epilogue = HasEpilogue(p);
  int64_t first_panel = 0;
  const float* panels = Panel32For(p, n_begin, n_end, &first_panel);
  // Indirect A: K blocks are whole taps (as many as fit in kKc), or kKc-long pieces of one tap's run.
  const int64_t taps = p.a_rows ? p.a_taps : 1, run = k / taps;
  const int64_t taps_per_block = p.a_rows && run <= kKc ? std::max<int64_t>(1, kKc / run) : 1;
  // A's 12 rows are 12 broadcast streams lda apart. When lda is a multiple of 4 KB (K = 1024, 2048, 3072: BERT's
  // FFN output projection) they all fall in the same L1 set and evict each other (8 ways): 112 -> 96 GFLOP/s.
  // Such A blocks are copied, one K block at a time, to rows padded by one cache line.
  const bool aliased = !p.a_rows && p.lda % 1024 == 0;
  thread_local std::vector<float, Aligned64Allocator<float>> a_copy;
  const int64_t a_copy_ld = std::min(kKc, k) + 16;
  if (aliased && a_copy.size() < static_cast<std::size_t>((m_end - m_begin) * a_copy_ld)) {
    a_copy.resize(static_cast<std::size_t>((m_end - m_begin) * a_copy_ld));
  }
  for (int64_t k0 = 0; k0 < k;) {
    // This K block: [k0, k0 + kc); for indirect A, taps [t0, t1) from float r0 of each run.
    const int64_t t0 = k0 / run, r0 = k0 % run;
    const int64_t per_tap = p.a_rows ? std::min(kKc, run - r0) : 0;
    const int64_t t1 = p.a_rows ? std::min(taps, t0 + (r0 == 0 && run <= kKc ? taps_per_block : 1)) : 0;
    const int64_t kc = p.a_rows ? (t1 - t0) * per_tap : std::min(kKc, k - k0);
    const bool accumulate = k0 > 0;
    const bool last_block = k0 + kc == k;
    if (aliased) {
      for (int64_t i = m_begin; i < m_end; ++i) {
        std::memcpy(a_copy.data() + (i - m_begin) * a_copy_ld, p.a + i * p.lda + k0,
                    static_cast<std::size_t>(kc) * sizeof(float));
      }
    }
    const float* a_block = aliased ? a_copy.data() - m_begin * a_copy_ld : p.a + k0;
    const int64_t lda = aliased ? a_copy_ld : p.lda;
    // This K block of the panel holding column j0, and the epilogue of the tile at (i0, j0).
    auto panel_at = [&](int64_t j0) { return panels + ((j0 - n_begin) / kNr + first_panel) * k * kNr + k0 * kNr; };
    auto epilogue_at = [&](int64_t i0, int64_t j0) {
      return GemmEpilogue{p.bias ? p.bias + j0 : nullptr, p.activation,
                          p.residual ? p.residual + i0 * p.ldr + j0 : nullptr, p.ldr};
    };
    auto tile = [&](int64_t i0, int64_t j0) {
      const int64_t cols = std::min(kNr, n_end - j0), rows = std::min<int64_t>(12, m_end - i0);
      const float* panel = panel_at(j0);
      const GemmEpilogue epilogue = epilogue_at(i0, j0);
      const GemmEpilogue* last = last_block && has_epilogue ? &epilogue : nullptr;
      const bool half = cols <= 16;
      if (p.a_rows) {
        (half ? kIndirectHalfKernels : kIndirectKernels)[rows](
            t0, t1, r0, per_tap, p.a_rows + i0 * taps, taps, panel, p.c + i0 * p.ldc + j0, p.ldc,
            avx512::ColumnMask(cols), avx512::ColumnMask(cols - 16), p.alpha, p.beta, accumulate, last);
        return;
      }
      (half ? kHalfKernels : kKernels)[rows](kc, a_block + i0 * lda, lda, panel, p.c + i0 * p.ldc + j0, p.ldc,
                                             avx512::ColumnMask(cols), avx512::ColumnMask(cols - 16), p.alpha,
                                             p.beta, accumulate, last);
    };
    // One row strip across the columns: a strip of up to kWideRows rows (direct A) in groups of whole panels.
    auto strip = [&](int64_t i0) {
      const int64_t rows = std::min<int64_t>(12, m_end - i0);
      int64_t j0 = n_begin;
      if (rows <= kWideRows && !p.a_rows) {
        const int64_t wide = kWidePanels[rows] * kNr;
        for (; j0 + wide <= n_end; j0 += wide) {
          const GemmEpilogue epilogue = epilogue_at(i0, j0);
          kWideKernels[rows](kc, a_block + i0 * lda, lda, panel_at(j0), k * kNr, p.c + i0 * p.ldc + j0, p.ldc, p.alpha,
                             p.beta, accumulate, last_block && has_epilogue ? &epilogue : nullptr);
        }
      }
      for (; j0 < n_end; j0 += kNr) tile(i0, j0);
    };
    if (kc * (n_end - n_begin) <= kRowsFirstFloats) {
      // B's block is small enough for L2: sweep it with each row strip, so C is written (and the residual read)
      // a whole row strip at a time, in sequential lines, rather than in 32-column slivers across many rows —
      // with a short K (ResNet's 1x1 convolutions) those scattered stores, not the FMAs, set the pace.
      for (int64_t i0 = m_begin; i0 < m_end; i0 += 12) {
        // The next strip's rows of A, requested now: each is only K floats long (147 in ResNet's first
        // convolution), too short a stream for the hardware prefetcher to pick up before it ends, so with few
        // panels per strip the tiles waited on A from memory (12544 x 64 x 147: +7%, 16 interleaved pairs).
        if (!p.a_rows) {
          for (int64_t r = i0 + 12; r < std::min(m_end, i0 + 24); ++r) {
            const float* row = a_block + r * lda;
            for (int64_t t = 0; t < kc; t += 16) _mm_prefetch(reinterpret_cast<const char*>(row + t), _MM_HINT_T0);
          }
        }
        strip(i0);
      }
    } else {
      // One B panel stays in L1 while the rows of A stream past it; a last strip of few rows goes on its own.
      const int64_t tail = (m_end - m_begin) % 12, whole_end = tail <= kWideRows ? m_end - tail : m_end;
      for (int64_t j0 = n_begin; j0 < n_end; j0 += kNr) {
        for (int64_t i0 = m_begin; i0 < whole_end; i0 += 12) tile(i0, j0);
      }
      if (whole_end < m_end) strip(whole_end);
    }
    k0 += kc;
  }
}

}  // namespace coreserve::kernels
