#include "server/offline_commands.h"

#include <sched.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "runtime/model_info.h"
#include "runtime/npy.h"
#include "runtime/onnx_import.h"
#include "runtime/session.h"
#include "server/model_config.h"
#include "server/v2_datatype.h"

namespace coreserve {
namespace {

int Fail(int code, const std::string& message) {
  std::fprintf(stderr, "coreserve: %s\n", message.c_str());
  return code;
}

std::string ShapeText(const std::vector<int64_t>& shape) {
  std::vector<std::string> dims;
  for (int64_t d : shape) dims.push_back(d < 0 ? "?" : std::to_string(d));
  return absl::StrCat("[", absl::StrJoin(dims, ", "), "]");
}

std::string MiB(int64_t bytes) { return absl::StrFormat("%.2f MiB", static_cast<double>(bytes) / (1 << 20)); }

// Runs the model once on zeros of the given (or static) input shapes and prints its memory plan. Returns the exit
// code: 0, or 2 for a --shape that names no input or does not fit it.
int PrintMemoryPlan(const runtime::Session& session,
                    const std::vector<std::pair<std::string, std::vector<int64_t>>>& given) {
  std::map<std::string, std::vector<int64_t>> shapes(given.begin(), given.end());
  std::vector<runtime::Tensor> inputs;
  std::vector<std::string> missing;
  for (const runtime::TensorInfo& in : session.inputs()) {
    std::vector<int64_t> shape = in.shape;
    if (auto it = shapes.find(in.name); it != shapes.end()) {
      bool fits = in.shape.empty() || it->second.size() == in.shape.size();
      for (std::size_t d = 0; fits && d < in.shape.size(); ++d) fits = in.shape[d] < 0 || in.shape[d] == it->second[d];
      if (!fits) return Fail(2, absl::StrCat("--shape ", in.name, ": ", ShapeText(it->second), " does not fit ", ShapeText(in.shape)));
      shape = it->second;
      shapes.erase(it);
    } else if (std::any_of(shape.begin(), shape.end(), [](int64_t d) { return d < 0; })) {
      missing.push_back(in.name);
      continue;
    }
    runtime::Tensor t = runtime::Tensor::Allocate(in.type, shape);
    std::memset(t.raw(), 0, t.bytes());
    inputs.push_back(std::move(t));
  }
  if (!shapes.empty()) return Fail(2, absl::StrCat("--shape: the model has no input named '", shapes.begin()->first, "'"));
  if (!missing.empty()) {
    std::printf("memory plan: give --shape for %s to see the planned activation memory\n", absl::StrJoin(missing, ", ").c_str());
    return 0;
  }
  std::vector<runtime::Shape> signature;
  for (const runtime::Tensor& t : inputs) signature.push_back(t.shape());
  runtime::ThreadPool pool(1);
  auto outputs = session.Run(inputs, &pool);
  if (!outputs.ok()) return Fail(1, absl::StrCat("memory plan: the run on zeros failed: ", outputs.status().message()));
  auto stats = session.MemoryPlanFor(signature);
  if (!stats.ok()) return Fail(1, std::string(stats.status().message()));
  std::vector<std::string> dims;
  for (const auto& s : signature) dims.push_back(ShapeText(s));
  std::printf("memory plan for inputs %s:\n", absl::StrJoin(dims, " ").c_str());
  std::printf("  planned peak activation memory  %s (%d buffers; %s without reuse)\n", MiB(stats->arena_bytes).c_str(),
              stats->buffers, MiB(stats->total_bytes).c_str());
  std::printf("  outside the plan                %s (outputs and shape-derived values)\n", MiB(stats->unplanned_bytes).c_str());
  return 0;
}

}  // namespace

int RunModelCommand(const RunOptions& o) {
  int threads = AvailableCpus();
  if (o.threads && (!absl::SimpleAtoi(*o.threads, &threads) || threads < 1 || threads > 1024)) {
    return Fail(2, absl::StrCat("--threads: expected an integer from 1 to 1024, got '", *o.threads, "'"));
  }
  runtime::SessionOptions options;
  options.precision = ParsePrecision(o.precision).value_or(kernels::GemmPrecision::kFp32);  // checked by the CLI
  auto session = runtime::Session::Load(o.model, options);
  if (!session.ok()) return Fail(1, std::string(session.status().message()));

  std::map<std::string, std::string> files(o.inputs.begin(), o.inputs.end());
  std::vector<runtime::Tensor> inputs;
  for (const runtime::TensorInfo& in : (*session)->inputs()) {
    auto it = files.find(in.name);
    if (it == files.end()) return Fail(2, absl::StrCat("missing --input ", in.name, "=FILE.npy"));
    auto tensor = runtime::ReadNpy(it->second);
    if (!tensor.ok()) return Fail(1, std::string(tensor.status().message()));
    inputs.push_back(*std::move(tensor));
    files.erase(it);
  }
  if (!files.empty()) return Fail(2, absl::StrCat("the model has no input named '", files.begin()->first, "'"));

  runtime::ThreadPool pool(threads);
  auto outputs = (*session)->Run(inputs, &pool);
  if (!outputs.ok()) return Fail(1, std::string(outputs.status().message()));
  std::error_code ec;
  std::filesystem::create_directories(o.output_dir, ec);
  if (ec) return Fail(1, absl::StrCat(o.output_dir, ": ", ec.message()));
  for (std::size_t i = 0; i < outputs->size(); ++i) {
    const std::string& name = (*session)->outputs()[i].name;
    // Output names become file names: keep them inside the output folder.
    if (name.find('/') != std::string::npos || name == ".." || name == ".") {
      return Fail(1, absl::StrCat("output name '", name, "' cannot be a file name"));
    }
    const std::string path = (std::filesystem::path(o.output_dir) / (name + ".npy")).string();
    if (auto s = runtime::WriteNpy(path, (*outputs)[i]); !s.ok()) return Fail(1, std::string(s.message()));
  }
  return 0;
}

int InspectModelCommand(const InspectOptions& o) {
  auto info = runtime::ReadModelInfo(o.model);
  if (!info.ok()) return Fail(1, std::string(info.status().message()));
  auto graph = runtime::LoadOnnxGraph(o.model);
  if (!graph.ok()) return Fail(1, std::string(graph.status().message()));
  std::printf("model: %s\n", o.model.c_str());
  std::printf("ir_version: %lld   producer: %s\n", static_cast<long long>(info->ir_version),
              info->producer.empty() ? "(none)" : info->producer.c_str());
  std::vector<std::string> opsets;
  for (const auto& [domain, version] : info->opsets) {
    opsets.push_back(absl::StrCat(domain.empty() ? "ai.onnx" : domain, " ", version));
  }
  std::printf("opsets: %s\n", absl::StrJoin(opsets, ", ").c_str());
  // Types and shapes as the graph knows them: the file's declarations completed by the shape inference.
  auto print_value = [](const runtime::Value& v) {
    std::printf("  %-24s %-6s %s\n", v.name.c_str(), std::string(V2DataTypeName(v.type)).c_str(),
                v.shape ? ShapeText(*v.shape).c_str() : "?");
  };
  std::printf("inputs:\n");
  for (int id : graph->inputs) print_value(graph->values[id]);
  std::printf("outputs:\n");
  for (int id : graph->outputs) print_value(graph->values[id]);
  std::printf("operators:\n");
  for (const auto& [op, count] : info->op_counts) std::printf("  %-32s %lld\n", op.c_str(), static_cast<long long>(count));
  if (o.values) {
    std::printf("values:\n");
    for (const runtime::Value& v : graph->values) {
      if (!v.constant && !v.graph_input) print_value(v);
    }
  }
  const std::vector<std::string> missing = runtime::UnsupportedOperators(*graph);
  if (missing.empty()) {
    std::printf("supported: yes\n");
    // What the optimizer makes of it: the operators that will actually run.
    auto session = runtime::Session::FromGraph(*std::move(graph));
    if (!session.ok()) return Fail(1, std::string(session.status().message()));
    std::map<std::string, int> after;
    for (const runtime::Node& n : (*session)->graph().nodes) {
      ++after[n.domain.empty() ? n.op_type : absl::StrCat(n.domain, "::", n.op_type)];
    }
    std::printf("after optimization (%zu nodes):\n", (*session)->graph().nodes.size());
    for (const auto& [op, count] : after) std::printf("  %-32s %d\n", op.c_str(), count);
    return PrintMemoryPlan(**session, o.shapes);
  }
  std::printf("supported: no (unsupported operators: %s)\n", absl::StrJoin(missing, ", ").c_str());
  return 1;
}

}  // namespace coreserve
