#include "server/process_stats.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace coreserve {
namespace {

// Boot time in seconds since the epoch, from /proc/stat's btime line.
double BootTime() {
  std::ifstream stat("/proc/stat");
  std::string key;
  double value = 0;
  while (stat >> key) {
    if (key == "btime") {
      stat >> value;
      return value;
    }
    stat.ignore(1 << 20, '\n');
  }
  return 0;
}

int64_t CountOpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  int64_t n = 0;
  while (const dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(dir);
  return n - 1;  // the descriptor opendir itself holds
}

}  // namespace

ProcessStats ReadProcessStats() {
  ProcessStats s;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const int64_t page = sysconf(_SC_PAGESIZE);

  // /proc/self/stat: the command name (field 2) is parenthesised and may hold spaces, so parse after ')'.
  std::ifstream stat_file("/proc/self/stat");
  std::string line;
  std::getline(stat_file, line);
  const std::size_t close = line.rfind(')');
  if (close != std::string::npos) {
    std::istringstream rest(line.substr(close + 2));
    std::string field[50];
    int n = 0;
    while (n < 50 && rest >> field[n]) ++n;
    // field[0] is stat field 3 (state): utime=14, stime=15, num_threads=20, starttime=22, vsize=23, rss=24.
    if (n > 21) {
      s.cpu_seconds = (std::stod(field[11]) + std::stod(field[12])) / ticks;
      s.threads = std::stoll(field[17]);
      s.start_time_seconds = BootTime() + std::stod(field[19]) / ticks;
      s.virtual_bytes = std::stoll(field[20]);
      s.resident_bytes = std::stoll(field[21]) * page;
    }
  }
  s.open_fds = CountOpenFds();
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) s.max_fds = static_cast<int64_t>(limit.rlim_cur);
  return s;
}

}  // namespace coreserve
