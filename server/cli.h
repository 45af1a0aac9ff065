// The command line:
//   coreserve [--help | --version]
//   coreserve serve --config FILE [overrides]
//   coreserve run MODEL.onnx --input NAME=FILE.npy ... --output-dir DIR [--precision P] [--threads N]
//   coreserve inspect MODEL.onnx [--shape NAME=DxD...] [--values]
//   coreserve tune MODEL --cores N [--batch 1,6] [--seq 128] [--precision fp32,bf16] [--hourly-price X] [--budget 60s]
//
// Each command's flags are declared once in a table that both the parser and the help text read, so the help
// always lists every flag. Parsing is pure (no I/O), so it is tested directly.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "server/config.h"
#include "server/tune.h"

namespace coreserve {

struct ServeOptions {
  std::string config_path;
  std::optional<std::string> http_port, grpc_port, metrics_port;
  std::vector<std::string> model_repositories;  // replaces the config's list when non-empty
  std::optional<std::string> log_level;
};

struct RunOptions {
  std::string model;
  std::vector<std::pair<std::string, std::string>> inputs;  // input name -> .npy path
  std::string output_dir;
  std::string precision = "fp32";
  std::optional<std::string> threads;
};

struct InspectOptions {
  std::string model;
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes;  // input name -> shape, for the memory plan
  bool values = false;  // list every value's inferred type and shape
};

struct CommandLine {
  enum class Command { kHelp, kVersion, kServe, kRun, kInspect, kTune, kCommandHelp };
  Command command = Command::kHelp;
  std::string help_text;  // for kHelp and kCommandHelp
  ServeOptions serve;
  RunOptions run;
  InspectOptions inspect;
  TuneOptions tune;
};

// InvalidArgument with a one-line message (unknown command or flag, missing value or argument) on bad input.
absl::StatusOr<CommandLine> ParseCommandLine(const std::vector<std::string>& args);

std::string MainHelp();
// The help of one command ("serve", "run", "inspect").
std::string CommandHelp(const std::string& command);

// Applies the command-line overrides to a loaded config and re-validates it; errors name the flag.
absl::Status ApplyServeOverrides(const ServeOptions& options, ServerConfig* config);

}  // namespace coreserve
