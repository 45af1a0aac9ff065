#include "server/tune.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "server/cpus.h"
#include "server/model_runner.h"

namespace coreserve {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct Measured {
  double throughput = 0;  // rows (inferences) per second
  double p50_ms = 0, p95_ms = 0;
  std::string error;
};

// The model file and the config to start from: a file alone, or a repository folder's newest version and its
// config.yaml.
absl::Status Resolve(const std::string& model, std::string* path, ModelConfig* base) {
  std::error_code ec;
  if (fs::is_regular_file(model, ec)) {
    *path = model;
    return absl::OkStatus();
  }
  int64_t newest = 0;
  for (const auto& child : fs::directory_iterator(model, ec)) {
    int64_t v = 0;
    if (child.is_directory() && absl::SimpleAtoi(child.path().filename().string(), &v)) newest = std::max(newest, v);
  }
  if (newest == 0) {
    return absl::NotFoundError(absl::StrCat(model, ": neither an .onnx file nor a model folder (<model>/<N>/model.onnx)"));
  }
  *path = (fs::path(model) / std::to_string(newest) / "model.onnx").string();
  auto config = LoadModelConfig(model, {});
  if (!config.ok()) return config.status();
  *base = *config;
  return absl::OkStatus();
}

// One request's inputs: `batch` rows, `sequence` for the other dynamic dims; token ids in [0, 100), an
// attention_mask of ones, other integers 0, floats normal.
NamedTensors Feeds(const std::vector<runtime::TensorInfo>& inputs, int64_t batch, int64_t sequence) {
  std::mt19937 rng(7);
  NamedTensors out;
  for (const runtime::TensorInfo& in : inputs) {
    runtime::Shape shape = in.shape;
    for (std::size_t d = 0; d < shape.size(); ++d) {
      if (shape[d] < 0) shape[d] = d == 0 ? batch : sequence;
    }
    runtime::Tensor t = runtime::Tensor::Allocate(in.type, shape);
    std::memset(t.raw(), 0, t.bytes());
    for (int64_t i = 0; i < t.elements(); ++i) {
      if (in.type == runtime::DataType::kFloat32) t.data<float>()[i] = std::normal_distribution<float>()(rng);
      if (in.type == runtime::DataType::kInt64) {
        t.data<int64_t>()[i] = in.name == "attention_mask" ? 1 : in.name == "input_ids" ? static_cast<int64_t>(rng() % 100) : 0;
      }
    }
    out.emplace_back(in.name, std::move(t));
  }
  return out;
}

// A closed loop of `clients` on `runner` for `seconds` after a warm-up of a fifth of it.
Measured Drive(ModelRunner& runner, const NamedTensors& feeds, int64_t rows, int clients, double seconds) {
  std::mutex mu;
  std::condition_variable done_cv;
  std::vector<double> latencies;
  std::string error;
  int active = clients;
  const Clock::time_point start = Clock::now();
  const Clock::time_point measure_from = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds / 5));
  const Clock::time_point end = measure_from + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::function<void()> send = [&] {
    InferRequest r;
    r.inputs = feeds;
    const Clock::time_point sent = Clock::now();
    runner.Submit(std::move(r), [&, sent](absl::StatusOr<NamedTensors> result) {
      const Clock::time_point now = Clock::now();
      bool again = false;
      {
        std::lock_guard<std::mutex> lock(mu);
        if (!result.ok() && error.empty()) error = std::string(result.status().message());
        if (result.ok() && sent >= measure_from && now <= end) {
          latencies.push_back(std::chrono::duration<double, std::milli>(now - sent).count());
        }
        again = result.ok() && now < end;
        if (!again && --active == 0) done_cv.notify_all();
      }
      if (again) send();  // the client's next request, as soon as this one returns
    });
  };
  for (int c = 0; c < clients; ++c) send();
  std::unique_lock<std::mutex> lock(mu);
  done_cv.wait(lock, [&] { return active == 0; });
  Measured m;
  m.error = error;
  if (latencies.empty()) {
    if (m.error.empty()) m.error = "no request completed within the time given";
    return m;
  }
  std::sort(latencies.begin(), latencies.end());
  m.throughput = static_cast<double>(latencies.size() * rows) / seconds;
  m.p50_ms = latencies[latencies.size() / 2];
  m.p95_ms = latencies[std::min(latencies.size() - 1, latencies.size() * 95 / 100)];
  return m;
}

std::string GroupsName(const std::vector<int64_t>& groups) {
  return absl::StrCat("groups [", absl::StrJoin(groups, ", "), "]");
}

}  // namespace

std::vector<TuneLayout> CandidateLayouts(int cores) {
  std::vector<TuneLayout> out;
  for (int g = cores; g >= 1; --g) {  // one group of all cores, then ever smaller equal groups
    if (cores % g != 0) continue;
    TuneLayout l;
    l.groups.assign(cores / g, g);
    l.name = GroupsName(l.groups);
    out.push_back(l);
  }
  for (int stages = 2; stages <= cores; ++stages) {
    for (int per = 1; stages * per <= cores; ++per) {
      if (cores % (stages * per) != 0) continue;
      TuneLayout l;
      l.pipeline.stages = stages;
      l.pipeline.cores_per_stage = per;
      l.pipeline.copies = cores / (stages * per);
      l.name = absl::StrCat("pipeline ", stages, " stages x ", per, " core", per > 1 ? "s" : "",
                            l.pipeline.copies > 1 ? absl::StrCat(", ", l.pipeline.copies, " copies") : "");
      out.push_back(l);
    }
  }
  return out;
}

int TuneCommand(const TuneOptions& o) {
  const int usable = AvailableCpus();
  const int cores = o.cores > 0 ? o.cores : usable;
  if (cores > usable) {
    std::fprintf(stderr, "coreserve tune: --cores %d, but this process may use %d CPUs\n", cores, usable);
    return 2;
  }
  std::string path;
  ModelConfig base;
  if (auto s = Resolve(o.model, &path, &base); !s.ok()) {
    std::fprintf(stderr, "coreserve tune: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  base.threads = 0;
  base.groups.clear();
  base.pipeline = {};
  base.dynamic_batching = false;  // each request is one batch of the size under test
  base.max_queue_size = 1024;
  const std::vector<TuneLayout> layouts = CandidateLayouts(cores);
  const std::size_t runs = layouts.size() * o.batches.size() * o.precisions.size();
  const double slice = std::max(0.5, o.budget_seconds / static_cast<double>(runs) / 1.4);  // load + warm-up ~40%
  struct Row {
    std::string layout, precision;
    int64_t batch = 1;
    int cores_per_instance = 1;
    Measured m;
    ModelConfig config;
  };
  std::vector<Row> rows;
  std::size_t done = 0;
  for (const std::string& precision : o.precisions) {
    for (const TuneLayout& layout : layouts) {
      ModelConfig config = base;
      config.precision = ParsePrecision(precision).value_or(kernels::GemmPrecision::kFp32);
      config.groups = layout.groups;
      config.pipeline = layout.pipeline;
      auto runner = ModelRunner::Load("tune", path, config);
      for (int64_t batch : o.batches) {
        Row row;
        row.layout = layout.name;
        row.precision = precision;
        row.batch = batch;
        row.cores_per_instance = layout.groups.empty()
                                     ? static_cast<int>(layout.pipeline.stages * layout.pipeline.cores_per_stage)
                                     : static_cast<int>(layout.groups[0]);
        row.config = config;
        ++done;
        if (!runner.ok()) {
          row.m.error = std::string(runner.status().message());
        } else {
          // The same load for every layout, so that their latencies compare: one client per core (enough to keep
          // every instance or stage busy) and one more, queued, to cover the hand-over between requests.
          row.m = Drive(**runner, Feeds((*runner)->inputs(), batch, o.sequence), batch, cores + 1, slice);
        }
        std::fprintf(stderr, "[%zu/%zu] %s, %s, batch %lld: %s\n", done, runs, layout.name.c_str(), precision.c_str(),
                     static_cast<long long>(batch),
                     row.m.error.empty() ? absl::StrFormat("%.1f/s, p50 %.2f ms, p95 %.2f ms", row.m.throughput,
                                                           row.m.p50_ms, row.m.p95_ms).c_str()
                                         : row.m.error.c_str());
        rows.push_back(std::move(row));
      }
    }
  }
  const Row* best_throughput = nullptr;
  const Row* best_latency = nullptr;
  for (const Row& r : rows) {
    if (!r.m.error.empty()) continue;
    if (!best_throughput || r.m.throughput > best_throughput->m.throughput) best_throughput = &r;
    if (!best_latency || r.m.p50_ms < best_latency->m.p50_ms) best_latency = &r;
  }
  std::printf("| layout | cores per instance | precision | batch | throughput /s | p50 ms | p95 ms |%s best |\n",
              o.hourly_price > 0 ? " cost per million |" : "");
  std::printf("|---|---|---|---|---|---|---|%s---|\n", o.hourly_price > 0 ? "---|" : "");
  for (const Row& r : rows) {
    std::string best;
    if (&r == best_throughput) best = "throughput";
    if (&r == best_latency) best += best.empty() ? "latency" : ", latency";
    if (!r.m.error.empty()) {
      std::printf("| %s | %d | %s | %lld | failed: %s | | |%s |\n", r.layout.c_str(), r.cores_per_instance,
                  r.precision.c_str(), static_cast<long long>(r.batch), r.m.error.c_str(), o.hourly_price > 0 ? " |" : "");
      continue;
    }
    const std::string cost =
        o.hourly_price > 0 ? absl::StrFormat(" %.4f |", o.hourly_price / 3600.0 / r.m.throughput * 1e6) : "";
    std::printf("| %s | %d | %s | %lld | %.1f | %.2f | %.2f |%s %s |\n", r.layout.c_str(), r.cores_per_instance,
                r.precision.c_str(), static_cast<long long>(r.batch), r.m.throughput, r.m.p50_ms, r.m.p95_ms,
                cost.c_str(), best.c_str());
  }
  if (best_throughput == nullptr) {
    std::fprintf(stderr, "coreserve tune: no layout ran\n");
    return 1;
  }
  // The recommendation: the best layout for throughput, as the keys of a model's config.yaml.
  const Row& r = *best_throughput;
  std::string yaml = absl::StrCat("# coreserve tune: best throughput on ", cores, " cores (", r.layout, ", batch ",
                                  r.batch, ": ", absl::StrFormat("%.1f", r.m.throughput), "/s)\nprecision: ",
                                  r.precision, "\n");
  if (!r.config.groups.empty()) {
    absl::StrAppend(&yaml, "groups: [", absl::StrJoin(r.config.groups, ", "), "]\n");
  } else {
    absl::StrAppend(&yaml, "pipeline: {stages: ", r.config.pipeline.stages, ", cores_per_stage: ",
                    r.config.pipeline.cores_per_stage, ", copies: ", r.config.pipeline.copies, "}\n");
  }
  if (r.batch > 1) absl::StrAppend(&yaml, "max_batch_size: ", r.batch, "\ndynamic_batching: {preferred_batch_sizes: [", r.batch, "]}\n");
  if (o.output.empty()) {
    std::printf("\n%s", yaml.c_str());
  } else {
    std::ofstream(o.output) << yaml;
    std::fprintf(stderr, "recommended config written to %s\n", o.output.c_str());
  }
  return 0;
}

}  // namespace coreserve
