#include "server/v2_datatype.h"

namespace coreserve {

std::string_view V2DataTypeName(runtime::DataType t) {
  using runtime::DataType;
  switch (t) {
    case DataType::kBool: return "BOOL";
    case DataType::kUInt8: return "UINT8";
    case DataType::kUInt16: return "UINT16";
    case DataType::kUInt32: return "UINT32";
    case DataType::kUInt64: return "UINT64";
    case DataType::kInt8: return "INT8";
    case DataType::kInt16: return "INT16";
    case DataType::kInt32: return "INT32";
    case DataType::kInt64: return "INT64";
    case DataType::kFloat16: return "FP16";
    case DataType::kBFloat16: return "BF16";
    case DataType::kFloat32: return "FP32";
    case DataType::kFloat64: return "FP64";
    case DataType::kString: return "BYTES";
    case DataType::kUndefined: break;
  }
  return "INVALID";
}

}  // namespace coreserve
