// KServe v2 datatype names ("FP32", "INT64", "BYTES", ...) for runtime element types; shared by the HTTP and
// gRPC front ends so both always agree.
#pragma once

#include <string_view>

#include "runtime/data_type.h"

namespace coreserve {

std::string_view V2DataTypeName(runtime::DataType type);

}  // namespace coreserve
