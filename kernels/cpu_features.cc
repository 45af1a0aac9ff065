#include "kernels/cpu_features.h"

#include <cstdlib>

#if defined(__x86_64__)
#include <cpuid.h>
#elif defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace coreserve::kernels {
namespace {

#if defined(__x86_64__)
// XCR0 tells which register state the OS saves on a context switch; a CPU bit without it is unusable.
unsigned long long ReadXcr0() {
  unsigned int lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<unsigned long long>(hi) << 32) | lo;
}

CpuFeatures Detect() {
  CpuFeatures f;
  unsigned int eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
  const bool osxsave = (ecx >> 27) & 1;
  const bool fma = (ecx >> 12) & 1;
  if (!osxsave) return f;
  const unsigned long long xcr0 = ReadXcr0();
  const bool os_ymm = (xcr0 & 0x6) == 0x6;     // SSE + AVX state
  const bool os_zmm = (xcr0 & 0xe6) == 0xe6;   // plus opmask and both zmm halves
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return f;
  const bool avx2 = (ebx >> 5) & 1;
  const bool avx512f = (ebx >> 16) & 1, avx512dq = (ebx >> 17) & 1;
  const bool avx512bw = (ebx >> 30) & 1, avx512vl = (ebx >> 31) & 1;
  const bool avx512vnni = (ecx >> 11) & 1;
  unsigned int eax1 = 0, ebx1 = 0, ecx1 = 0, edx1 = 0;
  const bool avx512bf16 = __get_cpuid_count(7, 1, &eax1, &ebx1, &ecx1, &edx1) && ((eax1 >> 5) & 1);

  f.avx2_fma = os_ymm && avx2 && fma;
  f.avx512 = f.avx2_fma && os_zmm && avx512f && avx512dq && avx512bw && avx512vl;
  f.avx512_vnni = f.avx512 && avx512vnni;
  f.avx512_bf16 = f.avx512 && avx512bf16;
  return f;
}
#elif defined(__aarch64__) && defined(__linux__)
CpuFeatures Detect() {
  CpuFeatures f;
  const unsigned long hw = getauxval(AT_HWCAP);
  const unsigned long hw2 = getauxval(AT_HWCAP2);
  f.neon = hw & HWCAP_ASIMD;
  f.dotprod = hw & HWCAP_ASIMDDP;
  f.sve = hw & HWCAP_SVE;
#ifdef HWCAP2_BF16
  f.bf16 = hw2 & HWCAP2_BF16;
#endif
#ifdef HWCAP2_I8MM
  f.i8mm = hw2 & HWCAP2_I8MM;
#endif
  (void)hw2;
  return f;
}
#else
CpuFeatures Detect() { return CpuFeatures{}; }
#endif

CpuFeatures ApplyEnvCap(CpuFeatures f) {
  if (const char* cap = std::getenv("CORESERVE_ISA"); cap != nullptr && *cap != '\0') ApplyIsaCap(cap, &f);
  return f;
}

}  // namespace

const CpuFeatures& HostCpuFeatures() {
  static const CpuFeatures features = Detect();
  return features;
}

const CpuFeatures& ActiveCpuFeatures() {
  static const CpuFeatures features = ApplyEnvCap(HostCpuFeatures());
  return features;
}

bool ApplyIsaCap(std::string_view name, CpuFeatures* f) {
  CpuFeatures c = *f;
  if (name == "native") return true;
  if (name == "scalar") {
    *f = CpuFeatures{};
    return true;
  }
#if defined(__x86_64__)
  if (name == "avx2") {
    c.avx512 = c.avx512_vnni = c.avx512_bf16 = false;
  } else if (name == "avx512") {
    c.avx512_vnni = c.avx512_bf16 = false;
  } else if (name == "avx512_vnni") {
    c.avx512_bf16 = false;
  } else {
    return false;
  }
#elif defined(__aarch64__)
  // Levels in the order arm64 servers gained them: "neon" is the Armv8.0 baseline, "dotprod" Graviton2 (Neoverse
  // N1), "sve" adds SVE but not BF16/I8MM; "native" is Graviton3 and later. Each one reaches a fallback kernel.
  if (name == "neon") {
    c.dotprod = c.sve = c.bf16 = c.i8mm = false;
  } else if (name == "dotprod") {
    c.sve = c.bf16 = c.i8mm = false;
  } else if (name == "sve") {
    c.bf16 = c.i8mm = false;
  } else {
    return false;
  }
#else
  return false;
#endif
  *f = c;
  return true;
}

std::string KnownIsaCaps() {
#if defined(__x86_64__)
  return "scalar, avx2, avx512, avx512_vnni, native";
#elif defined(__aarch64__)
  return "scalar, neon, dotprod, sve, native";
#else
  return "scalar, native";
#endif
}

std::string DescribeCpuFeatures(const CpuFeatures& f) {
  std::string out;
  auto add = [&out](bool on, const char* name) {
    if (!on) return;
    if (!out.empty()) out += ' ';
    out += name;
  };
  add(f.avx2_fma, "avx2_fma");
  add(f.avx512, "avx512");
  add(f.avx512_vnni, "avx512_vnni");
  add(f.avx512_bf16, "avx512_bf16");
  add(f.neon, "neon");
  add(f.dotprod, "dotprod");
  add(f.sve, "sve");
  add(f.bf16, "bf16");
  add(f.i8mm, "i8mm");
  return out.empty() ? "scalar" : out;
}

}  // namespace coreserve::kernels
