// Shared by the fuzz targets (tests/fuzz/README.md): reading every byte a parser hands back, so that a tensor
// whose view runs past its buffer is caught by AddressSanitizer here rather than later in a kernel.
#pragma once

#include <cstddef>
#include <cstdint>

#include "server/model_runner.h"

namespace coreserve::fuzz {

inline void TouchTensors(const NamedTensors& tensors) {
  volatile unsigned char sink = 0;
  for (const auto& [name, t] : tensors) {
    sink = sink ^ static_cast<unsigned char>(name.size());
    if (t.type() == runtime::DataType::kString || t.raw() == nullptr) continue;
    const auto* bytes = static_cast<const unsigned char*>(t.raw());
    for (std::size_t i = 0; i < t.bytes(); ++i) sink = sink ^ bytes[i];
  }
}

}  // namespace coreserve::fuzz
