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
  int64_t version = 0;                 // the version this entry serves
  std::vector<int64_t> versions;       // every numeric version folder found, ascending
  std::vector<int64_t> served;         // the model's versions that loaded (this one and its siblings), descending
  std::string path;                    // of the served version's model.onnx
  bool ready = false;
  bool unloaded = false;               // unloaded on request (model control): not counted against readiness
  std::string error;                   // why it is not ready
  std::string fingerprint;             // what the folder looked like when read (ModelRepository::Fingerprint)
  runtime::ModelInfo info;             // valid when ready
  ModelConfig config;                  // <model>/config.yaml over the server's model_defaults
  std::shared_ptr<ModelRunner> runner;  // set when ready
  double load_seconds = 0;             // time to read, optimize and start the served version

  // `error` as clients see it: paths relative to the repository root (<name>/<N>/model.onnx), since the
  // server's own filesystem layout is no business of theirs. The log keeps the full paths.
  std::string ClientError() const;
};

class ModelRepository {
 public:
  // Scans every root and reads each model. Fails only when a root cannot be listed or two roots hold a model
  // of the same name; a single bad model becomes a not-ready entry.
  // Every ready model is loaded into its runner, configured by its config.yaml over `defaults`.
  static absl::StatusOr<std::unique_ptr<const ModelRepository>> Load(const std::vector<std::string>& roots,
                                                                     const ModelConfig& defaults = {});

  // One entry per model and served version (a model that failed before a version could be chosen has one entry,
  // not ready), by name, then newest version first.
  const std::vector<ModelEntry>& models() const { return models_; }

  // The entry serving `version` of `name`; with `version` empty, its newest ready version (or its newest entry
  // when none is ready). NotFound names what is missing.
  absl::StatusOr<const ModelEntry*> Find(const std::string& name, const std::string& version) const;

  // Model names appear in URLs and metric labels: letters, digits, '_', '-' and '.', not starting with '.'.
  static bool IsValidName(const std::string& name);

  // True when every model is ready, except those unloaded on request (and also for an empty repository).
  bool AllReady() const;

  // Reads one model folder: its versions, its config.yaml over `defaults`, and, when both are usable, each
  // version its version_policy serves loaded into a runner: one entry per served version, newest first. A
  // failure is an entry that is not ready, with the reason.
  static std::vector<ModelEntry> LoadEntries(const std::string& dir, const ModelConfig& defaults);

  // The version folders with the modification times of their model.onnx, and config.yaml's: a change in any of
  // them changes this string (model control's polling reloads the model then).
  static std::string Fingerprint(const std::string& dir);

  // A copy of this repository with `entries` in place of the model `name`'s (or added). Entries share their
  // runners with this repository, so requests in flight on either finish on the runner they started on.
  std::shared_ptr<const ModelRepository> With(const std::string& name, std::vector<ModelEntry> entries) const;

 private:
  static void LogLoad(const ModelEntry& e);
  std::vector<ModelEntry> models_;  // sorted by name, then version descending
};

}  // namespace coreserve
