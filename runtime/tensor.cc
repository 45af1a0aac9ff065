#include "runtime/tensor.h"

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace coreserve::runtime {

namespace {
thread_local std::size_t allocation_limit = SIZE_MAX;  // ScopedAllocationLimit's bound on this thread
}  // namespace

ScopedAllocationLimit::ScopedAllocationLimit(std::size_t max_bytes) : previous_(allocation_limit) {
  allocation_limit = std::min(allocation_limit, max_bytes);
}

ScopedAllocationLimit::~ScopedAllocationLimit() { allocation_limit = previous_; }

int64_t ElementCount(const Shape& shape) {
  for (int64_t d : shape) {
    if (d == 0) return 0;  // empty, however large the other dims
  }
  int64_t n = 1;
  for (int64_t d : shape) {
    if (__builtin_mul_overflow(n, d, &n)) return -1;
  }
  return n;
}

std::string ShapeString(const Shape& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

Tensor Tensor::Allocate(DataType type, Shape shape) {
  Tensor t;
  t.type_ = type;
  t.elements_ = ElementCount(shape);
  // A shape no memory could hold (negative, overflowing, or more bytes than an address space has) fails like an
  // allocation: the session turns bad_alloc into ResourceExhausted naming the node.
  if (t.elements_ < 0 ||
      t.elements_ > static_cast<int64_t>(PTRDIFF_MAX / 2 / std::max<std::size_t>(1, DataTypeSize(type))) ||
      t.bytes() > allocation_limit) {
    throw std::bad_alloc();
  }
  t.shape_ = std::move(shape);
  // Round up so the size is a multiple of the alignment (aligned_alloc's contract) and never zero.
  const std::size_t bytes = (t.bytes() + 63) / 64 * 64 + 64;
  void* p = std::aligned_alloc(64, bytes);
  if (p == nullptr) throw std::bad_alloc();
  t.data_ = p;
  t.owner_ = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  return t;
}

Tensor Tensor::Wrap(DataType type, Shape shape, void* data, std::shared_ptr<void> owner) {
  Tensor t;
  t.type_ = type;
  t.elements_ = ElementCount(shape);
  t.shape_ = std::move(shape);
  t.data_ = data;
  t.owner_ = std::move(owner);
  return t;
}

Tensor Tensor::Reshaped(Shape shape) const {
  assert(ElementCount(shape) == elements_);
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::Rows(int64_t begin, int64_t end) const {
  assert(rank() > 0 && 0 <= begin && begin <= end && end <= dim(0));
  Tensor t = *this;
  t.shape_[0] = end - begin;
  t.elements_ = ElementCount(t.shape_);
  const int64_t row = dim(0) > 0 ? elements_ / dim(0) : 0;
  t.data_ = static_cast<char*>(data_) + static_cast<std::size_t>(begin * row) * DataTypeSize(type_);
  return t;
}

}  // namespace coreserve::runtime
