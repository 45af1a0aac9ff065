// The CPUs this process may use and how a model's core groups are laid onto them.
#pragma once

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

}  // namespace coreserve
