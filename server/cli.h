// The command line: `coreserve [--help|--version]` and `coreserve serve --config FILE [overrides]`.
//
// Flags are declared once in a table that both the parser and the help text read, so the help always
// lists every flag. Parsing is pure (no I/O), so it is tested directly.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace coreserve {

struct ServeOptions {
  std::string config_path;
  std::optional<std::string> http_port, grpc_port, metrics_port;
  std::vector<std::string> model_repositories;  // replaces the config's list when non-empty
  std::optional<std::string> log_level;
};

struct CommandLine {
  enum class Command { kHelp, kVersion, kServe, kServeHelp };
  Command command = Command::kHelp;
  ServeOptions serve;
};

// InvalidArgument with a one-line message (unknown command or flag, missing value) on bad input.
absl::StatusOr<CommandLine> ParseCommandLine(const std::vector<std::string>& args);

std::string MainHelp();
std::string ServeHelp();

}  // namespace coreserve

#include "server/config.h"

namespace coreserve {

// Applies the command-line overrides to a loaded config and re-validates it; errors name the flag.
absl::Status ApplyServeOverrides(const ServeOptions& options, ServerConfig* config);

}  // namespace coreserve
