// The arm64 GEMM drivers and the micro-kernel signatures they call. Internal to kernels/ and tests.
//
// Split: each ISA-specific file (NEON, SVE, BF16, I8MM, dotprod) holds only a micro-kernel that fills a small tile
// of sums in L1 for a strip of rows and one 32-column panel. Everything else (blocking, packing B per call, bringing
// A in as bf16 or u8 rows, zero-point corrections, the fp32 epilogue) is in drivers compiled for the armv8-a
// baseline. Two reasons: one epilogue and one driver per precision for every tile shape, and no inline function or
// template instantiated under an extension flag (std::vector, the epilogue) whose copy the linker could keep for
// baseline callers and so run an SVE instruction on a Graviton2.
#pragma once

#include <cstdint>

#include "kernels/gemm/gemm_kernels.h"

namespace coreserve::kernels::arm64 {

// Largest row strip of any arm64 micro-kernel; tiles are kMaxRows x 32.
constexpr int64_t kMaxRows = 8;

// fp32: tile[r * 32 + j] = sum_{l < kc} a[r * lda + l] * b[l * 32 + j] for r < rows (1..mr), j < 32. b is a kPanel32
// panel from row k0 on.
using SgemmTileFn = void (*)(int64_t kc, const float* a, int64_t lda, int64_t rows, const float* b, float* tile);
void SgemmDriver(SgemmTileFn tile_fn, int64_t mr, const SgemmArgs& args, int64_t m_begin, int64_t m_end,
                 int64_t n_begin, int64_t n_end);

// bf16: tile[r * 32 + j] = sum_{l < kc} a[r * lda + l] * b(l, j) in fp32, for the rows of a rounded to bf16 (zero
// from kc up to a multiple of 4; row `rows` is readable, so pairs of rows can be loaded together), and b a panel of
// `format` from row k0 of the K block on (in kBf16Quads32 the block's last quad is zero-padded; in kBf16Panel32 the
// panel has exactly K rows, so nothing past row k0 + kc may be read). rows 1..mr. The driver hands A over as bf16
// bit patterns (tile, for bf16 instructions) or as those values widened back to fp32 (tile_f32, for fp32 FMLA:
// widening A once per block rather than in every tile keeps the FMLA kernel's loop in registers). Set one of them.
using Bf16TileFn = void (*)(int64_t kc, const uint16_t* a, int64_t lda, int64_t rows, const uint16_t* b, float* tile);
using Bf16F32TileFn = void (*)(int64_t kc, const float* a, int64_t lda, int64_t rows, const uint16_t* b, float* tile);
struct Bf16TileKernel {
  PackedFormat format;
  int64_t mr;
  Bf16TileFn tile = nullptr;
  Bf16F32TileFn tile_f32 = nullptr;
};
void Bf16Driver(const Bf16TileKernel& kernel, const SgemmArgs& args, int64_t m_begin, int64_t m_end, int64_t n_begin,
                int64_t n_end);

// int8: tile[r * 32 + j] = sum_{l < k} (a[r * lda + l] - a_offset) * b(l, j) in wrapping int32, for the u8 rows of
// a (zero from k up to lda, a multiple of 16; row `rows` is readable) and b a panel of `format`. a_offset is 0 for
// u8 x s8 kernels and 128 for s8 x s8 ones (SDOT reads A flipped to s8); the driver adds a_offset * colsum back.
using QgemmTileFn = void (*)(int64_t k, const uint8_t* a, int64_t lda, int64_t rows, const int8_t* b, int32_t* tile);
struct QgemmTileKernel {
  PackedFormat format;
  int64_t mr;
  int32_t a_offset;
  QgemmTileFn tile;
};
void QgemmDriver(const QgemmTileKernel& kernel, const QgemmProblem& p, int64_t m_begin, int64_t m_end,
                 int64_t n_begin, int64_t n_end);

}  // namespace coreserve::kernels::arm64
