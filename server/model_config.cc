#include "server/model_config.h"

#include <filesystem>
#include <limits>
#include <fstream>
#include <sstream>

#include "runtime/status_macros.h"
#include "server/yaml_util.h"

namespace coreserve {

absl::StatusOr<kernels::GemmPrecision> ParsePrecision(std::string_view name) {
  if (name == "fp32") return kernels::GemmPrecision::kFp32;
  if (name == "bf16") return kernels::GemmPrecision::kBf16;
  if (name == "int8") return kernels::GemmPrecision::kInt8;
  return absl::InvalidArgumentError(absl::StrCat("'", std::string(name), "' is not a precision (allowed: fp32, bf16, int8)"));
}

const char* PrecisionName(kernels::GemmPrecision precision) {
  switch (precision) {
    case kernels::GemmPrecision::kBf16: return "bf16";
    case kernels::GemmPrecision::kInt8: return "int8";
    case kernels::GemmPrecision::kFp32: break;
  }
  return "fp32";
}

namespace {

// warmup: a list of {shapes: {input: [dims]}, count: N}.
absl::StatusOr<std::vector<WarmupRun>> ReadWarmup(const YAML::Node& node, const std::string& source,
                                                  const std::string& key) {
  if (!node.IsSequence()) return KeyError(source, key, absl::StrCat("expected a list of runs, got ", Describe(node)));
  std::vector<WarmupRun> runs;
  for (std::size_t i = 0; i < node.size(); ++i) {
    const std::string at = absl::StrCat(key, "[", i, "]");
    const YAML::Node run = node[i];
    if (!run.IsMap()) return KeyError(source, at, absl::StrCat("expected a mapping, got ", Describe(run)));
    RETURN_IF_ERROR(CheckKeys(run, source, at, {"shapes", "count"}));
    WarmupRun w;
    if (const YAML::Node c = run["count"]) {
      ASSIGN_OR_RETURN(w.count, ReadInt(c, source, at + ".count", 1, 1000));
    }
    if (const YAML::Node shapes = run["shapes"]) {
      if (!shapes.IsMap()) {
        return KeyError(source, at + ".shapes", absl::StrCat("expected a mapping of input names to shapes, got ",
                                                             Describe(shapes)));
      }
      for (const auto& item : shapes) {
        const std::string name = item.first.as<std::string>();
        const std::string dims_key = absl::StrCat(at, ".shapes.", name);
        if (!item.second.IsSequence()) {
          return KeyError(source, dims_key, absl::StrCat("expected a list of dims, got ", Describe(item.second)));
        }
        std::vector<int64_t> dims;
        for (std::size_t d = 0; d < item.second.size(); ++d) {
          ASSIGN_OR_RETURN(int64_t dim, ReadInt(item.second[d], source, absl::StrCat(dims_key, "[", d, "]"), 0, 1 << 24));
          dims.push_back(dim);
        }
        w.shapes.emplace_back(name, std::move(dims));
      }
    }
    runs.push_back(std::move(w));
  }
  return runs;
}

// inputs / outputs: {NAME: {dims: [d, ...]}} with each d -1 (any) or a size.
absl::StatusOr<std::vector<TensorOverride>> ReadOverrides(const YAML::Node& node, const std::string& source,
                                                          const std::string& key) {
  if (!node.IsMap()) return KeyError(source, key, absl::StrCat("expected a mapping of tensor names, got ", Describe(node)));
  std::vector<TensorOverride> out;
  for (const auto& item : node) {
    TensorOverride t;
    t.name = item.first.as<std::string>();
    const std::string at = absl::StrCat(key, ".", t.name);
    if (!item.second.IsMap()) return KeyError(source, at, absl::StrCat("expected a mapping, got ", Describe(item.second)));
    RETURN_IF_ERROR(CheckKeys(item.second, source, at, {"dims"}));
    const YAML::Node dims = item.second["dims"];
    if (!dims || !dims.IsSequence()) {
      return KeyError(source, at + ".dims", absl::StrCat("expected a list of dims (-1: any), got ",
                                                         dims ? Describe(dims) : std::string("nothing")));
    }
    for (std::size_t d = 0; d < dims.size(); ++d) {
      ASSIGN_OR_RETURN(int64_t dim, ReadInt(dims[d], source, absl::StrCat(at, ".dims[", d, "]"), -1, int64_t{1} << 40));
      t.dims.push_back(dim);
    }
    out.push_back(std::move(t));
  }
  return out;
}

// version_policy: all | {latest: N} | {specific: [versions]}.
absl::StatusOr<VersionPolicy> ReadVersionPolicy(const YAML::Node& node, const std::string& source,
                                                const std::string& key) {
  VersionPolicy policy;
  const std::string expected = "expected all, {latest: N} or {specific: [versions]}, got ";
  if (node.IsScalar() && node.Scalar() == "all") {
    policy.kind = VersionPolicy::Kind::kAll;
    return policy;
  }
  if (!node.IsMap() || node.size() != 1) return KeyError(source, key, absl::StrCat(expected, Describe(node)));
  RETURN_IF_ERROR(CheckKeys(node, source, key, {"latest", "specific"}));
  if (const YAML::Node latest = node["latest"]) {
    policy.kind = VersionPolicy::Kind::kLatest;
    ASSIGN_OR_RETURN(policy.latest, ReadInt(latest, source, key + ".latest", 1, 1000));
    return policy;
  }
  const YAML::Node specific = node["specific"];
  if (!specific.IsSequence() || specific.size() == 0) {
    return KeyError(source, key + ".specific", absl::StrCat("expected a non-empty list of versions, got ",
                                                            Describe(specific)));
  }
  policy.kind = VersionPolicy::Kind::kSpecific;
  for (std::size_t i = 0; i < specific.size(); ++i) {
    ASSIGN_OR_RETURN(int64_t v, ReadInt(specific[i], source, absl::StrCat(key, ".specific[", i, "]"), 1,
                                        std::numeric_limits<int64_t>::max()));
    policy.versions.push_back(v);
  }
  return policy;
}

}  // namespace

absl::StatusOr<ModelConfig> ReadModelConfig(const YAML::Node& node, const std::string& source,
                                            const std::string& where, ModelConfig config) {
  if (node.IsNull()) return config;  // an empty file or mapping: every default
  if (!node.IsMap()) {
    return KeyError(source, where.empty() ? "(top level)" : where,
                    absl::StrCat("expected a mapping of keys, got ", Describe(node)));
  }
  const std::string prefix = where.empty() ? "" : where + ".";
  try {
    RETURN_IF_ERROR(CheckKeys(node, source, where,
                              {"precision", "threads", "groups", "pipeline", "share_cores", "max_batch_size", "max_queue_size",
                               "dynamic_batching",
                               "warmup", "version_policy", "inputs", "outputs"}));
    if (const YAML::Node p = node["precision"]) {
      ASSIGN_OR_RETURN(std::string name, ReadString(p, source, prefix + "precision"));
      auto precision = ParsePrecision(name);
      if (!precision.ok()) return KeyError(source, prefix + "precision", std::string(precision.status().message()));
      config.precision = *precision;
    }
    if (const YAML::Node t = node["threads"]) {
      ASSIGN_OR_RETURN(config.threads, ReadInt(t, source, prefix + "threads", 0, 1024));
    }
    if (const YAML::Node g = node["groups"]) {
      if (!g.IsSequence() || g.size() == 0) {
        return KeyError(source, prefix + "groups", absl::StrCat("expected a non-empty list of core counts, got ", Describe(g)));
      }
      config.groups.clear();
      for (std::size_t i = 0; i < g.size(); ++i) {
        ASSIGN_OR_RETURN(int64_t cores, ReadInt(g[i], source, absl::StrCat(prefix, "groups[", i, "]"), 1, 1024));
        config.groups.push_back(cores);
      }
    }
    if (const YAML::Node share = node["share_cores"]) {
      ASSIGN_OR_RETURN(config.share_cores, ReadBool(share, source, prefix + "share_cores"));
    }
    if (const YAML::Node p = node["pipeline"]) {
      const std::string key = prefix + "pipeline";
      if (!p.IsMap()) return KeyError(source, key, absl::StrCat("expected a mapping, got ", Describe(p)));
      RETURN_IF_ERROR(CheckKeys(p, source, key, {"stages", "cores_per_stage", "copies"}));
      if (!p["stages"]) return KeyError(source, key + ".stages", "is required (2 or more)");
      ASSIGN_OR_RETURN(config.pipeline.stages, ReadInt(p["stages"], source, key + ".stages", 2, 64));
      if (p["cores_per_stage"]) {
        ASSIGN_OR_RETURN(config.pipeline.cores_per_stage,
                         ReadInt(p["cores_per_stage"], source, key + ".cores_per_stage", 1, 1024));
      }
      if (p["copies"]) {
        ASSIGN_OR_RETURN(config.pipeline.copies, ReadInt(p["copies"], source, key + ".copies", 1, 1024));
      }
    }
    if (const YAML::Node b = node["max_batch_size"]) {
      ASSIGN_OR_RETURN(config.max_batch_size, ReadInt(b, source, prefix + "max_batch_size", 0, 1 << 20));
    }
    if (const YAML::Node q = node["max_queue_size"]) {
      ASSIGN_OR_RETURN(config.max_queue_size, ReadInt(q, source, prefix + "max_queue_size", 0, 1 << 20));
    }
    if (const YAML::Node t = node["inputs"]) {
      ASSIGN_OR_RETURN(config.inputs, ReadOverrides(t, source, prefix + "inputs"));
    }
    if (const YAML::Node t = node["outputs"]) {
      ASSIGN_OR_RETURN(config.outputs, ReadOverrides(t, source, prefix + "outputs"));
    }
    if (const YAML::Node v = node["version_policy"]) {
      ASSIGN_OR_RETURN(config.version_policy, ReadVersionPolicy(v, source, prefix + "version_policy"));
    }
    if (const YAML::Node w = node["warmup"]) {
      ASSIGN_OR_RETURN(config.warmup, ReadWarmup(w, source, prefix + "warmup"));
    }
    if (const YAML::Node b = node["dynamic_batching"]) {
      const std::string key = prefix + "dynamic_batching";
      config.dynamic_batching = true;
      if (!b.IsNull()) {  // `dynamic_batching: {}` or an empty value: batching with every default
        if (!b.IsMap()) return KeyError(source, key, absl::StrCat("expected a mapping, got ", Describe(b)));
        RETURN_IF_ERROR(CheckKeys(b, source, key,
                                  {"preferred_batch_sizes", "max_queue_delay_us", "default_timeout_us",
                                   "priority_levels", "default_priority_level", "pad_sequences"}));
        if (const YAML::Node p = b["preferred_batch_sizes"]) {
          if (!p.IsSequence()) {
            return KeyError(source, key + ".preferred_batch_sizes", absl::StrCat("expected a list, got ", Describe(p)));
          }
          config.preferred_batch_sizes.clear();
          for (std::size_t i = 0; i < p.size(); ++i) {
            ASSIGN_OR_RETURN(int64_t size,
                             ReadInt(p[i], source, absl::StrCat(key, ".preferred_batch_sizes[", i, "]"), 1, 1 << 20));
            config.preferred_batch_sizes.push_back(size);
          }
        }
        const int64_t kMinute = int64_t{60} * 1000 * 1000;
        if (b["max_queue_delay_us"]) {
          ASSIGN_OR_RETURN(config.max_queue_delay_us, ReadInt(b["max_queue_delay_us"], source, key + ".max_queue_delay_us", 0, kMinute));
        }
        if (b["default_timeout_us"]) {
          ASSIGN_OR_RETURN(config.default_timeout_us,
                           ReadInt(b["default_timeout_us"], source, key + ".default_timeout_us", 0, 60 * kMinute));
        }
        if (b["priority_levels"]) {
          ASSIGN_OR_RETURN(config.priority_levels, ReadInt(b["priority_levels"], source, key + ".priority_levels", 0, 1000));
        }
        if (b["pad_sequences"]) {
          ASSIGN_OR_RETURN(config.pad_sequences, ReadBool(b["pad_sequences"], source, key + ".pad_sequences"));
        }
        if (b["default_priority_level"]) {
          ASSIGN_OR_RETURN(config.default_priority_level,
                           ReadInt(b["default_priority_level"], source, key + ".default_priority_level", 0, 1000));
        }
      }
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ":", e.mark.line + 1, ":", e.mark.column + 1, ": ", e.msg));
  }
  // Rules across keys.
  if (config.pipeline.stages > 0 && (!config.groups.empty() || config.threads != 0)) {
    return KeyError(source, prefix + "pipeline", "set one layout: pipeline, groups or threads");
  }
  if (!config.groups.empty() && config.threads != 0) {
    return KeyError(source, prefix + "threads", "set either threads (one instance) or groups (an instance per group), "
                                               "not both");
  }
  const std::string batching = prefix + "dynamic_batching";
  if (config.dynamic_batching && config.max_batch_size == 0) {
    return KeyError(source, batching, "needs max_batch_size > 0 (the largest batch it may form)");
  }
  for (int64_t size : config.preferred_batch_sizes) {
    if (size > config.max_batch_size) {
      return KeyError(source, batching + ".preferred_batch_sizes",
                      absl::StrCat(size, " is larger than max_batch_size ", config.max_batch_size));
    }
  }
  if (config.default_priority_level > config.priority_levels) {
    return KeyError(source, batching + ".default_priority_level",
                    absl::StrCat("expected 0 to priority_levels (", config.priority_levels, "), got ",
                                 config.default_priority_level));
  }
  return config;
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir, const ModelConfig& defaults) {
  const std::string path = (std::filesystem::path(model_dir) / "config.yaml").string();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return defaults;
  std::ifstream file(path);
  if (!file) return absl::NotFoundError(absl::StrCat(path, ": cannot read model config"));
  std::stringstream text;
  text << file.rdbuf();
  YAML::Node root;
  try {
    root = YAML::Load(text.str());
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ":", e.mark.line + 1, ":", e.mark.column + 1, ": YAML syntax error: ", e.msg));
  }
  return ReadModelConfig(root, path, "", defaults);
}

}  // namespace coreserve
