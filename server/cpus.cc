#include "server/cpus.h"

#include <sched.h>

#include <fstream>
#include <numeric>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace coreserve {
namespace {

std::string ReadFile(const char* path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// cgroup v1: cpu.cfs_quota_us (-1: none) over cpu.cfs_period_us.
std::optional<int> CpusFromCfs(const std::string& quota_text, const std::string& period_text) {
  int64_t quota = 0, period = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(quota_text), &quota) ||
      !absl::SimpleAtoi(absl::StripAsciiWhitespace(period_text), &period) || quota <= 0 || period <= 0) {
    return std::nullopt;
  }
  return static_cast<int>((quota + period - 1) / period);
}

}  // namespace

std::optional<int> CpusFromCpuMax(const std::string& cpu_max) {
  std::istringstream in(cpu_max);
  std::string quota, period;
  if (!(in >> quota >> period) || quota == "max") return std::nullopt;
  return CpusFromCfs(quota, period);
}

std::vector<int> UsableCpus() {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
    }
  }
  if (cpus.empty()) cpus.push_back(0);
  std::optional<int> quota = CpusFromCpuMax(ReadFile("/sys/fs/cgroup/cpu.max"));
  if (!quota) quota = CpusFromCfs(ReadFile("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), ReadFile("/sys/fs/cgroup/cpu/cpu.cfs_period_us"));
  if (quota && *quota >= 1 && static_cast<std::size_t>(*quota) < cpus.size()) cpus.resize(*quota);
  return cpus;
}

absl::StatusOr<std::vector<std::vector<int>>> LayGroups(const std::vector<int64_t>& sizes, const std::vector<int>& cpus) {
  const int64_t needed = std::accumulate(sizes.begin(), sizes.end(), int64_t{0});
  if (needed > static_cast<int64_t>(cpus.size())) {
    std::vector<std::string> layout;
    for (int64_t s : sizes) layout.push_back(std::to_string(s));
    return absl::InvalidArgumentError(absl::StrCat("groups [", absl::StrJoin(layout, ", "), "] need ", needed,
                                                   " cores, but the server may use ", cpus.size(), " (CPUs ",
                                                   absl::StrJoin(cpus, ","), ")"));
  }
  std::vector<std::vector<int>> groups;
  std::size_t next = 0;
  for (int64_t s : sizes) {
    groups.emplace_back(cpus.begin() + next, cpus.begin() + next + s);
    next += s;
  }
  return groups;
}

}  // namespace coreserve
