// KServe v2 tensors <-> runtime tensors: datatype names, shapes checked before anything is allocated, and the
// element data of the three wire forms — JSON `data` (flat or nested), raw little-endian bytes (Triton's binary
// tensor extension over HTTP, `raw_input_contents` over gRPC) — shared by both front ends so they accept and
// refuse exactly the same requests. Every error is InvalidArgument naming the tensor.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "rapidjson/document.h"
#include "runtime/tensor.h"
#include "server/json_writer.h"

namespace coreserve {

// The largest tensor a request may carry (its element bytes); larger ones are refused before allocation.
constexpr int64_t kMaxTensorBytes = int64_t{1} << 31;

// The runtime type of a v2 datatype name ("FP32", "INT64", ...).
absl::StatusOr<runtime::DataType> V2DataTypeFromName(std::string_view name);

// Checks a request's shape for `type`: every dimension >= 0 and the byte count at most kMaxTensorBytes (so no
// product overflows). Returns the element count.
absl::StatusOr<int64_t> CheckedElementCount(const std::string& name, runtime::DataType type,
                                            const runtime::Shape& shape);

// A tensor of `type` and `shape` from raw little-endian element bytes, whose count must match exactly.
absl::StatusOr<runtime::Tensor> TensorFromBytes(const std::string& name, runtime::DataType type,
                                                const runtime::Shape& shape, std::string_view bytes);

// A tensor from JSON `data`: numbers (or true/false for BOOL) in row-major order, as one flat array or nested
// arrays; each value must be representable in `type`. FP16, BF16 and BYTES have no JSON form here.
absl::StatusOr<runtime::Tensor> TensorFromJson(const std::string& name, runtime::DataType type,
                                               const runtime::Shape& shape, const rapidjson::Value& data);

// The tensor's elements as one flat JSON array.
void WriteJsonData(JsonWriter& w, const runtime::Tensor& t);
// Element i (row-major) of the tensor as a JSON value; non-finite floats as null (JSON has no NaN).
void WriteJsonElement(JsonWriter& w, const runtime::Tensor& t, int64_t i);

}  // namespace coreserve
