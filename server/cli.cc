#include "server/cli.h"

#include <algorithm>
#include <functional>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "runtime/status_macros.h"
#include "server/model_config.h"

namespace coreserve {
namespace {

struct FlagSpec {
  const char* name;   // without the leading "--"
  const char* value;  // placeholder shown in help; nullptr for a switch, which takes no value
  const char* help;
  std::function<absl::Status(CommandLine&, const std::string&)> set;
};

struct CommandSpec {
  const char* name;
  const char* positional;  // e.g. "MODEL.onnx"; nullptr when the command takes none
  const char* usage;
  const char* summary;
  const char* description;
  std::vector<FlagSpec> flags;
  std::function<void(CommandLine&, const std::string&)> set_positional;
  std::function<absl::Status(const CommandLine&)> check;  // required flags
};

absl::Status Ok() { return absl::OkStatus(); }

const std::vector<CommandSpec>& Commands() {
  static const std::vector<CommandSpec> commands = {
      {"serve", nullptr, "coreserve serve --config FILE [flags]", "start the server",
       "Starts the HTTP (KServe v2 REST), gRPC (KServe v2) and metrics (Prometheus) listeners, loads every\n"
       "model of the configured repositories, and serves until SIGTERM or SIGINT.",
       {
           {"config", "FILE", "server config YAML (required; see docs/CONFIG.md)",
            [](CommandLine& c, const std::string& v) { c.serve.config_path = v; return Ok(); }},
           {"http-port", "PORT", "override http.port (0 = any free port)",
            [](CommandLine& c, const std::string& v) { c.serve.http_port = v; return Ok(); }},
           {"grpc-port", "PORT", "override grpc.port (0 = any free port)",
            [](CommandLine& c, const std::string& v) { c.serve.grpc_port = v; return Ok(); }},
           {"metrics-port", "PORT", "override metrics.port (0 = any free port)",
            [](CommandLine& c, const std::string& v) { c.serve.metrics_port = v; return Ok(); }},
           {"model-repository", "DIR", "replace model_repository; repeat the flag for several folders",
            [](CommandLine& c, const std::string& v) { c.serve.model_repositories.push_back(v); return Ok(); }},
           {"log-level", "LEVEL", "override log_level: debug, info, warning or error",
            [](CommandLine& c, const std::string& v) { c.serve.log_level = v; return Ok(); }},
       },
       nullptr,
       [](const CommandLine& c) {
         return c.serve.config_path.empty()
                    ? absl::InvalidArgumentError("serve needs --config FILE (try coreserve serve --help)")
                    : Ok();
       }},
      {"run", "MODEL.onnx", "coreserve run MODEL.onnx --input NAME=FILE.npy ... --output-dir DIR [flags]",
       "run one inference offline",
       "Loads the model into the runtime, runs it once on the given inputs and writes each output as\n"
       "DIR/<output name>.npy. Errors go to stderr with a non-zero exit code.",
       {
           {"input", "NAME=FILE.npy", "an input tensor from a NumPy file; repeat for each model input",
            [](CommandLine& c, const std::string& v) {
              const std::size_t eq = v.find('=');
              if (eq == std::string::npos || eq == 0 || eq + 1 == v.size()) {
                return absl::InvalidArgumentError(absl::StrCat("--input: expected NAME=FILE.npy, got '", v, "'"));
              }
              c.run.inputs.emplace_back(v.substr(0, eq), v.substr(eq + 1));
              return Ok();
            }},
           {"output-dir", "DIR", "folder for the output .npy files (created if missing; required)",
            [](CommandLine& c, const std::string& v) { c.run.output_dir = v; return Ok(); }},
           {"precision", "P",
            "GEMM precision: fp32 (default), bf16 (bf16 products, fp32 accumulation) or int8 (weights quantized\n"
            "per output channel at load, activations per row at run time)",
            [](CommandLine& c, const std::string& v) {
              if (auto p = ParsePrecision(v); !p.ok()) {
                return absl::InvalidArgumentError(absl::StrCat("--precision: ", p.status().message()));
              }
              c.run.precision = v;
              return Ok();
            }},
           {"threads", "N", "intra-op threads (default: the CPUs this process may use)",
            [](CommandLine& c, const std::string& v) { c.run.threads = v; return Ok(); }},
       },
       [](CommandLine& c, const std::string& v) { c.run.model = v; },
       [](const CommandLine& c) {
         if (c.run.model.empty()) return absl::InvalidArgumentError("run needs a MODEL.onnx (try coreserve run --help)");
         if (c.run.output_dir.empty()) {
           return absl::InvalidArgumentError("run needs --output-dir DIR (try coreserve run --help)");
         }
         return Ok();
       }},
      {"inspect", "MODEL.onnx", "coreserve inspect MODEL.onnx [--shape NAME=DxD...] [--values]",
       "describe a model and whether it is supported",
       "Prints the model's inputs and outputs (shape -1 where dynamic), opsets, operator counts, whether the\n"
       "runtime implements every operator (listing those it does not) and, when it does, the operators left after\n"
       "optimization (fusions) and the planned peak activation memory for the inputs' shapes (static shapes, or\n"
       "those given with --shape; the model is run once on zeros). Exit code 0 when fully supported, 1 if not.",
       {
           {"values", nullptr, "also list every value of the graph with the type and shape inferred at load",
            [](CommandLine& c, const std::string&) { c.inspect.values = true; return Ok(); }},
           {"shape", "NAME=DxD...", "an input's shape for the memory plan, e.g. input_ids=1x128; repeat per input",
            [](CommandLine& c, const std::string& v) {
              const std::size_t eq = v.find('=');
              std::vector<int64_t> dims;
              bool ok = eq != std::string::npos && eq > 0 && eq + 1 < v.size();
              for (std::size_t pos = eq + 1; ok && pos <= v.size();) {
                std::size_t x = v.find('x', pos);
                if (x == std::string::npos) x = v.size();
                int64_t d = 0;
                ok = absl::SimpleAtoi(v.substr(pos, x - pos), &d) && d >= 0 && d <= (int64_t{1} << 31);
                dims.push_back(d);
                pos = x + 1;
              }
              if (!ok) return absl::InvalidArgumentError(absl::StrCat("--shape: expected NAME=DxD... (e.g. input_ids=1x128), got '", v, "'"));
              c.inspect.shapes.emplace_back(v.substr(0, eq), dims);
              return Ok();
            }},
       },
       [](CommandLine& c, const std::string& v) { c.inspect.model = v; },
       [](const CommandLine& c) {
         return c.inspect.model.empty()
                    ? absl::InvalidArgumentError("inspect needs a MODEL.onnx (try coreserve inspect --help)")
                    : Ok();
       }},
      {"tune", "MODEL", "coreserve tune MODEL [--cores N] [--batch 1,6] [--seq 128] [--precision fp32,bf16] [flags]",
       "measure every core layout of a model and recommend one",
       "MODEL is an .onnx file or a model folder of a repository (its newest version and config.yaml). Loads the\n"
       "model in each layout of N cores — one group of N, each equal data-parallel split (groups), pipelines of 2..N\n"
       "stages — and drives it in-process with a closed-loop load for each batch size and precision; prints a table\n"
       "of throughput, p50 and p95 latency (and the cost per million inferences with --hourly-price), marks the best\n"
       "for throughput and for latency, and writes the best-throughput layout as model config keys.",
       {
           {"cores", "N", "cores to lay the model on (default: every CPU this process may use)",
            [](CommandLine& c, const std::string& v) {
              int n = 0;
              if (!absl::SimpleAtoi(v, &n) || n < 1 || n > 1024) {
                return absl::InvalidArgumentError(absl::StrCat("--cores: expected an integer from 1 to 1024, got '", v, "'"));
              }
              c.tune.cores = n;
              return Ok();
            }},
           {"batch", "B,B...", "batch sizes to measure (default 1)",
            [](CommandLine& c, const std::string& v) {
              c.tune.batches.clear();
              for (absl::string_view part : absl::StrSplit(v, ',')) {
                int64_t b = 0;
                if (!absl::SimpleAtoi(part, &b) || b < 1 || b > 4096) {
                  return absl::InvalidArgumentError(absl::StrCat("--batch: expected sizes from 1 to 4096, got '", v, "'"));
                }
                c.tune.batches.push_back(b);
              }
              return Ok();
            }},
           {"seq", "L", "size of the model's other dynamic dims, such as the sequence (default 128)",
            [](CommandLine& c, const std::string& v) {
              if (!absl::SimpleAtoi(v, &c.tune.sequence) || c.tune.sequence < 1 || c.tune.sequence > 1 << 20) {
                return absl::InvalidArgumentError(absl::StrCat("--seq: expected a positive integer, got '", v, "'"));
              }
              return Ok();
            }},
           {"precision", "P,P...", "precisions to measure: fp32, bf16, int8 (default fp32)",
            [](CommandLine& c, const std::string& v) {
              c.tune.precisions.clear();
              for (absl::string_view part : absl::StrSplit(v, ',')) {
                if (auto p = ParsePrecision(std::string_view(part.data(), part.size())); !p.ok()) {
                  return absl::InvalidArgumentError(absl::StrCat("--precision: ", p.status().message()));
                }
                c.tune.precisions.emplace_back(part);
              }
              return Ok();
            }},
           {"hourly-price", "X", "the host's price per hour: adds the cost per million inferences",
            [](CommandLine& c, const std::string& v) {
              if (!absl::SimpleAtod(v, &c.tune.hourly_price) || !(c.tune.hourly_price > 0)) {
                return absl::InvalidArgumentError(absl::StrCat("--hourly-price: expected a positive number, got '", v, "'"));
              }
              return Ok();
            }},
           {"budget", "SECONDS", "time for the whole search, e.g. 60 or 60s (default 60)",
            [](CommandLine& c, const std::string& v) {
              std::string text = v;
              if (!text.empty() && text.back() == 's') text.pop_back();
              if (!absl::SimpleAtod(text, &c.tune.budget_seconds) || !(c.tune.budget_seconds >= 1)) {
                return absl::InvalidArgumentError(absl::StrCat("--budget: expected seconds (at least 1), got '", v, "'"));
              }
              return Ok();
            }},
           {"output", "FILE", "write the recommended config there (default: print it)",
            [](CommandLine& c, const std::string& v) { c.tune.output = v; return Ok(); }},
       },
       [](CommandLine& c, const std::string& v) { c.tune.model = v; },
       [](const CommandLine& c) {
         return c.tune.model.empty() ? absl::InvalidArgumentError("tune needs a MODEL (try coreserve tune --help)") : Ok();
       }},
  };
  return commands;
}

const CommandSpec* FindCommand(const std::string& name) {
  for (const CommandSpec& c : Commands()) {
    if (name == c.name) return &c;
  }
  return nullptr;
}

}  // namespace

std::string MainHelp() {
  std::string out =
      "coreserve: a CPU inference server for ONNX models (KServe v2 over HTTP and gRPC, Prometheus "
      "metrics)\n"
      "\n"
      "usage: coreserve <command> [flags]   (coreserve <command> --help for its flags)\n"
      "\n"
      "commands:\n";
  for (const CommandSpec& c : Commands()) {
    std::string left = absl::StrCat("  ", c.name);
    left.resize(14, ' ');
    absl::StrAppend(&out, left, c.summary, "\n");
  }
  absl::StrAppend(&out,
                  "\n"
                  "flags:\n"
                  "  --help      show this help and exit\n"
                  "  --version   print the version and exit\n");
  return out;
}

std::string CommandHelp(const std::string& command) {
  const CommandSpec* c = FindCommand(command);
  if (c == nullptr) return MainHelp();
  std::string out = absl::StrCat("usage: ", c->usage, "\n\n", c->description, "\n\nflags:\n");
  std::vector<std::pair<std::string, std::string>> rows;
  for (const FlagSpec& f : c->flags) {
    rows.emplace_back(absl::StrCat("  --", f.name, f.value ? " " : "", f.value ? f.value : ""), f.help);
  }
  rows.emplace_back("  --help", "show this help and exit");
  for (auto& [left, help] : rows) {
    left.resize(std::max<std::size_t>(left.size() + 2, 28), ' ');
    absl::StrAppend(&out, left, help, "\n");
  }
  return out;
}

absl::StatusOr<CommandLine> ParseCommandLine(const std::vector<std::string>& args) {
  CommandLine cl;
  cl.help_text = MainHelp();
  if (args.empty()) return cl;  // bare `coreserve` prints the help
  const std::string& first = args[0];
  if (first == "--help" || first == "-h" || first == "help") return cl;
  if (first == "--version") {
    cl.command = CommandLine::Command::kVersion;
    return cl;
  }
  const CommandSpec* spec = FindCommand(first);
  if (spec == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(absl::StartsWith(first, "-") ? "unknown flag '" : "unknown command '",
                                                   first, "' (try coreserve --help)"));
  }
  const std::string hint = absl::StrCat(" (try coreserve ", spec->name, " --help)");
  cl.command = spec->name == std::string("serve") ? CommandLine::Command::kServe
               : spec->name == std::string("run") ? CommandLine::Command::kRun
                                : spec->name == std::string("inspect") ? CommandLine::Command::kInspect
                                                                       : CommandLine::Command::kTune;
  // --help anywhere wins, even when other arguments are incomplete.
  if (std::find(args.begin() + 1, args.end(), "--help") != args.end() ||
      std::find(args.begin() + 1, args.end(), "-h") != args.end()) {
    cl.command = CommandLine::Command::kCommandHelp;
    cl.help_text = CommandHelp(spec->name);
    return cl;
  }
  bool have_positional = false;
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (!absl::StartsWith(arg, "--")) {
      if (spec->positional == nullptr || have_positional) {
        return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", arg, "'", hint));
      }
      spec->set_positional(cl, arg);
      have_positional = true;
      continue;
    }
    const std::size_t eq = arg.find('=');
    const std::string name = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    const FlagSpec* flag = nullptr;
    for (const FlagSpec& f : spec->flags) {
      if (name == f.name) flag = &f;
    }
    if (flag == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown flag '--", name, "'", hint));
    if (flag->value == nullptr) {
      if (eq != std::string::npos) return absl::InvalidArgumentError(absl::StrCat("flag '--", name, "' takes no value"));
      RETURN_IF_ERROR(flag->set(cl, ""));
      continue;
    }
    std::string value;
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return absl::InvalidArgumentError(absl::StrCat("flag '--", name, "' needs a value ", flag->value));
    }
    RETURN_IF_ERROR(flag->set(cl, value));
  }
  RETURN_IF_ERROR(spec->check(cl));
  return cl;
}

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
