// Times Session::Run on one model in-process, for bench/bench_models.py, which runs ONNX Runtime on the same
// inputs and cores in the same run and prints the ratios.
//
// usage: bench_session MODEL.onnx --input NAME=FILE.npy ... [--threads N] [--warmup N] [--seconds S] [--runs N] [--profile 1|2] [--precision fp32|bf16|int8]
// Prints one JSON object: {"runs": N, "p50_ms": ..., "p95_ms": ..., "mean_ms": ...}. --runs N times exactly N runs
// instead of running for --seconds (for A/B runs of two builds, interleaved).
#include <algorithm>
#include <cstdlib>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "runtime/npy.h"
#include "runtime/session.h"

using namespace coreserve::runtime;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL.onnx --input NAME=FILE.npy ... [--threads N] [--warmup N] [--seconds S] [--runs N] [--profile 1|2] [--precision fp32|bf16|int8]\n", argv[0]);
    return 2;
  }
  std::map<std::string, std::string> files;
  int threads = 1, warmup = 3;
  long runs = 0;
  double seconds = 3.0;
  int profile = 0;
  SessionOptions options;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--input") {
      const auto eq = value.find('=');
      files[value.substr(0, eq)] = value.substr(eq + 1);
    } else if (flag == "--threads") {
      threads = std::stoi(value);
    } else if (flag == "--runs") {
      runs = std::stol(value);
    } else if (flag == "--warmup") {
      warmup = std::stoi(value);
    } else if (flag == "--profile") {
      profile = std::atoi(value.c_str());
    } else if (flag == "--seconds") {
      seconds = std::stod(value);
    } else if (flag == "--precision" && (value == "fp32" || value == "bf16" || value == "int8")) {
      options.precision = value == "bf16"   ? coreserve::kernels::GemmPrecision::kBf16
                          : value == "int8" ? coreserve::kernels::GemmPrecision::kInt8
                                            : coreserve::kernels::GemmPrecision::kFp32;
    } else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  auto session = Session::Load(argv[1], options);
  if (!session.ok()) {
    std::fprintf(stderr, "%s\n", std::string(session.status().message()).c_str());
    return 1;
  }
  std::vector<Tensor> inputs;
  for (const TensorInfo& in : (*session)->inputs()) {
    if (files.count(in.name) == 0) {
      std::fprintf(stderr, "no --input for the model's input '%s'\n", in.name.c_str());
      return 1;
    }
    auto t = ReadNpy(files.at(in.name));
    if (!t.ok()) {
      std::fprintf(stderr, "%s\n", std::string(t.status().message()).c_str());
      return 1;
    }
    inputs.push_back(*std::move(t));
  }
  ThreadPool pool(threads);
  for (int i = 0; i < warmup; ++i) {
    if (!(*session)->Run(inputs, &pool).ok()) return 1;
  }
  std::vector<double> ms;
  const auto start = std::chrono::steady_clock::now();
  auto more = [&] {
    if (runs > 0) return static_cast<long>(ms.size()) < runs;
    return ms.size() < 3 || std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < seconds;
  };
  while (more()) {
    const auto t0 = std::chrono::steady_clock::now();
    auto out = (*session)->Run(inputs, &pool);
    const auto t1 = std::chrono::steady_clock::now();
    if (!out.ok()) return 1;
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  if (profile) {
    // Per operator type: total time over 20 runs, largest first (to stderr, so stdout stays one JSON object).
    std::map<std::string, double> by_op;
    const std::vector<int> nodes = (*session)->steps();
    std::vector<double> times;
    for (int r = 0; r < 20; ++r) {
      if (!(*session)->Run(inputs, &pool, &times).ok()) return 1;
      for (std::size_t i = 0; i < times.size(); ++i) by_op[(*session)->graph().nodes[nodes[i]].op_type] += times[i] / 20;
    }
    std::vector<std::pair<double, std::string>> rows;
    double total = 0;
    for (const auto& [op, t] : by_op) {
      rows.emplace_back(t, op);
      total += t;
    }
    std::sort(rows.rbegin(), rows.rend());
    for (const auto& [t, op] : rows) std::fprintf(stderr, "%-24s %9.3f ms %5.1f%%\n", op.c_str(), t * 1e3, 100 * t / total);
    if (profile > 1) {
      // --profile 2: also every step, in execution order (which nodes of a type cost the most).
      if (!(*session)->Run(inputs, &pool, &times).ok()) return 1;
      for (std::size_t i = 0; i < times.size(); ++i) {
        const Node& n = (*session)->graph().nodes[nodes[i]];
        if (times[i] * 1e3 >= 0.05) std::fprintf(stderr, "  %4zu %-22s %8.3f ms  %s\n", i, n.op_type.c_str(), times[i] * 1e3, n.name.c_str());
      }
    }
  }
  std::vector<double> sorted = ms;
  std::sort(sorted.begin(), sorted.end());
  double sum = 0;
  for (double v : ms) sum += v;
  std::printf("{\"runs\": %zu, \"p50_ms\": %.4f, \"p95_ms\": %.4f, \"mean_ms\": %.4f}\n", ms.size(),
              sorted[sorted.size() / 2], sorted[std::min(sorted.size() - 1, sorted.size() * 95 / 100)], sum / ms.size());
  return 0;
}
