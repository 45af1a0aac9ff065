#include "server/low_priority.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <thread>

namespace coreserve {

void RunAtLowPriority(const std::function<void()>& work) {
  std::thread worker([&work] {
    // On Linux, PRIO_PROCESS with a thread id sets that one thread's nice value. Failing to lower it only costs
    // the priority, so the work runs either way.
    (void)setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), kLowPriorityNice);
    work();
  });
  worker.join();
}

}  // namespace coreserve
