#include "runtime/ops/gemm_util.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <vector>

namespace coreserve::runtime {

void ParallelGemm(const OpContext& ctx, int64_t batches, int64_t m, int64_t n,
                  const std::function<kernels::SgemmArgs(int64_t)>& args_of,
                  const std::vector<GemmOutputSegment>& segments) {
  if (batches <= 0 || m <= 0 || n <= 0) return;
  assert(segments.empty() || batches == 1);
  const int64_t step = kernels::SgemmNStep();
  const int64_t threads = ctx.pool ? ctx.pool->threads() : 1;
  auto round_up = [](int64_t v, int64_t to) { return (v + to - 1) / to * to; };
  // A task's block of B (K x nb elements) should stay in L2 (1-2 MB per core on the targets) while its rows of A
  // stream past it; 512 KB leaves room for the A block. Packed bf16 and int8 weights are 2 and 1 bytes wide, and
  // every bf16 column tile re-converts its rows of A, so their tiles are wider.
  const kernels::SgemmArgs first = args_of(0);
  const int64_t k = first.k;
  const kernels::GemmPrecision precision =
      first.packed_b ? first.packed_b->precision : kernels::GemmPrecision::kFp32;
  const int64_t b_bytes = precision == kernels::GemmPrecision::kInt8   ? 1
                          : precision == kernels::GemmPrecision::kBf16 ? 2
                                                                       : 4;
  // The kernels block K by 1024, so that is the depth of B they keep in L2 at once.
  const int64_t k_block = std::clamp<int64_t>(k, 1, 1024);
  const int64_t l2_cols = std::max<int64_t>(step, (int64_t{512} * 1024 / b_bytes / k_block) / step * step);
  int64_t nb = std::min(round_up(n, step), l2_cols);
  // Weights far larger than the caches (GPT-2's 154 MB LM head) come from memory once per row tile: take more
  // rows per tile there, so they are streamed fewer times.
  const bool weights_from_memory = k * n * b_bytes > (int64_t{8} << 20);
  int64_t mb = std::min(round_up(m, 12), weights_from_memory ? int64_t{264} : int64_t{96});
  // Start from these large tiles (B panels reused across many rows) and halve until there are ~2 tasks per thread
  // (measured on BERT-base: finer tiles cost more in re-streamed A than they gain in balance).
  auto tasks = [&] { return batches * ((m + mb - 1) / mb) * ((n + nb - 1) / nb); };
  while (tasks() < 2 * threads) {
    if (nb > 4 * step) {
      nb = round_up(nb / 2, step);
    } else if (mb > 12) {
      mb = std::max<int64_t>(12, round_up(mb / 2, 12));
    } else if (nb > step) {
      nb = round_up(nb / 2, step);
    } else {
      break;
    }
  }
  // Even row tiles (still whole 12-row micro-tiles), so no task is much longer than the others.
  int64_t m_tiles = (m + mb - 1) / mb;
  mb = round_up((m + m_tiles - 1) / m_tiles, 12);
  m_tiles = (m + mb - 1) / mb;
  // Even column tiles too: BERT's N = 768 at 672 columns per tile left a 96-column task beside a 672-column one.
  // With few tasks, also pick the column count whose tasks spread best over the threads: 5 tiles on 2 threads
  // leave one thread 3 (M = 8, N = K = 768 in fp32 ran at 0.88x oneDNN), 6 tiles split 3 + 3.
  int64_t n_tiles = (n + nb - 1) / nb;
  const int64_t panels = (n + step - 1) / step;
  auto longest_thread = [&](int64_t width) {  // elements of C on the busiest thread, tasks to the least loaded
    std::vector<int64_t> load(static_cast<std::size_t>(threads), 0);
    for (int64_t b = 0; b < batches; ++b) {
      for (int64_t i = 0; i < m; i += mb) {
        for (int64_t j = 0; j < n; j += width) {
          *std::min_element(load.begin(), load.end()) += std::min(mb, m - i) * std::min(width, n - j);
        }
      }
    }
    return *std::max_element(load.begin(), load.end());
  };
  nb = round_up((n + n_tiles - 1) / n_tiles, step);
  if (threads > 1 && batches * m_tiles * n_tiles < 8 * threads) {
    int64_t best = longest_thread(nb);
    for (int64_t tiles = n_tiles + 1; tiles <= std::min(panels, n_tiles + 2 * threads); ++tiles) {
      const int64_t width = round_up((n + tiles - 1) / tiles, step);
      const int64_t span = longest_thread(width);
      if (span < best) best = span, nb = width;
    }
  }
  n_tiles = (n + nb - 1) / nb;
  // fn(args of batch b, b, rows [i0, i1) of its A) over every batch's rows of A, in parallel: the passes over A
  // that are done once per product rather than once per column tile.
  auto for_rows_of_a = [&](const std::function<void(const kernels::SgemmArgs&, int64_t, int64_t, int64_t)>& fn) {
    Parallel(ctx, batches * m, RowGrain(k), [&](int64_t r0, int64_t r1) {
      while (r0 < r1) {  // a chunk may span batches, whose A differ
        const int64_t b = r0 / m, end = std::min(r1, (b + 1) * m);
        fn(b == 0 ? first : args_of(b), b, r0 - b * m, end - b * m);
        r0 = end;
      }
    });
  };
  // int8: every column tile would quantize its rows of A again (a pass over A with a scan and a multiplication
  // per element, ~6% of BERT-base's int8 time at 5 tiles per row), so quantize all rows once, in parallel, and hand the tiles
  // the result. Indirect A (convolutions) is gathered per tile instead.
  // (The buffers are the calling thread's; the pool's threads reach them through `quantized`, never by name.)
  thread_local std::vector<uint8_t> a_q;
  thread_local std::vector<float> a_scale;
  thread_local std::vector<int32_t> a_zero_point;
  std::vector<kernels::SgemmQuantizedA> quantized;
  if (precision == kernels::GemmPrecision::kInt8 && n_tiles > 1 && k > 0 && first.a_rows == nullptr &&
      !first.trans_a) {
    const int64_t rows = batches * m;
    a_q.resize(static_cast<std::size_t>(rows * k));
    a_scale.resize(static_cast<std::size_t>(rows));
    a_zero_point.resize(static_cast<std::size_t>(rows));
    uint8_t* const q = a_q.data();
    float* const scale = a_scale.data();
    int32_t* const zero_point = a_zero_point.data();
    quantized.resize(static_cast<std::size_t>(batches));
    for (int64_t b = 0; b < batches; ++b) quantized[b] = {q + b * m * k, k, scale + b * m, zero_point + b * m};
    for_rows_of_a([&](const kernels::SgemmArgs& args, int64_t b, int64_t i0, int64_t i1) {
      kernels::SgemmQuantizeRows(args.a, args.lda, k, i0, i1, q + b * m * k, k, scale + b * m, zero_point + b * m);
    });
  }
  // fp32 A whose rows lie a multiple of 4 KB apart (K = 1024, 2048, 3072: BERT's FFN output projection) is
  // copied by the AVX-512 kernel to padded rows, or its 12 broadcast rows would share one L1 set; every column
  // tile made that copy again (6 tiles at N = 768, K = 3072: ~5% of the product). Copy it once here instead, to
  // rows one cache line longer, which no kernel needs to copy.
  thread_local std::vector<float, kernels::Aligned64Allocator<float>> a_padded;
  int64_t padded_ld = 0;
  float* padded_a = nullptr;  // a_padded's data, for the pool's threads (their own a_padded is another vector)
  if (precision == kernels::GemmPrecision::kFp32 && first.packed_b != nullptr && n_tiles > 1 && k > 0 &&
      first.a_rows == nullptr && !first.trans_a && first.lda % 1024 == 0) {
    padded_ld = k + 16;
    a_padded.resize(static_cast<std::size_t>(batches * m * padded_ld));
    float* const dst = padded_a = a_padded.data();
    for_rows_of_a([&](const kernels::SgemmArgs& args, int64_t b, int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        std::memcpy(dst + (b * m + i) * padded_ld, args.a + i * args.lda, static_cast<std::size_t>(k) * sizeof(float));
      }
    });
  }
  // One tile per chunk: the pool's default of ~4 chunks per thread would hand out 10 tiles as 5 pairs, 3 to one
  // thread and 2 to the other.
  const std::function<void(int64_t, int64_t)> run = [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t batch = t / (m_tiles * n_tiles);
      const int64_t rest = t % (m_tiles * n_tiles);
      const int64_t mi = rest / n_tiles, ni = rest % n_tiles;
      kernels::SgemmArgs args = args_of(batch);
      if (!quantized.empty()) args.a_quantized = &quantized[batch];
      if (padded_ld > 0) {
        args.a = padded_a + batch * m * padded_ld;
        args.lda = padded_ld;
      }
      const int64_t i0 = mi * mb, i1 = std::min(m, (mi + 1) * mb), j0 = ni * nb, j1 = std::min(n, (ni + 1) * nb);
      if (segments.empty()) {
        kernels::Sgemm(args, i0, i1, j0, j1);
        continue;
      }
      // A tile may straddle segments: one call per part, each storing into its segment's matrix. The kernels
      // address C by the product's column j (as they do B's panels and the bias), so the base handed to them is
      // the segment's matrix shifted back by `begin` columns; they only touch columns >= begin through it.
      for (const GemmOutputSegment& s : segments) {
        const int64_t s0 = std::max(j0, s.begin), s1 = std::min(j1, s.begin + s.width);
        if (s0 >= s1) continue;
        args.c = s.c - s.begin;
        args.ldc = s.ldc;
        kernels::Sgemm(args, i0, i1, s0, s1);
      }
    }
  };
  const int64_t total = batches * m_tiles * n_tiles;
  if (ctx.pool == nullptr) {
    run(0, total);
  } else {
    ctx.pool->ParallelFor(total, 1, run, 1);
  }
}

void ParallelQgemm(const OpContext& ctx, const kernels::QgemmArgs& q) {
  const int64_t mb = 48, nb = 256;  // nb a multiple of the 32-column panels
  const int64_t m_tiles = (q.m + mb - 1) / mb, n_tiles = (q.n + nb - 1) / nb;
  Parallel(ctx, m_tiles * n_tiles, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t mi = t / n_tiles, ni = t % n_tiles;
      kernels::QgemmU8S8ToS32(q, mi * mb, std::min(q.m, (mi + 1) * mb), ni * nb, std::min(q.n, (ni + 1) * nb));
    }
  });
}

void ScaleInt32InPlace(const OpContext& ctx, float* y, int64_t rows, int64_t n, const float* scale, const float* bias,
                       const float* residual, bool relu) {
  Parallel(ctx, rows, RowGrain(n), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t j = 0; j < n; ++j) {
        int32_t sum;
        std::memcpy(&sum, y + r * n + j, sizeof sum);  // the same 4 bytes, read as the int32 the GEMM wrote
        float v = static_cast<float>(sum) * scale[j] + (bias ? bias[j] : 0.0f) + (residual ? residual[r * n + j] : 0.0f);
        y[r * n + j] = relu ? std::max(v, 0.0f) : v;
      }
    }
  });
}

}  // namespace coreserve::runtime
