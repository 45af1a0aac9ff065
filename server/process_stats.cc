#include "server/process_stats.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <time.h>

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

// Wall-clock time when this library was loaded: the process start time when /proc cannot tell it (qemu-user,
// for one, fakes /proc/self/stat with zeros).
const double kLoadTime = [] {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec * 1e-9;
}();

// "VmRSS:  1234 kB" style lines of /proc/self/status, in bytes (kB lines) or as plain counts.
void ReadStatus(ProcessStats& s) {
  std::ifstream status("/proc/self/status");
  std::string line, key;
  while (std::getline(status, line)) {
    std::istringstream fields(line);
    int64_t value = 0;
    if (!(fields >> key >> value)) continue;  // lines with text values (Name:, State:, ...)
    if (key == "VmRSS:") s.resident_bytes = value * 1024;
    if (key == "VmSize:") s.virtual_bytes = value * 1024;
    if (key == "Threads:") s.threads = value;
  }
}

// Start time from /proc/self/stat (field 22, clock ticks after boot), or 0 when unavailable.
double StatStartTime() {
  std::ifstream stat_file("/proc/self/stat");
  std::string line;
  std::getline(stat_file, line);
  // The command name (field 2) is parenthesised and may hold spaces: parse after the last ')'.
  const std::size_t close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && rest >> field; ++i) {
    if (i == 22) {
      const double ticks = std::stod(field);
      return ticks > 0 ? BootTime() + ticks / static_cast<double>(sysconf(_SC_CLK_TCK)) : 0;
    }
  }
  return 0;
}

}  // namespace

ProcessStats ReadProcessStats() {
  ProcessStats s;
  timespec cpu{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
  s.cpu_seconds = static_cast<double>(cpu.tv_sec) + cpu.tv_nsec * 1e-9;
  ReadStatus(s);
  const double start = StatStartTime();
  s.start_time_seconds = start > 0 ? start : kLoadTime;
  s.open_fds = CountOpenFds();
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) s.max_fds = static_cast<int64_t>(limit.rlim_cur);
  return s;
}

}  // namespace coreserve
