#include "server/server_state.h"

namespace coreserve {

void ServerState::SetRepository(std::shared_ptr<const ModelRepository> repository) {
  std::lock_guard<std::mutex> lock(mu_);
  repository_ = std::move(repository);
}

std::shared_ptr<const ModelRepository> ServerState::repository() const {
  std::lock_guard<std::mutex> lock(mu_);
  return repository_;
}

bool ServerState::ready() const {
  if (shutting_down()) return false;
  const auto repo = repository();
  return repo != nullptr && repo->AllReady();
}

}  // namespace coreserve
