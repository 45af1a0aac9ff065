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

CoreAllocator& CoreAllocator::Global() {
  static CoreAllocator* allocator = new CoreAllocator();
  return *allocator;
}

absl::StatusOr<CoreAllocator::Reservation> CoreAllocator::Reserve(const std::string& model,
                                                                  const std::vector<int64_t>& sizes, bool share,
                                                                  const std::vector<int>& cpus) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<int> free;
  std::map<std::string, std::vector<int>> others;  // holders of the CPUs that are not free, for the message
  for (int c : cpus) {
    bool taken = false;
    for (const auto& [holder, count] : held_[c]) {
      if (holder != model && count > 0 && !share) {
        taken = true;
        others[holder].push_back(c);
      }
    }
    if (!taken) free.push_back(c);
  }
  auto groups = LayGroups(sizes, free);
  if (!groups.ok()) {
    std::string message(LayGroups(sizes, cpus).status().message());  // the layout against every usable CPU
    if (message.empty()) {  // it fits the usable CPUs, but not those left free
      std::vector<std::string> layout;
      for (int64_t s : sizes) layout.push_back(std::to_string(s));
      message = absl::StrCat("groups [", absl::StrJoin(layout, ", "), "] need ",
                             std::accumulate(sizes.begin(), sizes.end(), int64_t{0}), " cores, but only ", free.size(),
                             " of the server's ", cpus.size(), " are free (CPUs ", absl::StrJoin(free, ","), ")");
    }
    if (!others.empty()) {
      std::vector<std::string> holders;
      for (const auto& [holder, held] : others) holders.push_back(absl::StrCat(holder, " (CPUs ", absl::StrJoin(held, ","), ")"));
      absl::StrAppend(&message, "; other models' groups hold the rest: ", absl::StrJoin(holders, ", "),
                      " (share_cores: true lets a model's groups overlap them)");
    }
    return absl::InvalidArgumentError(message);
  }
  Reservation r;
  r.groups = *std::move(groups);
  if (share) return r;
  std::vector<int> mine;
  for (const auto& g : r.groups) mine.insert(mine.end(), g.begin(), g.end());
  for (int c : mine) ++held_[c][model];
  ++generation_;
  r.hold = std::shared_ptr<void>(nullptr, [this, model, mine](void*) {
    std::lock_guard<std::mutex> lock(mu_);
    for (int c : mine) --held_[c][model];
    ++generation_;
  });
  return r;
}

std::vector<int> CoreAllocator::Unheld(const std::vector<int>& cpus, uint64_t* generation) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<int> free;
  for (int c : cpus) {
    const auto it = held_.find(c);
    bool taken = false;
    if (it != held_.end()) {
      for (const auto& [holder, count] : it->second) taken |= count > 0;
    }
    if (!taken) free.push_back(c);
  }
  if (generation) *generation = generation_.load();
  return free;
}

}  // namespace coreserve
