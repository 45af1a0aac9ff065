#include "server/cli.h"

#include <functional>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "runtime/status_macros.h"

namespace coreserve {
namespace {

struct FlagSpec {
  const char* name;   // without the leading "--"
  const char* value;  // placeholder shown in help; nullptr for a flag that takes no value
  const char* help;
  std::function<void(ServeOptions&, const std::string&)> set;
};

const std::vector<FlagSpec>& ServeFlags() {
  static const std::vector<FlagSpec> flags = {
      {"config", "FILE", "server config YAML (required; see docs/CONFIG.md)",
       [](ServeOptions& o, const std::string& v) { o.config_path = v; }},
      {"http-port", "PORT", "override http.port (0 = any free port)",
       [](ServeOptions& o, const std::string& v) { o.http_port = v; }},
      {"grpc-port", "PORT", "override grpc.port (0 = any free port)",
       [](ServeOptions& o, const std::string& v) { o.grpc_port = v; }},
      {"metrics-port", "PORT", "override metrics.port (0 = any free port)",
       [](ServeOptions& o, const std::string& v) { o.metrics_port = v; }},
      {"model-repository", "DIR", "replace model_repository; repeat the flag for several folders",
       [](ServeOptions& o, const std::string& v) { o.model_repositories.push_back(v); }},
      {"log-level", "LEVEL", "override log_level: debug, info, warning or error",
       [](ServeOptions& o, const std::string& v) { o.log_level = v; }},
      {"help", nullptr, "show this help and exit", nullptr},
  };
  return flags;
}

}  // namespace

std::string MainHelp() {
  return "coreserve: a CPU inference server for ONNX models (KServe v2 over HTTP and gRPC, Prometheus "
         "metrics)\n"
         "\n"
         "usage: coreserve <command> [flags]\n"
         "\n"
         "commands:\n"
         "  serve       start the server (coreserve serve --help for its flags)\n"
         "\n"
         "flags:\n"
         "  --help      show this help and exit\n"
         "  --version   print the version and exit\n";
}

std::string ServeHelp() {
  std::string out =
      "usage: coreserve serve --config FILE [flags]\n"
      "\n"
      "Starts the HTTP (KServe v2 REST), gRPC (KServe v2) and metrics (Prometheus) listeners, loads every\n"
      "model of the configured repositories, and serves until SIGTERM or SIGINT.\n"
      "\n"
      "flags:\n";
  for (const FlagSpec& f : ServeFlags()) {
    std::string left = absl::StrCat("  --", f.name, f.value ? absl::StrCat(" ", f.value) : "");
    left.resize(std::max<std::size_t>(left.size() + 2, 28), ' ');
    absl::StrAppend(&out, left, f.help, "\n");
  }
  return out;
}

absl::StatusOr<CommandLine> ParseCommandLine(const std::vector<std::string>& args) {
  CommandLine cl;
  if (args.empty()) return cl;  // bare `coreserve` prints the help
  const std::string& first = args[0];
  if (first == "--help" || first == "-h" || first == "help") return cl;
  if (first == "--version") {
    cl.command = CommandLine::Command::kVersion;
    return cl;
  }
  if (first != "serve") {
    return absl::InvalidArgumentError(absl::StrCat(absl::StartsWith(first, "-") ? "unknown flag '" : "unknown command '",
                                                   first, "' (try coreserve --help)"));
  }
  cl.command = CommandLine::Command::kServe;
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      cl.command = CommandLine::Command::kServeHelp;
      return cl;
    }
    if (!absl::StartsWith(arg, "--")) {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected argument '", arg, "' (try coreserve serve --help)"));
    }
    const std::size_t eq = arg.find('=');
    const std::string name = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    const FlagSpec* spec = nullptr;
    for (const FlagSpec& f : ServeFlags()) {
      if (name == f.name && f.set) spec = &f;
    }
    if (spec == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag '--", name, "' (try coreserve serve --help)"));
    }
    std::string value;
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return absl::InvalidArgumentError(absl::StrCat("flag '--", name, "' needs a value ", spec->value));
    }
    spec->set(cl.serve, value);
  }
  if (cl.serve.config_path.empty()) {
    return absl::InvalidArgumentError("serve needs --config FILE (try coreserve serve --help)");
  }
  return cl;
}

}  // namespace coreserve

namespace coreserve {
namespace {

absl::Status ParsePort(const std::optional<std::string>& text, const char* flag, int* port) {
  if (!text) return absl::OkStatus();
  int value = -1;
  if (!absl::SimpleAtoi(*text, &value) || value < 0 || value > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": expected an integer from 0 to 65535, got '", *text, "'"));
  }
  *port = value;
  return absl::OkStatus();
}

}  // namespace

absl::Status ApplyServeOverrides(const ServeOptions& o, ServerConfig* c) {
  RETURN_IF_ERROR(ParsePort(o.http_port, "http-port", &c->http.port));
  RETURN_IF_ERROR(ParsePort(o.grpc_port, "grpc-port", &c->grpc.port));
  RETURN_IF_ERROR(ParsePort(o.metrics_port, "metrics-port", &c->metrics.port));
  if (!o.model_repositories.empty()) c->model_repositories = o.model_repositories;
  if (o.log_level) {
    auto level = ParseLogLevel(*o.log_level);
    if (!level.ok()) return absl::InvalidArgumentError(absl::StrCat("--log-level: ", level.status().message()));
    c->log_level = *level;
  }
  return ValidateServerConfig(*c, "command line");
}

}  // namespace coreserve
