#include "server/repository.h"

#include <algorithm>
#include <chrono>
#include <cctype>
#include <filesystem>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "server/log.h"

namespace coreserve {

std::string ModelEntry::ClientError() const {
  const std::filesystem::path folder(dir);
  if (dir.empty() || !folder.has_parent_path()) return error;
  const std::string root = folder.parent_path().string();
  return absl::StrReplaceAll(error, {{root + "/", ""}, {root, "."}});
}
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

namespace {

// The numeric version folders of `dir`, ascending; an error message when it cannot be listed.
std::vector<int64_t> VersionFolders(const fs::path& dir, std::string* error) {
  std::vector<int64_t> versions;
  std::error_code ec;
  for (const auto& child : fs::directory_iterator(dir, ec)) {
    int64_t v = 0;
    if (child.is_directory() && absl::SimpleAtoi(child.path().filename().string(), &v) && v > 0) versions.push_back(v);
  }
  std::sort(versions.begin(), versions.end());
  if (ec) *error = absl::StrCat(dir.string(), ": cannot list: ", ec.message());
  return versions;
}

// The versions `policy` serves out of `available` (ascending), newest first; an error message when it names a
// version that has no folder.
std::vector<int64_t> ServedVersions(const VersionPolicy& policy, const std::vector<int64_t>& available,
                                    const fs::path& dir, std::string* error) {
  std::vector<int64_t> served;
  switch (policy.kind) {
    case VersionPolicy::Kind::kAll:
      served = available;
      break;
    case VersionPolicy::Kind::kLatest:
      served.assign(available.end() - std::min<std::size_t>(available.size(), policy.latest), available.end());
      break;
    case VersionPolicy::Kind::kSpecific:
      for (int64_t v : policy.versions) {
        if (!std::binary_search(available.begin(), available.end(), v)) {
          *error = absl::StrCat(dir.string(), ": version_policy names version ", v, ", which has no folder ",
                                (dir / std::to_string(v)).string());
          return {};
        }
        served.push_back(v);
      }
      std::sort(served.begin(), served.end());
      served.erase(std::unique(served.begin(), served.end()), served.end());
      break;
  }
  std::reverse(served.begin(), served.end());
  return served;
}

// Loads entry.version of the model into a runner; sets ready or error.
void LoadVersion(ModelEntry& entry) {
  entry.path = (fs::path(entry.dir) / std::to_string(entry.version) / "model.onnx").string();
  auto info = runtime::ReadModelInfo(entry.path);
  if (!info.ok()) {
    entry.error = std::string(info.status().message());
    return;
  }
  entry.info = *std::move(info);
  const auto load_start = std::chrono::steady_clock::now();
  auto runner = ModelRunner::Load(entry.name, entry.path, entry.config);
  entry.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
  if (!runner.ok()) {
    entry.error = std::string(runner.status().message());
    return;
  }
  entry.runner = ModelRunner::Share(*std::move(runner));
  // The inputs and outputs as the runtime knows them: the file's declarations completed by its shape inference.
  entry.info.inputs = entry.runner->inputs();
  entry.info.outputs = entry.runner->outputs();
  entry.ready = true;
}

bool ByNameThenNewest(const ModelEntry& a, const ModelEntry& b) {
  return a.name != b.name ? a.name < b.name : a.version > b.version;
}

}  // namespace

std::string ModelRepository::Fingerprint(const std::string& dir_name) {
  const fs::path dir(dir_name);
  auto mtime = [](const fs::path& p) {
    std::error_code e;
    const auto t = fs::last_write_time(p, e);
    return e ? std::string("-") : std::to_string(t.time_since_epoch().count());
  };
  std::string error;
  std::string out;
  for (int64_t v : VersionFolders(dir, &error)) {
    absl::StrAppend(&out, "v", v, ":", mtime(dir / std::to_string(v) / "model.onnx"), " ");
  }
  absl::StrAppend(&out, "c", mtime(dir / "config.yaml"));
  return out;
}

std::vector<ModelEntry> ModelRepository::LoadEntries(const std::string& dir_name, const ModelConfig& defaults) {
  const fs::path dir(dir_name);
  ModelEntry base;
  base.name = dir.filename().string();
  base.dir = dir.string();
  base.fingerprint = Fingerprint(dir_name);
  base.versions = VersionFolders(dir, &base.error);
  if (!base.error.empty()) return {base};
  if (base.versions.empty()) {
    base.error = absl::StrCat(dir.string(), ": no version folder (expected <model>/<N>/model.onnx, N >= 1)");
    return {base};
  }
  base.version = base.versions.back();
  auto config = LoadModelConfig(dir.string(), defaults);
  if (!config.ok()) {
    base.error = std::string(config.status().message());
    return {base};
  }
  base.config = *config;
  const std::vector<int64_t> served = ServedVersions(base.config.version_policy, base.versions, dir, &base.error);
  if (!base.error.empty()) return {base};
  std::vector<ModelEntry> entries;
  std::vector<int64_t> ready;
  for (int64_t v : served) {
    ModelEntry e = base;
    e.version = v;
    LoadVersion(e);
    if (e.ready) ready.push_back(v);
    entries.push_back(std::move(e));
  }
  for (ModelEntry& e : entries) e.served = ready;
  return entries;
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
      for (ModelEntry& e : LoadEntries(dir.string(), defaults)) {
        repo->models_.push_back(std::move(e));
        LogLoad(repo->models_.back());
      }
    }
  }
  std::sort(repo->models_.begin(), repo->models_.end(), ByNameThenNewest);
  return std::unique_ptr<const ModelRepository>(std::move(repo));
}

void ModelRepository::LogLoad(const ModelEntry& e) {
  if (e.ready) {
    LOG_INFO("model ", e.name, " version ", e.version, " loaded: ", e.info.inputs.size(), " inputs, ",
             e.info.outputs.size(), " outputs, precision ", PrecisionName(e.config.precision), ", ",
             e.runner->threads(), " threads, ", e.load_seconds, " s");
  } else {
    LOG_ERROR("model ", e.name, e.version > 0 ? absl::StrCat(" version ", e.version) : std::string(),
              " failed to load: ", e.error);
  }
}

absl::StatusOr<const ModelEntry*> ModelRepository::Find(const std::string& name, const std::string& version) const {
  auto first = std::lower_bound(models_.begin(), models_.end(), name,
                                [](const ModelEntry& e, const std::string& n) { return e.name < n; });
  if (first == models_.end() || first->name != name) {
    return absl::NotFoundError(absl::StrCat("unknown model '", name, "'"));
  }
  auto last = first;
  while (last != models_.end() && last->name == name) ++last;
  if (version.empty()) {
    auto ready = std::find_if(first, last, [](const ModelEntry& e) { return e.ready; });
    return &*(ready != last ? ready : first);
  }
  for (auto it = first; it != last; ++it) {
    if (version == std::to_string(it->version)) return &*it;
  }
  return absl::NotFoundError(absl::StrCat("model '", name, "' has no served version '", version, "'"));
}

bool ModelRepository::AllReady() const {
  return std::all_of(models_.begin(), models_.end(), [](const ModelEntry& e) { return e.ready || e.unloaded; });
}

std::shared_ptr<const ModelRepository> ModelRepository::With(const std::string& name,
                                                             std::vector<ModelEntry> entries) const {
  auto repo = std::shared_ptr<ModelRepository>(new ModelRepository(*this));
  auto& models = repo->models_;
  models.erase(std::remove_if(models.begin(), models.end(), [&](const ModelEntry& e) { return e.name == name; }),
               models.end());
  for (ModelEntry& e : entries) models.push_back(std::move(e));
  std::sort(models.begin(), models.end(), ByNameThenNewest);
  return repo;
}

}  // namespace coreserve
