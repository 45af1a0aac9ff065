// The CPUs this process may use and how a model's core groups are laid onto them.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace coreserve {

// The CPUs the process may run on (its affinity set, which a container's cpuset narrows), cut to its cgroup CPU
// quota rounded up (cgroup v2 cpu.max, or v1 cpu.cfs_quota_us / cpu.cfs_period_us), so a container limited to 2
// CPUs sees 2. Ascending; at least one.
std::vector<int> UsableCpus();
inline int AvailableCpus() { return static_cast<int>(UsableCpus().size()); }

// The CPUs a quota allows: ceil(quota / period) from cgroup v2's cpu.max text ("200000 100000"); nullopt for
// "max" (no limit) or text it cannot read.
std::optional<int> CpusFromCpuMax(const std::string& cpu_max);

// Consecutive CPUs of `cpus` for each group of `sizes` cores, in order: group g gets the sizes[g] CPUs after those
// of the groups before it. InvalidArgument naming the layout and the CPUs available when they do not suffice.
absl::StatusOr<std::vector<std::vector<int>>> LayGroups(const std::vector<int64_t>& sizes, const std::vector<int>& cpus);

// The CPUs the models' core groups hold, so that no two models' groups share a core unless a model's config says
// it may (share_cores). Versions of one model (a reload, or several served versions) share their model's CPUs.
// Thread-safe; one per process.
class CoreAllocator {
 public:
  static CoreAllocator& Global();

  struct Reservation {
    std::vector<std::vector<int>> groups;  // the CPUs of each group
    std::shared_ptr<void> hold;            // the CPUs are held until the last copy of this goes
  };
  // Lays `sizes` onto the usable CPUs (`cpus`) that no other model holds — or, with `share`, onto the first of
  // them regardless, holding none. InvalidArgument naming the layout, the CPUs and the models holding the
  // others when they do not suffice.
  absl::StatusOr<Reservation> Reserve(const std::string& model, const std::vector<int64_t>& sizes, bool share,
                                      const std::vector<int>& cpus);
  // The CPUs of `cpus` that no model's groups hold; `generation` receives the generation it was read at.
  std::vector<int> Unheld(const std::vector<int>& cpus, uint64_t* generation) const;
  // Changes whenever a reservation is made or released (so callers can tell that Unheld may have changed).
  uint64_t generation() const { return generation_.load(); }

 private:
  mutable std::mutex mu_;
  std::atomic<uint64_t> generation_{1};
  std::map<int, std::map<std::string, int>> held_;  // cpu -> model -> reservations
};

}  // namespace coreserve
