// Element types of runtime tensors, numbered as ONNX's TensorProto.DataType so conversion is a check, not
// a table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace coreserve::runtime {

enum class DataType : int32_t {
  kUndefined = 0,
  kFloat32 = 1,
  kUInt8 = 2,
  kInt8 = 3,
  kUInt16 = 4,
  kInt16 = 5,
  kInt32 = 6,
  kInt64 = 7,
  kString = 8,
  kBool = 9,
  kFloat16 = 10,
  kFloat64 = 11,
  kUInt32 = 12,
  kUInt64 = 13,
  kBFloat16 = 16,
};

// The DataType for an ONNX TensorProto.DataType value; kUndefined for types the runtime does not know.
DataType DataTypeFromOnnx(int32_t onnx_type);

// Lower-case name ("float32", "int64", ...), for messages and `coreserve inspect`.
const char* DataTypeName(DataType type);

// Bytes per element; 0 for kString and kUndefined, whose elements have no fixed size.
std::size_t DataTypeSize(DataType type);

}  // namespace coreserve::runtime
