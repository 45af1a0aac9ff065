#include "server/model_control.h"

#include <algorithm>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "runtime/status_macros.h"
#include "server/bearer_token.h"
#include "server/log.h"

namespace coreserve {
namespace {

namespace fs = std::filesystem;

}  // namespace

ModelControl::ModelControl(ServerState* state, const ServerConfig& config) : state_(state), config_(config) {
  if (config_.model_control != ModelControlMode::kPoll) return;
  poller_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(poll_mu_);
    const auto period = std::chrono::duration<double>(config_.model_poll_seconds);
    while (!poll_wake_.wait_for(lock, period, [this] { return stopping_; })) {
      lock.unlock();
      PollOnce();
      lock.lock();
    }
  });
}

ModelControl::~ModelControl() {
  {
    std::lock_guard<std::mutex> lock(poll_mu_);
    stopping_ = true;
  }
  poll_wake_.notify_all();
  if (poller_.joinable()) poller_.join();
}

absl::Status ModelControl::CheckEnabled() const {
  if (config_.model_control == ModelControlMode::kNone) {
    return absl::FailedPreconditionError(
        "model control is disabled; set model_control: explicit (or poll) in the server config");
  }
  return absl::OkStatus();
}

absl::Status ModelControl::Authorize(std::string_view authorization) const {
  if (config_.model_control_token_file.empty()) return absl::OkStatus();
  return CheckBearer(authorization, config_.model_control_token_file);
}

std::vector<ModelControl::IndexEntry> ModelControl::Index() const {
  std::vector<IndexEntry> out;
  const auto repo = state_->repository();
  if (repo == nullptr) return out;
  for (const ModelEntry& e : repo->models()) {
    out.push_back({e.name, e.version > 0 ? std::to_string(e.version) : "", e.ready ? "READY" : "UNAVAILABLE",
                   e.ready ? "" : e.ClientError()});
  }
  // Folders that are not in the repository yet (added since it was read): listed, not loaded.
  for (const std::string& root : config_.model_repositories) {
    std::error_code ec;
    for (const auto& child : fs::directory_iterator(root, ec)) {
      const std::string name = child.path().filename().string();
      if (!child.is_directory() || !ModelRepository::IsValidName(name) || repo->Find(name, "").ok()) continue;
      out.push_back({name, "", "UNAVAILABLE", "not loaded"});
    }
  }
  std::sort(out.begin(), out.end(), [](const IndexEntry& a, const IndexEntry& b) { return a.name < b.name; });
  return out;
}

absl::Status ModelControl::Load(const std::string& name) {
  RETURN_IF_ERROR(CheckEnabled());
  std::lock_guard<std::mutex> lock(mu_);
  return LoadLocked(name);
}

absl::Status ModelControl::LoadLocked(const std::string& name) {
  if (!ModelRepository::IsValidName(name)) {
    return absl::InvalidArgumentError(absl::StrCat("'", name, "' is not a model name (letters, digits, '_', '-' and "
                                                   "'.', not starting with '.')"));
  }
  std::string dir;
  for (const std::string& root : config_.model_repositories) {
    std::error_code ec;
    if (fs::is_directory(fs::path(root) / name, ec)) dir = (fs::path(root) / name).string();
  }
  if (dir.empty()) return absl::NotFoundError(absl::StrCat("no model repository holds a folder '", name, "'"));
  if (state_->repository() == nullptr) return absl::UnavailableError("the model repository is still loading");
  LOG_INFO("model ", name, ": loading from ", dir);
  std::vector<ModelEntry> entries = ModelRepository::LoadEntries(dir, config_.model_defaults);
  const auto repo = state_->repository();
  const auto old = repo->Find(name, "");
  std::vector<std::string> errors;
  for (const ModelEntry& e : entries) {
    if (!e.ready) errors.push_back(e.version > 0 ? absl::StrCat("version ", e.version, ": ", e.ClientError()) : e.ClientError());
  }
  if (!errors.empty()) {
    // All or nothing: a model whose versions did not all load keeps what it served.
    const std::string error = absl::StrJoin(errors, "; ");
    if (old.ok() && (*old)->ready) {
      LOG_ERROR("model ", name, ": reload failed, version ", (*old)->version, " keeps serving: ", error);
      return absl::InvalidArgumentError(absl::StrCat("model '", name, "' failed to load (version ", (*old)->version,
                                                     " keeps serving): ", error));
    }
    LOG_ERROR("model ", name, " failed to load: ", error);
    state_->SetRepository(repo->With(name, std::move(entries)));
    return absl::InvalidArgumentError(absl::StrCat("model '", name, "' failed to load: ", error));
  }
  std::vector<std::string> loaded;
  for (const ModelEntry& e : entries) {
    loaded.push_back(absl::StrCat("model ", name, " version ", e.version, " loaded: precision ",
                                  PrecisionName(e.config.precision), ", ", e.runner->threads(), " threads"));
  }
  state_->SetRepository(repo->With(name, std::move(entries)));
  // Logged once the new versions serve, so that "loaded" in the log means requests reach them.
  for (const std::string& line : loaded) LOG_INFO(line);
  return absl::OkStatus();
}

absl::Status ModelControl::Unload(const std::string& name) {
  RETURN_IF_ERROR(CheckEnabled());
  std::lock_guard<std::mutex> lock(mu_);
  const auto repo = state_->repository();
  if (repo == nullptr) return absl::UnavailableError("the model repository is still loading");
  auto found = repo->Find(name, "");
  if (!found.ok()) return found.status();
  ModelEntry entry = **found;
  entry.runner = nullptr;  // the runner goes when the last snapshot holding it does, after its queued requests
  entry.ready = false;
  entry.unloaded = true;
  entry.error = "unloaded";
  entry.served.clear();
  std::vector<ModelEntry> marker;
  marker.push_back(std::move(entry));  // every served version goes; one entry says the model is unloaded
  state_->SetRepository(repo->With(name, std::move(marker)));
  LOG_INFO("model ", name, " unloaded");
  return absl::OkStatus();
}

void ModelControl::PollOnce() {
  std::lock_guard<std::mutex> lock(mu_);
  if (state_->repository() == nullptr) return;  // the first load is still under way
  for (const std::string& root : config_.model_repositories) {
    std::error_code ec;
    for (const auto& child : fs::directory_iterator(root, ec)) {
      const std::string name = child.path().filename().string();
      if (!child.is_directory() || !ModelRepository::IsValidName(name)) continue;
      const auto current = state_->repository()->Find(name, "");
      if (current.ok() && ((*current)->unloaded || (*current)->fingerprint == ModelRepository::Fingerprint(
                                                                                 child.path().string()))) {
        continue;
      }
      const absl::Status status = LoadLocked(name);  // logs its outcome
      (void)status;
    }
  }
}

}  // namespace coreserve
