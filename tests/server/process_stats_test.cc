#include "server/process_stats.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace coreserve {
namespace {

// VmRSS from /proc/self/status (kB), a second reading of the same figure through another file.
int64_t StatusRssBytes() {
  std::ifstream in("/proc/self/status");
  std::string key;
  while (in >> key) {
    if (key == "VmRSS:") {
      int64_t kb = 0;
      in >> kb;
      return kb * 1024;
    }
    in.ignore(1 << 16, '\n');
  }
  return -1;
}

TEST(ProcessStats, ResidentMemoryMatchesProcStatus) {
  // Touch 64 MiB so the figure is well above noise.
  std::vector<char> block(64 << 20, 1);
  const ProcessStats s = ReadProcessStats();
  const int64_t status = StatusRssBytes();
  ASSERT_GT(status, 0);
  EXPECT_GT(s.resident_bytes, 64 << 20);
  EXPECT_NEAR(static_cast<double>(s.resident_bytes), static_cast<double>(status), 4.0 * (1 << 20));
  EXPECT_GE(s.virtual_bytes, s.resident_bytes);
  EXPECT_EQ(block[12345], 1);
}

TEST(ProcessStats, CpuTimeMatchesClock) {
  // Burn some CPU, then compare against the process CPU clock (tick granularity is 10 ms).
  volatile double x = 0;
  for (int i = 0; i < 50'000'000; ++i) x = x + i * 1e-9;
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  const double clock = ts.tv_sec + ts.tv_nsec * 1e-9;
  const ProcessStats s = ReadProcessStats();
  EXPECT_GT(s.cpu_seconds, 0.0);
  EXPECT_NEAR(s.cpu_seconds, clock, 0.01);
}

TEST(ProcessStats, StartTimeThreadsAndDescriptors) {
  const ProcessStats before = ReadProcessStats();
  const double now = static_cast<double>(::time(nullptr));
  EXPECT_LE(before.start_time_seconds, now + 1);
  EXPECT_GT(before.start_time_seconds, now - 3600);  // this test process started within the hour

  std::thread t([] {
    const ProcessStats during = ReadProcessStats();
    EXPECT_GE(during.threads, 2);
  });
  t.join();

  const int fd = ::dup(1);
  const ProcessStats with_fd = ReadProcessStats();
  ::close(fd);
  EXPECT_EQ(with_fd.open_fds, before.open_fds + 1);
  rlimit limit{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  EXPECT_EQ(with_fd.max_fds, static_cast<int64_t>(limit.rlim_cur));
}

}  // namespace
}  // namespace coreserve
