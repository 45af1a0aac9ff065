// The YAML config loaders: the server config (ParseServerConfig) and, on the same text, a model's config.yaml
// (ReadModelConfig over the server defaults). Operators write these files, but a typo must still get an error
// naming the key, never a crash.
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <string>

#include "server/config.h"
#include "server/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto server = coreserve::ParseServerConfig(text, "fuzz.yaml", "/nonexistent");
  (void)server;
  YAML::Node node;
  try {
    node = YAML::Load(text);
  } catch (const YAML::Exception&) {
    return 0;  // ParseServerConfig above reported the same syntax error as a status
  }
  auto model = coreserve::ReadModelConfig(node, "fuzz/config.yaml", "", coreserve::ModelConfig{});
  (void)model;
  return 0;
}
