// NumPy .npy files (format versions 1-3, little-endian, C order) <-> Tensor, for `coreserve run` and tests.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "runtime/tensor.h"

namespace coreserve::runtime {

// InvalidArgument (naming the file) for a malformed header, Fortran order, big-endian or unsupported dtypes.
absl::StatusOr<Tensor> ReadNpy(const std::string& path);
absl::Status WriteNpy(const std::string& path, const Tensor& tensor);

}  // namespace coreserve::runtime
