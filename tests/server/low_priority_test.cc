#include "server/low_priority.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <thread>

namespace coreserve {
namespace {

int ThreadNice() {
  errno = 0;
  return getpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)));
}

TEST(LowPriority, WorkRunsOnAnotherThreadAtNice19AndTheCallerKeepsItsPriority) {
  const int before = ThreadNice();
  const std::thread::id caller = std::this_thread::get_id();
  int inside = -100;
  std::thread::id worker;
  RunAtLowPriority([&] {
    inside = ThreadNice();
    worker = std::this_thread::get_id();
  });
  EXPECT_EQ(inside, kLowPriorityNice);
  EXPECT_NE(worker, caller);
  EXPECT_EQ(ThreadNice(), before);
}

}  // namespace
}  // namespace coreserve
