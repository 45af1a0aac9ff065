// Tensor: a typed, shaped, contiguous row-major buffer, owned or shared.
//
// Storage is reference counted (std::shared_ptr), so a reshape or an identity is a view that costs nothing and
// keeps its source alive. Buffers from Tensor::Allocate are 64-byte aligned (one cache line, one zmm register)
// and uninitialised. A Tensor is not synchronised: share it across threads only read-only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/data_type.h"

namespace coreserve::runtime {

using Shape = std::vector<int64_t>;

// Product of the dimensions (1 for a scalar; 0 when any is 0); dimensions must be >= 0. -1 when the product does
// not fit in int64_t (Tensor::Allocate then fails with bad_alloc).
int64_t ElementCount(const Shape& shape);
// "[2,3,4]", for messages.
std::string ShapeString(const Shape& shape);

// While one is alive on a thread, Tensor::Allocate on that thread refuses (std::bad_alloc) any tensor of more
// than `max_bytes`. Constant folding runs under one, so a constant subgraph that would build a huge tensor fails
// the model's load with an error instead of taking the host's memory.
class ScopedAllocationLimit {
 public:
  explicit ScopedAllocationLimit(std::size_t max_bytes);
  ~ScopedAllocationLimit();
  ScopedAllocationLimit(const ScopedAllocationLimit&) = delete;
  ScopedAllocationLimit& operator=(const ScopedAllocationLimit&) = delete;

 private:
  std::size_t previous_;
};

class Tensor {
 public:
  Tensor() = default;

  // A new, uninitialised, 64-byte-aligned buffer for `shape` (all dims >= 0).
  static Tensor Allocate(DataType type, Shape shape);
  // A view of memory owned elsewhere; `owner` keeps it alive (may be null for memory that outlives the tensor).
  static Tensor Wrap(DataType type, Shape shape, void* data, std::shared_ptr<void> owner);

  bool empty() const { return type_ == DataType::kUndefined; }
  DataType type() const { return type_; }
  const Shape& shape() const { return shape_; }
  int64_t rank() const { return static_cast<int64_t>(shape_.size()); }
  int64_t dim(int64_t i) const { return shape_[static_cast<std::size_t>(i)]; }
  int64_t elements() const { return elements_; }
  std::size_t bytes() const { return static_cast<std::size_t>(elements_) * DataTypeSize(type_); }

  void* raw() { return data_; }
  const void* raw() const { return data_; }
  template <typename T>
  T* data() {
    return static_cast<T*>(data_);
  }
  template <typename T>
  const T* data() const {
    return static_cast<const T*>(data_);
  }

  // The storage this tensor keeps alive (shared by its views; null for an unowned Wrap), and how many tensors
  // share it: the Session's memory planner uses them to tell a view from a new buffer.
  const void* storage() const { return owner_.get(); }
  long storage_users() const { return owner_.use_count(); }

  // The same storage under another shape with the same element count.
  Tensor Reshaped(Shape shape) const;
  // Rows [begin, end) of the first dimension: a view sharing the storage (the server splits a batch's outputs
  // back into its requests this way). Requires rank >= 1 and 0 <= begin <= end <= dim(0).
  Tensor Rows(int64_t begin, int64_t end) const;

 private:
  DataType type_ = DataType::kUndefined;
  Shape shape_;
  int64_t elements_ = 0;
  void* data_ = nullptr;
  std::shared_ptr<void> owner_;
};

}  // namespace coreserve::runtime
