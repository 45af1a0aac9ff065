// Process resource figures read from /proc/self, for the standard Prometheus process_* metrics.
#pragma once

#include <cstdint>

namespace coreserve {

struct ProcessStats {
  double cpu_seconds = 0;          // user + system
  double start_time_seconds = 0;   // since the Unix epoch
  int64_t resident_bytes = 0;
  int64_t virtual_bytes = 0;
  int64_t open_fds = 0;
  int64_t max_fds = 0;
  int64_t threads = 0;
};

// Reads the current figures; fields it cannot read stay 0. Thread-safe.
ProcessStats ReadProcessStats();

}  // namespace coreserve
