// Reading YAML config files with errors that name the file, the key and what was expected: shared by the server
// config (config.cc) and the per-model config (model_config.cc).
#pragma once

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace coreserve {

// Error helper: every message starts with "<source>: <key>: ".
inline absl::Status KeyError(const std::string& source, const std::string& key, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": ", key, ": ", what));
}

inline std::string Describe(const YAML::Node& node) {
  if (node.IsScalar()) return absl::StrCat("'", node.Scalar(), "'");
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a mapping";
  return "nothing";
}

inline absl::Status CheckKeys(const YAML::Node& map, const std::string& source, const std::string& where,
                              const std::vector<std::string>& allowed) {
  for (const auto& item : map) {
    const std::string key = item.first.as<std::string>();
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": unknown key '", where.empty() ? "" : where + ".",
                                                     key, "' (allowed: ", absl::StrJoin(allowed, ", "), ")"));
    }
  }
  return absl::OkStatus();
}

inline absl::StatusOr<std::string> ReadString(const YAML::Node& node, const std::string& source,
                                              const std::string& key) {
  if (!node.IsScalar() || node.Scalar().empty()) {
    return KeyError(source, key, absl::StrCat("expected a non-empty string, got ", Describe(node)));
  }
  return node.Scalar();
}

// An integer in [lo, hi].
inline absl::StatusOr<int64_t> ReadInt(const YAML::Node& node, const std::string& source, const std::string& key,
                                       int64_t lo, int64_t hi) {
  int64_t value = 0;
  if (!node.IsScalar() || !YAML::convert<int64_t>::decode(node, value) || value < lo || value > hi) {
    return KeyError(source, key, absl::StrCat("expected an integer from ", lo, " to ", hi, ", got ", Describe(node)));
  }
  return value;
}

// true or false (YAML's spellings of a boolean).
inline absl::StatusOr<bool> ReadBool(const YAML::Node& node, const std::string& source, const std::string& key) {
  bool value = false;
  if (!node.IsScalar() || !YAML::convert<bool>::decode(node, value)) {
    return KeyError(source, key, absl::StrCat("expected true or false, got ", Describe(node)));
  }
  return value;
}

}  // namespace coreserve
