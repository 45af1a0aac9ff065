#include "kernels/cpu_features.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

namespace coreserve::kernels {
namespace {

// The kernel-visible flags Linux reports in /proc/cpuinfo: an independent reading of the same CPU.
std::set<std::string> ProcCpuinfoFlags() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    // The key this architecture's kernel uses; under qemu-user the file describes the host instead, and then
    // the key is missing and the test skips.
#if defined(__aarch64__)
    if (line.rfind("Features", 0) == 0) {
#else
    if (line.rfind("flags", 0) == 0) {
#endif
      std::istringstream words(line.substr(line.find(':') + 1));
      std::set<std::string> flags;
      for (std::string w; words >> w;) flags.insert(w);
      return flags;
    }
  }
  return {};
}

TEST(CpuFeatures, AgreesWithProcCpuinfo) {
  const std::set<std::string> flags = ProcCpuinfoFlags();
  if (flags.empty()) GTEST_SKIP() << "no /proc/cpuinfo flags line";
  const CpuFeatures& f = HostCpuFeatures();
  auto has = [&flags](const char* name) { return flags.count(name) > 0; };
#if defined(__x86_64__)
  EXPECT_EQ(f.avx2_fma, has("avx2") && has("fma"));
  EXPECT_EQ(f.avx512, has("avx512f") && has("avx512bw") && has("avx512dq") && has("avx512vl"));
  EXPECT_EQ(f.avx512_vnni, f.avx512 && has("avx512_vnni"));
  EXPECT_EQ(f.avx512_bf16, f.avx512 && has("avx512_bf16"));
  EXPECT_FALSE(f.neon || f.sve || f.i8mm);
#elif defined(__aarch64__)
  EXPECT_EQ(f.neon, has("asimd"));
  EXPECT_EQ(f.dotprod, has("asimddp"));
  EXPECT_EQ(f.sve, has("sve"));
  EXPECT_EQ(f.bf16, has("bf16"));
  EXPECT_EQ(f.i8mm, has("i8mm"));
#endif
}

TEST(CpuFeatures, CapsOnlyRemoveFeatures) {
  CpuFeatures all;
  all.avx2_fma = all.avx512 = all.avx512_vnni = all.avx512_bf16 = true;
  all.neon = all.dotprod = all.sve = all.bf16 = all.i8mm = true;

  CpuFeatures scalar = all;
  ASSERT_TRUE(ApplyIsaCap("scalar", &scalar));
  EXPECT_EQ(DescribeCpuFeatures(scalar), "scalar");

  CpuFeatures native = all;
  ASSERT_TRUE(ApplyIsaCap("native", &native));
  EXPECT_EQ(DescribeCpuFeatures(native), DescribeCpuFeatures(all));

#if defined(__x86_64__)
  CpuFeatures avx2 = all;
  ASSERT_TRUE(ApplyIsaCap("avx2", &avx2));
  EXPECT_TRUE(avx2.avx2_fma);
  EXPECT_FALSE(avx2.avx512 || avx2.avx512_vnni || avx2.avx512_bf16);

  CpuFeatures avx512 = all;
  ASSERT_TRUE(ApplyIsaCap("avx512", &avx512));
  EXPECT_TRUE(avx512.avx512);
  EXPECT_FALSE(avx512.avx512_vnni || avx512.avx512_bf16);

  // A cap never adds a feature the CPU lacks.
  CpuFeatures none;
  ASSERT_TRUE(ApplyIsaCap("avx512", &none));
  EXPECT_EQ(DescribeCpuFeatures(none), "scalar");
#elif defined(__aarch64__)
  CpuFeatures neon = all;
  ASSERT_TRUE(ApplyIsaCap("neon", &neon));
  EXPECT_TRUE(neon.neon);
  EXPECT_FALSE(neon.dotprod || neon.sve || neon.bf16 || neon.i8mm);

  CpuFeatures dotprod = all;
  ASSERT_TRUE(ApplyIsaCap("dotprod", &dotprod));
  EXPECT_TRUE(dotprod.neon && dotprod.dotprod);
  EXPECT_FALSE(dotprod.sve || dotprod.bf16 || dotprod.i8mm);

  CpuFeatures sve = all;
  ASSERT_TRUE(ApplyIsaCap("sve", &sve));
  EXPECT_TRUE(sve.neon && sve.dotprod && sve.sve);
  EXPECT_FALSE(sve.bf16 || sve.i8mm);

  // A cap never adds a feature the CPU lacks.
  CpuFeatures none;
  ASSERT_TRUE(ApplyIsaCap("sve", &none));
  EXPECT_EQ(DescribeCpuFeatures(none), "scalar");
#endif
}

TEST(CpuFeatures, UnknownCapIsRefusedAndChangesNothing) {
  CpuFeatures f;
  f.avx2_fma = f.neon = true;
  const std::string before = DescribeCpuFeatures(f);
  EXPECT_FALSE(ApplyIsaCap("avx1024", &f));
  EXPECT_FALSE(ApplyIsaCap("", &f));
  EXPECT_EQ(DescribeCpuFeatures(f), before);
}

}  // namespace
}  // namespace coreserve::kernels
