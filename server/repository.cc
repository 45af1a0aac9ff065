#include "server/repository.h"

#include <algorithm>
#include <chrono>
#include <cctype>
#include <filesystem>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/log.h"

namespace coreserve {
namespace {

namespace fs = std::filesystem;

}  // namespace

// Model names appear in URLs and metric labels: keep them to a safe, unambiguous alphabet.
bool ModelRepository::IsValidName(const std::string& name) {
  if (name.empty() || name[0] == '.') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
  });
}

std::string ModelRepository::Fingerprint(const std::string& dir_name) {
  const fs::path dir(dir_name);
  std::error_code ec;
  int64_t newest = 0;
  for (const auto& child : fs::directory_iterator(dir, ec)) {
    int64_t v = 0;
    if (child.is_directory() && absl::SimpleAtoi(child.path().filename().string(), &v)) newest = std::max(newest, v);
  }
  auto mtime = [](const fs::path& p) {
    std::error_code e;
    const auto t = fs::last_write_time(p, e);
    return e ? std::string("-") : std::to_string(t.time_since_epoch().count());
  };
  return absl::StrCat("v", newest, " m", mtime(dir / std::to_string(newest) / "model.onnx"), " c",
                      mtime(dir / "config.yaml"));
}

ModelEntry ModelRepository::LoadEntry(const std::string& dir_name, const ModelConfig& defaults) {
  const fs::path dir(dir_name);
  ModelEntry entry;
  entry.name = dir.filename().string();
  entry.dir = dir.string();
  entry.fingerprint = Fingerprint(dir_name);
  std::error_code ec;
  for (const auto& child : fs::directory_iterator(dir, ec)) {
    int64_t v = 0;
    if (child.is_directory() && absl::SimpleAtoi(child.path().filename().string(), &v) && v > 0) {
      entry.versions.push_back(v);
    }
  }
  std::sort(entry.versions.begin(), entry.versions.end());
  if (ec) {
    entry.error = absl::StrCat(dir.string(), ": cannot list: ", ec.message());
    return entry;
  }
  if (entry.versions.empty()) {
    entry.error = absl::StrCat(dir.string(), ": no version folder (expected <model>/<N>/model.onnx, N >= 1)");
    return entry;
  }
  entry.version = entry.versions.back();
  entry.path = (dir / std::to_string(entry.version) / "model.onnx").string();
  auto info = runtime::ReadModelInfo(entry.path);
  if (!info.ok()) {
    entry.error = std::string(info.status().message());
    return entry;
  }
  entry.info = *std::move(info);
  auto config = LoadModelConfig(dir.string(), defaults);
  if (!config.ok()) {
    entry.error = std::string(config.status().message());
    return entry;
  }
  entry.config = *config;
  const auto load_start = std::chrono::steady_clock::now();
  auto runner = ModelRunner::Load(entry.name, entry.path, entry.config);
  entry.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
  if (!runner.ok()) {
    entry.error = std::string(runner.status().message());
    return entry;
  }
  entry.runner = *std::move(runner);
  // The inputs and outputs as the runtime knows them: the file's declarations completed by its shape inference.
  entry.info.inputs = entry.runner->session().inputs();
  entry.info.outputs = entry.runner->session().outputs();
  entry.ready = true;
  return entry;
}

absl::StatusOr<std::unique_ptr<const ModelRepository>> ModelRepository::Load(const std::vector<std::string>& roots,
                                                                            const ModelConfig& defaults) {
  std::map<std::string, std::string> root_of;  // model name -> the root it came from
  auto repo = std::unique_ptr<ModelRepository>(new ModelRepository());
  for (const std::string& root : roots) {
    std::error_code ec;
    std::vector<fs::path> dirs;
    for (const auto& child : fs::directory_iterator(root, ec)) {
      if (child.is_directory()) dirs.push_back(child.path());
    }
    if (ec) return absl::NotFoundError(absl::StrCat("model repository ", root, ": ", ec.message()));
    std::sort(dirs.begin(), dirs.end());
    for (const fs::path& dir : dirs) {
      const std::string name = dir.filename().string();
      if (!IsValidName(name)) {
        LOG_WARNING("model repository ", root, ": skipping folder '", name,
                    "': model names use letters, digits, '_', '-' and '.', and do not start with '.'");
        continue;
      }
      if (auto [it, inserted] = root_of.emplace(name, root); !inserted) {
        return absl::InvalidArgumentError(
            absl::StrCat("model '", name, "' is in two repositories: ", it->second, " and ", root));
      }
      repo->models_.push_back(LoadEntry(dir.string(), defaults));
      const ModelEntry& e = repo->models_.back();
      if (e.ready) {
        LOG_INFO("model ", e.name, " version ", e.version, " loaded: ", e.info.inputs.size(), " inputs, ",
                 e.info.outputs.size(), " outputs, precision ", PrecisionName(e.config.precision), ", ",
                 e.runner->threads(), " threads");
      } else {
        LOG_ERROR("model ", e.name, " failed to load: ", e.error);
      }
    }
  }
  std::sort(repo->models_.begin(), repo->models_.end(),
            [](const ModelEntry& a, const ModelEntry& b) { return a.name < b.name; });
  return std::unique_ptr<const ModelRepository>(std::move(repo));
}

absl::StatusOr<const ModelEntry*> ModelRepository::Find(const std::string& name, const std::string& version) const {
  auto it = std::lower_bound(models_.begin(), models_.end(), name,
                             [](const ModelEntry& e, const std::string& n) { return e.name < n; });
  if (it == models_.end() || it->name != name) {
    return absl::NotFoundError(absl::StrCat("unknown model '", name, "'"));
  }
  if (!version.empty() && version != std::to_string(it->version)) {
    return absl::NotFoundError(absl::StrCat("model '", name, "' has no served version '", version, "'"));
  }
  return &*it;
}

bool ModelRepository::AllReady() const {
  return std::all_of(models_.begin(), models_.end(), [](const ModelEntry& e) { return e.ready || e.unloaded; });
}

std::shared_ptr<const ModelRepository> ModelRepository::With(ModelEntry entry) const {
  auto repo = std::shared_ptr<ModelRepository>(new ModelRepository(*this));
  auto it = std::lower_bound(repo->models_.begin(), repo->models_.end(), entry.name,
                             [](const ModelEntry& e, const std::string& n) { return e.name < n; });
  if (it != repo->models_.end() && it->name == entry.name) {
    *it = std::move(entry);
  } else {
    repo->models_.insert(it, std::move(entry));
  }
  return repo;
}

}  // namespace coreserve
