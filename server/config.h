// The server configuration: YAML parsed into a plain struct and validated once.
//
// Every default lives in the member initializers below and every key is documented in docs/CONFIG.md.
// Errors name the file, the key and the allowed values, e.g.
//   "config/x.yaml: http.port: expected an integer from 0 to 65535, got 'abc'".
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/log.h"
#include "server/model_config.h"

namespace coreserve {

// A listener's TLS: the certificate and key it presents and, for mutual TLS, the CAs its clients' certificates
// must be signed by. PEM files, read when the server starts (server/tls.h checks them and names the bad key).
struct TlsConfig {
  std::string cert_file;       // the certificate chain, leaf first
  std::string key_file;        // the leaf's private key (unencrypted)
  std::string client_ca_file;  // empty: clients are not asked for a certificate
  bool enabled() const { return !cert_file.empty(); }
};

struct ListenerConfig {
  std::string address;
  int port = 0;  // 0 asks the OS for a free port; the bound port is logged at start
  TlsConfig tls;
};

// How the repository may change while serving (server/model_control.h): not at all, by the repository API's
// load and unload requests, or also by polling the repository folders for new versions and configs.
enum class ModelControlMode { kNone, kExplicit, kPoll };

struct ServerConfig {
  ListenerConfig http{"127.0.0.1", 8000, {}};
  ListenerConfig grpc{"127.0.0.1", 8001, {}};
  ListenerConfig metrics{"127.0.0.1", 8002, {}};
  // Folders holding <model>/<version>/model.onnx. Relative paths in a file are resolved against the
  // folder of that file, so a config means the same thing whatever the working directory.
  std::vector<std::string> model_repositories;
  LogLevel log_level = LogLevel::kInfo;
  // On SIGTERM: how long in-flight work may take before the listeners are closed regardless.
  double shutdown_grace_seconds = 30.0;
  // What a model's config.yaml does not say (its keys, under `model_defaults`).
  ModelConfig model_defaults;
  // The largest HTTP request body; a larger Content-Length is refused with 413 before the body is read.
  int64_t max_request_bytes = int64_t{512} << 20;
  ModelControlMode model_control = ModelControlMode::kNone;
  // The file holding the bearer token the repository API (index, load, unload) requires; required when
  // model_control is explicit or poll. Read again on every such request, so a rotated secret takes effect
  // without a restart; its contents are never logged.
  std::string model_control_token_file;
  double model_poll_seconds = 10.0;  // with model_control: poll, the period of the repository scan
  // What this host (or the container's share of it) costs per hour, in any currency; > 0 exports each model's
  // cost per million inferences.
  double hourly_price = 0;
};

// Reads and validates the YAML file at `path`.
absl::StatusOr<ServerConfig> LoadServerConfig(const std::string& path);

// Parses YAML text; `source` names it in error messages and `base_dir` resolves relative paths.
absl::StatusOr<ServerConfig> ParseServerConfig(const std::string& yaml, const std::string& source,
                                               const std::string& base_dir);

// Checks the invariants that span several keys (distinct ports); used after command-line overrides too.
absl::Status ValidateServerConfig(const ServerConfig& config, const std::string& source);

}  // namespace coreserve
