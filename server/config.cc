#include "server/config.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "runtime/status_macros.h"
#include "server/yaml_util.h"

namespace coreserve {
namespace {

namespace fs = std::filesystem;

std::string Resolve(const std::string& path, const std::string& base_dir) {
  const fs::path p(path);
  if (p.is_absolute() || base_dir.empty()) return p.lexically_normal().string();
  return (fs::path(base_dir) / p).lexically_normal().string();
}

absl::StatusOr<TlsConfig> ReadTls(const YAML::Node& node, const std::string& source, const std::string& key,
                                  const std::string& base_dir) {
  if (!node.IsMap()) {
    return KeyError(source, key, absl::StrCat("expected a mapping with cert_file and key_file, got ", Describe(node)));
  }
  RETURN_IF_ERROR(CheckKeys(node, source, key, {"cert_file", "key_file", "client_ca_file"}));
  TlsConfig tls;
  std::string* const fields[] = {&tls.cert_file, &tls.key_file, &tls.client_ca_file};
  const char* const names[] = {"cert_file", "key_file", "client_ca_file"};
  for (int i = 0; i < 3; ++i) {
    if (const YAML::Node file = node[names[i]]) {
      ASSIGN_OR_RETURN(std::string path, ReadString(file, source, absl::StrCat(key, ".", names[i])));
      *fields[i] = Resolve(path, base_dir);
    }
  }
  if (tls.cert_file.empty() || tls.key_file.empty()) {
    return KeyError(source, key, "needs both cert_file and key_file");
  }
  return tls;
}

absl::StatusOr<ListenerConfig> ReadListener(const YAML::Node& node, const std::string& source,
                                            const std::string& key, ListenerConfig value,
                                            const std::string& base_dir) {
  if (!node.IsMap()) return KeyError(source, key, absl::StrCat("expected a mapping with address and port, got ",
                                                               Describe(node)));
  RETURN_IF_ERROR(CheckKeys(node, source, key, {"address", "port", "tls"}));
  if (const YAML::Node tls = node["tls"]) {
    ASSIGN_OR_RETURN(value.tls, ReadTls(tls, source, key + ".tls", base_dir));
  }
  if (node["address"]) {
    ASSIGN_OR_RETURN(value.address, ReadString(node["address"], source, key + ".address"));
  }
  if (const YAML::Node port = node["port"]) {
    int parsed = -1;
    if (!port.IsScalar() || !YAML::convert<int>::decode(port, parsed) || parsed < 0 || parsed > 65535) {
      return KeyError(source, key + ".port",
                      absl::StrCat("expected an integer from 0 to 65535, got ", Describe(port)));
    }
    value.port = parsed;
  }
  return value;
}

}  // namespace

absl::StatusOr<ServerConfig> ParseServerConfig(const std::string& yaml, const std::string& source,
                                               const std::string& base_dir) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ":", e.mark.line + 1, ":", e.mark.column + 1, ": YAML syntax error: ", e.msg));
  }
  ServerConfig config;
  if (root.IsNull()) return config;  // an empty file means every default
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": expected a mapping of keys at the top level"));
  }
  try {
    RETURN_IF_ERROR(CheckKeys(root, source, "",
                              {"http", "grpc", "metrics", "model_repository", "log_level",
                               "shutdown_grace_seconds", "model_defaults", "model_control", "model_poll_seconds",
                               "model_control_token_file", "max_request_bytes", "hourly_price"}));
    if (root["http"]) { ASSIGN_OR_RETURN(config.http, ReadListener(root["http"], source, "http", config.http, base_dir)); }
    if (root["grpc"]) { ASSIGN_OR_RETURN(config.grpc, ReadListener(root["grpc"], source, "grpc", config.grpc, base_dir)); }
    if (root["metrics"]) {
      ASSIGN_OR_RETURN(config.metrics, ReadListener(root["metrics"], source, "metrics", config.metrics, base_dir));
    }
    if (const YAML::Node repo = root["model_repository"]) {
      if (repo.IsScalar()) {
        ASSIGN_OR_RETURN(std::string path, ReadString(repo, source, "model_repository"));
        config.model_repositories.push_back(Resolve(path, base_dir));
      } else if (repo.IsSequence()) {
        for (std::size_t i = 0; i < repo.size(); ++i) {
          ASSIGN_OR_RETURN(std::string path,
                           ReadString(repo[i], source, absl::StrCat("model_repository[", i, "]")));
          config.model_repositories.push_back(Resolve(path, base_dir));
        }
      } else {
        return KeyError(source, "model_repository",
                        absl::StrCat("expected a path or a list of paths, got ", Describe(repo)));
      }
    }
    if (const YAML::Node level = root["log_level"]) {
      ASSIGN_OR_RETURN(std::string name, ReadString(level, source, "log_level"));
      auto parsed = ParseLogLevel(name);
      if (!parsed.ok()) return KeyError(source, "log_level", std::string(parsed.status().message()));
      config.log_level = *parsed;
    }
    if (const YAML::Node grace = root["shutdown_grace_seconds"]) {
      double seconds = -1;
      if (!grace.IsScalar() || !YAML::convert<double>::decode(grace, seconds) || !(seconds >= 0) ||
          seconds > 3600) {
        return KeyError(source, "shutdown_grace_seconds",
                        absl::StrCat("expected a number of seconds from 0 to 3600, got ", Describe(grace)));
      }
      config.shutdown_grace_seconds = seconds;
    }
    if (const YAML::Node limit = root["max_request_bytes"]) {
      ASSIGN_OR_RETURN(config.max_request_bytes, ReadInt(limit, source, "max_request_bytes", 1024, int64_t{16} << 30));
    }
    if (const YAML::Node control = root["model_control"]) {
      ASSIGN_OR_RETURN(std::string mode, ReadString(control, source, "model_control"));
      if (mode == "none") {
        config.model_control = ModelControlMode::kNone;
      } else if (mode == "explicit") {
        config.model_control = ModelControlMode::kExplicit;
      } else if (mode == "poll") {
        config.model_control = ModelControlMode::kPoll;
      } else {
        return KeyError(source, "model_control", absl::StrCat("expected none, explicit or poll, got '", mode, "'"));
      }
    }
    if (const YAML::Node token = root["model_control_token_file"]) {
      ASSIGN_OR_RETURN(std::string path, ReadString(token, source, "model_control_token_file"));
      config.model_control_token_file = Resolve(path, base_dir);
    }
    if (const YAML::Node poll = root["model_poll_seconds"]) {
      double seconds = -1;
      if (!poll.IsScalar() || !YAML::convert<double>::decode(poll, seconds) || !(seconds >= 0.1) || seconds > 86400) {
        return KeyError(source, "model_poll_seconds",
                        absl::StrCat("expected a number of seconds from 0.1 to 86400, got ", Describe(poll)));
      }
      config.model_poll_seconds = seconds;
    }
    if (const YAML::Node price = root["hourly_price"]) {
      double value = -1;
      if (!price.IsScalar() || !YAML::convert<double>::decode(price, value) || !(value >= 0) || value > 1e6) {
        return KeyError(source, "hourly_price", absl::StrCat("expected a price per hour from 0 to 1000000, got ",
                                                             Describe(price)));
      }
      config.hourly_price = value;
    }
    if (const YAML::Node defaults = root["model_defaults"]) {
      ASSIGN_OR_RETURN(config.model_defaults, ReadModelConfig(defaults, source, "model_defaults", config.model_defaults));
    }
  } catch (const YAML::Exception& e) {
    // Anything the checks above did not anticipate (e.g. a non-scalar mapping key) still names the file.
    return absl::InvalidArgumentError(
        absl::StrCat(source, ":", e.mark.line + 1, ":", e.mark.column + 1, ": ", e.msg));
  }
  RETURN_IF_ERROR(ValidateServerConfig(config, source));
  return config;
}

absl::Status ValidateServerConfig(const ServerConfig& c, const std::string& source) {
  const std::pair<const char*, int> ports[] = {{"http", c.http.port}, {"grpc", c.grpc.port},
                                               {"metrics", c.metrics.port}};
  for (std::size_t i = 0; i < 3; ++i) {
    for (std::size_t j = i + 1; j < 3; ++j) {
      if (ports[i].second != 0 && ports[i].second == ports[j].second) {
        return absl::InvalidArgumentError(absl::StrCat(source, ": ", ports[i].first, ".port and ", ports[j].first,
                                                       ".port are both ", ports[i].second,
                                                       "; each listener needs its own port"));
      }
    }
  }
  if (c.model_control != ModelControlMode::kNone && c.model_control_token_file.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": model_control: ", c.model_control == ModelControlMode::kPoll ? "poll" : "explicit",
        " turns on the repository API (load, unload), which needs model_control_token_file: a file holding the "
        "bearer token its clients must send"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ServerConfig> LoadServerConfig(const std::string& path) {
  std::ifstream file(path);
  if (!file) return absl::NotFoundError(absl::StrCat(path, ": cannot read config file"));
  std::stringstream text;
  text << file.rdbuf();
  return ParseServerConfig(text.str(), path, fs::path(path).parent_path().string());
}

}  // namespace coreserve
