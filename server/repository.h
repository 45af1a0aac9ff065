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
  std::string dir;                     // the model's folder (<root>/<name>)
  int64_t version = 0;                 // the version being served
  std::vector<int64_t> versions;       // every numeric version folder found, ascending
  std::string path;                    // of the served version's model.onnx
  bool ready = false;
  bool unloaded = false;               // unloaded on request (model control): not counted against readiness
  std::string error;                   // why it is not ready
  std::string fingerprint;             // what the folder looked like when read (ModelRepository::Fingerprint)
  runtime::ModelInfo info;             // valid when ready
  ModelConfig config;                  // <model>/config.yaml over the server's model_defaults
  std::shared_ptr<ModelRunner> runner;  // set when ready
  double load_seconds = 0;             // time to read, optimize and start the served version
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

  // Model names appear in URLs and metric labels: letters, digits, '_', '-' and '.', not starting with '.'.
  static bool IsValidName(const std::string& name);

  // True when every model is ready, except those unloaded on request (and also for an empty repository).
  bool AllReady() const;

  // Reads one model folder: its versions, its config.yaml over `defaults`, and, when both are usable, its
  // newest version loaded into a runner. A failure is an entry that is not ready, with the reason.
  static ModelEntry LoadEntry(const std::string& dir, const ModelConfig& defaults);

  // The newest version folder and the modification times of its model.onnx and of config.yaml: a change in
  // any of them changes this string (model control's polling reloads the model then).
  static std::string Fingerprint(const std::string& dir);

  // A copy of this repository with `entry` in place of the model of the same name (or added). Entries share
  // their runners with this repository, so requests in flight on either finish on the runner they started on.
  std::shared_ptr<const ModelRepository> With(ModelEntry entry) const;

 private:
  std::vector<ModelEntry> models_;  // sorted by name
};

}  // namespace coreserve
