// `coreserve tune`: the empirical search AWS describes for Inferentia layouts, on CPU cores. Each candidate
// layout of a model on N cores — one group of N, each data-parallel split into equal groups, pipelines of 2..N
// stages (and copies of them) — is loaded into a ModelRunner and driven in-process by the same closed-loop load
// (N + 1 clients, each sending its next request when the last one returns), for each batch size and precision
// asked; the table
// shows throughput, p50 and p95 latency and the cost per million inferences, marks the best for throughput and
// for latency, and the best-throughput layout is written as a model config.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/model_config.h"

namespace coreserve {

struct TuneOptions {
  std::string model;                        // an .onnx file, or a model folder of a repository
  int cores = 0;                            // 0: every CPU the process may use
  std::vector<int64_t> batches = {1};
  int64_t sequence = 128;                   // the size of every dynamic dim but the batch
  std::vector<std::string> precisions = {"fp32"};
  double hourly_price = 0;                  // > 0: cost per million inferences
  double budget_seconds = 60;
  std::string output;                       // where the recommended config goes; empty: stdout
};

// A candidate layout: a name for the table and the config keys that make it.
struct TuneLayout {
  std::string name;
  std::vector<int64_t> groups;           // data-parallel groups, or empty
  ModelConfig::Pipeline pipeline;        // stages > 0 for a pipeline
};

// Every layout of `cores` cores that uses them all: [cores], equal data-parallel splits, and pipelines of
// 2..cores stages of c cores each in cores / (stages * c) copies.
std::vector<TuneLayout> CandidateLayouts(int cores);

// Runs the search and prints progress (stderr), the table and the recommended config. Exit code: 0, 1 when the
// model does not load, 2 for bad options.
int TuneCommand(const TuneOptions& options);

}  // namespace coreserve
