// Test helper: random inputs for the exporter fixtures (tests/fixtures): input_ids, attention_mask (row r masks
// its last r positions) and token_type_ids of [batch, seq] for the text models, pixel_values of
// [batch, 3, 64, 64] for the image model.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "runtime/session.h"

namespace coreserve::testing {

using runtime::DataType;
using runtime::Session;
using runtime::Tensor;
using runtime::TensorInfo;

inline Tensor Ids(int64_t batch, int64_t seq, int64_t vocab, std::mt19937& rng) {
  Tensor t = Tensor::Allocate(DataType::kInt64, {batch, seq});
  for (int64_t i = 0; i < t.elements(); ++i) t.data<int64_t>()[i] = static_cast<int64_t>(rng() % vocab);
  return t;
}

inline std::vector<Tensor> InputsFor(const Session& s, int64_t batch, int64_t seq, std::mt19937& rng) {
  std::vector<Tensor> in;
  for (const TensorInfo& info : s.inputs()) {
    if (info.name == "pixel_values") {
      Tensor t = Tensor::Allocate(DataType::kFloat32, {batch, 3, 64, 64});
      std::normal_distribution<float> d;
      for (int64_t i = 0; i < t.elements(); ++i) t.data<float>()[i] = d(rng);
      in.push_back(t);
    } else if (info.name == "attention_mask") {
      Tensor t = Tensor::Allocate(DataType::kInt64, {batch, seq});
      for (int64_t i = 0; i < t.elements(); ++i) t.data<int64_t>()[i] = (i % seq) < seq - (i / seq) || seq == 1;
      in.push_back(t);
    } else {
      in.push_back(Ids(batch, seq, info.name == "token_type_ids" ? 2 : 1000, rng));
    }
  }
  return in;
}

}  // namespace coreserve::testing
