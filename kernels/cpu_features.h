// CPU feature detection for kernel dispatch.
//
// Features are read once per process (cpuid + xgetbv on x86-64, getauxval HWCAP/HWCAP2 on Linux arm64) and
// then capped by the CORESERVE_ISA environment variable, so tests and comparisons can force an older path on
// a newer CPU. A kernel is only ever selected when its feature bit is set here, so a binary built for the
// architecture's baseline never executes an instruction the CPU (or the OS, for AVX-512 state) lacks.
#pragma once

#include <string>
#include <string_view>

namespace coreserve::kernels {

struct CpuFeatures {
  // x86-64. avx512 means the Skylake-server subset (F, BW, DQ, VL) with OS support for the zmm state.
  bool avx2_fma = false;
  bool avx512 = false;
  bool avx512_vnni = false;
  bool avx512_bf16 = false;
  // arm64 (Linux hwcaps).
  bool neon = false;
  bool dotprod = false;
  bool sve = false;
  bool bf16 = false;
  bool i8mm = false;
};

// What the hardware and OS offer, ignoring CORESERVE_ISA. Thread-safe; cheap after the first call.
const CpuFeatures& HostCpuFeatures();

// The features kernels may use: HostCpuFeatures() capped by CORESERVE_ISA when it names a known cap,
// else uncapped. Fixed for the life of the process.
const CpuFeatures& ActiveCpuFeatures();

// Caps `features` to the named ISA level. Known names: "scalar", and per architecture "avx2", "avx512",
// "avx512_vnni", "native" (x86-64) or "neon" (Armv8.0: no dotprod, SVE, BF16, I8MM), "dotprod" (no SVE, BF16,
// I8MM), "sve" (no BF16, I8MM), "native" (arm64). Returns false (and leaves `features` unchanged) for any other
// name.
bool ApplyIsaCap(std::string_view name, CpuFeatures* features);

// The cap names ApplyIsaCap accepts on this architecture, comma-separated, for error messages.
std::string KnownIsaCaps();

// A short human-readable list of the set features, e.g. "avx2_fma avx512 avx512_vnni avx512_bf16".
std::string DescribeCpuFeatures(const CpuFeatures& features);

}  // namespace coreserve::kernels
