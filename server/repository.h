// The model repository: folders laid out as <root>/<model>/<version>/model.onnx, with an optional
// <root>/<model>/config.yaml (server/model_config.h).
//
// Each model folder serves its newest numeric version. A model that fails to load is kept with its error, so
// the server reports it (not ready, with the reason) instead of silently dropping it. A ModelRepository is
// immutable once built and safe to read from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/model_info.h"
#include "server/model_config.h"
#include "server/model_runner.h"

namespace coreserve {

struct ModelEntry {
  std::string name;
  int64_t version = 0;                 // the version being served
  std::vector<int64_t> versions;       // every numeric version folder found, ascending
  std::string path;                    // of the served version's model.onnx
  bool ready = false;
  std::string error;                   // why it is not ready
  runtime::ModelInfo info;             // valid when ready
  ModelConfig config;                  // <model>/config.yaml over the server's model_defaults
  std::shared_ptr<ModelRunner> runner;  // set when ready
};

class ModelRepository {
 public:
  // Scans every root and reads each model. Fails only when a root cannot be listed or two roots hold a model
  // of the same name; a single bad model becomes a not-ready entry.
  // Every ready model is loaded into its runner, configured by its config.yaml over `defaults`.
  static absl::StatusOr<std::unique_ptr<const ModelRepository>> Load(const std::vector<std::string>& roots,
                                                                     const ModelConfig& defaults = {});

  const std::vector<ModelEntry>& models() const { return models_; }

  // The entry for `name`, which must serve `version` when `version` is non-empty. NotFound names what is
  // missing.
  absl::StatusOr<const ModelEntry*> Find(const std::string& name, const std::string& version) const;

  // True when every model is ready (and also for an empty repository).
  bool AllReady() const;

 private:
  std::vector<ModelEntry> models_;  // sorted by name
};

}  // namespace coreserve
